"""A pack's ``model.weights.h5``: the model's variables without any optimizer's state.

Keras's ``save_weights`` also writes every optimizer the model holds (the run directory of
``zoo train`` keeps it so training resumes); a pack leaves it out, and loading a pack skips the
model's optimizers, so a compiled model starts training from fresh optimizer state. Only HDF5
weight files are read here — never a ``.keras`` archive or pickled code.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

from zoo.errors import WeightsError


def _saving_lib():
    from keras.src.saving import saving_lib

    if "objects_to_skip" not in inspect.signature(saving_lib.save_weights_only).parameters:
        import keras

        raise WeightsError(f"packs need a Keras that can leave optimizer state out of a weights file "
                           f"(save_weights_only(objects_to_skip=...)); Keras {keras.__version__} cannot: upgrade keras")
    return saving_lib


def optimizers(model) -> list:
    """Every optimizer held by ``model`` or one of its layers (the discriminator's, the adversary's, ...)."""
    import keras

    found = {}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for value in vars(layer).values():
            if isinstance(value, keras.optimizers.Optimizer):
                found[id(value)] = value
    return list(found.values())


def save_weights(model, path) -> Path:
    """Write ``model``'s weights, no optimizer state, to ``path`` (a ``.weights.h5`` name) atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.weights.h5")
    try:
        _saving_lib().save_weights_only(model, str(tmp), objects_to_skip=optimizers(model))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_weights(model, path, where: str) -> None:
    """Load a pack's weights into ``model``, leaving its optimizers alone."""
    if not str(path).endswith(".weights.h5"):
        raise WeightsError(f"{where}: pack weights must be an HDF5 .weights.h5 file, got {Path(path).name}")
    try:
        _saving_lib().load_weights_only(model, str(path), objects_to_skip=optimizers(model))
    except (ValueError, KeyError, OSError) as exc:
        raise WeightsError(f"the weights in {where} do not fit the model built from its config: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
