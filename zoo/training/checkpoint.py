"""Atomic per-epoch checkpoints, so an interrupted ``zoo train`` resumes with nothing lost."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import keras


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_weights(model, path) -> None:
    """``model.save_weights`` (model and optimizer state) through a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.weights.h5")
    try:
        model.save_weights(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves weights, optimizer state and the history so far after every epoch."""

    WEIGHTS = "latest.weights.h5"
    STATE = "state.json"

    def __init__(self, directory, history=None):
        super().__init__()
        self.directory = Path(directory)
        # own lists: appending to the caller's would count every resumed epoch twice in its history
        self.history = {key: list(values) for key, values in (history or {}).items()}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        atomic_save_weights(self.model, self.directory / self.WEIGHTS)
        # The state is written last: it only ever points at complete weights.
        atomic_write_text(self.directory / self.STATE, json.dumps({"epoch": epoch + 1, "history": self.history}))

    @classmethod
    def restore(cls, model, directory) -> tuple[int, dict]:
        """Load the newest checkpoint in ``directory`` into ``model``; returns (epochs done, history)."""
        directory = Path(directory)
        state_path = directory / cls.STATE
        if not state_path.exists():
            return 0, {}
        state = json.loads(state_path.read_text())
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(str(directory / cls.WEIGHTS))
        return int(state["epoch"]), state.get("history", {})
