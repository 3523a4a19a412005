"""The README's main job, as a user runs it: `zoo demo` in a fresh process on the embedded data
finishes, writes its outputs, and prints nothing on stderr that is not zoo's own. It trains three
models for about two minutes, so it is marked slow (outside the default run, like the reproductions).

The demo's pretrained step (issue 11) runs in the default suite on the shipped packs of its five
presets (or, in a checkout without them, tiny packs trained for one epoch on IDX files and FSDD
recordings made from the bundled samples), offered by a test ``zoo_weights()`` plugin; and the bundled samples are checked against
``../shared/data`` when it is there."""
import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, TINY_LAS
from zoo import hookimpl
from zoo.cli.demo_cmd import PRETRAINED_PARTS

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
    for preset, _ in PRETRAINED_PARTS:  # a pack shown, or one line saying it is not installed
        assert f"\n{preset}: pack " in proc.stdout or f"\nskipped {preset}: " in proc.stdout, preset



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


# -- the pretrained step --------------------------------------------------------------------------
TINY = {
    "convnet-mnist": dict(filters=[4], dense=[8]),
    "convnet-mnist-pgd-trained": dict(filters=[4], dense=[8]),
    "vae-mnist": dict(filters=[4], latent_dim=2),
    "dcgan-mnist": dict(generator_filters=[4], discriminator_filters=[4], latent_dim=2),
    "las-fsdd": dict(TINY_LAS, listener_layers=1),
}
PRESETS = [preset for preset, _ in PRETRAINED_PARTS]


def _idx(path, array):
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    """``preset -> pack directory``: the shipped packs when the checkout has all five (what a user's
    demo shows, and nothing to train here); else every preset of the step trained for one epoch, tiny,
    and packed. The data is then made from the bundled samples: MNIST IDX files whose train and test
    sets are the 100 images, and an FSDD folder holding each recording as take 0 (test) and take 5
    (train)."""
    from zoo.data.audio import fsdd_files
    from zoo.data.samples import FSDD_DIR, MNIST_FILE, SAMPLES_DIR
    from zoo.packs import make_pack
    from zoo.packs.shipped import shipped_packs
    from zoo.training.fit import train

    shipped = shipped_packs()
    if all(preset in shipped for preset in PRESETS):
        return {preset: shipped[preset] for preset in PRESETS}
    root = tmp_path_factory.mktemp("pretrained")
    mnist, fsdd = root / "mnist", root / "fsdd"
    mnist.mkdir()
    fsdd.mkdir()
    with np.load(SAMPLES_DIR / MNIST_FILE) as f:
        for split in ("train", "t10k"):
            _idx(mnist / f"{split}-images-idx3-ubyte.gz", f["images"])
            _idx(mnist / f"{split}-labels-idx1-ubyte.gz", f["labels"])
    for path, digit, speaker, _ in fsdd_files(SAMPLES_DIR / FSDD_DIR)[0]:
        for take in (0, 5):
            shutil.copy(path, fsdd / f"{digit}_{speaker}_{take}.wav")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE_DIR", str(root / "cache"))
        # the VAE's and GAN's card metrics read images through a classifier: the tiny ConvNet, not
        # one trained for them
        mp.setenv("ZOO_QUALITY_CLASSIFIER", str(root / "runs" / "convnet-mnist"))
        for preset in PRESETS:
            las = preset.startswith("las")
            train(preset, epochs=1, data_dir=fsdd if las else mnist, overrides=TINY[preset], out=root / "runs" / preset,
                  dataset_args=dict(multi_train=0, multi_test=0) if las else None, verbose=0)
            out[preset] = make_pack(root / "runs" / preset, root / "packs").directory
    return out


class PackPlugin:
    def __init__(self, locations):
        self.locations = locations

    @hookimpl
    def zoo_weights(self):
        return {preset: str(path) for preset, path in self.locations.items()}


@pytest.fixture
def offered(tmp_path, monkeypatch):
    """Offer these packs through a test plugin, and nothing from the zoo's own shipped packs."""
    import zoo.packs.shipped
    import zoo.plugins

    monkeypatch.setattr(zoo.packs.shipped, "SHIPPED_DIR", tmp_path / "no-shipped-packs")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))

    def offer(locations):
        assert zoo.plugins.get_plugin_manager().register(PackPlugin(locations), "test-packs", "test-packs", "1")

    return offer


