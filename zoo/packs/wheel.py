"""A pack as an installable plugin distribution: a wheel that provides it through ``zoo_weights()``.

Built with ``zipfile`` alone (no build backend, no network): the pack's files inside a package named
after the distribution (``zoo_weights_<preset>`` by default) whose module registers one
``zoo_weights()`` hook, with ``METADATA``, ``WHEEL``, ``entry_points.txt`` (group ``zoo``) and a
``RECORD`` of every file's hash, as PEP 427 / PEP 376 describe. ``pip install`` it like any wheel; ``zoo.load(NAME, weights="pretrained")``
then finds the pack, and ``pip uninstall`` removes it.
"""
from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path

from zoo.errors import ConfigError
from zoo.packs.card import CARD_FILE, README_FILE

_EPOCH = (1980, 1, 1, 0, 0, 0)

_MODULE = '''"""Trained weights for the zoo preset {name!r}, version {version}, as a zoo plugin.

Provides the pack in ``pack/`` through the ``zoo_weights()`` hook: ``zoo.load({name!r}, weights="pretrained")``.
"""
from pathlib import Path

from zoo import hookimpl

PACK = Path(__file__).resolve().parent / "pack"


@hookimpl
def zoo_weights():
    return {{{name!r}: str(PACK)}}
'''


def _normalise(name: str) -> str:
    """PEP 503 name normalisation, as a wheel file name spells it (``_`` for runs of ``-_.``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(pack_dir, card: dict, out, dist_name: str | None = None) -> Path:
    """Write ``<dist>-<version>-py3-none-any.whl`` into ``out``; returns its path."""
    pack_dir, out = Path(pack_dir), Path(out)
    dist = dist_name or f"zoo-weights-{card['name']}"
    if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$", dist):
        raise ConfigError(f"distribution name {dist!r} is not a valid Python project name")
    norm = _normalise(dist)
    package = norm  # one import package per distribution, so two weights wheels never overwrite each other's files
    if not package.isidentifier():
        raise ConfigError(f"distribution name {dist!r} must start with a letter: it also names the wheel's package")
    version = card["version"]
    info = f"{norm}-{version}.dist-info"
    files: dict[str, bytes] = {f"{package}/__init__.py": _MODULE.format(name=card["name"], version=version).encode()}
    for name in sorted([*card["files"], CARD_FILE, README_FILE]):
        files[f"{package}/pack/{name}"] = (pack_dir / name).read_bytes()
    readme = (pack_dir / README_FILE).read_text(encoding="utf-8")
    summary = f"Trained weights for the zoo preset {card['name']} ({card['architecture']}), pack {version}"
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\nSummary: {summary}\n"
        f"License: {card['license']}\nKeywords: zoo,keras,weights,{card['architecture']}\n"
        f"Description-Content-Type: text/markdown\n\n{readme}"
    ).encode()
    files[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: zoo pack\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    ).encode()
    files[f"{info}/entry_points.txt"] = f"[zoo]\n{dist} = {package}\n".encode()
    files[f"{info}/top_level.txt"] = f"{package}\n".encode()
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{norm}-{version}-py3-none-any.whl"
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                entry = zipfile.ZipInfo(name, date_time=_EPOCH)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = 0o644 << 16
                zf.writestr(entry, data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
