#!/usr/bin/env python
"""Training throughput: ``zoo train`` against a plain Keras script, and mirrored (2 logical CPUs) against
the default strategy — all in ONE process, interleaved round by round, so machine load hits every
contender alike. Writes ``benchmarks/training.json``.

    python tools/bench_training.py [--rounds 5] [--epochs 3] [--data-dir ../shared/data/mnist]

* ``zoo``: :func:`zoo.training.fit.train` of the ``convnet-mnist`` preset (the path ``zoo train`` runs:
  registry, plugin-built model, data layer, fit with validation, evaluation), default strategy;
* ``keras``: the same network written as a plain ``keras.Sequential`` script — same layers, Adam
  1e-3, batch 64, same tf.data pipeline shape (cache, shuffle, batch, prefetch), fit with validation
  and evaluate — reading the IDX files with numpy, no zoo import involved;
* ``mirrored``: ``train(..., strategy="mirrored")`` over the same 2 logical CPU devices.

Each contender's time covers the whole call (data, build, fit, evaluate) — and, separately, the
epochs after the first (a Keras callback's clock), the steady per-step cost; throughput is training
images per second of that time, by wall clock and by process CPU time (user + sys). Ratios are
medians over rounds of per-round ratios.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

from timing import cpu_seconds

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mnist"


def read_idx(path):
    import numpy as np

    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


class EpochClock:
    """Keras callback: wall and process-CPU seconds of every epoch (steady state = epochs after the first,
    which also pays for tracing)."""

    def __new__(cls):
        import keras

        class _Clock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.epochs = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = (time.perf_counter(), cpu_seconds())

            def on_epoch_end(self, epoch, logs=None):
                self.epochs.append((time.perf_counter() - self._start[0], cpu_seconds() - self._start[1]))

        return _Clock()


def plain_keras(data_dir: Path, epochs: int, seed: int, callbacks=()) -> dict:
    """The plain script: what a Keras user writes for this ConvNet without the zoo."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    x = read_idx(data_dir / "t10k-images-idx3-ubyte.gz")[..., None].astype("float32") / 255.0
    y = read_idx(data_dir / "t10k-labels-idx1-ubyte.gz").astype("int32")
    (x_train, y_train), (x_test, y_test) = (x[:8000], y[:8000]), (x[8000:], y[8000:])
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(2, padding="same"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(2, padding="same"),
        keras.layers.Flatten(), keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.25),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).cache().shuffle(8000, seed=seed) \
        .batch(64).prefetch(tf.data.AUTOTUNE)
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test)).cache().batch(256).prefetch(tf.data.AUTOTUNE)
    model.fit(train, epochs=epochs, validation_data=test, verbose=0, callbacks=list(callbacks))
    return model.evaluate(test, verbose=0, return_dict=True)


def timed(fn):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "training.json")
    args = parser.parse_args(argv)

    from zoo.distribute import configure_cpu_replicas

    configure_cpu_replicas(2)  # before TensorFlow creates anything; the default strategy uses CPU:0
    from zoo.training.fit import train

    images = 8000 * args.epochs
    clocks = {}

    def clocked(name, fn):
        def run():
            clocks[name] = EpochClock()
            return fn([clocks[name]])
        return run

    def zoo_train(callbacks, **options):
        return train("convnet-mnist", epochs=args.epochs, data_dir=args.data_dir, seed=0, verbose=0,
                     callbacks=callbacks, **options).metrics

    contenders = {
        "keras": clocked("keras", lambda cb: plain_keras(args.data_dir, args.epochs, 0, cb)),
        "zoo": clocked("zoo", zoo_train),
        "mirrored": clocked("mirrored", lambda cb: zoo_train(cb, strategy="mirrored")),
    }
    contenders["zoo"]()  # warm-up: first-use imports and TensorFlow initialisation hit nobody's timing
    rounds = []
    start_wall, start_cpu = time.perf_counter(), cpu_seconds()
    for r in range(args.rounds):
        order = list(contenders) if r % 2 == 0 else list(contenders)[::-1]  # alternate who goes first
        row = {}
        for name in order:
            wall, cpu, metrics = timed(contenders[name])
            steady = clocks[name].epochs[1:]  # epochs after the first (which traces): the per-step cost
            steady_wall, steady_cpu = sum(e[0] for e in steady), sum(e[1] for e in steady)
            row[name] = dict(wall_s=wall, cpu_s=cpu, images_per_s=images / wall, images_per_cpu_s=images / cpu,
                             accuracy=float(metrics["accuracy"]), epoch_wall_s=[e[0] for e in clocks[name].epochs],
                             epoch_cpu_s=[e[1] for e in clocks[name].epochs])
            if steady:
                row[name].update(steady_images_per_s=8000 * len(steady) / steady_wall,
                                 steady_images_per_cpu_s=8000 * len(steady) / steady_cpu)
            print(f"round {r + 1} {name:8s} {wall:7.2f} s wall {cpu:7.2f} s cpu "
                  f"{images / wall:7.1f} img/s acc {metrics['accuracy']:.4f}", flush=True)
        rounds.append(row)

    def ratio(a, b, key):
        return statistics.median(r[a][key] / r[b][key] for r in rounds)

    # Wall time on a shared machine swings with the other jobs' load; process CPU time (user + sys,
    # all threads) measures the work each contender does and is the steadier overhead measure.
    summary = {
        "zoo_over_keras_throughput_wall": ratio("zoo", "keras", "images_per_s"),
        "zoo_over_keras_throughput_cpu": ratio("zoo", "keras", "images_per_cpu_s"),
        "mirrored_over_default_throughput_wall": ratio("mirrored", "zoo", "images_per_s"),
        "mirrored_over_default_throughput_cpu": ratio("mirrored", "zoo", "images_per_cpu_s"),
        **({"zoo_over_keras_steady_epochs_wall": ratio("zoo", "keras", "steady_images_per_s"),
            "zoo_over_keras_steady_epochs_cpu": ratio("zoo", "keras", "steady_images_per_cpu_s"),
            "mirrored_over_default_steady_epochs_wall": ratio("mirrored", "zoo", "steady_images_per_s"),
            "mirrored_over_default_steady_epochs_cpu": ratio("mirrored", "zoo", "steady_images_per_cpu_s")}
           if args.epochs > 1 else {}),
        "median_images_per_s": {k: statistics.median(r[k]["images_per_s"] for r in rounds) for k in contenders},
        "median_images_per_cpu_s": {k: statistics.median(r[k]["images_per_cpu_s"] for r in rounds) for k in contenders},
    }
    report = dict(
        command="python tools/bench_training.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        preset="convnet-mnist", train_images=8000, epochs=args.epochs, rounds=rounds, **summary,
        total_wall_s=time.perf_counter() - start_wall, total_cpu_s=cpu_seconds() - start_cpu,
        cpu_count=os.cpu_count(),
        note=("one process, contenders interleaved (order alternating per round); the 2-core machine was "
              "shared with other jobs while this ran; mirrored splits the same 2 cores into 2 logical "
              "devices, so no speed-up is possible — the point of that strategy here is correctness"),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
