"""Packs (issue 11): the format and card, `zoo pack`, resolving weights= (directories, archives, URLs
over a loopback HTTP server, "pretrained" through zoo_weights()), the cache, offline mode, safe
unpacking and plugin wheels. One tiny convnet-digits run (1 epoch) feeds every test."""
from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import http.server
import importlib
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from zoo import hookimpl
from zoo.errors import WeightsError

PRESET = "convnet-digits"
TINY = ["--set", "filters=[4]", "--set", "dense=[8]"]


# -- fixtures -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real run of `zoo train` (1 epoch, tiny filters)."""
    from zoo.cli import main

    out = tmp_path_factory.mktemp("run") / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", PRESET, "--epochs", "1", *TINY, "--seed", "3", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def packed(run_dir, tmp_path_factory):
    """`zoo pack RUN --out DIR --json --wheel` with a robustness metric: its JSON line and stdout."""
    from zoo.cli import main

    out = tmp_path_factory.mktemp("packs")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["pack", str(run_dir), "--out", str(out), "--json", "--wheel", "--license", "mit",
                     "--attack", "fgsm", "--attack-set", "eps=0.1", "--attack-n", "50"]) == 0
    lines = stdout.getvalue().strip().splitlines()
    return dict(json.loads(lines[-1]), stdout=stdout.getvalue())


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty ZOO_CACHE_DIR, online."""
    path = tmp_path / "cache"
    monkeypatch.setenv("ZOO_CACHE_DIR", str(path))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    return path


@pytest.fixture
def no_shipped(tmp_path, monkeypatch):
    """The zoo's own packs out of the way, for tests of what other plugins offer for a preset the zoo
    also ships."""
    import zoo.packs.shipped

    monkeypatch.setattr(zoo.packs.shipped, "SHIPPED_DIR", tmp_path / "no-shipped-packs")


def cache_files(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


class LoopbackServer:
    """An http.server on 127.0.0.1 in a thread; ``routes[path] = (mode, body)`` with mode ``ok``,
    ``slow``, ``truncate`` or ``error``; ``requests`` lists every path asked for."""

    def __init__(self):
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                mode, body = server.routes.get(self.path, ("missing", b""))
                if mode in ("missing", "error"):
                    self.send_error(404 if mode == "missing" else 500)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif mode == "slow":
                    for i in range(0, len(body), max(1, len(body) // 10)):
                        self.wfile.write(body[i:i + max(1, len(body) // 10)])
                        self.wfile.flush()
                        time.sleep(0.1)
                else:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str, body: bytes, mode: str = "ok", sha256: str | None = None) -> str:
        self.routes[path] = (mode, body)
        digest = sha256 or hashlib.sha256(body).hexdigest()
        return f"http://127.0.0.1:{self.httpd.server_port}{path}#sha256={digest}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = LoopbackServer()
    yield s
    with contextlib.suppress(Exception):
        s.stop()


# -- the pack and zoo pack ----------------------------------------------------------------------------
def test_zoo_pack_writes_directory_archive_and_json(packed):
    from zoo.packs import sha256_file, verify_pack

    archive, directory = Path(packed["path"]), Path(packed["directory"])
    assert archive.name == "convnet-digits-1.0.0.zip" and archive.is_file()
    assert sha256_file(archive) == packed["sha256"]
    assert f"sha256 {packed['sha256']}" in packed["stdout"]
    assert sorted(p.name for p in directory.iterdir()) == ["README.md", "card.json", "config.json", "model.weights.h5"]
    card = verify_pack(directory, strict=True)
    assert card["name"] == PRESET and card["version"] == "1.0.0" and card["license"] == "mit"
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == sorted(f"convnet-digits-1.0.0/{p.name}" for p in directory.iterdir())
        for p in directory.iterdir():
            assert zf.read(f"convnet-digits-1.0.0/{p.name}") == p.read_bytes()


def test_pack_weights_hold_no_optimizer_state(packed, run_dir):
    import h5py

    def groups(path):
        with h5py.File(path, "r") as f:
            names = []
            f.visit(names.append)
        return names

    assert any(n.startswith("optimizer") for n in groups(run_dir / "model.weights.h5"))  # the run keeps it to resume
    assert not any("optimizer" in n for n in groups(Path(packed["directory"]) / "model.weights.h5"))


def test_card_metrics_are_measured_on_the_pack_and_recipe_is_the_runs(packed, run_dir):
    from zoo.cli import main

    card = json.loads((Path(packed["directory"]) / "card.json").read_text())
    clean = {m["name"]: m for m in card["metrics"] if m["kind"] == "clean"}
    assert set(clean) == {"accuracy", "loss"} and all(m["n"] == 360 and m["split"] == "test" for m in clean.values())
    robust = [m for m in card["metrics"] if m["kind"] == "robustness"]
    assert len(robust) == 1 and robust[0]["attack"] == "fgsm" and robust[0]["eps"] == pytest.approx(0.1)
    assert robust[0]["n"] == 50 and robust[0]["value"] <= 1.0 and "clip" in robust[0]["params"]
    # `zoo evaluate --weights PACK` with no NAME: the pack's config names the preset, and it reproduces the card
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["evaluate", "--weights", packed["directory"], "--json"]) == 0
    evaluated = json.loads(stdout.getvalue().strip().splitlines()[-1])
    assert evaluated["accuracy"] == pytest.approx(clean["accuracy"]["value"], abs=1e-6)
    assert evaluated["loss"] == pytest.approx(clean["loss"]["value"], rel=1e-5)

    provenance = json.loads((run_dir / "provenance.json").read_text())
    recipe = card["recipe"]
    assert recipe["recorded"] == "by zoo train" and recipe["cpu_time_s"] == provenance["cpu_time_s"] > 0
    assert recipe["seed"] == 3 and recipe["epochs"] == 1 and recipe["versions"]["keras"]
    assert recipe["command"] == "zoo train convnet-digits --epochs 1 --set 'dense=[8]' --set 'filters=[4]' --seed 3 --out run"
    assert card["dataset"]["sha256"] == provenance["data_sha256"]
    assert card["dataset"]["splits"] == {"train": 1437, "test": 360}
    assert card["parameters"] == 650
    assert card["outputs"][0]["kind"] == "probabilities" and card["outputs"][0]["labels"] == [str(i) for i in range(10)]


def test_card_schema_accepts_the_card_and_names_each_bad_field(packed):
    from zoo.packs import validate_card

    card = json.loads((Path(packed["directory"]) / "card.json").read_text())
    assert validate_card(card) is card

    def broken(change, expected):
        bad = copy.deepcopy(card)
        change(bad)
        with pytest.raises(WeightsError, match=expected):
            validate_card(bad)

    broken(lambda c: c.pop("license"), r"field 'license': required")
    broken(lambda c: c["files"]["model.weights.h5"].update(sha256="abc"), r"files\['model.weights.h5'\].sha256")
    broken(lambda c: c["files"].pop("model.weights.h5"), r"files: must list model.weights.h5")
    broken(lambda c: c["files"].update({"hook.py": {"sha256": "0" * 64, "size": 1}}), r"files\['hook.py'\]")
    broken(lambda c: c["metrics"][-1].pop("eps"), r"metrics\[2\]: a robustness metric names its attack, eps and params")
    broken(lambda c: c["metrics"][0].update(n=0), r"metrics\[0\].n': must be >= 1")
    broken(lambda c: c.update(version="2.0.0"), r"version: '2.0.0': the first number is the pack format")
    broken(lambda c: c.update(version="1.0"), r"FORMAT.ARCHITECTURE.RETRAIN")
    broken(lambda c: c["recipe"].update(command="python train.py"), r"recipe.command")
    broken(lambda c: c["dataset"].pop("sha256"), r"dataset.sha256': required")
    broken(lambda c: c["outputs"][0].update(kind="magic"), r"outputs\[0\].kind")
    broken(lambda c: c.update(pack_format=2), r"pack format 2 is not supported")


def test_readme_is_yaml_front_matter_and_markdown_from_the_card(packed):
    import yaml

    from zoo.packs import render_readme, split_front_matter

    directory = Path(packed["directory"])
    card = json.loads((directory / "card.json").read_text())
    text = (directory / "README.md").read_text()
    assert text == render_readme(card)
    front, body = split_front_matter(text)
    assert yaml.safe_load(yaml.safe_dump(front)) == front
    assert front["library_name"] == "keras" and front["license"] == "mit" and front["datasets"] == ["digits"]
    (index,) = front["model-index"]
    assert index["name"] == "convnet-digits 1.0.0"
    published = {(m["name"]): m["value"] for r in index["results"] for m in r["metrics"]}
    assert published["accuracy"] == card["metrics"][0]["value"]
    assert any("under fgsm (eps 0.1)" in name for name in published)
    assert body.lstrip().startswith("# convnet-digits 1.0.0")
    assert "| metric | value | split | n | dataset | attack |" in body and card["recipe"]["command"] in body
    with pytest.raises(WeightsError, match="front matter"):
        split_front_matter("# no front matter\n")


def test_repacking_bumps_the_version_and_never_overwrites(packed, run_dir, tmp_path):
    from zoo.packs import make_pack

    out = Path(packed["directory"]).parent
    with pytest.raises(WeightsError, match="already exists; a published version is never overwritten"):
        make_pack(run_dir, out)
    with pytest.raises(WeightsError, match="first number is the pack format"):
        make_pack(run_dir, tmp_path, version="2.0.0")
    again = make_pack(run_dir, tmp_path, previous=packed["path"])
    assert again.card["version"] == "1.0.1" and again.archive.name == "convnet-digits-1.0.1.zip"
    first = json.loads((Path(packed["directory"]) / "card.json").read_text())
    assert again.card["files"]["model.weights.h5"]["size"] == first["files"]["model.weights.h5"]["size"]
    assert again.card["metrics"][0] == first["metrics"][0]  # measured again, the same weights give the same figure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["convnet-digits-1.0.1", "convnet-digits-1.0.1.zip"]


def test_version_scheme_says_what_changed():
    from zoo.packs import next_version, parse_version

    card = {"version": "1.2.3", "architecture": "convnet", "config": {"filters": [4]}}
    assert next_version(None, card) == "1.0.0"
    assert next_version(card, dict(card)) == "1.2.4"  # retrained: same architecture and config
    assert next_version(card, dict(card, config={"filters": [8]})) == "1.3.0"  # the weights no longer fit
    assert next_version(dict(card, version="0.4.1"), card) == "1.0.0"  # another pack format
    assert parse_version("1.10.0") > parse_version("1.9.9")
    for bad in ("1.0", "v1.0.0", "1.0.0-rc1", "01.0.0", None):
        with pytest.raises(WeightsError):
            parse_version(bad)


# -- loading -----------------------------------------------------------------------------------------
def test_load_pack_directory_and_archive_carry_the_card(packed, run_dir, cache):
    import numpy as np

    from zoo import load

    directory = Path(packed["directory"])
    card = json.loads((directory / "card.json").read_text())
    from_run = load(PRESET, weights=run_dir)
    assert from_run.card is None and load(PRESET, filters=[4], dense=[8]).card is None
    from_dir = load(PRESET, weights=directory)
    assert from_dir.card == card
    assert all(np.array_equal(a, b) for a, b in zip(from_run.get_weights(), from_dir.get_weights()))
    assert cache_files(cache) == []  # a directory is used in place

    from_zip = load(PRESET, weights=packed["path"], compile=False)
    assert from_zip.card == card
    assert all(np.array_equal(a, b) for a, b in zip(from_run.get_weights(), from_zip.get_weights()))
    (entry,) = (cache / "packs").glob("*/*/*")
    assert entry.relative_to(cache / "packs").parts == (PRESET, "1.0.0", packed["sha256"])
    # a pack's model is compiled with fresh optimizer state and trains
    from zoo.data import load_dataset

    x, y = load_dataset("digits").arrays("train")
    history = from_dir.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_a_changed_pack_file_is_refused_naming_both_hashes(packed, tmp_path, cache):
    from zoo import load

    copy_dir = tmp_path / "pack"
    shutil.copytree(packed["directory"], copy_dir)
    weights = copy_dir / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    card = json.loads((copy_dir / "card.json").read_text())
    with pytest.raises(WeightsError) as info:
        load(PRESET, weights=copy_dir)
    message = str(info.value)
    assert "model.weights.h5" in message and card["files"]["model.weights.h5"]["sha256"] in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message


def test_other_weights_values_are_refused_clearly(tmp_path, cache, no_shipped):
    from zoo.packs import resolve_weights

    with pytest.raises(WeightsError, match="no such directory or file"):
        resolve_weights(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="neither a pack"):
        resolve_weights(tmp_path / "empty")
    with pytest.raises(WeightsError, match=r"#sha256=<64 hex digits>"):
        resolve_weights("https://example.invalid/p.zip")
    with pytest.raises(WeightsError, match="needs the preset name"):
        resolve_weights("pretrained")
    with pytest.raises(WeightsError, match=r"no pretrained pack for 'convnet-digits'.*zoo pack"):
        resolve_weights("pretrained", name=PRESET)
    (tmp_path / "page.zip").write_text("<html>error</html>")
    with pytest.raises(WeightsError, match="not a zip archive"):
        resolve_weights(tmp_path / "page.zip")
    assert cache_files(cache) == []


# -- URLs, the cache and offline mode -------------------------------------------------------------------
def test_http_pack_loads_then_comes_from_the_cache_with_the_server_stopped(packed, server, cache, monkeypatch):
    from zoo import load

    body = Path(packed["path"]).read_bytes()
    url = server.url("/packs/convnet-digits-1.0.0.zip", body)
    assert url.endswith(f"#sha256={packed['sha256']}")
    model = load(PRESET, weights=url)
    assert model.card["version"] == "1.0.0" and server.requests == ["/packs/convnet-digits-1.0.0.zip"]
    assert cache_files(cache) == sorted(f"packs/{PRESET}/1.0.0/{packed['sha256']}/{n}" for n in
                                        ("README.md", "card.json", "config.json", "model.weights.h5"))
    server.stop()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    again = load(PRESET, weights=url)
    assert again.card == model.card and len(server.requests) == 1


@pytest.mark.parametrize("mode", ["wrong-hash", "truncate", "error"])
def test_a_bad_download_is_a_clear_error_and_leaves_the_cache_empty(mode, packed, server, cache):
    from zoo.packs import resolve_weights

    body = Path(packed["path"]).read_bytes()
    wrong = "0" * 64
    url = server.url("/p.zip", body, mode="ok" if mode == "wrong-hash" else mode,
                     sha256=wrong if mode == "wrong-hash" else None)
    with pytest.raises(WeightsError) as info:
        resolve_weights(url)
    message = str(info.value)
    assert f"http://127.0.0.1:{server.httpd.server_port}/p.zip" in message and "\n" not in message
    if mode == "wrong-hash":
        assert f"expected {wrong}, got {packed['sha256']}" in message
    elif mode == "truncate":
        half = hashlib.sha256(body[: len(body) // 2]).hexdigest()
        assert "truncated" in message and packed["sha256"] in message and half in message
    else:
        assert "HTTP 500" in message
    assert server.requests == ["/p.zip"]
    assert cache_files(cache) == []


def test_offline_never_connects_and_says_what_to_do(packed, server, cache, monkeypatch):
    from zoo.packs import resolve_weights

    url = server.url("/p.zip", Path(packed["path"]).read_bytes())
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(WeightsError, match=r"ZOO_OFFLINE=1 .* not in the cache .* unset ZOO_OFFLINE"):
        resolve_weights(url)
    assert server.requests == [] and cache_files(cache) == []
    # a file:// URL is local: it works offline, with its hash checked like any other
    local = resolve_weights(Path(packed["path"]).as_uri() + f"#sha256={packed['sha256']}")
    assert local.card["name"] == PRESET and server.requests == []


def test_a_tf_io_gfile_url_is_read_through_gfile(packed, cache, monkeypatch):
    import tensorflow as tf

    from zoo.packs import resolve_weights

    url = "ram://zoo-packs-test/convnet-digits-1.0.0.zip"  # TensorFlow's in-memory file system
    with tf.io.gfile.GFile(url, "wb") as f:
        f.write(Path(packed["path"]).read_bytes())
    with pytest.raises(WeightsError, match=r"ram://zoo-packs-test/missing.zip: cannot read it through tf.io.gfile"):
        resolve_weights("ram://zoo-packs-test/missing.zip#sha256=" + "0" * 64)
    local = resolve_weights(f"{url}#sha256={packed['sha256']}")
    assert local.card["name"] == PRESET
    tf.io.gfile.remove(url)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert resolve_weights(f"{url}#sha256={packed['sha256']}").path == local.path  # from the cache
    with pytest.raises(WeightsError, match="ZOO_OFFLINE=1"):
        resolve_weights("gs://zoo-packs-test/other.zip#sha256=" + "1" * 64)


def test_two_processes_fetching_one_pack_both_succeed_and_the_cache_stays_whole(packed, server, cache):
    from zoo.packs import verify_pack

    url = server.url("/slow.zip", Path(packed["path"]).read_bytes(), mode="slow")
    script = "import sys; from zoo.packs import resolve_weights; print(resolve_weights(sys.argv[1]).path)"
    env = dict(os.environ, ZOO_CACHE_DIR=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", script, url], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    paths = {out.strip() for out, _ in results}
    (entry,) = (cache / "packs").glob("*/*/*")
    assert paths == {str(entry)}
    assert verify_pack(entry, strict=True)["name"] == PRESET
    assert len(server.requests) == 1  # the lock: the second process found the first one's pack
    assert [f for f in cache_files(cache) if not f.startswith("packs/")] == []


def test_a_damaged_cache_entry_is_replaced_on_the_next_load(packed, server, cache):
    from zoo.packs import resolve_weights

    url = server.url("/p.zip", Path(packed["path"]).read_bytes())
    first = resolve_weights(url)
    (first.path / "model.weights.h5").write_bytes(b"not hdf5")
    with pytest.warns(UserWarning, match="damaged"):
        second = resolve_weights(url)
    assert second.path == first.path and len(server.requests) == 2
    assert (second.path / "model.weights.h5").read_bytes() == (Path(packed["directory"]) / "model.weights.h5").read_bytes()


# -- untrusted archives --------------------------------------------------------------------------------
def _archive(path: Path, pack_dir: Path, extra: list[tuple[zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(pack_dir.iterdir()):
            zf.write(p, f"p/{p.name}")
        for info, data in extra:
            zf.writestr(info, data)
    return path


def _patch_size(path: Path, member: str, size: int) -> None:
    """Rewrite ``member``'s uncompressed size in its local header and central directory entry."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        local = zf.getinfo(member).header_offset
    struct.pack_into("<I", data, local + 22, size)
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46:central + 46 + name_len] == member.encode():
            struct.pack_into("<I", data, central + 24, size)
            break
        central = data.find(b"PK\x01\x02", central + 4)
    else:
        raise AssertionError(f"{member} not in the central directory")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink", "bomb", "lying-size", "code"])
