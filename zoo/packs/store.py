"""Turning any accepted ``weights=`` value into a local, verified directory — and the cache behind it.

Accepted values (see docs/weights.md):

* a pack directory (``card.json`` + the files it lists) — verified against its card, used in place;
* a run directory of ``zoo train --out`` (``config.json`` + ``model.weights.h5``, no card);
* a pack archive (``.zip``) — unpacked into the cache;
* a URL with the archive's SHA-256 in pip's fragment form, ``https://…/p.zip#sha256=<hex>``:
  ``http``, ``https``, ``file`` and any scheme ``tf.io.gfile`` reads (``gs://``, ``s3://``, …);
* ``"pretrained"``: the best pack the installed plugins offer for the preset (:mod:`zoo.packs.offers`).

The cache (``$ZOO_CACHE_DIR``, default ``$XDG_CACHE_HOME/zoo`` or ``~/.cache/zoo``)::

    packs/<name>/<version>/<sha256 of the archive>/   an unpacked, verified pack
    tmp/                                             downloads and unpacking in progress
    locks/<sha256>.lock                              held while one process fetches that archive

An entry is keyed by the pack's name and version (from its card) and the archive's hash — never by
a file name — and appears by one ``rename`` of a complete, verified directory, so a reader never
sees half a pack. The hash is checked before anything is unpacked; a failed fetch leaves nothing
behind. ``ZOO_OFFLINE=1`` (read at every call) never opens a network connection.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from zoo.errors import WeightsError
from zoo.packs.card import CARD_FILE, CONFIG_FILE, NAME_RE, VERSION_RE, WEIGHTS_FILE
from zoo.packs.files import MAX_TOTAL_BYTES, safe_extract, sha256_file, verify_pack

CACHE_ENV = "ZOO_CACHE_DIR"
OFFLINE_ENV = "ZOO_OFFLINE"
PRETRAINED = "pretrained"
TIMEOUT_S = 60
_CHUNK = 2**16
_HASH_RE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
_LOCAL_SCHEMES = ("file",)


@dataclasses.dataclass(frozen=True)
class LocalWeights:
    """A local directory holding ``config.json`` and ``model.weights.h5``.

    ``card`` is the pack's card (a plain dict), or ``None`` for a run directory of ``zoo train``;
    ``source`` says where it came from (the path, URL or chosen plugin location).
    """

    path: Path
    card: dict | None
    source: str

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS_FILE

    @property
    def is_pack(self) -> bool:
        return self.card is not None

    @property
    def run(self) -> dict:
        """The ``config.json``: ``name``, ``architecture``, ``config``, ``dataset``, ``recipe``, ``seed``."""
        try:
            run = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WeightsError(f"{self.source}: cannot read config.json: {exc}") from exc
        if not isinstance(run, dict) or not isinstance(run.get("architecture"), str) or not isinstance(run.get("config"), dict):
            raise WeightsError(f"{self.source}: config.json lacks 'architecture' and 'config'")
        return run

    def load_into(self, model) -> None:
        """Load the weights into ``model`` (built from this config, not yet compiled)."""
        from zoo.packs.weights_io import load_weights

        load_weights(model, self.weights_path, self.source)


def cache_dir() -> Path:
    """``$ZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo`` (read at each call)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "zoo"


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def is_local_run(weights) -> bool:
    """Whether ``weights`` names a local path that is neither a pack nor an archive — a run
    directory of ``zoo train``, or nothing at all."""
    if not isinstance(weights, (str, os.PathLike)):
        return False
    text = os.fspath(weights)
    return text != PRETRAINED and "://" not in text and not Path(text).is_file() and not (Path(text) / CARD_FILE).exists()