def test_without_packs_each_part_is_skipped_in_one_line(offered, tmp_path, capsys):
    from zoo.cli.demo_cmd import pretrained_step

    assert pretrained_step(tmp_path / "demo") == {}
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1:] == [f"skipped {p}: no pack for {p} is installed (make one in a checkout: "
                         f"python tools/make_packs.py --presets {p})" for p in PRESETS]
    assert not (tmp_path / "demo").exists()


def test_demo_shows_the_offered_packs_on_the_bundled_samples(packs, offered, tmp_path, monkeypatch, capsys):
    from PIL import Image

    import zoo.cli.demo_cmd
    from zoo import load
    from zoo.cli import main
    from zoo.data.samples import fsdd_samples, mnist_samples
    from zoo.models.generative import write_samples
    from zoo.models.las import error_rate
    from zoo.packs import verify_pack

    offered(packs)
    monkeypatch.setattr(zoo.cli.demo_cmd, "DEMO_STEPS", [zoo.cli.demo_cmd.pretrained_step])  # the others train
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--json"]) == 0
    stdout = capsys.readouterr().out
    metrics = json.loads(stdout.strip().splitlines()[-1])
    keys = [f"pretrained_{p}_{m}" for p in ("convnet_mnist", "convnet_mnist_pgd_trained") for m in ("accuracy", "pgd_accuracy")]
    keys += ["pretrained_vae_mnist_samples", "pretrained_dcgan_mnist_samples", "pretrained_las_fsdd_cer",
             "pretrained_las_fsdd_wer"]
    assert sorted(metrics) == sorted(keys)
    assert "skipped" not in stdout
    assert all(f"{p}: pack {verify_pack(packs[p])['version']} from test-packs" in stdout for p in PRESETS)

    x, y = mnist_samples()
    for preset in ("convnet-mnist", "convnet-mnist-pgd-trained"):
        key = "pretrained_" + preset.replace("-", "_")
        model = load(preset, weights=packs[preset], compile=False)
        assert metrics[f"{key}_accuracy"] == pytest.approx(np.mean(np.asarray(model(x)).argmax(1) == y))
        assert 0.0 <= metrics[f"{key}_pgd_accuracy"] <= metrics[f"{key}_accuracy"]
        with Image.open(out / "pretrained" / preset / "pgd-panel.png") as panel:  # 8 rows of 3 images
            assert panel.width < panel.height
    for preset in ("vae-mnist", "dcgan-mnist"):
        assert metrics["pretrained_" + preset.replace("-", "_") + "_samples"] == 32
        expected = write_samples(load(preset, weights=packs[preset], compile=False), tmp_path / f"{preset}.png", 32, 0)
        with Image.open(out / "pretrained" / preset / "generated.png") as grid, Image.open(expected["png"]) as same:
            assert np.array_equal(np.asarray(grid), np.asarray(same))  # what `zoo generate -n 32` draws

    waves, refs = fsdd_samples()
    hyps = load("las-fsdd", weights=packs["las-fsdd"], compile=False).transcribe(waves)
    assert metrics["pretrained_las_fsdd_cer"] == pytest.approx(error_rate(refs, hyps))
    assert metrics["pretrained_las_fsdd_wer"] == pytest.approx(error_rate(refs, hyps, unit="word"))
    lines = [f"{r!r:>8} -> {h!r}" for r, h in zip(refs, hyps)]
    assert (out / "pretrained" / "las-fsdd" / "transcripts.txt").read_text().splitlines() == lines
    assert all(f"  {line}" in stdout for line in lines)


def test_a_pack_that_does_not_load_is_skipped_and_the_rest_goes_on(packs, offered, tmp_path, capsys):
    from zoo.cli.demo_cmd import pretrained_step

    damaged = tmp_path / "damaged"
    shutil.copytree(packs["convnet-mnist"], damaged)
    weights = damaged / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:-1] + b"x")
    offered({"convnet-mnist": damaged, "vae-mnist": packs["vae-mnist"]})
    metrics = pretrained_step(tmp_path / "demo")
    assert list(metrics) == ["pretrained_vae_mnist_samples"]
    stdout = capsys.readouterr().out
    assert "skipped convnet-mnist: its pack did not load: " in stdout and "model.weights.h5" in stdout
    assert "skipped dcgan-mnist: no pack for dcgan-mnist is installed" in stdout
