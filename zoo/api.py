"""The public Python API: ``load``, ``list_models`` and the ``list_*`` / ``get_*`` pairs."""
from __future__ import annotations

import difflib
import fnmatch

from zoo.errors import ConfigError, PluginError, UnknownNameError, ZooError
from zoo.plugins import get_plugin_manager
from zoo.registry import Preset, TrainRecipe, load_registry
from zoo.validate import check_call

def unknown(kind: str, name: str, choices) -> UnknownNameError:
    """The error for an unknown name, with close matches and the choices."""
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
            raise unknown(f"architecture (preset {name!r} names)", preset.architecture, models)
        return models[preset.architecture], preset
    if name in models:
        return models[name], None
    raise unknown("model", name, set(models) | set(presets))


def model_config(spec, preset: Preset | None = None, saved: dict | None = None, overrides: dict | None = None) -> dict:
    """The build config: spec defaults <- preset config <- a saved run's config <- overrides, with
    ``None`` overrides dropped (timm's rule), unknown keys refused and values checked against the
    builder's annotations (each error names where the value came from)."""
    config = spec.config_defaults()
    layers = [(f"preset {preset.name!r}: config", preset.config)] if preset else []
    layers += [("saved run config", saved or {}),
               ("override", {k: v for k, v in (overrides or {}).items() if v is not None})]
    for origin, values in layers:
        config.update(spec.check_config(values, origin))
    return config


def read_run(weights, name: str | None = None) -> dict:
    """The ``config.json`` of a run directory written by ``zoo train --out`` or of a pack (any
    ``weights=`` value ``load`` accepts)."""
    from zoo.packs import is_local_run, resolve_weights
    from zoo.training.run import read_run_record

    if is_local_run(weights):
        return read_run_record(weights)
    return resolve_weights(weights, name=name).run


def build_model(spec, config: dict):
    """``spec.build(**config)``, with a builder's failure reported as the user's or the plugin's."""
    from zoo.plugins import get_plugin_manager

    try:
        model = spec.builder(**config)
    except (ValueError, TypeError) as exc:  # a builder refusing a value it was given
        raise ConfigError(f"architecture {spec.name!r} refused its config: {exc}") from None
    except ZooError:
        raise
    except Exception as exc:
        plugin = get_plugin_manager().provider("models", spec.name)
        raise PluginError(f"architecture {spec.name!r} from plugin {plugin.name!r} (distribution "
                          f"{plugin.distribution} {plugin.version}) failed to build: {type(exc).__name__}: {exc}") from exc
    if not hasattr(model, "fit") or not callable(model):
        plugin = get_plugin_manager().provider("models", spec.name)
        raise PluginError(f"architecture {spec.name!r} from plugin {plugin.name!r} (distribution "
                          f"{plugin.distribution} {plugin.version}): build returned {type(model).__name__}, "
                          f"not a keras.Model")
    return model


def load(name: str, *, weights=None, compile: bool = True, recipe: TrainRecipe | None = None, **overrides):
    """Build the architecture or preset ``name`` as a ``keras.Model``.

    Args:
        name: an architecture (``"convnet"``) or a preset from registry.yaml (``"convnet-mnist"``).
        weights: ``"pretrained"`` (the best pack a ``zoo_weights()`` plugin provides for ``name``), a
            pack directory or archive, a URL ending in ``#sha256=<hex>``, or a directory written by
            ``zoo train --out``; its saved config and weights are used. The model's ``card`` is the
            pack's card (``None`` without weights or for a run directory).
        compile: compile with the recipe's optimizer and the model's own loss, ready for ``fit``,
            ``evaluate`` and ``predict``. Objectives with a trainer of their own (``adversarial``,
            ``madry``, ``trades``, ``minimax``) wrap the network: ``zoo.training.steps.trainer_for(model,
            recipe)`` gives the model to ``fit`` for them (``zoo.training.fit.train`` does this).
        recipe: a training recipe replacing the preset's.
        **overrides: config keys of the architecture (``filters=(16, 32)``); ``None`` is ignored.
    """
    spec, preset = resolve(name)
    saved = local = None
    if weights is not None:
        from zoo.packs import resolve_weights

        local = resolve_weights(weights, name=name)
        run = local.run
        if run["architecture"] != spec.name:
            raise ConfigError(f"{local.source} holds a {run['architecture']!r} model, not {spec.name!r}")
        saved = run["config"]
    model = build_model(spec, model_config(spec, preset, saved, overrides))
    if local is not None:
        local.load_into(model)
    if compile:
        compile_network(model, recipe or (preset.train if preset else TrainRecipe()))
    model.card = local.card if local is not None else None  # the pack's card: what it is, how it was made
    return model


def compile_network(model, recipe):
    """Compile ``model`` for ``recipe``; when the recipe's objective wraps it in a trainer, compile
    the network for its plain loss instead (cross-entropy, or the model's own step)."""
    import dataclasses

    from zoo.training.kinds import has_own_train_step
    from zoo.training.steps import trainer_for

    if trainer_for(model, recipe) is not model:
        plain = "own" if has_own_train_step(model) else "supervised"
        trainer_for(model, dataclasses.replace(recipe, step=plain, step_params={}, ema_momentum=None))
    return model


def _get(kind: str, name: str, params: dict):
    factories = getattr(get_plugin_manager(), kind)()
    if name not in factories:
        raise unknown(kind[:-1].replace("_", " "), name, factories)
    check_call(factories[name], params, f"{kind[:-1].replace('_', ' ')} {name!r}")
    return factories[name](**params)


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
