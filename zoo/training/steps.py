"""Train-step kinds: how a training recipe compiles a model for ``fit``.

A preset's ``train.step`` names one of :data:`STEP_KINDS`. ``supervised`` is Keras's own
``train_step`` with cross-entropy (E = −ln ŷ_true); ``own`` is for models that override
``train_step`` themselves (VAE, GAN, LAS) and only need their optimizer(s). Further kinds register
with :func:`register_step`.
"""
from __future__ import annotations

from typing import Callable

from zoo.errors import ConfigError, UnknownNameError

STEP_KINDS: dict[str, Callable] = {}


def register_step(name: str):
    """Decorator: ``configure(model, recipe)`` compiles ``model`` for the step kind ``name``."""

    def decorator(fn):
        STEP_KINDS[name] = fn
        return fn

    return decorator


def make_optimizer(recipe):
    """A Keras optimizer from a recipe's ``optimizer`` name, ``learning_rate`` and ``ema_momentum``."""
    import keras

    try:
        cls = keras.optimizers.get(recipe.optimizer).__class__
    except ValueError as exc:
        raise ConfigError(f"unknown optimizer {recipe.optimizer!r} in the training recipe") from exc
    ema = {} if recipe.ema_momentum is None else {"use_ema": True, "ema_momentum": recipe.ema_momentum}
    return cls(learning_rate=recipe.learning_rate, **ema)


def classifier_loss(model):
    """Cross-entropy matching the model's output: probabilities (softmax) or logits."""
    import keras

    from_logits = getattr(model, "output_kind", "softmax") == "logits"
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def compile_model(model, recipe):
    """Compile ``model`` as the recipe's step kind says."""
    if recipe.step not in STEP_KINDS:
        raise UnknownNameError(f"unknown train-step kind {recipe.step!r}; available: {', '.join(sorted(STEP_KINDS))}")
    STEP_KINDS[recipe.step](model, recipe)
    return model


@register_step("supervised")
def _supervised(model, recipe):
    if recipe.step_params:
        raise ConfigError(f"the supervised step takes no step_params, got {sorted(recipe.step_params)}")
    model.compile(optimizer=make_optimizer(recipe), loss=classifier_loss(model), metrics=["accuracy"])


@register_step("own")
def _own(model, recipe):
    model.compile(optimizer=make_optimizer(recipe), **recipe.step_params)
