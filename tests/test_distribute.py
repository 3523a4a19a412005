"""Every custom train_step under tf.distribute: 1 replica == 2 logical-CPU replicas, mixed precision
(loss scaling) and XLA on CPU (multi-worker on loopback: tests/test_multiworker.py).

The strategies need logical CPU devices configured before TensorFlow initialises, so the real runs
happens in a subprocess (``tests/distributed_steps.py``), started once per module and shared by the
tests that read its results.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import ConfigError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import distributed_steps as steps_cases  # noqa: E402  (importing it configures nothing until main runs)

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
