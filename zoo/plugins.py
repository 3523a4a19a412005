"""Loading plugins: the built-ins, then the ``zoo`` entry points, each failure isolated.

Rules (see the README's "Writing a plugin"):

* a plugin whose import, registration or hook call fails is reported on stderr by its
  distribution name and skipped; it never stops zoo;
* hook names are validated when a plugin is registered (``check_pending``): a misspelt hook is an
  error that refuses the plugin, not silence;
* ``ZOO_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the built-ins; ``ZOO_BLOCKED_PLUGINS=a,b`` blocks
  plugins by entry-point or distribution name;
* the same model, attack, ... name from two plugins is a :class:`PluginError` naming both.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata
import os
import sys
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.errors import PluginError  # noqa: F401  (re-exported)
from zoo.spec import ModelSpec, TrainStep

#: Modules of the core that register like any plugin (datasette's DEFAULT_PLUGINS).
BUILTIN_PLUGINS = ("zoo.models", "zoo.data.sources", "zoo.training.kinds")
ENTRY_POINT_GROUP = "zoo"
HOOK_NAMES = tuple(n for n in dir(hookspecs) if n.startswith("zoo_"))


@dataclasses.dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: list[str]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


class PluginManager:
    """A small typed wrapper around ``pluggy.PluginManager`` with one method per hook."""

    def __init__(self):
        self._pm = pluggy.PluginManager("zoo")
        self._pm.add_hookspecs(hookspecs)
        self._origin: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)
        self.errors: list[str] = []
        self._cache: dict[str, dict] = {}

    # -- loading -----------------------------------------------------------------------------
    def load(self) -> "PluginManager":
        zoo_version = _version("zoo")
        for module_name in BUILTIN_PLUGINS:
            self._register(importlib.import_module(module_name), module_name, ("zoo", zoo_version))
        if _env_flag("ZOO_DISABLE_PLUGIN_AUTOLOAD"):
            return self
        blocked = {b.strip() for b in os.environ.get("ZOO_BLOCKED_PLUGINS", "").split(",") if b.strip()}
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = (ep.dist.name, ep.dist.version) if ep.dist else ("unknown", "?")
            if ep.name in blocked or dist[0] in blocked or self._pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must never take zoo down
                self._report(ep.name, dist, f"import failed: {type(exc).__name__}: {exc}")
                continue
            self._register(plugin, ep.name, dist)
        return self

    def register(self, plugin: Any, name: str, distribution: str = "<local>", version: str = "") -> bool:
        """Register an in-process plugin object (tests, notebooks). Returns False if refused."""
        self._cache.clear()
        return self._register(plugin, name, (distribution, version))

    def _register(self, plugin, name, dist) -> bool:
        try:
            self._pm.register(plugin, name=name)
        except Exception as exc:  # pluggy validates impl signatures against the specs here
            self._report(name, dist, f"refused: {exc}")
            return False
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError:
            self._pm.unregister(plugin)
            unknown = [
                attr for attr in dir(plugin)
                if attr.startswith("zoo_") and attr not in HOOK_NAMES
                and self._pm.parse_hookimpl_opts(plugin, attr) is not None
            ]
            hints = "; ".join(
                f"unknown hook {u!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, HOOK_NAMES, 1)) else "")
                for u in unknown
            ) or "unknown hook"
            self._report(name, dist, f"refused: {hints}; valid hooks: {', '.join(HOOK_NAMES)}")
            return False
        self._origin[name] = dist
        return True

    def _report(self, name, dist, message):
        line = f"zoo: plugin {name!r} from distribution {dist[0]} {dist[1]}: {message} (skipped)"
        self.errors.append(line)
        print(line, file=sys.stderr)

    # -- introspection -----------------------------------------------------------------------
    def plugins(self) -> list[PluginInfo]:
        out = []
        for name, plugin in self._pm.list_name_plugin():
            hooks = sorted(h.name for h in self._pm.get_hookcallers(plugin) or [])
            dist, version = self._origin.get(name, ("?", "?"))
            out.append(PluginInfo(name, dist, version, hooks))
        return sorted(out, key=lambda p: (p.distribution != "zoo", p.name))

    def provider(self, kind: str, name: str) -> PluginInfo:
        """Which plugin provides ``name`` of ``kind`` (``"models"``, ``"attacks"``, ...)."""
        plugin_name = self._collect(kind)[name][1]
        return next(p for p in self.plugins() if p.name == plugin_name)

    # -- one method per hook -----------------------------------------------------------------
    def models(self) -> dict[str, ModelSpec]:
        return {k: v[0] for k, v in self._collect("models").items()}

    def attacks(self) -> dict[str, Any]:
        return {k: v[0] for k, v in self._collect("attacks").items()}

    def adversary_heads(self) -> dict[str, Any]:
        return {k: v[0] for k, v in self._collect("adversary_heads").items()}

    def augmentations(self) -> dict[str, Any]:
        return {k: v[0] for k, v in self._collect("augmentations").items()}

    def datasets(self) -> dict[str, Any]:
        return {k: v[0] for k, v in self._collect("datasets").items()}

    def train_steps(self) -> dict[str, TrainStep]:
        return {k: v[0] for k, v in self._collect("train_steps").items()}

    def weights(self) -> dict[str, list[tuple[Any, str]]]:
        """``preset -> [(location, plugin name), ...]`` from every ``zoo_weights()``; several plugins
        may offer packs for one preset (``zoo.packs.offers`` ranks them), so this never conflicts."""
        if "weights" not in self._cache:
            found: dict[str, list[tuple[Any, str]]] = {}
            for impl in self._pm.hook.zoo_weights.get_hookimpls():
                try:
                    items = _weights_items(impl.function())
                except Exception as exc:
                    self._report(impl.plugin_name, self._origin.get(impl.plugin_name, ("?", "?")),
                                 f"hook zoo_weights() failed: {type(exc).__name__}: {exc}")
                    continue
                for preset, location in items:
                    found.setdefault(preset, []).append((location, impl.plugin_name))
            self._cache["weights"] = found
        return self._cache["weights"]

    def _collect(self, kind: str) -> dict[str, tuple[Any, str]]:
        if kind in self._cache:
            return self._cache[kind]
        found: dict[str, tuple[Any, str]] = {}
        for impl in getattr(self._pm.hook, "zoo_" + kind).get_hookimpls():
            dist = self._origin.get(impl.plugin_name, ("?", "?"))
            try:
                items = _as_items(kind, impl.function())
            except Exception as exc:
                self._report(impl.plugin_name, dist, f"hook zoo_{kind}() failed: {type(exc).__name__}: {exc}")
                continue
            for key, value in items:
                if key in found:
                    other = found[key][1]
                    raise PluginError(
                        f"{kind[:-1].replace('_', ' ')} {key!r} is provided by two plugins: {other!r} "
                        f"(distribution {self._origin[other][0]}) and {impl.plugin_name!r} "
                        f"(distribution {dist[0]}); uninstall one or block it with ZOO_BLOCKED_PLUGINS"
                    )
                found[key] = (value, impl.plugin_name)
        self._cache[kind] = found
        return found


def _as_items(kind, result):
    """Validate one hook's return value and turn it into (name, value) pairs."""
    if result is None:
        return []
    if kind == "models":
        specs = list(result)
        for s in specs:
            if not isinstance(s, ModelSpec):
                raise TypeError(f"zoo_models() must return ModelSpec objects, got {type(s).__name__}")
        return [(s.name, s) for s in specs]
    if kind == "train_steps":
        if not hasattr(result, "items"):
            raise TypeError(f"zoo_train_steps() must return a mapping name -> TrainStep, got {type(result).__name__}")
        for key, step in result.items():
            if not isinstance(key, str) or not isinstance(step, TrainStep):
                raise TypeError(f"zoo_train_steps() entry {key!r} must map a string name to a zoo.TrainStep")
        return list(result.items())
    if not hasattr(result, "items"):
        raise TypeError(f"zoo_{kind}() must return a mapping name -> factory, got {type(result).__name__}")
    for key, factory in result.items():
        if not isinstance(key, str) or not callable(factory):
            raise TypeError(f"zoo_{kind}() entry {key!r} must map a string name to a callable factory")
    return list(result.items())


def _weights_items(result):
    """Validate a ``zoo_weights()`` result into (preset, location) pairs."""
    if result is None:
        return []
    if not hasattr(result, "items"):
        raise TypeError(f"zoo_weights() must return a mapping preset -> location(s), got {type(result).__name__}")
    pairs = []
    for preset, locations in result.items():
        for location in locations if isinstance(locations, (list, tuple)) else [locations]:
            ok = isinstance(location, (str, os.PathLike)) or (
                isinstance(location, dict) and isinstance(location.get("location"), str))
            if not isinstance(preset, str) or not ok:
                raise TypeError(f"zoo_weights() entry {preset!r}: a location is a path, a URL or "
                                f"{{'location': URL, 'version': 'X.Y.Z'}}, got {location!r}")
            pairs.append((preset, location))
    return pairs


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "0+source"


_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loaded on first use."""
    global _manager
    if _manager is None:
        _manager = PluginManager().load()
    return _manager


def reset() -> None:
    """Forget loaded plugins so the next call reloads them (after installing one, or in tests)."""
    global _manager
    _manager = None
