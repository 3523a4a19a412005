"""The README's main job, as a user runs it: `zoo demo` in a fresh process on the embedded data
finishes, writes its outputs, and prints nothing on stderr that is not zoo's own. It trains three
models for about two minutes, so it is marked slow (outside the default run, like the reproductions)."""
import json
import os
import subprocess
import sys

import pytest


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
