#!/usr/bin/env python
"""Zoo attacks against CleverHans 4 and ART, side by side in ONE process, on one MNIST ConvNet.

    python tools/bench_attacks.py --data-dir ../shared/data/mnist     # needs the `bench` extra

The ConvNet (``convnet-mnist`` with logit outputs, so every library attacks the same logits) is
trained on the first 8,000 t10k images (or loaded from ``--weights``); the last 2,000 are attacked.
Every library gets identical ε, steps, step size, random start and batch size:

* FGSM ε = 0.25; PGD-40 ε = 0.3, step 0.01, random start; C&W L2 (5 binary-search rounds of
  ``--cw-steps`` Adam steps, lr 0.1, c₀ = 1, κ = 0, no early abort; on ``--cw-n`` images; ART's C&W
  is its own variant, gradient steps with a line search, given the same budget);
* zoo-only rows: PGD-40 with ``early_exit`` (stops an example once fooled), targeted PGD-40 on a
  random other class (with CleverHans alongside), and with ``--xla`` PGD compiled by XLA.

Speed is images/s of the attack alone; the physical limit of a k-step attack is k forward+backward
passes, so ``limit_ratio = k × attack images/s ÷ images/s of one forward+backward`` (same batch
size), with the forward+backward pass timed right before every attack run (median over runs);
``limit_ratio_cpu`` is the same ratio in images per process-CPU-second, which other jobs on the
machine disturb less. Repetitions of the methods are interleaved (and their order rotated) so that contention
from other jobs on this shared CPU hits every method alike; throughput is the median over
repetitions. Wall and process CPU time are recorded. Writes ``benchmarks/attacks.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from timing import cpu_seconds

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--weights", default=str(REPO / "runs" / "bench-convnet-mnist-logits"),
                        help="run directory of the ConvNet (trained there if absent)")
    parser.add_argument("--n", type=int, default=2000, help="held-out images to attack")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--reps", type=int, default=2, help="interleaved repetitions of each method")
    parser.add_argument("--cw-n", type=int, default=50, help="images for C&W (ART's is slow)")
    parser.add_argument("--cw-steps", type=int, default=50)
    parser.add_argument("--xla", action="store_true", help="also time zoo PGD-40 compiled with XLA")
    parser.add_argument("--resummarise", action="store_true", help="recompute the summary of an existing --json")
    parser.add_argument("--only", help="comma-separated subset of fgsm,pgd40,pgd40_early_exit,pgd40_targeted,cw")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "attacks.json"))
    args = parser.parse_args(argv)
    if args.resummarise:
        record = json.loads(Path(args.json).read_text())
        record["summary"] = summarise(record)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps(record["summary"], indent=2))
        return 0

    import keras
    import numpy as np
    import tensorflow as tf

    from zoo import get_attack, load
    from zoo.data import load_dataset
    from zoo.training.fit import train

    import cleverhans
    import art
    from art.attacks.evasion import CarliniL2Method, FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import TensorFlowV2Classifier
    from cleverhans.tf2.attacks.carlini_wagner_l2 import CarliniWagnerL2 as CHCarliniWagnerL2
    from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

    weights = Path(args.weights)
    if (weights / "model.weights.h5").exists():
        model = load("convnet-mnist", weights=weights)
    else:
        model = train("convnet-mnist", data_dir=args.data_dir, overrides=dict(output="logits"), out=weights,
                      verbose=2).model
    x_all, y_all = load_dataset("mnist", data_dir=args.data_dir).arrays("test")
    x_all, y_all = x_all[: args.n], y_all[: args.n].astype(np.int64)
    bs = args.batch_size
    logits = tf.function(lambda x: model(x, training=False))

    def predict(x):
        return np.concatenate([logits(tf.constant(x[i:i + bs])).numpy().argmax(-1) for i in range(0, len(x), bs)])

    clean_accuracy = float(np.mean(predict(x_all) == y_all))
    rng = np.random.default_rng(0)
    random_targets = (y_all + rng.integers(1, 10, len(y_all))) % 10

    art_classifier = TensorFlowV2Classifier(
        model=model, nb_classes=10, input_shape=(28, 28, 1), clip_values=(0.0, 1.0),
        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def one_hot(y):
        return np.eye(10, dtype=np.float32)[y]

    # -- the methods: fn(x, y) -> x_adv for one batch ---------------------------------------------
    def zoo(name, **params):
        attack = get_attack(name, **params)
        return lambda x, y, t=None: attack(model, x, y, target=t)

    def ch_pgd(eps, step, steps, targeted=False):
        def run(x, y):
            return projected_gradient_descent(model, x, eps, step, steps, np.inf, clip_min=0.0, clip_max=1.0,
                                              y=y, targeted=targeted, rand_init=True, sanity_checks=False)
        graph = tf.function(run)
        eager = lambda x, y, t=None: run(tf.constant(x), tf.constant(t if targeted else y))  # noqa: E731
        compiled = lambda x, y, t=None: graph(tf.constant(x), tf.constant(t if targeted else y))  # noqa: E731
        return eager, compiled

    def ch_fgsm(eps):
        def run(x, y):
            return fast_gradient_method(model, x, eps, np.inf, clip_min=0.0, clip_max=1.0, y=y, sanity_checks=False)
        graph = tf.function(run)
        return (lambda x, y, t=None: run(tf.constant(x), tf.constant(y)),
                lambda x, y, t=None: graph(tf.constant(x), tf.constant(y)))

    def art_run(attack, targeted=False):
        return lambda x, y, t=None: attack.generate(x, y=one_hot(t if targeted else y))

    class _CallableList(list):
        def __call__(self):
            return list(self)

    class Keras3Adam(keras.optimizers.Adam):
        """CleverHans 4's C&W calls ``optimizer.variables()`` (Keras 2); Keras 3 made it a property."""

        @property
        def variables(self):
            return _CallableList(super().variables)

    def ch_cw(x, y, t=None):
        attack = CHCarliniWagnerL2(model, y=one_hot(y), batch_size=len(x), clip_min=0.0, clip_max=1.0,
                                   binary_search_steps=5, max_iterations=args.cw_steps, abort_early=False,
                                   confidence=0.0, initial_const=1.0, learning_rate=0.1)
        attack.optimizer = Keras3Adam(0.1)
        return attack.attack(x)

    ch_pgd40, ch_pgd40_graph = ch_pgd(0.3, 0.01, 40)
    ch_fgsm_eager, ch_fgsm_graph = ch_fgsm(0.25)
    pgd40_methods = {}
    if args.xla:
        pgd40_methods["zoo_xla"] = zoo("pgd", eps=0.3, steps=40, step_size=0.01, random_start=True, jit_compile=True)
    benches = {
        "fgsm": dict(k=1, params=dict(eps=0.25), methods={
            "zoo": zoo("fgsm", eps=0.25),
            "cleverhans": ch_fgsm_eager, "cleverhans_tf_function": ch_fgsm_graph,
            "art": art_run(FastGradientMethod(art_classifier, eps=0.25, batch_size=bs)),
        }),
        "pgd40": dict(k=40, params=dict(eps=0.3, steps=40, step_size=0.01, random_start=True), methods={
            "zoo": zoo("pgd", eps=0.3, steps=40, step_size=0.01, random_start=True),
            "cleverhans": ch_pgd40, "cleverhans_tf_function": ch_pgd40_graph,
            "art": art_run(ProjectedGradientDescent(art_classifier, norm=np.inf, eps=0.3, eps_step=0.01, max_iter=40,
                                                    num_random_init=1, batch_size=bs, verbose=False)),
            **pgd40_methods,
        }),
        "pgd40_early_exit": dict(k=40, params=dict(eps=0.3, steps=40, step_size=0.01, random_start=True,
                                                   early_exit=True), methods={
            # compared with the PGD-40 rows of the same repetitions (the peers have no early exit)
            "zoo": zoo("pgd", eps=0.3, steps=40, step_size=0.01, random_start=True, early_exit=True),
        }),
        "pgd40_targeted": dict(k=40, targeted=True, params=dict(eps=0.3, steps=40, step_size=0.01, random_start=True),
                               methods={
            "zoo": zoo("pgd", eps=0.3, steps=40, step_size=0.01, random_start=True),
            "cleverhans_tf_function": ch_pgd(0.3, 0.01, 40, targeted=True)[1],
        }),
        # once, not every repetition: ART's C&W alone takes minutes
        "cw": dict(k=5 * args.cw_steps, n=args.cw_n, once=True, params=dict(binary_search_steps=5, steps=args.cw_steps,
                                                                 step_size=0.1, initial_const=1.0, confidence=0.0),
                   methods={
            "zoo": zoo("cw", binary_search_steps=5, steps=args.cw_steps, step_size=0.1, initial_const=1.0),
            "cleverhans": ch_cw,
            # ART's C&W is its own variant (gradient steps with a line search instead of Adam); same budget.
            "art": art_run(CarliniL2Method(art_classifier, confidence=0.0, learning_rate=0.1, binary_search_steps=5,
                                           max_iter=args.cw_steps, initial_const=1.0, batch_size=bs, verbose=False)),
        }),
    }
    if args.only:
        benches = {k: v for k, v in benches.items() if k in args.only.split(",")}

    # -- the physical limit: one forward+backward pass (input gradient of the loss) -----------------
    @tf.function
    def forward_backward(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model(x)))
        return tape.gradient(loss, x)

    def fb_run(x, y, t=None):
        return forward_backward(tf.constant(x), tf.constant(y))

    def run_method(fn, x, y, t):
        """Attack all of ``x`` in batches; returns (x_adv, seconds, cpu seconds)."""
        wall, cpu = time.perf_counter(), cpu_seconds()
        parts = [np.asarray(fn(x[i:i + bs], y[i:i + bs], None if t is None else t[i:i + bs]))
                 for i in range(0, len(x), bs)]
        return np.concatenate(parts), time.perf_counter() - wall, cpu_seconds() - cpu

    record = dict(host=platform.node(), cpu_count=os.cpu_count(), tensorflow=tf.__version__, keras=keras.__version__,
                  cleverhans=getattr(cleverhans, "__version__", "4.x"), art=art.__version__,
                  n=len(x_all), batch_size=bs, reps=args.reps, clean_accuracy=clean_accuracy,
                  note="2-core machine shared with other jobs: repetitions interleaved and rotated, medians reported",
                  benches={})
    start_wall, start_cpu = time.perf_counter(), cpu_seconds()
    # Warm up (trace) every method on a small batch outside the clock.
    fb_run(x_all[:bs], y_all[:bs])
    for bench in benches.values():
        for fn in bench["methods"].values():
            t = random_targets[:2] if bench.get("targeted") else None
            fn(x_all[:2], y_all[:2], t)
    fb_times, results = [], {name: {m: [] for m in b["methods"]} for name, b in benches.items()}
    for rep in range(args.reps):
        for name, bench in benches.items():
            if bench.get("once") and rep > 0:
                continue
            n = bench.get("n", len(x_all))
            x, y = x_all[:n], y_all[:n]
            t = random_targets[:n] if bench.get("targeted") else None
            methods = list(bench["methods"].items())
            shift = rep % len(methods)
            for method, fn in methods[shift:] + methods[:shift]:
                # The limit is measured right before each run, so both see the same contention.
                _, fb_seconds, fb_cpu = run_method(fb_run, x_all, y_all, None)
                fb_times.append(len(x_all) / fb_seconds)
                x_adv, seconds, cpu = run_method(fn, x, y, t)
                predicted = predict(x_adv)
                delta = (x_adv - x).reshape(n, -1)
                results[name][method].append(dict(
                    images_per_s=n / seconds, seconds=seconds, cpu_s=cpu,
                    limit_ratio=bench["k"] * (n / seconds) / fb_times[-1],
                    limit_ratio_cpu=bench["k"] * (n / cpu) / (len(x_all) / fb_cpu),
                    adv_accuracy=float(np.mean(predicted == y)),
                    target_hit=float(np.mean(predicted == t)) if t is not None else None,
                    max_linf=float(np.abs(delta).max()), mean_l2=float(np.linalg.norm(delta, axis=1).mean())))
                r = results[name][method][-1]
                print(f"rep {rep} {name:17s} {method:23s} acc {r['adv_accuracy']:.4f} "
                      f"{'hit %.4f ' % r['target_hit'] if t is not None else ''}{r['images_per_s']:8.1f} img/s "
                      f"limit {r['limit_ratio']:.2f} (cpu {r['limit_ratio_cpu']:.2f}) "
                      f"linf {r['max_linf']:.3f} l2 {r['mean_l2']:.3f}", flush=True)

        write_record(record, benches, results, fb_times, rep + 1, start_wall, start_cpu, args.json)
    print(json.dumps(record["summary"], indent=2))
    return 0


