#!/usr/bin/env python
"""Latency of an exported SavedModel's ``serving_default`` against ``model.predict`` (and a direct
``model(x)`` call) at batch 1 and 256, in ONE process, calls interleaved. Writes ``benchmarks/serving.json``.

    python tools/bench_serving.py [--preset convnet-mnist] [--repeats 50]

The model is the preset's architecture with its initial weights (latency does not depend on the
values); it is exported with :func:`zoo.export.export_model` and loaded back with plain
``tf.saved_model.load``, as TF Serving would. Each timed call includes getting the result as numpy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from timing import cpu_seconds

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="convnet-mnist")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "serving.json")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from zoo import load
    from zoo.export import export_model

    start_wall, start_cpu = time.perf_counter(), cpu_seconds()
    keras.utils.set_random_seed(0)
    model = load(args.preset, compile=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(model, tmp, args.preset)
        serving = tf.saved_model.load(str(path)).signatures["serving_default"]
        rng = np.random.default_rng(0)
        results = {}
        for batch in args.batches:
            x = rng.uniform(0, 1, (batch, *model.image_shape)).astype(np.float32)
            contenders = {
                "serving_default": lambda: serving(images=tf.constant(x))["probabilities"].numpy(),
                "model.predict": lambda: model.predict(x, batch_size=batch, verbose=0),
                "model(x)": lambda: model(x, training=False).numpy(),
            }
            outputs = {name: fn() for name, fn in contenders.items()}  # warm-up (tracing) and agreement
            agreement = float(np.max(np.abs(outputs["serving_default"] - outputs["model.predict"])))
            times = {name: [] for name in contenders}
            for _ in range(args.repeats):
                for name, fn in contenders.items():
                    t = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t)
            medians = {name: statistics.median(v) * 1e3 for name, v in times.items()}
            results[str(batch)] = dict(
                median_ms=medians,
                p90_ms={name: float(np.percentile(v, 90)) * 1e3 for name, v in times.items()},
                predict_over_serving=medians["model.predict"] / medians["serving_default"],
                max_abs_difference_serving_vs_predict=agreement,
            )
            print(f"batch {batch:4d}: " + "  ".join(f"{k} {v:8.3f} ms" for k, v in medians.items()), flush=True)
    report = dict(
        command="python tools/bench_serving.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        preset=args.preset, repeats=args.repeats, batches=results,
        total_wall_s=time.perf_counter() - start_wall, total_cpu_s=cpu_seconds() - start_cpu,
        note=("one process, calls interleaved; medians; the 2-core machine was shared with other jobs "
              "while this ran. model.predict pays Keras's per-call setup (data adapter, callbacks), which "
              "dominates at batch 1"),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({b: r["median_ms"] for b, r in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
