"""The zoo's own packs, offered through ``zoo_weights()`` like any third party's (a built-in plugin).

Each pack is a directory ``<preset>/`` beside this file (``card.json``, ``config.json``,
``model.weights.h5``, ``README.md``), installed with the package as package data and written by
``python tools/make_packs.py``. A directory without a ``card.json`` (nothing shipped yet, or a
hidden staging directory of that tool) is not offered.
"""
from __future__ import annotations

from pathlib import Path

from zoo.hookspecs import hookimpl
from zoo.packs.card import CARD_FILE

#: Where the shipped packs live; read at every call so tests can point it elsewhere.
SHIPPED_DIR = Path(__file__).resolve().parent


def shipped_packs(directory=None) -> dict[str, Path]:
    """``preset -> pack directory`` for every pack in ``directory`` (default :data:`SHIPPED_DIR`)."""
    root = Path(directory) if directory is not None else SHIPPED_DIR
    if not root.is_dir():
        return {}
    return {d.name: d for d in sorted(root.iterdir())
            if d.is_dir() and not d.name.startswith((".", "_")) and (d / CARD_FILE).is_file()}


@hookimpl
def zoo_weights():
    return {preset: str(path) for preset, path in shipped_packs().items()}
