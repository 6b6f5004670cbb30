"""Training: datasets, two-stage DeconvNet crops, whole-image training, checkpoints and resuming."""