def write_record(record, benches, results, fb_times, reps_done, start_wall, start_cpu, path):
    """Summarise the runs so far and write the JSON (after every repetition, so a stopped run keeps them)."""
    record["reps_completed"] = reps_done
    fb = statistics.median(fb_times)
    record["forward_backward_images_per_s"] = fb
    record["forward_backward_runs"] = fb_times
    for name, bench in benches.items():
        rows = {}
        for method, runs in results[name].items():
            if not runs:
                continue
            ips = statistics.median(r["images_per_s"] for r in runs)
            rows[method] = dict(
                images_per_s=ips, limit_ratio=statistics.median(r["limit_ratio"] for r in runs),
                limit_ratio_cpu=statistics.median(r["limit_ratio_cpu"] for r in runs),
                adv_accuracy=statistics.mean(r["adv_accuracy"] for r in runs),
                adv_accuracy_runs=[r["adv_accuracy"] for r in runs],
                target_hit=(statistics.mean(r["target_hit"] for r in runs) if runs[0]["target_hit"] is not None
                            else None),
                max_linf=max(r["max_linf"] for r in runs), mean_l2=statistics.mean(r["mean_l2"] for r in runs),
                runs=runs)
        record["benches"][name] = dict(k=bench["k"], n=bench.get("n", record["n"]), params=bench["params"],
                                       methods=rows)
    record["summary"] = summarise(record)
    record["wall_s"] = round(time.perf_counter() - start_wall, 1)
    record["cpu_s"] = round(cpu_seconds() - start_cpu, 1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=2) + "\n")


