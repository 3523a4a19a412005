"""What plugins return: ``ModelSpec`` from ``zoo_models()``, ``TrainStep`` from ``zoo_train_steps()``."""
from __future__ import annotations

import dataclasses
import functools
import importlib
from typing import Any, Callable, Mapping

from zoo.errors import ConfigError
from zoo.validate import check_value, signature_annotations, signature_defaults, unknown_key_error


def _resolve(target):
    """A callable, or ``"package.module:attribute"`` imported now (so listing stays import-free)."""
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """An architecture the zoo can build.

    Args:
        name: architecture name used by ``load`` and by presets (``"convnet"``).
        build: ``build(**config) -> keras.Model``, or its import path ``"package.module:Class"``
            (imported on first build, so ``zoo list`` does not import TensorFlow).
        defaults: the config keys ``build`` accepts with their defaults; when omitted they are read
            from ``build``'s signature, and its annotations check every override.
        description: one line shown by ``zoo list`` and ``zoo info``.
        family: ``"classifier"``, ``"autoencoder"``, ``"vae"``, ``"gan"``, ``"las"``, ... (shown by
            ``zoo info``; export reads it when the model names no signatures of its own).
        evaluate: optional ``evaluate(model, dataset, **options) -> dict`` replacing the default
            ``model.evaluate`` on the test split.
        callbacks: optional ``callbacks(model, dataset, out_dir) -> list[keras.callbacks.Callback]``
            added to training (e.g. sample grids for generative models).
    """

    name: str
    build: Callable[..., Any] | str
    defaults: Mapping[str, Any] | None = None
    description: str = ""
    family: str = "classifier"
    evaluate: Callable[..., dict] | None = None
    callbacks: Callable[..., list] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"ModelSpec.name must be a non-empty string, got {self.name!r}")
        if not (callable(self.build) or (isinstance(self.build, str) and ":" in self.build)):
            raise TypeError(f"ModelSpec {self.name!r}: build must be callable or 'module:attribute'")
        if self.defaults is not None:
            object.__setattr__(self, "defaults", dict(self.defaults))

    @functools.cached_property
    def builder(self) -> Callable[..., Any]:
        """``build`` as a callable (an import path is imported here)."""
        return _resolve(self.build)

    def config_defaults(self) -> dict:
        """Every config key with its default: ``defaults``, or ``build``'s keyword parameters."""
        if self.defaults is not None:
            return dict(self.defaults)
        return signature_defaults(self.builder)

    def check_config(self, config: Mapping, where: str) -> dict:
        """``config`` with unknown keys refused and values checked against ``build``'s annotations."""
        defaults = self.config_defaults()
        annotations = signature_annotations(self.builder)
        out = {}
        for key, value in config.items():
            if key not in defaults:
                raise unknown_key_error(key, defaults, f"{where} (architecture {self.name!r})")
            out[key] = check_value(annotations[key], value, where, key) if key in annotations else value
        return out


@dataclasses.dataclass(frozen=True)
class TrainStep:
    """A train-step kind (``train.step`` of a recipe): how a model is trained by ``fit``.

    Args:
        build: ``build(model, recipe, params) -> keras.Model``, compiled and ready for ``fit``: the
            model itself, or a trainer model that wraps it (and owns heads, optimizers, metrics).
            ``params`` is ``recipe.step_params`` checked against ``params`` below. A ``ConfigError``
            it raises that starts with ``"train.step_params"`` is re-worded to name the preset.
        params: a dataclass declaring ``step_params`` (checked by ``zoo.validate.check``: unknown
            keys and bad values are refused with the field named); ``None`` passes the mapping as is.
        description: one line for ``zoo plugins`` and the docs.
        accepts: optional ``accepts(model) -> str | None``: why this kind cannot train ``model``
            (``None``: it can), asked before anything is built or trained.
    """

    build: Callable[..., Any] | str
    params: type | None = None
    description: str = ""
    accepts: Callable[[Any], str | None] | None = None

    def __post_init__(self):
        if not (callable(self.build) or (isinstance(self.build, str) and ":" in self.build)):
            raise TypeError("TrainStep.build must be callable or 'module:attribute'")
        if self.params is not None and not dataclasses.is_dataclass(self.params):
            raise TypeError("TrainStep.params must be a dataclass (or None)")

    def check_params(self, step_params: dict, where: str = "train.step_params"):
        """``step_params`` checked against :attr:`params` (as they are when ``params`` is None)."""
        from zoo.validate import check

        return step_params if self.params is None else check(self.params, step_params, where)

    def __call__(self, model, recipe, where: str = "train.step_params"):
        """Check ``recipe.step_params`` and the model, then build what ``fit`` trains."""
        if self.accepts is not None and (reason := self.accepts(model)):
            raise ConfigError(f"train step {recipe.step!r} cannot train {type(model).__name__}: {reason}")
        params = self.check_params(recipe.step_params, where)
        try:
            trained = _resolve(self.build)(model, recipe, params)
        except ConfigError as exc:  # a build names "train.step_params"; the caller knows which preset's
            prefix = "train.step_params"
            if str(exc).startswith(prefix) and where != prefix:
                raise ConfigError(where + str(exc)[len(prefix):]) from None
            raise
        if trained is not model and not trained.built and model.built:
            # a trainer only wraps the built network (Keras's Distiller is never called either);
            # mark it built so that its checkpoints can be saved
            trained.built = True
        return trained
