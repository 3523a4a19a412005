"""Every custom train_step under tf.distribute: 1 replica == 2 logical-CPU replicas, multi-worker on
loopback == one process, mixed precision (loss scaling) and XLA on CPU.

The strategies need logical CPU devices configured before TensorFlow initialises, so the real runs
happen in subprocesses (``tests/distributed_steps.py``, ``tests/multiworker_convnet.py``), started
once per module and shared by the tests that read their results.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import ConfigError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO / "tools")]
import distributed_steps as steps_cases  # noqa: E402  (importing it configures nothing until main runs)
from launch_workers import launch  # noqa: E402

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
MIXED_CASES = ("adversarial", "reversal", "ae", "vae", "dcgan", "vaegan", "las")


def _last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs():
    """One subprocess with 2 logical CPUs: all equivalence, mixed-precision and XLA runs."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "distributed_steps.py"), "--equivalence", "--mixed-precision", "--jit-compile"],
        capture_output=True, text=True, env=dict(ENV, ZOO_MIXED_CASES=",".join(MIXED_CASES)), timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return _last_json(proc.stdout)


@pytest.mark.parametrize("case", list(steps_cases.CASES))
def test_two_replicas_train_like_one(runs, case):
    result = runs["equivalence"][case]
    reference = result["default"]["steps"]
    assert len(reference) == steps_cases.STEPS
    assert result["update_max"] > 1e3 * steps_cases.ATOL, "training did not move the weights: a vacuous comparison"
    for driver in ("mirrored-fit", "mirrored-loop"):
        if driver not in result:
            continue
        run = result[driver]
        assert run["tolerance"] <= 1.0, f"{driver}: {run['worst_weight']} differs ({run})"
        for ours, theirs in zip(run["steps"], reference):
            for key, value in theirs.items():
                # losses: the global-batch mean, not halved or doubled by the replica count
                if "loss" in key:
                    assert ours[key] == pytest.approx(value, rel=1e-5), (driver, key)


def test_the_custom_loop_reports_global_metrics(runs):
    """The loop reads metrics in cross-replica context: even weighted ones (LAS character accuracy,
    weighted by non-padding characters) equal the single-replica values."""
    result = runs["equivalence"]["las"]
    for ours, theirs in zip(result["mirrored-loop"]["steps"], result["default"]["steps"]):
        assert ours["char_accuracy"] == pytest.approx(theirs["char_accuracy"], rel=1e-6)


@pytest.mark.parametrize("case", MIXED_CASES)
def test_mixed_precision_scales_the_loss(runs, case):
    result = runs["mixed_precision"][case]
    assert result["compute_dtype"] == "float16"
    assert result["optimizer"] == "LossScaleOptimizer"
    # unscaled gradients through a LossScaleOptimizer would shrink the update 2**15-fold (difference ≈ 1)
    assert result["update_difference"] < 0.05, result
    assert all(np.isfinite(v) for step in result["mixed_steps"] for v in step.values())


@pytest.mark.parametrize("case", steps_cases.JIT_CASES)
def test_xla_steps_match_plain_steps(runs, case):
    result = runs["jit_compile"][case]
    assert result["tolerance"] <= 1.0, result


def test_two_workers_on_loopback_train_like_one_process(tmp_path):
    script = HERE / "multiworker_convnet.py"
    single = subprocess.run([sys.executable, str(script), "single", str(tmp_path / "single.npz")],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    workers = subprocess.run(
        [sys.executable, str(REPO / "tools" / "launch_workers.py"), "-n", "2", "--timeout", "300", "--",
         sys.executable, str(script), "worker", str(tmp_path / "worker.npz")],
        capture_output=True, text=True, env=ENV, timeout=400,
    )
    assert workers.returncode == 0, workers.stderr[-3000:]
    reference = np.load(tmp_path / "single.npz")
    expected_logs = _last_json(single.stdout)
    for index in (0, 1):
        trained = np.load(tmp_path / f"worker.{index}.npz")
        for key in reference.files:
            np.testing.assert_allclose(trained[key], reference[key], rtol=1e-5, atol=1e-7, err_msg=f"worker {index}")
    worker_logs = [json.loads(line) for line in workers.stdout.strip().splitlines() if line.startswith("[")]
    assert len(worker_logs) == 2
    for logs in worker_logs:
        assert [s["loss"] for s in logs] == pytest.approx([s["loss"] for s in expected_logs], rel=1e-5)


def _weights(run):
    import h5py

    out = {}
    with h5py.File(run / "model.weights.h5") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, np.asarray(obj)) if hasattr(obj, "shape") else None)
    return out


