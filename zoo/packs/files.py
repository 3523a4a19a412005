"""A pack on disk: hashing and verifying its files, writing its archive, unpacking one safely.

An archive is a zip of the pack's files under one folder ``<name>-<version>/``, written
deterministically (sorted members, fixed timestamps and permissions) so the same files give the
same SHA-256. A downloaded archive is untrusted input: :func:`safe_extract` refuses absolute paths,
``..``, links and other special members, anything but the pack's data files, and members whose
declared or actual unpacked size is too large (a zip bomb), before and while it writes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path

from zoo.errors import WeightsError
from zoo.packs.card import (
    ALLOWED_SUFFIXES,
    CARD_FILE,
    CONFIG_FILE,
    README_FILE,
    validate_card,
)

#: Limits for an archive from elsewhere (a pack of the zoo's presets is at most a few MiB).
MAX_MEMBERS = 32
MAX_MEMBER_BYTES = 256 * 2**20
MAX_TOTAL_BYTES = 512 * 2**20
MAX_CARD_BYTES = 2**20
_CHUNK = 2**20
_EPOCH = (1980, 1, 1, 0, 0, 0)


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(path) -> dict:
    """``{"sha256": ..., "size": ...}`` of a file, as a card lists it."""
    return {"sha256": sha256_file(path), "size": os.path.getsize(path)}


def read_card(directory, *, where=None) -> dict:
    """The validated ``card.json`` of a pack directory."""
    path = Path(directory) / CARD_FILE
    where = where or str(path)
    try:
        if path.stat().st_size > MAX_CARD_BYTES:
            raise WeightsError(f"{where}: card.json is larger than {MAX_CARD_BYTES} bytes")
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{where}: cannot read the pack card: {exc}") from exc
    return validate_card(card, where=where)


def verify_pack(directory, *, where=None, strict: bool = False) -> dict:
    """Check a pack directory against its card (every listed file's size and SHA-256, the config
    agreeing with the card; ``strict``: no file it does not list); returns the card."""
    directory = Path(directory)
    where = where or str(directory)
    card = read_card(directory, where=f"{where}/{CARD_FILE}")
    for name, entry in card["files"].items():
        path = directory / name
        if path.is_symlink() or not path.is_file():
            raise WeightsError(f"pack {where} lacks {name}, which its card lists; the pack is incomplete")
        size = path.stat().st_size
        if size != entry["size"]:
            raise WeightsError(f"pack {where}: {name} has {size} bytes, its card says {entry['size']}; the file is damaged")
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise WeightsError(f"pack {where}: {name} has SHA-256 {digest}, its card says {entry['sha256']}; "
                               f"the file was changed or damaged")
    extra = sorted(p.name for p in directory.iterdir()
                   if p.name not in card["files"] and p.name not in (CARD_FILE, README_FILE))
    if strict and extra:
        raise WeightsError(f"pack {where} holds files its card does not list: {', '.join(extra)}")
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"pack {where}: config.json is not JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("architecture") != card["architecture"] or config.get("config") != card["config"]:
        raise WeightsError(f"pack {where}: config.json does not match the card's architecture and config")
    return card


def write_archive(directory, path, prefix: str) -> Path:
    """Zip the pack in ``directory`` into ``path`` under the folder ``prefix``, deterministically."""
    directory, path = Path(directory), Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(p for p in directory.iterdir() if p.is_file()):
                info = zipfile.ZipInfo(f"{prefix}/{file.name}", date_time=_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                with open(file, "rb") as src, zf.open(info, "w") as dst:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        dst.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def check_members(zf: zipfile.ZipFile, where: str) -> tuple[str, list[zipfile.ZipInfo]]:
    """Refuse an unsafe archive before anything is written; returns ``(folder prefix, file members)``."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise WeightsError(f"archive {where} has {len(infos)} members; a pack has at most {MAX_MEMBERS}")
    total, files = 0, []
    for info in infos:
        name = info.filename
        mode = info.external_attr >> 16
        if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise WeightsError(f"archive {where}: member {name!r} has an absolute path; refusing to unpack")
        if "\\" in name or "\x00" in name:
            raise WeightsError(f"archive {where}: member {name!r} has a backslash or NUL in its path; refusing to unpack")
        parts = name.rstrip("/").split("/")
        if any(p in ("..", ".", "") for p in parts):
            raise WeightsError(f"archive {where}: member {name!r} leaves its folder ('..' or an empty part); refusing to unpack")
        if stat.S_ISLNK(mode):
            raise WeightsError(f"archive {where}: member {name!r} is a symbolic link; a pack holds only plain files")
        if info.is_dir():
            continue
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no type recorded (Windows tools, writestr)
            raise WeightsError(f"archive {where}: member {name!r} is not a plain file (mode {oct(mode)}); refusing to unpack")
        if info.flag_bits & 0x1:
            raise WeightsError(f"archive {where}: member {name!r} is encrypted")
        if info.file_size > MAX_MEMBER_BYTES:
            raise WeightsError(f"archive {where}: member {name!r} unpacks to {info.file_size} bytes, more than the "
                               f"{MAX_MEMBER_BYTES} a pack file may have (a zip bomb?); refusing to unpack")
        total += info.file_size
        files.append(info)
    if total > MAX_TOTAL_BYTES:
        raise WeightsError(f"archive {where} unpacks to {total} bytes, more than {MAX_TOTAL_BYTES}; refusing to unpack")
    prefixes = {f.filename.split("/")[0] if "/" in f.filename else "" for f in files}
    if len(prefixes) != 1 or any(f.filename.count("/") > 1 for f in files):
        raise WeightsError(f"archive {where}: a pack archive holds its files in one folder (<name>-<version>/), "
                           f"got {sorted(f.filename for f in files)[:6]}")
    prefix = prefixes.pop()
    names = [f.filename for f in files]
    if len(set(names)) != len(names):
        raise WeightsError(f"archive {where} holds a member twice; refusing to unpack")
    for f in files:
        base = f.filename.rsplit("/", 1)[-1]
        if not base.endswith(ALLOWED_SUFFIXES):
            raise WeightsError(f"archive {where}: member {f.filename!r} is not a pack data file "
                               f"({', '.join(ALLOWED_SUFFIXES)}); a pack never holds code")
    if not any(f.filename.rsplit("/", 1)[-1] == CARD_FILE for f in files):
        raise WeightsError(f"archive {where} has no card.json: it is not a zoo pack")
    return prefix, files


