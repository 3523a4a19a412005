"""Hardening (#14): guarded YAML, strict JSON, resource and path guards, a truncated IDX file, a quiet
console, and a sweep of bad values over every CLI option (exit status 2, one line, no traceback)."""
import contextlib
import gzip
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo.cli import main
from zoo.errors import ConfigError, DataError, RegistryError

REPO = Path(__file__).resolve().parent.parent
# a real billion-laughs document: nine levels, each nine aliases of the level below
LAUGHS = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))


def one_error_line(capsys, code=2):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- registry file guards ---------------------------------------------------------------------------
def _registry(tmp_path, text, name="registry.yaml"):
    from zoo.registry import load_registry

    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return lambda: load_registry(path)


def test_registry_duplicate_key_names_file_key_and_line(tmp_path):
    load = _registry(tmp_path, "presets:\n  a:\n    architecture: convnet\n    dataset: digits\n"
                               "    dataset: mnist\n")
    with pytest.raises(RegistryError, match=r"registry.yaml: line 5: duplicate key 'dataset' \(first on line 4\)"):
        load()


def test_registry_alias_bomb_is_refused_cheaply(tmp_path):
    import resource

    text = "presets:\n  bomb:\n    architecture: convnet\n    dataset: digits\n    metadata:\n      notes:\n" + \
        "".join("        " + line + "\n" for line in LAUGHS.splitlines())
    load = _registry(tmp_path, text)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(RegistryError, match="alias"):
        load()
    assert time.perf_counter() - start < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # kB: not gigabytes


def test_registry_too_many_aliases_is_refused(tmp_path):
    items = "".join(f"  - *x\n" for _ in range(150))
    load = _registry(tmp_path, f"x: &x 1\nlist:\n{items}presets: {{}}\n")
    with pytest.raises(RegistryError, match="more than 100 YAML aliases"):
        load()


def test_a_few_aliases_still_work(tmp_path):
    from zoo import yamlio

    assert yamlio.loads("base: &b {a: 1}\nother: {<<: *b, a: 2}\n") == {"base": {"a": 1}, "other": {"a": 2}}


def test_registry_size_limit_and_non_utf8(tmp_path, monkeypatch):
    from zoo import yamlio

    monkeypatch.setattr(yamlio, "MAX_FILE_BYTES", 1000)
    with pytest.raises(RegistryError, match="larger than 1,000 bytes"):
        _registry(tmp_path, "presets: {}\n# " + "x" * 2000 + "\n")()
    with pytest.raises(RegistryError, match=r"not UTF-8 text \(byte 0xe9 on line 2\)"):
        _registry(tmp_path, b"presets: {}\n# caf\xe9\n", "latin1.yaml")()


def test_registry_errors_are_one_line_on_the_cli(tmp_path, monkeypatch, capsys):
    path = tmp_path / "registry.yaml"
    path.write_bytes(b"presets:\n  x:\n    architecture: conv\xe9\n")
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    assert main(["info", "convnet"]) == 2
    assert "not UTF-8" in one_error_line(capsys)


def test_learning_rate_must_be_finite(tmp_path):
    for value in (".inf", ".nan"):
        load = _registry(tmp_path, "presets:\n  a:\n    architecture: convnet\n    dataset: digits\n"
                                   f"    train: {{learning_rate: {value}}}\n", f"lr{value}.yaml")
        with pytest.raises(RegistryError, match=r"learning_rate.*finite"):
            load()


# -- --set values ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, message", [
    ("filters=[8", "--set filters: not valid YAML"),
    ("dense={a: 1, a: 2}", "duplicate key 'a'"),
    ("=3", "--set expects key=value"),
])
def test_parse_set_refuses_bad_values(value, message):
    from zoo.cli import parse_set

    with pytest.raises(ConfigError, match=message):
        parse_set([value])


def test_parse_set_reads_yaml_values():
    from zoo.cli import parse_set

    assert parse_set(["filters=[8, 16]", "dropout=0.5", "name=x=y"]) == {"filters": [8, 16], "dropout": 0.5,
                                                                          "name": "x=y"}


# -- strict JSON ----------------------------------------------------------------------------------------
def test_print_json_never_prints_nan(capsys):
    import numpy as np

    from zoo.cli import print_json

    print_json({"loss": float("nan"), "acc": np.float32(0.5), "hist": [1.0, float("inf")], "n": np.int64(3)})
    out, err = capsys.readouterr()
    assert json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}")) == \
        {"loss": None, "acc": 0.5, "hist": [1.0, None], "n": 3}
    assert "loss is not a finite number" in err and "hist[1]" in err


# -- resource guards -------------------------------------------------------------------------------------
def test_generate_refuses_a_huge_grid_before_building_anything(capsys):
    assert main(["generate", "vae-digits", "--weights", "/nonexistent", "-n", "1000000"]) == 2
    assert "-n must be in 1..1024" in one_error_line(capsys)


def test_write_samples_draws_in_batches(monkeypatch, tmp_path):
    import numpy as np

    from zoo.models import generative

    calls = []

    class Sampler:
        def sample(self, n, seed=None):
            calls.append((n, seed))
            return np.full((n, 4, 4, 1), 0.5, np.float32)

    monkeypatch.setattr(generative, "SAMPLE_BATCH", 100)
    summary = generative.write_samples(Sampler(), tmp_path / "grid.png", n=250, seed=7)
    assert calls == [(100, 7), (100, 107), (50, 207)] and summary["n"] == 250


