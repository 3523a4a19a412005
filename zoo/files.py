"""Writing files so that a reader never sees half of one: a temporary file beside the target,
then ``os.replace`` (atomic on POSIX). Temporary names are unique, so two writers never collide."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def _temporary(path: Path, suffix: str) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    return Path(tmp)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path, ".tmp")
    try:
        tmp.write_bytes(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_save_weights(model, path) -> None:
    """``model.save_weights(path)`` through a temporary file (Keras wants the ``.weights.h5`` suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path, ".tmp.weights.h5")
    try:
        model.save_weights(str(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def strict_json(value, **dumps) -> tuple[str, list[str]]:
    """``(JSON text, paths of non-finite numbers)``: JSON has no NaN or Infinity, so a non-finite
    float (a diverged loss) is written as ``null``; NumPy scalars and arrays become plain values."""
    bad: list[str] = []

    def strict(v, path):
        if isinstance(v, dict):
            return {k: strict(x, f"{path}.{k}" if path else str(k)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [strict(x, f"{path}[{i}]") for i, x in enumerate(v)]
        if hasattr(v, "tolist") and type(v).__module__ == "numpy":
            return strict(v.tolist(), path)
        if isinstance(v, float) and not math.isfinite(v):
            bad.append(path or "value")
            return None
        return v

    return json.dumps(strict(value, ""), allow_nan=False, **dumps), bad
