"""Stage runners: each runs the stages of one kind with the LightningModule of the same name in
r1flow/train/ (or the sampler, for curation): load inputs, fit or sample, export, record."""
