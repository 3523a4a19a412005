"""A run directory, ``zoo train --out DIR``: what it holds and the rules that keep it honest.

    DIR/config.json          the run record: preset, architecture, config, dataset (and its args),
                             the full recipe, seed, zoo version
    DIR/checkpoint/          state.json — the commit: epochs done, history, RNG states and the name of
                             the weights file it belongs to — and that epoch-N.weights.h5
    DIR/model.weights.h5     the trained network, DIR/metrics.json its test metrics (at the end)
    DIR/.lock                held while a process trains into DIR

Rules: a run is resumed only by the same preset, config, dataset, seed and recipe (epochs may grow
unless the learning-rate schedule depends on them); nothing is written before the checkpoint has
loaded; a checkpoint commits by replacing state.json, so a kill at any moment leaves the previous
epoch's checkpoint whole; two processes never train into one directory at once.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from pathlib import Path
from typing import Annotated, Any

from zoo.errors import ConfigError
from zoo.files import atomic_write_text
from zoo.registry import TrainRecipe
from zoo.validate import Range, check

RUN_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoint"
LOCK_FILE = ".lock"
SEED = Range(0, 2**32 - 1)


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """``config.json`` of a run directory."""

    name: str
    architecture: str
    config: dict[str, Any]
    dataset: str
    recipe: TrainRecipe = dataclasses.field(default_factory=TrainRecipe)
    seed: Annotated[int, SEED] = 0
    dataset_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    zoo_version: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, allow_nan=False, default=_jsonable)

    def differences(self, other: "RunRecord") -> list[str]:
        """The fields (``recipe.x`` for the recipe's) in which ``other`` trains a different model;
        ``recipe.epochs`` is compared by the caller and the zoo version not at all."""
        ours, theirs = json.loads(self.to_json()), json.loads(other.to_json())
        out = [k for k in ("name", "architecture", "config", "dataset", "dataset_args", "seed") if ours[k] != theirs[k]]
        out += [f"recipe.{k}" for k in ours["recipe"] if k != "epochs" and ours["recipe"][k] != theirs["recipe"][k]]
        return out


def _jsonable(value):
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    raise TypeError(f"not JSON-serialisable: {value!r}")


def read_run_record(directory, *, need_weights: bool = True) -> dict:
    """The checked ``config.json`` of a run directory, as a dict; a damaged one is an error that
    says how to recover."""
    directory = Path(directory)
    path = directory / RUN_FILE
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a trained-model directory (no such directory; "
                          f"write one with `zoo train NAME --out DIR`)")
    if not path.exists() or (need_weights and not (directory / WEIGHTS_FILE).exists()):
        raise ConfigError(f"{directory} is not a trained-model directory (needs {RUN_FILE} and {WEIGHTS_FILE}; "
                          f"write one with `zoo train NAME --out DIR`, or rerun that command to finish it)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path} is damaged ({type(exc).__name__}: {exc}); delete {directory} and train again") from None
    if isinstance(data, dict) and isinstance(data.get("recipe"), dict):
        data["recipe"] = {k: v for k, v in data["recipe"].items() if v is not None or k == "ema_momentum"}
    record = check(RunRecord, data, f"{path} (delete {directory} and train again if it was edited by hand)")
    return json.loads(record.to_json())


def record_of(data: dict) -> RunRecord:
    """A :class:`RunRecord` from a dict read by :func:`read_run_record` (or built by ``train``)."""
    return check(RunRecord, data, "run record")


class RunLock:
    """An exclusive lock on a run directory, held while training into it (released if the process dies)."""

    def __init__(self, directory):
        self.path = Path(directory) / LOCK_FILE
        self._fd = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"{self.path.parent} is in use by another `zoo train`; wait for it to finish "
                              f"or choose another --out") from None
        self._fd = fd
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        return False


def check_same_run(directory: Path, previous: RunRecord, run: RunRecord) -> None:
    """Refuse to continue ``previous`` (the run in ``directory``) as ``run`` if they train different
    models: another preset, config, dataset, seed or recipe (the number of epochs aside)."""
    differs = previous.differences(run)
    if differs:
        first = differs[0]
        raise ConfigError(f"{directory} already holds a different run ({previous.name}; {', '.join(differs)} differ, "
                          f"{first}: {_field(previous, first)!r} there, {_field(run, first)!r} now); "
                          f"choose another --out, or delete {directory} to start over")


def check_epochs(directory: Path, previous: RunRecord, run: RunRecord, epochs_done: int) -> None:
    """Refuse an ``--epochs`` that would misrecord the run: fewer than done, or another total for a
    schedule that depends on it."""
    fix = f"choose another --out, or delete {directory} to start over"
    if run.recipe.epochs < epochs_done:
        raise ConfigError(f"{directory} has already trained {epochs_done} epochs; --epochs {run.recipe.epochs} "
                          f"would leave it recorded as less than it is; {fix}")
    if run.recipe.epochs != previous.recipe.epochs and run.recipe.lr_schedule != "constant":
        raise ConfigError(f"{directory} was trained with a {run.recipe.lr_schedule} schedule over "
                          f"{previous.recipe.epochs} epochs, which --epochs {run.recipe.epochs} would change; {fix}")


def _field(record: RunRecord, name: str):
    data = json.loads(record.to_json())
    for part in name.split("."):
        data = data[part]
    return data


def write_run_record(directory: Path, run: RunRecord) -> None:
    atomic_write_text(Path(directory) / RUN_FILE, run.to_json())