def resolve_weights(weights, name: str | None = None) -> LocalWeights:
    """Any accepted ``weights=`` value -> a verified :class:`LocalWeights`.

    ``name`` is the preset being loaded; ``"pretrained"`` needs it.
    """
    if isinstance(weights, LocalWeights):
        return weights
    if isinstance(weights, str) and weights == PRETRAINED:
        if not name:
            raise WeightsError('weights="pretrained" needs the preset name: load(NAME, weights="pretrained")')
        from zoo.packs.offers import best_offer

        offer = best_offer(name)
        local = resolve_weights(offer.location, name)
        offer.check(local.card)
        return dataclasses.replace(local, source=f"{local.source} (pretrained {offer.describe()})")
    if not isinstance(weights, (str, os.PathLike)):
        raise WeightsError(f"weights must be 'pretrained', a directory, an archive path or a URL, got {type(weights).__name__}")
    text = os.fspath(weights)
    if "://" in text:
        return _from_url(text)
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / CARD_FILE).exists():
            return LocalWeights(path, verify_pack(path), str(path))
        if (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
            return LocalWeights(path, None, str(path))
        raise WeightsError(f"{path} is neither a pack (card.json) nor a run directory ({CONFIG_FILE} and "
                           f"{WEIGHTS_FILE}); write one with `zoo train NAME --out DIR` or `zoo pack RUN_DIR --out DIR`")
    if path.is_file():
        if path.stat().st_size > MAX_TOTAL_BYTES:
            raise WeightsError(f"{path} has {path.stat().st_size} bytes, more than a pack archive may ({MAX_TOTAL_BYTES})")
        digest = sha256_file(path)
        cached = _cached_verified(digest, str(path))
        if cached is None:
            _install(path, digest, str(path))
            cached = _cached_verified(digest, str(path))
        return cached
    raise WeightsError(f"weights {text!r}: no such directory or file; weights= takes 'pretrained', a pack or "
                       f"a run directory of `zoo train --out`, a pack archive, or a URL ending in #sha256=<hex>")


# -- URLs --------------------------------------------------------------------------------------------
def _from_url(url: str) -> LocalWeights:
    parts = urllib.parse.urlsplit(url)
    match = _HASH_RE.match(parts.fragment)
    if not match:
        raise WeightsError(f"{url}: a pack URL must end in the archive's SHA-256, '#sha256=<64 hex digits>' "
                           f"(printed by `zoo pack`, or `sha256sum FILE`)")
    expected = match.group(1).lower()
    location = urllib.parse.urlunsplit(parts._replace(fragment=""))
    shown = _redact(parts)  # what messages name: the URL without a password
    cached = _cached_verified(expected, shown)
    if cached is not None:
        return cached
    scheme = parts.scheme.lower()
    if offline() and scheme not in _LOCAL_SCHEMES:
        raise WeightsError(f"ZOO_OFFLINE=1 and the pack {shown} (sha256 {expected}) is not in the cache "
                           f"{cache_dir()}; unset ZOO_OFFLINE to download it, or pass a local pack directory or archive")
    root = cache_dir()
    with _locked(root, expected):
        cached = _cached(expected)  # another process may have fetched it while this one waited
        if cached is None:
            (root / "tmp").mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=root / "tmp", prefix=f"{expected[:16]}.", suffix=".zip.part")
            try:
                with os.fdopen(fd, "wb") as out:
                    digest, size = _download(scheme, location, shown, expected, out)
                if digest != expected:
                    raise WeightsError(f"{shown}: SHA-256 mismatch: expected {expected}, got {digest} "
                                       f"({size} bytes); nothing was cached — check the URL and its #sha256")
                _install(Path(tmp), expected, shown, locked=True)
            finally:
                Path(tmp).unlink(missing_ok=True)
    cached = _cached_verified(expected, shown)
    if cached is None:
        raise WeightsError(f"{shown}: the pack vanished from the cache {cache_dir()} while it was being loaded")
    return cached


def _redact(parts: urllib.parse.SplitResult) -> str:
    """The URL without its fragment and without a password in it."""
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}" if ":" in user else netloc
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, fragment=""))


