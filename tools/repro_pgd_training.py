#!/usr/bin/env python
"""Reproduce ``convnet-mnist-pgd-trained``: PGD adversarial training on the first 8,000 MNIST t10k images,
then robustness on the last 2,000: clean, PGD-40 (ε=0.3, step 0.01, random start), PGD-100
with 5 random restarts and the gradient-free Square attack with 1,000 queries (both guards against
gradient masking), and the share of images left correct by all three. Writes
``benchmarks/pgd_training.json``.

    python tools/repro_pgd_training.py --data-dir ../shared/data/mnist --out runs/convnet-mnist-pgd-trained

Rerunning with the same ``--out`` resumes training after the last finished epoch (``--eval-only``
skips straight to the evaluation of a finished run). Wall and process CPU time are recorded
separately for training and evaluation, because the machine may be shared.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from timing import cpu_seconds

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
PRESET = "convnet-mnist-pgd-trained"


def timed(fn):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, dict(wall_s=round(time.perf_counter() - wall, 1), cpu_s=round(cpu_seconds() - cpu, 1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--out", default=str(REPO / "runs" / PRESET))
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-only", action="store_true", help="evaluate the finished run in --out")
    parser.add_argument("--n", type=int, default=2000, help="held-out images to evaluate")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "pgd_training.json"))
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from zoo import get_attack, load
    from zoo.data import load_dataset
    from zoo.evaluation import attack_report
    from zoo.training.fit import train

    record = dict(preset=PRESET, data_dir=args.data_dir, seed=args.seed, host=platform.node(),
                  cpu_count=os.cpu_count(), tensorflow=tf.__version__,
                  note="2-core machine shared with other jobs: wall time includes waiting for the CPU")
    record["out"] = str(Path(args.out).resolve())
    previous = _previous_record(Path(args.json), record["out"])
    if not args.eval_only:
        result, record["train_time"] = timed(lambda: train(
            PRESET, data_dir=args.data_dir, out=args.out, seed=args.seed, epochs=args.epochs, verbose=2))
        record["train_history"] = result.history
        record["resumed_from_epoch"] = result.initial_epoch
        # A resumed run's earlier sessions count towards the training time.
        earlier = previous.get("train_sessions") or ([previous["train_time"]] if "train_time" in previous else [])
        sessions = (earlier if result.initial_epoch else []) + [record["train_time"]]
        record["train_sessions"] = sessions
        record["train_time_total"] = {k: round(sum(t[k] for t in sessions), 1) for k in ("wall_s", "cpu_s")}
        model = result.model
    else:  # the training figures recorded for this run directory stay in the record
        record.update({k: v for k, v in previous.items() if k.startswith(("train_", "resumed_"))})
        model = load(PRESET, weights=args.out)
    record["train_config"] = json.loads((Path(args.out) / "config.json").read_text())

    import keras

    keras.utils.set_random_seed(args.seed)  # the random starts: a rerun gives the same figures
    x, y = load_dataset("mnist", data_dir=args.data_dir).arrays("test")
    x, y = x[: args.n], y[: args.n]
    attacks = {
        "pgd40": ("pgd", dict(eps=0.3, steps=40, step_size=0.01, random_start=True)),
        "pgd100x5": ("pgd", dict(eps=0.3, steps=100, step_size=0.01, random_start=True, restarts=5)),
        # gradient-free: if it beat PGD by much, the gradients PGD follows would be masked
        "square1000": ("square", dict(eps=0.3, steps=1000)),
    }
    results, robust = {}, np.ones(len(y), bool)
    for name, (attack, params) in attacks.items():
        (metrics, x_adv), times = timed(lambda: attack_report(model, get_attack(attack, **params), x, y, batch_size=250))
        robust &= np.asarray(model.predict(x_adv, batch_size=500, verbose=0)).argmax(-1) == y
        results[name] = dict(attack=attack, params=params, **metrics, **times)
        print(f"{name}: clean {metrics['clean_accuracy']:.4f}  under attack {metrics['adv_accuracy']:.4f}  "
              f"({times['wall_s']} s wall, {times['cpu_s']} s CPU)", flush=True)
    record["evaluation"] = results
    record["clean_accuracy"] = results["pgd40"]["clean_accuracy"]
    record["pgd40_accuracy"] = results["pgd40"]["adv_accuracy"]
    record["pgd100x5_accuracy"] = results["pgd100x5"]["adv_accuracy"]
    record["square1000_accuracy"] = results["square1000"]["adv_accuracy"]
    record["worst_case_accuracy"] = float(robust.mean())  # images that every one of the attacks left correct
    record["targets"] = dict(clean=0.985, pgd40=0.92, pgd100x5=0.88)
    record["targets_met"] = dict(clean=record["clean_accuracy"] >= 0.985, pgd40=record["pgd40_accuracy"] >= 0.92,
                                 pgd100x5=record["pgd100x5_accuracy"] >= 0.88)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=2, default=float) + "\n")
    print(json.dumps({k: record[k] for k in ("clean_accuracy", "pgd40_accuracy", "pgd100x5_accuracy",
                                              "square1000_accuracy", "worst_case_accuracy")}))
    return 0


def _previous_record(json_path: Path, out: str) -> dict:
    """The record an earlier invocation wrote for the same run directory, else ``{}``."""
    try:
        previous = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return {}
    return previous if previous.get("out") == out else {}


if __name__ == "__main__":
    sys.exit(main())
