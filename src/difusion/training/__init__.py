"""Training: one loop for every objective, with EMA, checkpoints, resume and DDP."""