def test_unsafe_archives_are_refused_with_nothing_written_outside_the_cache(case, packed, tmp_path, cache):
    from zoo.packs import resolve_weights

    pack_dir = Path(packed["directory"])
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = tmp_path / f"{case}.zip"
    if case == "dotdot":
        _archive(archive, pack_dir, [(zipfile.ZipInfo("p/../../outside/escaped.json"), b"{}")])
        expected = r"leaves its folder"
    elif case == "absolute":
        _archive(archive, pack_dir, [(zipfile.ZipInfo(str(outside / "abs.json")), b"{}")])
        expected = r"absolute path"
    elif case == "symlink":
        link = zipfile.ZipInfo("p/link.json")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        _archive(archive, pack_dir, [(link, str(outside / "target.json").encode())])
        expected = r"symbolic link"
    elif case == "bomb":  # declares 1 GiB unpacked; nothing near that is ever written
        _archive(archive, pack_dir, [(zipfile.ZipInfo("p/big.h5"), b"x" * 10)])
        _patch_size(archive, "p/big.h5", 2**30)
        expected = r"unpacks to 1073741824 bytes.*zip bomb"
    elif case == "lying-size":  # declares 100 bytes, holds 4 MiB of deflated zeros
        member = zipfile.ZipInfo("p/big.h5")
        member.compress_type = zipfile.ZIP_DEFLATED
        _archive(archive, pack_dir, [(member, bytes(4 * 2**20))])
        _patch_size(archive, "p/big.h5", 100)
        expected = r"p/big.h5"
    else:
        _archive(archive, pack_dir, [(zipfile.ZipInfo("p/evil.py"), b"import os")])
        expected = r"not a pack data file"
    before = sorted(p for p in tmp_path.rglob("*") if cache not in p.parents and p != cache)
    with pytest.raises(WeightsError, match=expected):
        resolve_weights(archive)
    after = sorted(p for p in tmp_path.rglob("*") if cache not in p.parents and p != cache)
    assert after == before and list(outside.iterdir()) == []
    assert cache_files(cache) == []


