"""Run directories never lie: a resumed run ends bit-for-bit where an uninterrupted one does (dropout
included), a kill at any point of a checkpoint leaves a consistent one, and a directory refuses to be
continued by another preset, recipe or a smaller --epochs — before writing anything."""
import json

import numpy as np
import pytest

from zoo.cli import main
from zoo.errors import ZooError
from zoo.training.fit import train

PRESET = "convnet-digits"  # as shipped: dropout 0.25


def weights_of(run):
    import h5py

    out = {}
    with h5py.File(run / "model.weights.h5") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, np.asarray(obj)) if hasattr(obj, "shape") else None)
    return out


def same_weights(a, b):
    wa, wb = weights_of(a), weights_of(b)
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Four epochs in one go."""
    out = tmp_path_factory.mktemp("straight") / "run"
    train(PRESET, epochs=4, out=out, verbose=0)
    return out


def test_a_resumed_run_with_dropout_ends_on_the_same_weights(straight, tmp_path):
    out = tmp_path / "run"
    train(PRESET, epochs=2, out=out, verbose=0)
    result = train(PRESET, epochs=4, out=out, verbose=0)
    assert result.initial_epoch == 2
    assert same_weights(straight, out)
    assert json.loads((out / "config.json").read_text())["recipe"]["epochs"] == 4


def test_a_kill_between_the_weights_and_the_state_loses_nothing(straight, tmp_path):
    """The weights of epoch 3 are on disk but its state.json was never written: the run resumes
    after epoch 2, as the state says, and ends where the uninterrupted run does."""
    out = tmp_path / "run"
    train(PRESET, epochs=2, out=out, verbose=0)
    checkpoint = out / "checkpoint"
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["epoch"] == 2 and (checkpoint / state["weights"]).exists() and len(state["rng"]) >= 1
    (checkpoint / "epoch-3.weights.h5").write_bytes((checkpoint / state["weights"]).read_bytes()[:100])
    result = train(PRESET, epochs=4, out=out, verbose=0)
    assert result.initial_epoch == 2 and same_weights(straight, out)
    assert sorted(p.name for p in checkpoint.glob("*.weights.h5")) == ["epoch-4.weights.h5"]


@pytest.fixture
def finished(tmp_path):
    out = tmp_path / "run"
    assert main(["train", PRESET, "--epochs", "2", "--out", str(out)]) == 0
    return out


def refused(argv, out, capsys, message):
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing written


@pytest.mark.parametrize("preset", ["convnet-digits-pgd-trained", "convnet-digits-noise-adversarial"])
def test_another_presets_recipe_cannot_resume_a_run(finished, capsys, preset):
    refused(["train", preset, "--out", str(finished)], finished, capsys, "already holds a different run")


def test_fewer_epochs_than_trained_is_refused(finished, capsys):
    refused(["train", PRESET, "--epochs", "1", "--out", str(finished)], finished, capsys, "already trained 2 epochs")


def test_another_seed_or_config_is_refused(finished, capsys):
    refused(["train", PRESET, "--epochs", "2", "--seed", "1", "--out", str(finished)], finished, capsys, "seed")
    refused(["train", PRESET, "--epochs", "2", "--set", "dropout=0.5", "--out", str(finished)], finished, capsys,
            "config")


def test_a_run_directory_in_use_is_refused(finished, capsys):
    from zoo.training.run import RunLock

    with RunLock(finished):  # another `zoo train` holds it
        refused(["train", PRESET, "--epochs", "3", "--out", str(finished)], finished, capsys, "in use by another")


@pytest.mark.parametrize("damage, message", [
    ("state", "state.json is damaged"),
    ("config", "config.json is damaged"),
    ("weights", "cannot be loaded"),
])
def test_a_damaged_run_directory_says_how_to_recover(finished, capsys, damage, message):
    checkpoint = finished / "checkpoint"
    state = json.loads((checkpoint / "state.json").read_text())
    target = {"state": checkpoint / "state.json", "config": finished / "config.json",
              "weights": checkpoint / state["weights"]}[damage]
    target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    assert main(["train", PRESET, "--epochs", "3", "--out", str(finished)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "delete" in err, err


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_seeds_outside_the_generator_range_are_refused(seed, capsys, tmp_path):
    from zoo.training.fit import train

    with pytest.raises(SystemExit) as exit_:  # refused by the parser
        main(["train", PRESET, "--epochs", "1", "--seed", seed])
    assert exit_.value.code == 2 and "seed" in capsys.readouterr().err
    with pytest.raises(ZooError, match="field 'seed': must be >= 0 and <= 4294967295"):  # and by train()
        train(PRESET, epochs=1, seed=int(seed))


def test_a_dataset_that_does_not_fit_the_model_is_refused(capsys):
    assert main(["train", "convnet-mnist", "--dataset", "digits", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "gives inputs of shape (8, 8, 1)" in err and "(28, 28, 1)" in err