def test_truncated_idx_files_are_a_data_error(tmp_path):
    import numpy as np

    from zoo.data.sources import read_idx

    header = bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
    full = header + bytes(10 * 28 * 28)
    (tmp_path / "ok.idx").write_bytes(full)
    assert read_idx(tmp_path / "ok.idx").shape == (10, 28, 28)
    (tmp_path / "short-header").write_bytes(header[:9])
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(tmp_path / "short-header")
    (tmp_path / "short-body").write_bytes(full[:-100])
    with pytest.raises(DataError, match="truncated or damaged"):
        read_idx(tmp_path / "short-body")
    packed = gzip.compress(full)
    (tmp_path / "cut.idx.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="damaged or truncated"):
        read_idx(tmp_path / "cut.idx.gz")


# -- paths ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["train", "convnet-digits", "--out", "{file}"],
    ["train", "convnet-digits", "--out", "{file}/run"],
    ["export", "convnet-digits", "--weights", "/nonexistent", "--out", "{file}"],
    ["demo", "--out", "{file}"],
    ["attack", "convnet-digits", "--weights", "/nonexistent", "--png", "{dir}"],
    ["attack", "convnet-digits", "--weights", "/nonexistent", "--png", "{file}/x.png"],
    ["generate", "vae-digits", "--weights", "/nonexistent", "--png", "{dir}"],
    ["train", "convnet-digits", "--out", "/proc/zoo-run"],
])
def test_outputs_that_cannot_be_written_fail_at_once(argv, tmp_path, capsys):
    """Refused before anything else: before the (here missing) weights are read, before any training."""
    (tmp_path / "file").write_text("x")
    argv = [a.format(file=tmp_path / "file", dir=tmp_path) for a in argv]
    option = next(a for a in argv if a in ("--out", "--png"))
    start = time.perf_counter()
    assert main(argv) == 2
    err = one_error_line(capsys)
    assert f"error: {option} {argv[argv.index(option) + 1]}: " in err, err
    assert time.perf_counter() - start < 5


# -- a quiet console -------------------------------------------------------------------------------------
def _zoo(*args, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ZOO_RAW_STDERR")}
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True,
                          env=dict(environ, **env), timeout=600)


def test_commands_print_nothing_on_stderr_that_is_not_zoos_own(tmp_path):
    info = _zoo("info", "convnet-digits")
    assert info.returncode == 0 and info.stderr == "", info.stderr
    typo = _zoo("info", "convnet-mnsit")
    assert typo.returncode == 2 and typo.stderr.startswith("zoo info: error: unknown model") \
        and typo.stderr.count("\n") == 1, typo.stderr
    train = _zoo("train", "convnet-digits", "--epochs", "1", "--out", str(tmp_path / "run"),
                 "--set", "filters=[4]", "--set", "dense=[8]")
    assert train.returncode == 0 and train.stderr == "", train.stderr
    # not a terminal: one line per epoch with the total number of steps, no carriage-return updates
    assert "\r" not in train.stdout and "Unknown" not in train.stdout
    assert [line.split(" - ")[0] for line in train.stdout.splitlines() if line.startswith("45/")] == ["45/45"]


def test_chatter_filter_drops_only_tensorflows_machine_lines():
    from zoo.cli import chatter_pattern

    dropped = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796159438.204861    7273 port.cc:153] oneDNN custom operations are on. You may see",
        "I0000 00:00:1796159438.205346    7273 cudart_stub.cc:31] Could not find cuda drivers on your machine",
        "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow",
        "E0000 00:00:1796160051.816847   14649 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
        "E0000 00:00:1796159979.000780   11682 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512.",
        "W0000 00:00:1796159979.000780   11682 op_level_cost_estimator.cc:699] Error in PredictCost()",
    ]
    kept = ["zoo train: error: --out x: is a file", "E0000 00:00:1.0   1 env.cc:1] Out of memory",
            "Traceback (most recent call last):", "Epoch 1/2"]
    pattern = chatter_pattern(2)
    assert [line for line in dropped if not pattern.match(line)] == []
    assert [line for line in kept if pattern.match(line)] == []
    assert chatter_pattern(1).match(dropped[-1]) is None  # level 1 keeps WARNING lines


@pytest.mark.parametrize("level, filtered", [("0", False), ("1", True), (None, True)])
def test_the_filter_honours_the_users_tf_cpp_min_log_level(level, filtered, monkeypatch):
    import zoo.cli

    forks = []
    monkeypatch.setattr(zoo.cli, "_USER_TF_LOG_LEVEL", level)
    monkeypatch.delenv("ZOO_RAW_STDERR", raising=False)
    monkeypatch.setattr(zoo.cli.os, "pipe", lambda: (-1, -1))
    monkeypatch.setattr(zoo.cli.os, "fork", lambda: forks.append(1) or (_ for _ in ()).throw(RuntimeError("fork")))
    with pytest.raises(RuntimeError, match="fork") if filtered else contextlib.nullcontext():
        zoo.cli.filter_stderr()
    assert bool(forks) == filtered


def test_frechet_distance_of_dead_features_gives_no_linalg_warning():
    import warnings

    import numpy as np

    from zoo.models.quality import frechet_distance

    rng = np.random.default_rng(0)
    f, g = (np.maximum(rng.normal(size=(50, 32)), 0) for _ in range(2))
    f[:, :10] = g[:, :10] = 0  # dead ReLU units: singular covariances
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        distance = frechet_distance(f, g)
    assert math.isfinite(distance) and distance > 0
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-6)
