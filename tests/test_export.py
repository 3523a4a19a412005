"""SavedModel export for TF Serving: every family's signatures, loaded without zoo, match the Keras
model; atomic versions; a killed training run resumes with nothing lost."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import ConfigError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
IMAGE = dict(input_shape=(8, 8, 1))
LAS_TINY = dict(num_mels=16, listener_layers=1, listener_units=8, speller_units=16, embedding_dim=4,
                attention_dim=8, max_output_length=10)
FAMILIES = {  # exported name -> (architecture, tiny config)
    "convnet": ("convnet", dict(IMAGE, num_classes=10, filters=(4, 8), dense=(16,))),
    "ae": ("ae", dict(IMAGE, latent_dim=4, filters=(4, 8))),
    "linear-ae": ("linear-ae", dict(IMAGE, latent_dim=4)),
    "vae": ("vae", dict(IMAGE, latent_dim=2, filters=(4, 8))),
    "dcgan": ("dcgan", dict(IMAGE, latent_dim=4, generator_filters=(4, 8), discriminator_filters=(4, 8))),
    "vaegan": ("vaegan", dict(IMAGE, latent_dim=2, filters=(4, 8), discriminator_filters=(4, 8))),
    "las": ("las", LAS_TINY),
}
SIGNATURES = {
    "convnet": {"serving_default", "fgsm"},
    "ae": {"serving_default", "reconstruct", "encode", "decode"},
    "linear-ae": {"serving_default", "reconstruct", "encode", "decode"},
    "vae": {"serving_default", "reconstruct", "encode", "decode", "sample"},
    "dcgan": {"serving_default", "generate"},
    "vaegan": {"serving_default", "reconstruct", "encode", "decode", "sample", "generate"},
    "las": {"serving_default"},
}


def write_run(model, directory, architecture, config):
    """A directory like `zoo train --out` leaves: config.json and model.weights.h5."""
    from zoo.training.run import RUN_FILE, WEIGHTS_FILE

    directory.mkdir(parents=True)
    (directory / RUN_FILE).write_text(json.dumps(dict(name=architecture, architecture=architecture,
                                                      config={k: list(v) if isinstance(v, tuple) else v
                                                              for k, v in config.items()},
                                                      dataset="digits", seed=0)))
    model.save_weights(str(directory / WEIGHTS_FILE))


def keras_reference(name, model, rng):
    """``(inputs, expected outputs)`` per signature, the expected ones from the Keras model's own API."""
    import tensorflow as tf

    if name == "las":
        from zoo.data import load_dataset

        waves, _, _ = load_dataset("tones", multi_train=0, multi_test=0).arrays("test")
        waves = [waves[i] for i in (0, 7, 13, 21, 30)]  # different lengths: the batch is zero-padded
        batch = np.zeros((len(waves), max(len(w) for w in waves)), np.float32)
        for i, w in enumerate(waves):
            batch[i, :len(w)] = w
        return ({"serving_default": {"waveforms": batch}},
                {"serving_default": {"transcripts": np.array(model.transcribe(waves))}})
    x = rng.uniform(0, 1, (5, 8, 8, 1)).astype(np.float32)
    if name == "convnet":
        from zoo import get_attack

        labels = rng.integers(0, 10, 5).astype(np.int32)
        probabilities = model(x).numpy()
        adversarial = get_attack("fgsm", eps=0.1)(model, x, labels)
        return ({"serving_default": {"images": x},
                 "fgsm": {"images": x, "labels": labels, "eps": np.full(5, 0.1, np.float32)}},
                {"serving_default": {"probabilities": probabilities, "classes": probabilities.argmax(-1)},
                 "fgsm": {"adversarial_images": adversarial}})
    if name in ("ae", "linear-ae"):
        codes = model.encode(x).numpy()
        return ({"serving_default": {"images": x}, "reconstruct": {"images": x}, "encode": {"images": x},
                 "decode": {"codes": codes}},
                {"serving_default": {"reconstructions": model(x).numpy()},
                 "reconstruct": {"reconstructions": model(x).numpy()}, "encode": {"codes": codes},
                 "decode": {"images": model.decode(codes).numpy()}})
    count = {"n": np.array(3, np.int32), "seed": np.array(7, np.int32)}
    if name == "dcgan":
        images = model.generate(3, seed=7).numpy()
        return ({"serving_default": count, "generate": count},
                {"serving_default": {"images": images}, "generate": {"images": images}})
    posterior = model.encode(x)
    z = rng.normal(size=(5, model.latent_dim)).astype(np.float32)
    samples = model.sample(3, seed=7).numpy()
    inputs = {"serving_default": {"images": x}, "reconstruct": {"images": x}, "encode": {"images": x},
              "decode": {"z": z}, "sample": count}
    expected = {"serving_default": {"reconstructions": model(x).numpy()},
                "reconstruct": {"reconstructions": model(x).numpy()},
                "encode": {"mean": posterior.mean().numpy(), "stddev": posterior.stddev().numpy()},
                "decode": {"images": model.decode(tf.constant(z)).mean().numpy()},
                "sample": {"images": samples}}
    if name == "vaegan":
        inputs["generate"], expected["generate"] = count, {"images": model.generate(3, seed=7).numpy()}
    return inputs, expected


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every family exported from a run directory, then loaded and run in a process without zoo."""
    import keras

    from zoo import load
    from zoo.export import export

    root = tmp_path_factory.mktemp("export")
    models, rng = root / "models", np.random.default_rng(0)
    inputs, expected, paths = {}, {}, {}
    for name, (architecture, config) in FAMILIES.items():
        keras.utils.set_random_seed(0)
        model = load(architecture, compile=False, **config)
        write_run(model, root / "runs" / name, architecture, config)
        paths[name] = export(architecture, root / "runs" / name, models, model_name=name)
        # the reference: the model as `zoo` loads it from the same run directory
        ins, outs = keras_reference(name, load(architecture, weights=root / "runs" / name, compile=False), rng)
        inputs.update({f"{name}/{s}/{k}": v for s, feeds in ins.items() for k, v in feeds.items()})
        expected[name] = outs
    np.savez(root / "inputs.npz", **inputs)
    proc = subprocess.run([sys.executable, str(HERE / "load_exported.py"), str(models), str(root / "inputs.npz"),
                           str(root / "outputs.npz")], capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(models=models, paths=paths, expected=expected, outputs=dict(np.load(root / "outputs.npz")))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_signatures_match_the_keras_model_without_zoo(exported, name):
    assert exported["paths"][name] == exported["models"] / name / "1"
    for signature, outputs in exported["expected"][name].items():
        for key, want in outputs.items():
            got = exported["outputs"][f"{name}/{signature}/{key}"]
            if want.dtype.kind in "US":
                assert got.tolist() == want.tolist(), (signature, key)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{name} {signature} {key}")


@pytest.mark.parametrize("name", list(FAMILIES))
def test_saved_model_cli_lists_the_signatures(exported, name):
    shown = str(exported["outputs"][f"{name}/show_all"])
    listed = {line.split("'")[1] for line in shown.splitlines() if line.startswith("signature_def['")}
    assert SIGNATURES[name] <= listed, listed


def test_las_transcripts_are_not_trivial(exported):
    transcripts = exported["expected"]["las"]["serving_default"]["transcripts"].tolist()
    assert any(transcripts), "an untrained LAS that emits only <eos> would make the comparison vacuous"


def test_saved_model_cli_command(exported):
    proc = subprocess.run([str(Path(sys.executable).parent / "saved_model_cli"), "show", "--dir",
                           str(exported["paths"]["convnet"]), "--all"], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "signature_def['fgsm']" in proc.stdout and "signature_def['serving_default']" in proc.stdout
    assert "adversarial_images" in proc.stdout


def test_models_config_lists_every_model(exported):
    text = (exported["models"] / "models.config").read_text()
    for name in FAMILIES:
        assert f'name: "{name}"' in text and f'base_path: "/models/{name}"' in text


def _tiny_convnet(tmp_path):
    import keras

    from zoo import load

    keras.utils.set_random_seed(0)
    config = FAMILIES["convnet"][1]
    model = load("convnet", compile=False, **config)
    write_run(model, tmp_path / "run", "convnet", config)
    return tmp_path / "run"


def test_versions_increase_and_are_never_overwritten(tmp_path):
    from zoo.export import export, versions

    run = _tiny_convnet(tmp_path)
    assert export("convnet", run, tmp_path / "models").name == "1"
    assert export("convnet", run, tmp_path / "models", version=5).name == "5"
    assert export("convnet", run, tmp_path / "models").name == "6"
    with pytest.raises(ConfigError, match="already exists"):
        export("convnet", run, tmp_path / "models", version=5)
    assert versions(tmp_path / "models" / "convnet") == [1, 5, 6]


def test_interrupted_export_leaves_the_previous_version_intact(tmp_path):
    from zoo.export import export, versions

    run, models = _tiny_convnet(tmp_path), tmp_path / "models"
    export("convnet", run, models)
    before = {p.relative_to(models): p.read_bytes() for p in models.rglob("*") if p.is_file()}
    # an export killed (SIGKILL) after the SavedModel was written but before the commit
    killer = (
        "import os, signal, sys, tensorflow as tf\n"
        "import zoo.export\n"
        "save = tf.saved_model.save\n"
        "def save_then_die(*a, **k):\n"
        "    save(*a, **k)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "tf.saved_model.save = save_then_die\n"
        f"zoo.export.export('convnet', {str(run)!r}, {str(models)!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", killer], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert versions(models / "convnet") == [1]
    left = [p.name for p in (models / "convnet").iterdir() if not p.name.isdigit()]
    assert len(left) == 1 and left[0].startswith(".tmp-2-")  # the dead export's temporary, ignored by Serving
    assert {p.relative_to(models): p.read_bytes() for p in models.rglob("*")
            if p.is_file() and not str(p.relative_to(models)).startswith("convnet/.tmp")} == before

    # a failure inside this process cleans up after itself; the next export removes the dead one's temporary
    import zoo.export

    original = zoo.export.signatures_for
    zoo.export.signatures_for = lambda model, family=None: (_ for _ in ()).throw(RuntimeError("disk full"))
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            export("convnet", run, models)
    finally:
        zoo.export.signatures_for = original
    assert versions(models / "convnet") == [1]
    assert export("convnet", run, models).name == "2"
    assert sorted(p.name for p in (models / "convnet").iterdir()) == ["1", "2"]


def _final_weights(out):
    import h5py

    with h5py.File(out / "model.weights.h5") as f:
        arrays = []
        f.visititems(lambda name, obj: arrays.append((name, obj[()])) if isinstance(obj, h5py.Dataset) else None)
    return dict(arrays)


def test_killed_training_resumes_with_nothing_lost_and_exports(tmp_path):
    """SIGKILL (no chance to clean up) in epoch 2 of 2; the rerun resumes after epoch 1 and ends with
    exactly the weights of an uninterrupted run; the result exports through the CLI."""
    command = [sys.executable, "-m", "zoo", "train", "convnet-digits", "--epochs", "2", "--batch-size", "8",
               "--set", "filters=[4, 8]", "--set", "dense=[16]", "--set", "dropout=0.0", "--seed", "3"]
    whole = subprocess.run(command + ["--out", str(tmp_path / "whole")], capture_output=True, text=True,
                           env=ENV, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "killed"
    state = out / "checkpoint" / "state.json"
    proc = subprocess.Popen(command + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(state.read_text())["epoch"] == 1
    assert not (out / "model.weights.h5").exists()

    resumed = subprocess.run(command + ["--out", str(out)], capture_output=True, text=True, env=ENV, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from the checkpoint after epoch" in resumed.stdout
    want, got = _final_weights(tmp_path / "whole"), _final_weights(out)
    assert want.keys() == got.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-7, err_msg=key)
    history = json.loads((out / "checkpoint" / "state.json").read_text())["history"]
    assert len(history["loss"]) == 2  # one entry per epoch: none lost, none doubled

    export = subprocess.run([sys.executable, "-m", "zoo", "export", "convnet-digits", "--weights", str(out),
                             "--out", str(tmp_path / "models"), "--json"], capture_output=True, text=True,
                            env=ENV, timeout=600)
    assert export.returncode == 0, export.stderr[-3000:]
    result = json.loads(export.stdout.strip().splitlines()[-1])
    assert result["version"] == 1 and {"serving_default", "fgsm"} <= set(result["signatures"])
    assert (tmp_path / "models" / "convnet-digits" / "1" / "saved_model.pb").exists()


# -- hardening (#14) -----------------------------------------------------------------------------------
def test_a_version_being_written_by_another_export_is_not_picked(tmp_path):
    """Two exports at once: the second sees the first's reservation (its temporary directory, made
    under the lock) and takes the next version instead of colliding on version 1."""
    from zoo.export import export, versions

    run, models = _tiny_convnet(tmp_path), tmp_path / "models"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (models / "convnet").mkdir(parents=True)
        (models / "convnet" / f".tmp-1-{other.pid}").mkdir()  # a live export writing version 1
        assert export("convnet", run, models).name == "2"
        with pytest.raises(ConfigError, match="being written by another export"):
            export("convnet", run, models, version=1)
    finally:
        other.kill()
        other.wait()
    assert export("convnet", run, models).name == "3"  # the dead export's temporary is cleared...
    assert versions(models / "convnet") == [2, 3] and not list((models / "convnet").glob(".tmp-*"))


def test_version_allocation_holds_an_exclusive_lock(tmp_path):
    import threading

    from zoo.export import _locked

    order = []
    with _locked(tmp_path):
        waiter = threading.Thread(target=lambda: (_locked(tmp_path).__enter__(), order.append("second")))
        waiter.start()
        time.sleep(0.3)
        order.append("first")
    waiter.join(5)
    assert order == ["first", "second"]


def test_versions_beyond_int64_are_refused(tmp_path):
    from zoo.export import MAX_VERSION, export

    run = _tiny_convnet(tmp_path)
    with pytest.raises(ConfigError, match="TF Serving's int64"):
        export("convnet", run, tmp_path / "models", version=MAX_VERSION + 1)
    assert export("convnet", run, tmp_path / "models", version=MAX_VERSION).name == str(MAX_VERSION)


def _parse_models_config(text):
    """Parse models.config with a real protobuf text-format parser (TF Serving's message shape)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

    fdp = descriptor_pb2.FileDescriptorProto(name="serving_test.proto", package="t")
    cfg = fdp.message_type.add(name="ModelConfig")
    for i, field in enumerate(["name", "base_path", "model_platform"], 1):
        cfg.field.add(name=field, number=i, type=9, label=1)
    lst = fdp.message_type.add(name="ModelConfigList")
    lst.field.add(name="config", number=1, type=11, label=3, type_name=".t.ModelConfig")
    top = fdp.message_type.add(name="ModelServerConfig")
    top.field.add(name="model_config_list", number=1, type=11, label=1, type_name=".t.ModelConfigList")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    message = message_factory.GetMessageClass(pool.FindMessageTypeByName("t.ModelServerConfig"))()
    return text_format.Parse(text, message)


def test_base_path_with_quotes_writes_a_valid_models_config(tmp_path):
    from zoo.export import CONFIG_FILE, export

    run, models = _tiny_convnet(tmp_path), tmp_path / "models"
    base = '/mnt/it\'s "models"\\x'
    export("convnet", run, models, base_path=base)
    parsed = _parse_models_config((models / CONFIG_FILE).read_text())
    assert [(c.name, c.base_path) for c in parsed.model_config_list.config] == [("convnet", base + "/convnet")]
    with pytest.raises(ConfigError, match="control character"):
        export("convnet", run, models, base_path="/models\nconfig {")


def test_an_outside_plugins_classifier_exports_by_its_spec_family(tmp_path):
    import keras

    import zoo
    from zoo.export import export, signature_names
    from zoo.plugins import get_plugin_manager

    def build(units=3):
        return keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                                 keras.layers.Dense(units, activation="softmax")])

    class Outside:
        @staticmethod
        @zoo.hookimpl
        def zoo_models():
            return [zoo.ModelSpec("outside-net", build, {"units": 3}, "a plain keras classifier")]

    assert get_plugin_manager().register(Outside, "outside", "zoo-outside", "1")
    model = zoo.load("outside-net", compile=False)
    write_run(model, tmp_path / "run", "outside-net", {"units": 3})
    path = export("outside-net", tmp_path / "run", tmp_path / "models")
    assert signature_names(path) == ["fgsm", "serving_default"]
    x = np.random.default_rng(0).uniform(0, 1, (2, 4, 4, 1)).astype(np.float32)
    import tensorflow as tf

    served = tf.saved_model.load(str(path)).signatures["serving_default"](images=tf.constant(x))
    np.testing.assert_allclose(served["probabilities"].numpy(), model(x).numpy(), atol=1e-6)
