"""Presets from ``registry.yaml``: an architecture, its config overrides, a dataset, a training
recipe and metadata — validated when read, so a bad entry names the file, the preset and the field.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any

from zoo import yamlio
from zoo.errors import RegistryError  # noqa: F401  (re-exported)

_PACKAGED = Path(__file__).with_name("registry.yaml")  # installed copy (setup.py puts it there)
_SOURCE = Path(__file__).resolve().parent.parent / "registry.yaml"  # source checkout / editable


@dataclasses.dataclass(frozen=True)
class TrainRecipe:
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    epochs: int = 1
    batch_size: int = 64
    step: str = "supervised"
    step_params: dict = dataclasses.field(default_factory=dict)
    lr_schedule: str = "constant"
    ema_momentum: float | None = None  # keep an exponential moving average of the weights; the model ends with it


LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    architecture: str
    dataset: str
    config: dict
    train: TrainRecipe
    metadata: dict


_TOP_KEYS = {"architecture", "dataset", "config", "train", "metadata"}
_METADATA_KEYS = {"description", "citation", "metrics", "notes"}


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
    def fail(field: str, problem: str):
        raise RegistryError(f"{path}: preset {name!r}: field {field!r}: {problem}")

    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise RegistryError(f"{path}: preset name {name!r} must be a string of letters, digits, '-' and '_'")
    if not isinstance(entry, dict):
        fail("<entry>", f"expected a mapping, got {type(entry).__name__}")
    for key in entry:
        if key not in _TOP_KEYS:
            fail(key, f"unknown field; valid fields are {sorted(_TOP_KEYS)}")
    for key in ("architecture", "dataset"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            fail(key, "required, a non-empty string")
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        fail("config", "expected a mapping of config overrides")
    metadata = entry.get("metadata") or {}
    if not isinstance(metadata, dict):
        fail("metadata", "expected a mapping")
    for key in metadata:
        if key not in _METADATA_KEYS:
            fail(f"metadata.{key}", f"unknown field; valid fields are {sorted(_METADATA_KEYS)}")
    if "metrics" in metadata and not (
        isinstance(metadata["metrics"], list) and all(isinstance(m, str) for m in metadata["metrics"])
    ):
        fail("metadata.metrics", "expected a list of metric names")
    train = entry.get("train") or {}
    if not isinstance(train, dict):
        fail("train", "expected a mapping")
    fields = {f.name: f for f in dataclasses.fields(TrainRecipe)}
    for key, value in train.items():
        if key not in fields:
            fail(f"train.{key}", f"unknown field; valid fields are {sorted(fields)}")
        if key in ("epochs", "batch_size") and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            fail(f"train.{key}", f"expected a positive integer, got {value!r}")
        if key == "learning_rate" and not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")):
            fail(f"train.{key}", f"expected a positive finite number, got {value!r}")
        if key in ("optimizer", "step") and not (isinstance(value, str) and value):
            fail(f"train.{key}", f"expected a non-empty string, got {value!r}")
        if key == "ema_momentum" and not (value is None or (isinstance(value, float) and 0.0 < value < 1.0)):
            fail(f"train.{key}", f"expected a number strictly between 0 and 1, got {value!r}")
        if key == "lr_schedule" and value not in LR_SCHEDULES:
            fail(f"train.{key}", f"expected one of {list(LR_SCHEDULES)}, got {value!r}")
        if key == "step_params" and not isinstance(value, dict):
            fail(f"train.{key}", "expected a mapping")
    return Preset(
        name=name,
        architecture=entry["architecture"],
        dataset=entry["dataset"],
        config=dict(config),
        train=TrainRecipe(**train),
        metadata=dict(metadata),
    )
