"""Training: train-step kinds (``steps``), ``fit``, checkpoints.

Modules that register further train-step kinds are imported here so every kind is known as soon
as any training code is.
"""
from zoo.training import adversarial  # noqa: F401  (registers "adversarial" and "madry")
from zoo.training import minimax  # noqa: F401  (registers "minimax")
