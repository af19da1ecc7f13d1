"""r1flow building blocks: configs, the tiny world, models, the SFT module, evaluation."""
