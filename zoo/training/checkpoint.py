"""Per-epoch checkpoints that resume bit-exactly: weights, optimizer state and RNG state, committed
at once.

After epoch N the callback writes ``epoch-N.weights.h5`` (the trained model: weights and optimizer
state), then replaces ``state.json`` — the commit — which names that file and holds the history and
the RNG states (the seed generators of dropout and other random layers, which Keras leaves out of
weight files). Only then are older weight files removed, so a kill at any moment leaves a state.json
whose weights file is whole.
"""
from __future__ import annotations

import json
from pathlib import Path

import keras

from zoo.errors import ConfigError
from zoo.files import atomic_save_weights, atomic_write_text


def rng_variables(model) -> list:
    """The model's variables that are not weights: the states of its seed generators."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves weights, optimizer state, RNG state and the history so far after every epoch."""

    STATE = "state.json"
    LEGACY_WEIGHTS = "latest.weights.h5"  # written by zoo 0.1, read when resuming such a run

    def __init__(self, directory, history=None):
        super().__init__()
        self.directory = Path(directory)
        # own lists: appending to the caller's would count every resumed epoch twice in its history
        self.history = {key: list(values) for key, values in (history or {}).items()}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        weights = f"epoch-{epoch + 1}.weights.h5"
        atomic_save_weights(self.model, self.directory / weights)
        state = {"epoch": epoch + 1, "weights": weights, "history": self.history,
                 "rng": [v.numpy().tolist() for v in rng_variables(self.model)]}
        atomic_write_text(self.directory / self.STATE, json.dumps(state))
        for old in self.directory.glob("*.weights.h5"):
            if old.name != weights:
                old.unlink(missing_ok=True)

    @classmethod
    def restore(cls, model, directory) -> tuple[int, dict]:
        """Load the newest checkpoint in ``directory`` into ``model``; returns (epochs done, history)."""
        directory = Path(directory)
        state_path = directory / cls.STATE
        if not state_path.exists():
            return 0, {}
        recover = f"delete {directory} to restart from the last good epoch's weights, or the whole run directory"
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            epoch, history = int(state["epoch"]), dict(state.get("history", {}))
            weights = directory / state.get("weights", cls.LEGACY_WEIGHTS)
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{state_path} is damaged ({type(exc).__name__}: {exc}); {recover}") from None
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and not optimizer.built:  # so its saved state has variables to load into
            optimizer.build(model.trainable_variables)
        try:
            model.load_weights(str(weights))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"{weights} cannot be loaded ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                              f"{recover}") from None
        rng = state.get("rng")
        if rng is not None:
            variables = rng_variables(model)
            if len(rng) != len(variables):
                raise ConfigError(f"{state_path} holds {len(rng)} RNG states for a model with {len(variables)}; {recover}")
            for variable, value in zip(variables, rng):
                variable.assign(value)
        return epoch, history
