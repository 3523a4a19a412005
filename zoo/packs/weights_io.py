"""A pack's ``model.weights.h5``: the network's variables without any optimizer's state.

The weights are written from the network built without ``compile``, so no optimizer is there to be
saved, and read into a network before it is compiled. Only HDF5 weight files are read here —
never a ``.keras`` archive or pickled code.
"""
from __future__ import annotations

from pathlib import Path

from zoo.errors import WeightsError
from zoo.files import atomic_save_weights


def save_weights(model, path) -> Path:
    """Write an uncompiled ``model``'s weights to ``path`` (a ``.weights.h5`` name) atomically."""
    if getattr(model, "optimizer", None) is not None:
        raise WeightsError("a pack holds no optimizer state: save the network loaded with compile=False")
    atomic_save_weights(model, path)
    return Path(path)


def load_weights(model, path, where: str) -> None:
    """Load a pack's weights into ``model`` (built from the pack's config, not yet compiled)."""
    if not str(path).endswith(".weights.h5"):
        raise WeightsError(f"{where}: pack weights must be an HDF5 .weights.h5 file, got {Path(path).name}")
    try:
        model.load_weights(str(path))
    except (ValueError, KeyError, OSError) as exc:
        raise WeightsError(f"the weights in {where} do not fit the model built from its config: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc


def weight_arrays(path) -> dict:
    """``{dataset path: numpy array}`` of a ``.weights.h5`` file, to compare weights by value (two
    saves of the same weights differ in HDF5's bookkeeping bytes, so their hashes differ)."""
    import h5py
    import numpy as np

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None)
    return out