def safe_extract(archive, dest, where: str | None = None) -> Path:
    """Unpack the pack archive ``archive`` into the new directory ``dest`` (which must not exist)
    and verify it against its card; returns ``dest``. Nothing is written outside ``dest``."""
    archive, dest = Path(archive), Path(dest)
    where = where or str(archive)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"{where} is not a zip archive of a pack: {exc}") from exc
    with zf:
        _, files = check_members(zf, where)
        dest.mkdir(parents=False, exist_ok=False)
        try:
            _extract(zf, files, dest, where)
            verify_pack(dest, where=where, strict=True)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    return dest


def _extract(zf, files, dest, where):
    """Write each checked member into ``dest``, counting the bytes it really unpacks to."""
    root = dest.resolve()
    for info in files:
        target = dest / info.filename.rsplit("/", 1)[-1]
        if target.resolve().parent != root:  # cannot happen after check_members; kept as the last guard
            raise WeightsError(f"archive {where}: member {info.filename!r} would be written outside the pack")
        limit = min(info.file_size, MAX_MEMBER_BYTES)
        written = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            with zf.open(info) as src, os.fdopen(os.open(target, flags, 0o644), "wb") as out:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    written += len(chunk)
                    if written > limit:
                        raise WeightsError(f"archive {where}: member {info.filename!r} unpacks to more than the "
                                           f"{info.file_size} bytes its header declares; refusing to unpack")
                    out.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise WeightsError(f"archive {where}: member {info.filename!r} is damaged: {exc}") from exc
        if written != info.file_size:
            raise WeightsError(f"archive {where}: member {info.filename!r} unpacked to {written} bytes, "
                               f"its header declares {info.file_size}")
