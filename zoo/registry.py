"""Presets from ``registry.yaml``: an architecture, its config overrides, a dataset, a training
recipe and metadata — validated when read, so a bad entry names the file, the preset and the field.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from zoo import yamlio
from zoo.errors import ConfigError, RegistryError
from zoo.validate import POSITIVE, Range, check

_PACKAGED = Path(__file__).with_name("registry.yaml")  # installed copy (setup.py puts it there)
_SOURCE = Path(__file__).resolve().parent.parent / "registry.yaml"  # source checkout / editable


@dataclasses.dataclass(frozen=True)
class TrainRecipe:
    """How a preset is trained (``train:`` in registry.yaml); ``step`` names a train-step kind."""

    optimizer: str = "adam"
    learning_rate: Annotated[float, POSITIVE] = 1e-3
    epochs: Annotated[int, Range(1)] = 1
    batch_size: Annotated[int, Range(1)] = 64
    step: str = "auto"  # "auto": the model's own train_step if it has one, else "supervised"
    step_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    # keep an exponential moving average of the weights; the model ends with it
    ema_momentum: Annotated[float, Range(0, 1, low_open=True, high_open=True)] | None = None


LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class Metadata:
    """What a preset says about itself (``metadata:``); shown by ``zoo info``."""

    description: str = ""
    citation: str = ""
    metrics: list[str] = dataclasses.field(default_factory=list)
    notes: str = ""


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    architecture: str
    dataset: str
    config: dict[str, Any]
    train: TrainRecipe
    metadata: dict


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One preset as written in registry.yaml (the name is its key)."""

    architecture: str
    dataset: str
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    train: TrainRecipe = dataclasses.field(default_factory=TrainRecipe)
    metadata: Metadata = dataclasses.field(default_factory=Metadata)


def registry_path() -> Path:
    """The registry in use: ``$ZOO_REGISTRY``, else the installed copy, else the source checkout."""
    if os.environ.get("ZOO_REGISTRY"):
        return Path(os.environ["ZOO_REGISTRY"])
    return _PACKAGED if _PACKAGED.exists() else _SOURCE


def load_registry(path: str | os.PathLike | None = None) -> dict[str, Preset]:
    """Read and validate a registry file into ``{preset name: Preset}``."""
    path = Path(path) if path is not None else registry_path()
    return _load_cached(str(path), os.stat(path).st_mtime_ns if path.exists() else 0)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, _mtime: int) -> dict[str, Preset]:
    try:
        doc = yamlio.load_file(path)  # size, UTF-8, duplicate-key and alias limits
    except yamlio.YamlError as exc:
        raise RegistryError(f"preset registry {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("presets"), dict):
        raise RegistryError(f"{path}: expected a top-level mapping with a 'presets' mapping")
    return {name: _parse_preset(path, name, entry) for name, entry in doc["presets"].items()}


def _parse_preset(path: str, name: Any, entry: Any) -> Preset:
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise RegistryError(f"{path}: preset name {name!r} must be a string of letters, digits, '-' and '_'")
    # `config: ` or `train: ` left empty in YAML is null: read it as "no overrides"
    entry = {k: v for k, v in entry.items() if v is not None} if isinstance(entry, dict) else entry
    try:
        parsed = check(_Entry, entry, f"{path}: preset {name!r}")
    except ConfigError as exc:
        raise RegistryError(str(exc)) from None
    for key in ("architecture", "dataset"):
        if not getattr(parsed, key):
            raise RegistryError(f"{path}: preset {name!r}: field {key!r}: required, a non-empty string")
    metadata = {k: entry["metadata"][k] for k in entry.get("metadata") or {}}
    return Preset(name, parsed.architecture, parsed.dataset, parsed.config, parsed.train, metadata)
