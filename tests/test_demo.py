"""The README's main job, as a user runs it: `zoo demo` in a fresh process on the embedded data
finishes, writes its outputs, and prints nothing on stderr that is not zoo's own. It trains three
models for about two minutes, so it is marked slow (outside the default run, like the reproductions).

The samples bundled with the package (issue 11) are checked against ``../shared/data`` when it is there."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

sys.path[:0] = [str(REPO / "tools")]
import make_samples  # noqa: E402  (tools/ is not a package)


@pytest.mark.slow  # two minutes of training: run with `pytest -m slow tests/test_demo.py`
def test_zoo_demo_runs_quietly_and_writes_its_outputs(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ZOO_RAW_STDERR")}
    code = "import sys; from zoo.cli import main; sys.argv = ['zoo'] + sys.argv[1:]; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", code, "demo", "--out", str(tmp_path / "demo"), "--json"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == "", proc.stderr[-3000:]
    assert "\r" not in proc.stdout and "Unknown" not in proc.stdout  # not a terminal: one line per epoch, with totals
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    assert metrics["convnet_digits_accuracy"] > 0.9 and metrics["convnet_digits_pgd_accuracy"] < 0.5
    for path in ("convnet-digits/predictions.png", "convnet-digits/pgd-panel.png", "vae-digits/generated.png",
                 "las-tones/example.wav", "las-tones/transcripts.txt"):
        assert (tmp_path / "demo" / path).stat().st_size > 0, path


# -- the bundled samples --------------------------------------------------------------------------
def test_bundled_samples_load_as_documented():
    from zoo.data.audio import DIGIT_WORDS, FSDD_SPEAKERS, TEST_TAKES, fsdd_files
    from zoo.data.samples import ATTRIBUTION_FILE, FSDD_DIR, SAMPLES_DIR, fsdd_samples, mnist_samples

    x, y = mnist_samples()
    assert x.shape == (100, 28, 28, 1) and x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    assert y.shape == (100,) and y.dtype == np.int32 and set(y.tolist()) == set(range(10))
    assert np.all((x * 255).round() == x * 255)  # uint8 pixels / 255, as the mnist dataset gives them
    waves, transcripts = fsdd_samples()
    assert transcripts == list(DIGIT_WORDS)  # digits 0-9, sorted by file name
    assert all(w.dtype == np.float32 and w.ndim == 1 and 0.1 < len(w) / 8000 < 2.5 and np.abs(w).max() <= 1.0
               for w in waves)
    files, speakers = fsdd_files(SAMPLES_DIR / FSDD_DIR)
    assert speakers == list(FSDD_SPEAKERS) and all(take in TEST_TAKES for *_, take in files)
    attribution = (SAMPLES_DIR / ATTRIBUTION_FILE).read_text()
    for needed in ("CC BY-SA 3.0", "CC BY-SA 4.0", "LeCun", "Jakobovski", "8000", *(p.name for p, *_ in files)):
        assert needed in attribution, needed


def test_setup_installs_every_bundled_sample():
    import ast
    import fnmatch

    from zoo.data.samples import SAMPLES_DIR

    call = next(n for n in ast.walk(ast.parse((REPO / "setup.py").read_text()))
                if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup")
    globs = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "package_data"))["zoo.data.samples"]
    data = [p.relative_to(SAMPLES_DIR).as_posix() for p in SAMPLES_DIR.rglob("*")
            if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
    assert len(data) == 12  # mnist.npz, ATTRIBUTION.md and ten recordings
    for relative in data:
        assert any(fnmatch.fnmatch(relative, g) for g in globs), relative


def test_bundled_samples_are_the_shared_data(shared_data, tmp_path):
    """The samples are what tools/make_samples.py takes from ../shared/data, and the tool rebuilds
    them: the same files, the same archive bytes, and a changed file is reported."""
    from zoo.data import load_dataset
    from zoo.data.audio import fsdd_files
    from zoo.data.samples import FSDD_DIR, SAMPLES_DIR, mnist_samples
    from zoo.data.sources import read_idx

    x, y = mnist_samples()
    images = read_idx(shared_data / "mnist" / make_samples.MNIST_IMAGES)
    labels = read_idx(shared_data / "mnist" / make_samples.MNIST_LABELS)
    assert np.array_equal((x[..., 0] * 255).round().astype(np.uint8), images[8000:8100])
    assert np.array_equal(y, labels[8000:8100])
    test = load_dataset("mnist", data_dir=shared_data / "mnist")  # only the t10k files: the 8,000/2,000 split
    assert np.array_equal(x, test.arrays("test")[0][:100]) and np.array_equal(y, test.arrays("test")[1][:100])
    for path, *_ in fsdd_files(SAMPLES_DIR / FSDD_DIR)[0]:
        assert path.read_bytes() == (shared_data / "fsdd" / "recordings" / path.name).read_bytes(), path.name

    assert make_samples.main(["--data-dir", str(shared_data), "--check"]) == 0
    out = tmp_path / "samples"
    assert make_samples.main(["--data-dir", str(shared_data), "--out", str(out)]) == 0
    shipped = {p.relative_to(SAMPLES_DIR) for p in SAMPLES_DIR.rglob("*") if p.is_file() and p.suffix != ".py"
               and "__pycache__" not in p.parts}
    assert {p.relative_to(out) for p in out.rglob("*") if p.is_file()} == shipped  # nothing half-written left
    for relative in shipped:
        assert (out / relative).read_bytes() == (SAMPLES_DIR / relative).read_bytes(), relative
    (out / FSDD_DIR / "0_george_0.wav").write_bytes(b"RIFF")
    (out / FSDD_DIR / "1_theo_0.wav").write_bytes(b"RIFF")
    assert make_samples.differences(make_samples.build(shared_data), out) == [
        "fsdd/0_george_0.wav: differs", "fsdd/1_theo_0.wav: not one of the chosen recordings"]


def test_make_samples_refuses_a_folder_without_the_data(tmp_path, capsys):
    out = tmp_path / "samples"
    assert make_samples.main(["--data-dir", str(tmp_path), "--out", str(out)]) == 2
    assert "mnist/t10k-images-idx3-ubyte.gz not found" in capsys.readouterr().err
    assert not out.exists()
