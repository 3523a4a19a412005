"""The `zoo` command: train/evaluate with --json, resume after SIGTERM, clear errors."""
import json
import signal
import subprocess
import sys
import time

import pytest

from zoo.cli import main

FAST = ["--set", "filters=[8]", "--set", "dense=[16]"]


def zoo_cmd(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "zoo", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "convnet-digits"
    proc = zoo_cmd("train", "convnet-digits", "--epochs", "3", "--out", str(out), "--json", *FAST)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    return out, last_json(stdout)


def test_train_writes_run_directory_and_json_metrics(trained):
    out, metrics = trained
    assert set(metrics) >= {"accuracy", "loss"} and 0.5 < metrics["accuracy"] <= 1.0
    for name in ["config.json", "model.weights.h5", "metrics.json", "checkpoint/state.json", "logs"]:
        assert (out / name).exists(), name
    run = json.loads((out / "config.json").read_text())
    assert run["config"]["filters"] == [8] and run["recipe"]["epochs"] == 3
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)


def test_evaluate_reproduces_training_metrics(trained, capsys):
    out, metrics = trained
    assert main(["evaluate", "convnet-digits", "--weights", str(out), "--json"]) == 0
    assert last_json(capsys.readouterr().out)["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)


def test_rerun_of_finished_run_trains_nothing_more(trained, capsys):
    out, metrics = trained
    assert main(["train", "convnet-digits", "--epochs", "3", "--out", str(out), "--json", *FAST]) == 0
    captured = capsys.readouterr().out
    assert "resumed from the checkpoint after epoch 3" in captured
    assert last_json(captured)["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)


def test_sigterm_after_an_epoch_then_rerun_resumes(tmp_path):
    out = tmp_path / "run"
    epochs = 12
    proc = zoo_cmd("train", "convnet-digits", "--epochs", str(epochs), "--out", str(out), *FAST)
    state = out / "checkpoint" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "rerun the same command to resume" in stderr
    done = json.loads(state.read_text())
    assert 2 <= done["epoch"] < epochs
    assert len(done["history"]["loss"]) == done["epoch"]

    resumed = zoo_cmd("train", "convnet-digits", "--epochs", str(epochs), "--out", str(out), "--json", *FAST)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"resumed from the checkpoint after epoch {done['epoch']}" in stdout
    final = json.loads(state.read_text())
    assert final["epoch"] == epochs and len(final["history"]["loss"]) == epochs
    # Nothing lost: the first resumed epoch starts from the checkpoint's weights and optimizer state,
    # so its loss continues the curve instead of jumping back towards the first epoch's loss.
    history = final["history"]["loss"]
    k = done["epoch"]
    assert history[k] < history[k - 1] + 0.1 * (history[0] - history[k - 1]), history
    assert history[:k] == done["history"]["loss"]


def test_a_different_run_in_the_same_out_is_refused(trained, capsys):
    out, _ = trained
    assert main(["train", "convnet-digits", "--out", str(out), "--set", "filters=[4]"]) == 2
    assert "already holds a different run" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "convnet-mnsit"], "did you mean 'convnet-mnist'"),
        (["train", "convnet-digits", "--set", "filterz=[8]"], "field 'filterz': unknown field; did you mean 'filters'"),
        (["train", "convnet-digits", "--set", "nonsense"], "--set expects key=value"),
        (["evaluate", "convnet-digits", "--weights", "/nonexistent"], "not a trained-model directory"),
        (["train", "convnet", "--epochs", "1"], "name a dataset"),
        (["train", "convnet-mnist", "--data-dir", "/nonexistent"], "does not exist"),
    ],
)
def test_cli_errors_are_clear(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_list_and_info_json(capsys):
    assert main(["list", "convnet*", "--json"]) == 0
    names = [m["name"] for m in last_json(capsys.readouterr().out)["models"]]
    assert {"convnet", "convnet-digits", "convnet-mnist"} <= set(names)
    assert all(n.startswith("convnet") for n in names)
    assert main(["info", "convnet-mnist", "--json"]) == 0
    info = last_json(capsys.readouterr().out)
    assert info["plugin"]["distribution"] == "zoo" and info["train"]["step"] == "supervised"
