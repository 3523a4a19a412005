"""The public Python API: ``load``, ``list_models`` and the ``list_*`` / ``get_*`` pairs."""
from __future__ import annotations

import difflib
import fnmatch
import json
from pathlib import Path

from zoo.errors import ConfigError, UnknownNameError
from zoo.plugins import get_plugin_manager
from zoo.registry import Preset, TrainRecipe, load_registry

WEIGHTS_FILE = "model.weights.h5"
RUN_FILE = "config.json"


def _unknown(kind: str, name: str, choices) -> UnknownNameError:
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}{hint} (available: {', '.join(choices) or 'none'})")


def list_models(pattern: str = "*") -> list[str]:
    """Architectures and presets whose names match the fnmatch ``pattern`` (sorted)."""
    names = set(get_plugin_manager().models()) | set(load_registry())
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def resolve(name: str):
    """``name`` -> ``(ModelSpec, Preset or None)``; an unknown name lists close matches."""
    models = get_plugin_manager().models()
    presets = load_registry()
    if name in presets:
        preset = presets[name]
        if preset.architecture not in models:
            raise _unknown(f"architecture (preset {name!r} names)", preset.architecture, models)
        return models[preset.architecture], preset
    if name in models:
        return models[name], None
    raise _unknown("model", name, set(models) | set(presets))


def model_config(spec, preset: Preset | None = None, saved: dict | None = None, overrides: dict | None = None) -> dict:
    """The build config: spec defaults <- preset config <- a saved run's config <- overrides,
    with ``None`` overrides dropped (timm's rule) and unknown keys refused."""
    config = dict(spec.defaults)
    layers = [("preset " + preset.name, preset.config)] if preset else []
    layers += [("saved run", saved or {}), ("override", {k: v for k, v in (overrides or {}).items() if v is not None})]
    for origin, values in layers:
        for key, value in values.items():
            if key not in spec.defaults:
                raise ConfigError(
                    f"unknown {origin} key {key!r} for architecture {spec.name!r}; "
                    f"valid keys: {', '.join(sorted(spec.defaults))}"
                )
            config[key] = value
    return config


def read_run(weights) -> dict:
    """The ``config.json`` of a directory written by ``zoo train --out``."""
    path = Path(weights) / RUN_FILE
    if not (Path(weights) / WEIGHTS_FILE).exists() or not path.exists():
        raise ConfigError(f"{weights} is not a trained-model directory (needs {RUN_FILE} and {WEIGHTS_FILE}; "
                          f"write one with `zoo train NAME --out DIR`)")
    return json.loads(path.read_text())


def load(name: str, *, weights=None, compile: bool = True, recipe: TrainRecipe | None = None, **overrides):
    """Build the architecture or preset ``name`` as a compiled ``keras.Model`` ready for ``fit``.

    Args:
        name: an architecture (``"convnet"``) or a preset from registry.yaml (``"convnet-mnist"``).
        weights: a directory written by ``zoo train --out``; its saved config and weights are used.
        compile: compile with the preset's training recipe (optimizer, loss, train-step kind).
        recipe: a training recipe replacing the preset's.
        **overrides: config keys of the architecture (``filters=(16, 32)``); ``None`` is ignored.
    """
    from zoo.training.steps import compile_model

    spec, preset = resolve(name)
    saved = None
    if weights is not None:
        run = read_run(weights)
        if run["architecture"] != spec.name:
            raise ConfigError(f"{weights} holds a {run['architecture']!r} model, not {spec.name!r}")
        saved = run["config"]
    config = model_config(spec, preset, saved, overrides)
    model = spec.build(**config)
    if compile:
        compile_model(model, recipe or (preset.train if preset else TrainRecipe()))
    if weights is not None:
        if getattr(model, "optimizer", None) is not None and not model.optimizer.built:  # none when compile=False
            model.optimizer.build(model.trainable_variables)  # so the saved optimizer state loads too
        model.load_weights(str(Path(weights) / WEIGHTS_FILE))
    return model


def _get(kind: str, name: str, params: dict):
    import inspect

    factories = getattr(get_plugin_manager(), kind)()
    if name not in factories:
        raise _unknown(kind[:-1].replace("_", " "), name, factories)
    factory = factories[name]
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to check here
        signature = None
    if signature is not None:
        try:
            signature.bind(**params)
        except TypeError as exc:
            valid = [p.name for p in signature.parameters.values()
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            raise ConfigError(f"{kind[:-1].replace('_', ' ')} {name!r}: {exc}; its parameters: "
                              f"{', '.join(valid) or 'none'}") from None
    return factory(**params)


def list_attacks() -> list[str]:
    """Names of the attacks plugins provide."""
    return sorted(get_plugin_manager().attacks())


def get_attack(name: str, **params):
    """An attack, ``attack(model, x, y=None, *, target=None) -> x_adv``, built with ``params``."""
    return _get("attacks", name, params)


def list_adversary_heads() -> list[str]:
    """Names of the adversary heads plugins provide."""
    return sorted(get_plugin_manager().adversary_heads())


def get_adversary_head(name: str, **params):
    """An adversary head (a ``keras.Model`` reading a hidden layer), built with ``params``."""
    return _get("adversary_heads", name, params)


def list_augmentations() -> list[str]:
    """Names of the augmentations plugins provide."""
    return sorted(get_plugin_manager().augmentations())


def get_augmentation(name: str, **params):
    """An augmentation, ``augmentation(x, y) -> (x, y)``, built with ``params``."""
    return _get("augmentations", name, params)