# -- plugins: zoo_weights() ----------------------------------------------------------------------------
def test_a_weights_wheel_from_zoo_pack_installs_and_resolves_through_zoo_weights(packed, tmp_path, cache, monkeypatch,
                                                                                   no_shipped):
    import zoo.plugins
    from tests.wheels import pip_install_target
    from zoo import load
    from zoo.cli import main

    wheel = Path(packed["wheel"])
    assert wheel.name == "zoo_weights_convnet_digits-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:  # RECORD lists every other file with its real hash and size
        names = set(zf.namelist())
        record = zf.read("zoo_weights_convnet_digits-1.0.0.dist-info/RECORD").decode().splitlines()
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            names.discard(name)
            if digest:
                data = zf.read(name)
                assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert int(size) == len(data)
        assert names == set()
    target = tmp_path / "site"
    pip_install_target([wheel], target)
    monkeypatch.syspath_prepend(str(target))
    importlib.invalidate_caches()
    zoo.plugins.reset()
    from zoo.packs import offers

    (offer,) = offers(PRESET)
    assert offer.distribution == "zoo-weights-convnet-digits" and offer.version == "1.0.0" and offer.usable
    model = load(PRESET, weights="pretrained")
    assert model.card["version"] == "1.0.0" and model.card["files"] == offer.card["files"]
    assert cache_files(cache) == []  # an installed pack is used in place
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["info", PRESET, "--json"]) == 0
    (shown,) = json.loads(stdout.getvalue().strip().splitlines()[-1])["packs"]
    assert shown["chosen"] and shown["distribution"] == "zoo-weights-convnet-digits"
    assert [m["name"] for m in shown["metrics"]] == [m["name"] for m in offer.card["metrics"]]
    assert "accuracy = " in stdout.getvalue()


