"""registry.yaml: every preset is valid and buildable; a broken file names the file, preset and field."""
import pytest

import zoo
from zoo.api import resolve
from zoo.registry import RegistryError, load_registry, registry_path

GOOD_ENTRY = """
presets:
  tiny:
    architecture: convnet
    dataset: digits
    config: {input_shape: [8, 8, 1], filters: [4]}
    train: {epochs: 1, batch_size: 16}
"""


def test_every_preset_resolves_to_a_known_architecture():
    presets = load_registry()
    assert {"convnet-mnist", "convnet-digits"} <= set(presets)
    for name, preset in presets.items():
        spec, got = resolve(name)
        assert got is preset and spec.name == preset.architecture
        unknown = set(preset.config) - set(spec.config_defaults())
        assert not unknown, f"preset {name} overrides unknown keys {unknown}"


@pytest.mark.parametrize(
    "text, field",
    [
        ("presets:\n  tiny:\n    dataset: digits\n", "architecture"),
        ("presets:\n  tiny:\n    architecture: convnet\n    dataset: digits\n    train: {epochs: five}\n", "train.epochs"),
        ("presets:\n  tiny:\n    architecture: convnet\n    dataset: digits\n    colour: blue\n", "colour"),
        ("presets:\n  tiny:\n    architecture: convnet\n    dataset: digits\n    train: {learning_rate: -1}\n", "train.learning_rate"),
        ("presets:\n  tiny:\n    architecture: convnet\n    dataset: digits\n    metadata: {metrics: accuracy}\n", "metadata.metrics"),
        ("presets:\n  tiny: [1, 2]\n", "expected a mapping"),
        ("presets:\n  tiny:\n    architecture: convnet\n    dataset: digits\n    train: {lr_schedule: step}\n", "train.lr_schedule"),
        ("presets:\n  tiny:\n    architecture: convnet\n    dataset: digits\n    train: {ema_momentum: 1.5}\n", "train.ema_momentum"),
    ],
)
def test_broken_entry_names_file_preset_and_field(tmp_path, text, field):
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    message = str(err.value)
    assert str(path) in message and "'tiny'" in message
    assert (field if " " in field else f"field {field!r}") in message


def test_invalid_yaml_and_missing_presets_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("presets: {tiny: [unclosed\n")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(bad)
    bad.write_text("- a list\n")
    with pytest.raises(RegistryError, match="'presets' mapping"):
        load_registry(bad)


def test_zoo_registry_variable_selects_another_file(tmp_path, monkeypatch):
    path = tmp_path / "registry.yaml"
    path.write_text(GOOD_ENTRY)
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    assert registry_path() == path
    assert "tiny" in zoo.list_models() and "convnet-mnist" not in zoo.list_models()
    model = zoo.load("tiny")
    assert model.filters == (4,) and model.image_shape == (8, 8, 1)


def test_broken_registry_is_a_clear_cli_error(tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    path = tmp_path / "registry.yaml"
    path.write_text("presets:\n  tiny:\n    architecture: 3\n    dataset: digits\n")
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    assert main(["info", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "preset 'tiny'" in err and "'architecture'" in err


def test_cosine_schedule_follows_the_epoch_index_and_a_resumed_run_continues_it(tmp_path, monkeypatch):
    import math

    import keras

    from zoo.training.fit import train

    path = tmp_path / "registry.yaml"
    path.write_text(GOOD_ENTRY.replace("train: {epochs: 1,", "train: {learning_rate: 0.01, lr_schedule: cosine, epochs: 4,"))
    monkeypatch.setenv("ZOO_REGISTRY", str(path))

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:  # after the checkpoint of epoch 2
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("tiny", out=tmp_path / "run", verbose=0, callbacks=[Interrupt()])
    resumed = train("tiny", out=tmp_path / "run", verbose=0)
    assert resumed.initial_epoch == 2
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert resumed.history["learning_rate"] == pytest.approx(expected)
    assert len(resumed.history["loss"]) == 4  # the resumed epochs once, after the restored ones
    assert float(resumed.model.optimizer.learning_rate) == pytest.approx(expected[-1])


def test_ema_run_ends_on_the_averaged_weights_even_when_rerun_after_it_finished(tmp_path, monkeypatch):
    import numpy as np

    from zoo import load
    from zoo.training.checkpoint import EpochCheckpoint
    from zoo.training.fit import train

    path = tmp_path / "registry.yaml"
    path.write_text(GOOD_ENTRY.replace("train: {epochs: 1,", "train: {learning_rate: 0.01, ema_momentum: 0.9, epochs: 2,"))
    monkeypatch.setenv("ZOO_REGISTRY", str(path))

    first = train("tiny", out=tmp_path / "run", verbose=0)
    optimizer = first.model.optimizer
    averages = [v.numpy() for v in optimizer._model_variables_moving_average]
    final = [v.numpy() for v in first.model.trainable_variables]
    for got, want in zip(final, averages):
        np.testing.assert_allclose(got, want)
    raw = load("tiny")
    EpochCheckpoint.restore(raw, tmp_path / "run" / "checkpoint")
    assert any(not np.allclose(r.numpy(), f) for r, f in zip(raw.trainable_variables, final))

    again = train("tiny", out=tmp_path / "run", verbose=0)  # finished: restored from the raw checkpoint
    assert again.initial_epoch == 2
    for got, want in zip(again.model.trainable_variables, final):
        np.testing.assert_allclose(got.numpy(), want)
    saved = load("tiny", weights=tmp_path / "run")
    for got, want in zip(saved.trainable_variables, final):
        np.testing.assert_allclose(got.numpy(), want)