def summarise(record) -> dict:
    """The issue's done-when checks, from the measured rows (missing benches are skipped)."""
    b = record["benches"]
    out = {}

    def per_cpu_s(row, n):
        """Median images per process-CPU-second: less disturbed by other jobs than images per second."""
        return statistics.median(n / r["cpu_s"] for r in row["runs"])

    def best_peer(rows, lib):
        candidates = [v for k, v in rows.items() if k.startswith(lib)]
        return max(candidates, key=lambda v: v["images_per_s"]) if candidates else None

    if "fgsm" in b:
        out["fgsm_error"] = 1 - b["fgsm"]["methods"]["zoo"]["adv_accuracy"]
        out["fgsm_error_ge_85pct"] = out["fgsm_error"] >= 0.85
    if "pgd40" in b:
        rows = b["pgd40"]["methods"]
        zoo, ch, art_ = rows["zoo"], best_peer(rows, "cleverhans"), best_peer(rows, "art")
        out.update(
            pgd40_accuracy=zoo["adv_accuracy"], pgd40_accuracy_le_1pct=zoo["adv_accuracy"] <= 0.01,
            pgd40_strength_parity=zoo["adv_accuracy"] <= min(ch["adv_accuracy"], art_["adv_accuracy"]) + 0.005,
            pgd40_speed_vs_cleverhans=zoo["images_per_s"] / ch["images_per_s"],
            pgd40_speed_vs_art=zoo["images_per_s"] / art_["images_per_s"],
            pgd40_limit_ratio=zoo["limit_ratio"], pgd40_limit_ratio_cpu=zoo["limit_ratio_cpu"],
            pgd40_xla_vs_plain=rows["zoo_xla"]["images_per_s"] / zoo["images_per_s"] if "zoo_xla" in rows else None)
        n = b["pgd40"]["n"]
        out.update(pgd40_cpu_speed_vs_cleverhans=per_cpu_s(zoo, n) / max(per_cpu_s(v, n) for k, v in rows.items()
                                                                     if k.startswith("cleverhans")),
                   pgd40_cpu_speed_vs_art=per_cpu_s(zoo, n) / per_cpu_s(art_, n))
        out["pgd40_speed_ok"] = (out["pgd40_speed_vs_cleverhans"] >= 1 and out["pgd40_speed_vs_art"] >= 2
                                 and out["pgd40_limit_ratio"] >= 0.9)
    if "pgd40_early_exit" in b:
        rows = b["pgd40_early_exit"]["methods"]
        out["early_exit_accuracy"] = rows["zoo"]["adv_accuracy"]
        if "pgd40" in b:
            ch = best_peer(b["pgd40"]["methods"], "cleverhans")
            out["early_exit_vs_cleverhans"] = rows["zoo"]["images_per_s"] / ch["images_per_s"]
            n = b["pgd40"]["n"]
            out["early_exit_cpu_speed_vs_cleverhans"] = per_cpu_s(rows["zoo"], n) / max(
                per_cpu_s(v, n) for k, v in b["pgd40"]["methods"].items() if k.startswith("cleverhans"))
            out["early_exit_ge_3x"] = out["early_exit_vs_cleverhans"] >= 3
    if "pgd40_targeted" in b:
        out["targeted_hit"] = b["pgd40_targeted"]["methods"]["zoo"]["target_hit"]
        out["targeted_hit_ge_95pct"] = out["targeted_hit"] >= 0.95
    return out


if __name__ == "__main__":
    sys.exit(main())