def _variant(pack_dir: Path, target: Path, version: str) -> Path:
    """The same pack under another version (the card is not in its own file list)."""
    from zoo.packs import render_readme

    shutil.copytree(pack_dir, target)
    card = json.loads((target / "card.json").read_text())
    card["version"] = version
    (target / "card.json").write_text(json.dumps(card))
    (target / "README.md").write_text(render_readme(card))
    return target


class WeightsPlugin:
    def __init__(self, locations):
        self.locations = locations

    @hookimpl
    def zoo_weights(self):
        return {PRESET: self.locations}


def test_two_plugins_for_one_preset_highest_version_wins_then_distribution_name(packed, tmp_path, cache, no_shipped):
    import zoo.plugins
    from zoo import load
    from zoo.packs import best_offer, offers

    v100 = Path(packed["directory"])
    v101 = _variant(v100, tmp_path / "v101", "1.0.1")
    v101b = _variant(v100, tmp_path / "v101b", "1.0.1")
    pm = zoo.plugins.get_plugin_manager()
    assert pm.register(WeightsPlugin([str(v100), str(v101b)]), "org-b", "b-weights", "1")
    assert pm.register(WeightsPlugin(v101), "org-a", "a-weights", "1")
    assert pm.register(WeightsPlugin([{"location": "https://example.invalid/p.zip#sha256=" + "0" * 64},
                                      {"location": str(v100), "version": "9.0.0"}]), "org-c", "c-weights", "1")
    broken = WeightsPlugin(42)  # not a location: reported by distribution and skipped, never fatal
    assert pm.register(broken, "org-broken", "broken-weights", "1")
    ranked = offers(PRESET)
    assert any("broken-weights" in e and "zoo_weights() failed" in e for e in pm.errors)
    assert [(o.version, o.distribution) for o in ranked if o.usable] == [
        ("1.0.1", "a-weights"), ("1.0.1", "b-weights"), ("1.0.0", "b-weights")]
    problems = [o.problem for o in ranked if not o.usable]
    assert len(problems) == 2 and "needs its version" in problems[0] and "card says 1.0.0" in problems[1]
    assert best_offer(PRESET).location == str(v101)
    model = load(PRESET, weights="pretrained", compile=False)
    assert model.card["version"] == "1.0.1"


def test_card_train_command_names_the_data_dir_relative_to_where_the_pack_was_made(tmp_path, monkeypatch):
    from zoo.api import model_config, resolve
    from zoo.packs.build import train_command

    spec, preset = resolve("convnet-digits")
    run = {"name": "convnet-digits", "architecture": "convnet", "dataset": "digits", "seed": 0,
           "recipe": {"epochs": preset.train.epochs, "batch_size": preset.train.batch_size},
           "config": json.loads(json.dumps(model_config(spec, preset)))}
    monkeypatch.chdir(tmp_path / "..")
    command = train_command(run, spec, preset, model_config, str(tmp_path / "data" / "digits"))
    assert f"--data-dir {tmp_path.name}/data/digits " in command and str(tmp_path) not in command
