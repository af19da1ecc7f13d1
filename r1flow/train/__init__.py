"""LightningModules and their losses, one module per algorithm: ``sft`` (pretraining and SFT),
``grpo`` (with ``grpo_loss``), ``reward_model``; ``trainer`` builds the Lightning Trainer.
Each is run by the stage runner of the same name in r1flow/runners/."""