def _download(scheme: str, location: str, shown: str, expected: str, out) -> tuple[str, int]:
    """Copy ``location`` into ``out`` while hashing; returns ``(sha256, bytes)``. Messages name
    the URL as ``shown``."""
    digest, size = hashlib.sha256(), 0

    def take(chunk):
        nonlocal size
        size += len(chunk)
        if size > MAX_TOTAL_BYTES:
            raise WeightsError(f"{shown}: more than {MAX_TOTAL_BYTES} bytes; not a pack archive")
        digest.update(chunk)
        out.write(chunk)

    if scheme in ("http", "https", "file"):
        import http.client

        from zoo import __version__

        request = urllib.request.Request(location, headers={"User-Agent": f"zoo/{__version__}"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                declared = response.headers.get("Content-Length")
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    take(chunk)
        except urllib.error.HTTPError as exc:
            raise WeightsError(f"{shown}: the server answered HTTP {exc.code} {exc.reason}; nothing was cached") from exc
        except http.client.IncompleteRead as exc:
            raise WeightsError(f"{shown}: the download was truncated after {size} bytes; nothing was cached "
                               f"(expected sha256 {expected}, got {digest.hexdigest()} so far)") from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise WeightsError(f"{shown}: cannot download: {reason}; nothing was cached") from exc
        if declared is not None and declared.isdigit() and int(declared) != size:
            raise WeightsError(f"{shown}: the download was truncated: {size} of {declared} bytes; "
                               f"expected sha256 {expected}, got {digest.hexdigest()}; nothing was cached")
    else:
        try:
            import tensorflow as tf

            with tf.io.gfile.GFile(location, "rb") as f:
                for chunk in iter(lambda: f.read(_CHUNK), b""):
                    take(chunk)
        except WeightsError:
            raise
        except Exception as exc:  # tf.errors.* for unknown schemes, missing objects, permissions
            raise WeightsError(f"{shown}: cannot read it through tf.io.gfile ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}); nothing was cached") from exc
    return digest.hexdigest(), size


# -- the cache ---------------------------------------------------------------------------------------
def _cached(digest: str) -> Path | None:
    """The cached pack unpacked from the archive with SHA-256 ``digest``, if there is one."""
    found = sorted((cache_dir() / "packs").glob(f"*/*/{digest}"))
    return found[0] if found else None


def _cached_verified(digest: str, source: str) -> LocalWeights | None:
    """The cached pack of archive ``digest``, verified against its card; a damaged entry (a file
    changed or lost since it was cached) is removed so the next fetch replaces it."""
    cached = _cached(digest)
    if cached is None:
        return None
    try:
        return LocalWeights(cached, verify_pack(cached, where=f"{source} (cached at {cached})"), source)
    except WeightsError as exc:
        with _locked(cache_dir(), digest):
            shutil.rmtree(cached, ignore_errors=True)
        warnings.warn(f"{exc}; removed the damaged copy from the cache", stacklevel=3)
        return None


def _install(archive: Path, digest: str, where: str, *, locked: bool = False) -> Path:
    """Unpack a verified archive into ``packs/<name>/<version>/<digest>`` (once); returns that path."""
    root = cache_dir()
    with (contextlib.nullcontext() if locked else _locked(root, digest)):
        cached = _cached(digest)
        if cached is not None:
            return cached
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=root / "tmp", prefix=f"{digest[:16]}."))
        try:
            unpacked = safe_extract(archive, staging / "pack", where=where)
            card = json.loads((unpacked / CARD_FILE).read_text(encoding="utf-8"))  # verified by safe_extract
            if not NAME_RE.match(card["name"]) or not VERSION_RE.match(card["version"]):
                raise WeightsError(f"{where}: the card's name or version cannot name a cache entry")
            final = root / "packs" / card["name"] / card["version"] / digest
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(unpacked, final)  # atomic: the entry appears complete or not at all
            except OSError:
                if not final.is_dir():  # not a lost race with another writer: a real failure
                    raise
            return final
        finally:
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _locked(root: Path, digest: str):
    """An exclusive lock on one archive hash across processes (``fcntl`` where there is one;
    elsewhere the atomic rename alone keeps the cache whole, at the price of a duplicate download)."""
    locks = root / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{digest}.lock"
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()  # a waiter then holds the old inode; it re-checks the cache before fetching
            fcntl.flock(handle, fcntl.LOCK_UN)
