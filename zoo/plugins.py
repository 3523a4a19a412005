"""Loading plugins: the built-ins, then the ``zoo`` entry points, each failure isolated.

Rules (see the README's "Writing a plugin"):

* a plugin whose import, registration or hook call fails is reported on stderr by its
  distribution name and skipped; it never stops zoo;
* hook names are validated when a plugin is registered (``check_pending``): a misspelt hook is an
  error that refuses the plugin, not silence;
* ``ZOO_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the built-ins; ``ZOO_BLOCKED_PLUGINS=a,b`` blocks
  plugins by entry-point or distribution name;
* a plugin that raises anything while it is imported, registered or its hook is called — including
  ``SystemExit`` (``sys.exit``, or ``argparse``'s ``parse_args`` reading zoo's own command line)
  and ``KeyboardInterrupt`` — is reported by name and distribution and skipped; what it printed
  while failing is kept out of zoo's output (its last line goes into the report);
* the same model, attack, ... name from two plugins is reported naming both, and only the later
  entry is skipped — everything else of both plugins stays usable. "Later" is a fixed order: the
  built-ins (distribution ``zoo``) come first, so a built-in name such as ``convnet`` or ``pgd``
  always stays the built-in; outside plugins follow in the alphabetical order of their entry-point
  names (a plugin's ``tryfirst``/``trylast`` does not change it). Block the plugin you do not want
  with ``ZOO_BLOCKED_PLUGINS`` to silence the report.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import importlib.metadata
import io
import os
import sys
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.errors import PluginError  # noqa: F401  (re-exported)
from zoo.spec import ModelSpec, TrainStep

#: Modules of the core that register like any plugin (datasette's DEFAULT_PLUGINS); the shipped
#: packs are among them so that ``weights="pretrained"`` works with autoloading disabled.
BUILTIN_PLUGINS = ("zoo.models", "zoo.data.sources", "zoo.training.kinds", "zoo.packs.shipped")
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
        self._order: dict[str, int] = {}  # plugin name -> registration order (built-ins first)
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
            ok, plugin = self._isolated(ep.name, dist, "import failed", ep.load)
            if ok:
                self._register(plugin, ep.name, dist)
        return self

    def register(self, plugin: Any, name: str, distribution: str = "<local>", version: str = "") -> bool:
        """Register an in-process plugin object (tests, notebooks). Returns False if refused."""
        self._cache.clear()
        return self._register(plugin, name, (distribution, version))

    def _isolated(self, name, dist, what, fn, *args):
        """``(True, fn(*args))``, or ``(False, None)`` after reporting whatever ``fn`` raised —
        ``SystemExit`` and ``KeyboardInterrupt`` too, so no plugin can end zoo. What ``fn`` prints is
        held back and passed on only if it succeeds (a failing ``parse_args`` prints its usage)."""
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                result = fn(*args)
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            printed = (err.getvalue() or out.getvalue()).strip().splitlines()
            said = f"; it printed: {printed[-1].strip()}" if printed else ""
            self._report(name, dist, f"{what}: {_describe(exc)}{said}")
            return False, None
        sys.stdout.write(out.getvalue())
        sys.stderr.write(err.getvalue())
        return True, result

    def _register(self, plugin, name, dist) -> bool:
        ok, _ = self._isolated(name, dist, "refused", self._pm.register, plugin, name)
        if not ok:  # pluggy validates impl signatures against the specs here; a getattr may raise
            with contextlib.suppress(Exception):
                if self._pm.has_plugin(name):
                    self._pm.unregister(name=name)
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
        self._order[name] = len(self._order)
        return True

    def _report(self, name, dist, message, skipped="skipped"):
        line = f"zoo: plugin {name!r} from distribution {dist[0]} {dist[1]}: {message} ({skipped})"
        if line in self.errors:  # a hook collected again (after register()) fails the same way
            return
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
                ok, items = self._isolated(impl.plugin_name, self._origin.get(impl.plugin_name, ("?", "?")),
                                           "hook zoo_weights() failed", lambda f=impl.function: _weights_items(f()))
                if not ok:
                    continue
                for preset, location in items:
                    found.setdefault(preset, []).append((location, impl.plugin_name))
            self._cache["weights"] = found
        return self._cache["weights"]

    def check_all(self) -> list[str]:
        """Call every hook of every plugin (what ``zoo plugins`` does); returns :attr:`errors`."""
        for hook in HOOK_NAMES:
            getattr(self, hook[len("zoo_"):])()
        return self.errors

    def _collect(self, kind: str) -> dict[str, tuple[Any, str]]:
        if kind in self._cache:
            return self._cache[kind]
        found: dict[str, tuple[Any, str]] = {}
        impls = getattr(self._pm.hook, "zoo_" + kind).get_hookimpls()
        # the fixed order of the conflict rule: built-ins, then entry points by name (not pluggy's
        # call order, which a plugin's tryfirst could change)
        for impl in sorted(impls, key=lambda i: self._order.get(i.plugin_name, len(self._order))):
            dist = self._origin.get(impl.plugin_name, ("?", "?"))
            ok, items = self._isolated(impl.plugin_name, dist, f"hook zoo_{kind}() failed",
                                       lambda f=impl.function: _as_items(kind, f()))
            if not ok:
                continue
            for key, value in items:
                if key in found:
                    other = found[key][1]
                    self._report(
                        impl.plugin_name, dist,
                        f"{kind[:-1].replace('_', ' ')} {key!r} is already provided by plugin {other!r} "
                        f"(distribution {self._origin.get(other, ('?',))[0]}); uninstall one or block it "
                        f"with ZOO_BLOCKED_PLUGINS",
                        skipped=f"its {key!r} skipped, the rest of the plugin kept",
                    )
                    continue
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

def _describe(exc: BaseException) -> str:
    """One line about what a plugin raised."""
    if isinstance(exc, SystemExit):
        return (f"called sys.exit({exc.code!r}) (argparse's parse_args() at import or in a hook does this; "
                f"plugins must not read the command line)")
    if isinstance(exc, KeyboardInterrupt):
        return "raised KeyboardInterrupt"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


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
