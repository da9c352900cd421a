"""What the step kinds share: the runner, models and training, cells, text features."""
