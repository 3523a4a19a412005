"""Training: train-step kinds (``kinds``, ``steps``), their trainer models (``adversarial``,
``minimax``), ``fit`` with run directories and checkpoints."""
