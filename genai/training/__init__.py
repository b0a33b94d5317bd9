"""Training: accelerate loop, checkpoints and resume, artifact export, merge, launch."""