def test_a_killed_multiworker_run_resumes_to_the_uninterrupted_weights(tmp_path):
    """SIGKILL the chief of a two-worker run in the middle of its second epoch (the launcher then stops
    the other worker), rerun the same command: both workers resume from the last checkpoint, see the
    seeded shuffle of the remaining epochs, and the run ends on the weights of an uninterrupted one."""
    script = [sys.executable, str(HERE / "multiworker_resume.py")]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    results = launch([*script, str(straight)], 2, env=ENV, timeout=400)
    assert all(r.returncode == 0 for r in results), [r.stderr[-2000:] for r in results]
    killed = launch([*script, str(resumed), "--kill-at", "1:5"], 2, env=ENV, timeout=400)
    assert killed[0].returncode == -9  # the chief died mid-epoch 2
    state = json.loads((resumed / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1 and not (resumed / "model.weights.h5").exists()
    results = launch([*script, str(resumed)], 2, env=ENV, timeout=400)
    assert all(r.returncode == 0 for r in results), [r.stderr[-2000:] for r in results]
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_strategy_errors_are_clear(monkeypatch):
    from zoo.distribute import make_strategy

    with pytest.raises(ConfigError, match="unknown strategy 'mirror'"):
        make_strategy("mirror")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="multiworker needs TF_CONFIG"):
        make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        make_strategy("multiworker")


def test_xla_with_cpu_replicas_is_refused_clearly():
    """XLA compiles for CPU:0 while replica 1's variables live on CPU:1 (an InvalidArgumentError deep
    inside fit); train() refuses the combination up front instead."""
    from types import SimpleNamespace

    from zoo.training.fit import _check_jit

    with pytest.raises(ConfigError, match="--jit-compile with several replicas needs GPUs"):
        _check_jit(SimpleNamespace(num_replicas_in_sync=2))
    _check_jit(SimpleNamespace(num_replicas_in_sync=1))


def _worker_script(body):
    """A worker command that runs ``body`` with ``index`` (its task index) defined."""
    prelude = "import json, os, sys, time; index = json.loads(os.environ['TF_CONFIG'])['task']['index']; "
    return [sys.executable, "-c", prelude + body]


def test_launch_workers_stops_the_peers_of_a_failed_worker(capsys):
    start = time.monotonic()
    results = launch(_worker_script("sys.exit(3) if index == 0 else time.sleep(60)"), 2, timeout=120)
    assert time.monotonic() - start < 30
    assert results[0].returncode == 3 and results[1].returncode != 0  # killed, not left waiting


def test_launch_workers_retries_on_new_ports_when_a_port_was_taken(tmp_path, capsys):
    marker = tmp_path / "attempts"
    body = (f"p = {str(marker)!r}; n = len(open(p).read()) if os.path.exists(p) else 0; "
            "open(p, 'a').write('x') if index == 0 else None; "
            "(print('bind: Address already in use', file=sys.stderr), sys.exit(1)) if n == 0 and index == 0 else None; "
            "print(os.environ['TF_CONFIG'])")
    results = launch(_worker_script(body), 2, timeout=60)
    assert [r.returncode for r in results] == [0, 0]
    assert marker.read_text() == "xx"  # one failed launch, one good one
    assert "could not bind its port" in capsys.readouterr().err
    assert launch(_worker_script("sys.exit(0 if index else 2)"), 2, timeout=60, attempts=3)[0].returncode == 2
    assert marker.read_text() == "xx"  # another failure is not retried
