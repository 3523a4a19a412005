"""Multi-worker training on loopback: two worker processes train like one, a killed run resumes to
the uninterrupted weights, and the launcher (tools/launch_workers.py) stops and retries workers.

Apart from tests/test_distribute.py so that the two test workers (``--dist loadfile``) can run these
processes beside the single-host strategy runs.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tools"))
from launch_workers import launch  # noqa: E402

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))


def _last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


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
