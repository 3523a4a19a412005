"""What made a model: versions, the project commit, training CPU time and a checksum of the data.

``zoo train --out RUN`` records these in ``RUN/provenance.json`` (:func:`record_training`) so that
``zoo pack`` can publish the recipe as it was when the weights were trained, not as it is later.
"""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from pathlib import Path

PROVENANCE_FILE = "provenance.json"
DATA_SPLIT = "train"


def versions() -> dict:
    """zoo, Keras, TensorFlow and Python versions of this process."""
    import importlib.metadata

    out = {}
    for dist in ("zoo", "keras", "tensorflow"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out["python"] = platform.python_version()
    return out


def project_commit() -> str | None:
    """The git commit of the zoo source in use (``-dirty`` if it has uncommitted changes), or
    ``None`` for an installed copy outside a git checkout."""
    source = Path(__file__).resolve().parents[2]
    if not (source / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "") if head else None


def data_checksum(dataset, split: str = DATA_SPLIT) -> str:
    """SHA-256 of a split's arrays as the model saw them (dtype, shape and bytes of every array,
    every string and number, in order) — equal for equal data wherever it was loaded from."""
    digest = hashlib.sha256()
    _feed(digest, dataset.arrays(split))
    return digest.hexdigest()


def _feed(digest, obj) -> None:
    import numpy as np

    if isinstance(obj, np.ndarray):
        digest.update(f"array {obj.dtype.str} {obj.shape};".encode())
        digest.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, (list, tuple)):
        digest.update(f"seq {len(obj)};".encode())
        for item in obj:
            _feed(digest, item)
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        digest.update(f"str {len(data)};".encode() + data)
    elif isinstance(obj, (bool, int, float, np.generic)):
        digest.update(f"num {obj!r};".encode())
    else:
        raise TypeError(f"cannot checksum a {type(obj).__name__} in a dataset split")


def record_training(out, cpu_seconds: float, dataset, data_dir=None) -> None:
    """Add one training session's CPU time to ``out/provenance.json`` (kept across resumes) with the
    versions, commit, data directory and data checksum of this session."""
    from zoo.files import atomic_write_text

    path = Path(out) / PROVENANCE_FILE
    previous = {}
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            previous = {}
    try:
        checksum = data_checksum(dataset)
    except Exception:  # a third-party dataset without array access: the card then says so
        checksum = None
    record = dict(
        cpu_time_s=float(previous.get("cpu_time_s", 0.0)) + float(cpu_seconds),
        sessions=int(previous.get("sessions", 0)) + 1,
        versions=versions(),
        commit=project_commit(),
        data_dir=None if data_dir is None else str(data_dir),
        data_sha256=checksum,
        data_checksum_of=f"{DATA_SPLIT} split arrays",
    )
    atomic_write_text(path, json.dumps(record, indent=2))
