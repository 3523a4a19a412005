#!/usr/bin/env python
"""AutoAttack in the zoo: APGD against ART, the standard AutoAttack on the MNIST ConvNets, a masked model.

    python tools/bench_autoattack.py --data-dir ../shared/data/mnist \\
        --normal runs/convnet-mnist --robust runs/convnet-mnist-pgd-trained     # needs the `bench` extra

Parts (``--only`` picks some; each part's result is merged into the JSON, so parts may run apart):

* ``art``: the zoo's APGD-CE and APGD-DLR against ART's ``AutoProjectedGradientDescent``
  (``TensorFlowV2Classifier``) on the normally trained ConvNet with logit outputs, the same
  ``--art-n`` held-out images, ε 0.3, 100 iterations, 1 restart, initial step 2ε. The zoo runs
  with ``early_exit=False`` (equal work: every image takes every step, as ART's do) and, in extra
  rows, with early exit. Strength = accuracy under attack; speed = images per process-CPU-second
  (and per wall second), the median of ``--reps`` interleaved repetitions in rotated order; the
  physical limit of a 100-step attack is 100 forward+backward passes, so
  ``limit_ratio = 100 × attack images/CPU-s ÷ forward+backward images/CPU-s``, the forward+backward
  pass timed right before each run.
* ``art_robust``: the same comparison on the PGD-trained ConvNet, where accuracy under attack is
  far from 0% and strength can differ.
* ``normal`` / ``robust``: the standard AutoAttack (L∞, ε 0.3) on the first ``--n`` held-out images
  for the normally trained and the PGD-trained ConvNet: robust accuracy after every stage, which
  stage broke how many points, warnings, wall and CPU time, and the passes it spent per image
  against the limit (``ideal CPU time = forward+backward passes ÷ their rate + forward passes ÷
  theirs``, rates measured beforehand). ``robust`` also runs PGD-100 × 5 restarts (step 0.01) on
  the same images, the zoo's previous robustness figure.
* ``masked``: the normal ConvNet with its logits × ``--mask-scale``: PGD-40 (cross-entropy) against
  AutoAttack, and AutoAttack's warnings.

Wall and process CPU time are recorded with the machine's load averages, because the CPU is shared.
Writes ``benchmarks/autoattack.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

from timing import Timer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
PARTS = ("art", "normal", "masked", "robust", "art_robust")


def load_average():
    return [round(v, 2) for v in os.getloadavg()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--normal", default=str(REPO / "runs" / "convnet-mnist"), help="run dir of convnet-mnist")
    parser.add_argument("--robust", default=str(REPO / "runs" / "convnet-mnist-pgd-trained"),
                        help="run dir of convnet-mnist-pgd-trained")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--n", type=int, default=1000, help="held-out images for the AutoAttack runs")
    parser.add_argument("--art-n", type=int, default=200, help="held-out images for the ART comparison")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions of the ART comparison")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--mask-scale", type=float, default=1e4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "autoattack.json"))
    args = parser.parse_args(argv)
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {PARTS}")

    import keras
    import numpy as np
    import tensorflow as tf

    from zoo import get_attack, load
    from zoo.data import load_dataset

    path = Path(args.json)
    record = json.loads(path.read_text()) if path.exists() else {}
    record.update(host=platform.node(), cpu_count=os.cpu_count(), tensorflow=tf.__version__, keras=keras.__version__,
                  note="2-core machine shared with other jobs: CPU time is the figure to compare; load averages "
                       "(1, 5, 15 min) are recorded at the start and end of every part")
    x_all, y_all = load_dataset("mnist", data_dir=args.data_dir).arrays("test")
    y_all = y_all.astype(np.int64)

    def save():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, default=float) + "\n")

    def rates(model, bs, n=2000, reps=3):
        """Images per CPU-second (and per second) of one forward+backward pass and of one forward pass."""
        @tf.function(reduce_retracing=True)
        def fb(x, y):
            with tf.GradientTape() as tape:
                tape.watch(x)
                z = model.logits(x) if hasattr(model, "logits") else model(x)
                loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z))
            return tape.gradient(loss, x)

        @tf.function(reduce_retracing=True)
        def fwd(x):
            return model.logits(x) if hasattr(model, "logits") else model(x)

        x, y = tf.constant(x_all[:n]), tf.constant(y_all[:n].astype(np.int32))
        fb(x[:bs], y[:bs]), fwd(x[:bs])
        out = {}
        for name, fn in (("forward_backward", lambda a, b: fb(a, b)), ("forward", lambda a, b: fwd(a))):
            runs = []
            for _ in range(reps):
                with Timer() as t:
                    for i in range(0, n, bs):
                        fn(x[i:i + bs], y[i:i + bs]).numpy()
                runs.append((n / t.cpu, n / t.wall))
            out[name] = dict(images_per_cpu_s=statistics.median(r[0] for r in runs),
                             images_per_s=statistics.median(r[1] for r in runs))
        return out

    def autoattack(model, n, label):
        keras.utils.set_random_seed(args.seed)
        x, y = x_all[:n], y_all[:n]
        limit = rates(model, args.batch_size)
        load_before = load_average()
        aa = get_attack("autoattack", eps=0.3, norm="inf", version="standard", steps=args.steps,
                        batch_size=args.batch_size)
        partial = record.setdefault("partial", {})
        partial[label] = dict(load_average_before=load_before, stages=[])

        def on_stage(stage):  # a long run keeps its finished stages even if it is stopped
            partial[label]["stages"].append(dict(stage, load_average=load_average()))
            print(f"{label}: after {stage['name']} robust accuracy {stage['robust_accuracy']:.4f} "
                  f"({stage['wall_s']} s, {stage['cpu_s']} CPU-s)", flush=True)
            save()

        report, x_adv = aa.evaluate(model, x, y, progress=True, on_stage=on_stage)
        partial.pop(label)
        report.pop("point_broken_by")
        ideal = (report["forward_backward_per_image"] * n / limit["forward_backward"]["images_per_cpu_s"]
                 + report["forward_per_image"] * n / limit["forward"]["images_per_cpu_s"])
        report["limit"] = dict(rates=limit, ideal_cpu_s=round(ideal, 1), limit_ratio_cpu=ideal / report["cpu_s"],
                               note="ideal CPU time of the passes spent (at one forward+backward / forward rate) "
                                    "÷ the measured CPU time")
        report["load_average"] = dict(before=load_before, after=load_average())
        print(f"{label}: clean {report['clean_accuracy']:.4f} robust {report['robust_accuracy']:.4f} "
              + " ".join(f"{s['name']}={s['robust_accuracy']:.4f}" for s in report["stages"])
              + f" ({report['wall_s']} s, {report['cpu_s']} CPU-s, limit ratio {report['limit']['limit_ratio_cpu']:.2f})"
              + "".join(f"\n  warning: {w}" for w in report["warnings"]), flush=True)
        return report, x_adv

    def accuracy(model, x, y):
        return float(np.mean(np.asarray(model.predict(x, batch_size=500, verbose=0)).argmax(-1) == y))

    if "art" in parts:
        record["art"] = bench_art(args, load, get_attack, x_all, y_all, "convnet-mnist", args.normal)
        save()

    if "art_robust" in parts:  # strength where the answer is not 0%: the PGD-trained ConvNet
        record["art_robust"] = bench_art(args, load, get_attack, x_all, y_all, "convnet-mnist-pgd-trained", args.robust)
        save()

    if "normal" in parts:
        model = load("convnet-mnist", weights=args.normal)
        report, _ = autoattack(model, args.n, "convnet-mnist")
        report["target"] = dict(robust_accuracy=0.0, met=report["robust_accuracy"] == 0.0)
        record["normal"] = dict(weights=str(Path(args.normal).resolve()), **report)
        save()

    if "masked" in parts:
        inner = load("convnet-mnist", weights=args.normal)
        model = Scaled(inner, args.mask_scale)
        keras.utils.set_random_seed(args.seed)
        x, y = x_all[:args.n], y_all[:args.n]
        pgd = get_attack("pgd", eps=0.3, steps=40, step_size=0.01, random_start=True, batch_size=args.batch_size)
        with Timer() as t:
            pgd_acc = accuracy(model, pgd(model, x, y), y)
        report, _ = autoattack(model, args.n, f"convnet-mnist logits x {args.mask_scale:g}")
        record["masked"] = dict(scale=args.mask_scale, pgd40_ce_accuracy=pgd_acc, pgd40_time=t.as_dict(), **report,
                                target=dict(robust_accuracy_le=0.01, met=report["robust_accuracy"] <= 0.01,
                                            warned=bool(report["warnings"])))
        print(f"masked: PGD-40 (CE) leaves {pgd_acc:.4f}, AutoAttack {report['robust_accuracy']:.4f}", flush=True)
        save()

    if "robust" in parts:
        model = load("convnet-mnist-pgd-trained", weights=args.robust)
        report, x_adv = autoattack(model, args.n, "convnet-mnist-pgd-trained")
        record["robust"] = dict(weights=str(Path(args.robust).resolve()), **report)
        save()
        keras.utils.set_random_seed(args.seed)
        x, y = x_all[:args.n], y_all[:args.n]
        pgd = get_attack("pgd", eps=0.3, steps=100, step_size=0.01, random_start=True, restarts=5,
                         batch_size=args.batch_size)
        with Timer() as t:
            x_pgd = pgd(model, x, y)
        pgd_correct = np.asarray(model.predict(x_pgd, batch_size=500, verbose=0)).argmax(-1) == y
        aa_correct = np.asarray(model.predict(x_adv, batch_size=500, verbose=0)).argmax(-1) == y
        report["pgd100x5"] = dict(accuracy=float(pgd_correct.mean()), time=t.as_dict(),
                                  broken_by_pgd_not_autoattack=int((~pgd_correct & aa_correct).sum()),
                                  broken_by_autoattack_not_pgd=int((pgd_correct & ~aa_correct).sum()))
        report["drop_from_pgd100x5_pp"] = round(100 * (report["pgd100x5"]["accuracy"] - report["robust_accuracy"]), 2)
        report["target"] = dict(robust_accuracy_ge=0.89, met=report["robust_accuracy"] >= 0.89,
                                time_le_s=900, time_met=report["wall_s"] <= 900)
        record["robust"] = dict(weights=str(Path(args.robust).resolve()), **report)
        print(f"robust: PGD-100x5 {report['pgd100x5']['accuracy']:.4f} vs AutoAttack {report['robust_accuracy']:.4f} "
              f"({report['drop_from_pgd100x5_pp']} pp)", flush=True)
        save()

    if not record.get("partial"):
        record.pop("partial", None)
    record["summary"] = summarise(record)
    save()
    print(json.dumps(record["summary"], indent=2))
    return 0


def Scaled(inner, scale):
    """The inner ConvNet with its logits × ``scale``: the softmax saturates and cross-entropy gradients vanish."""
    import keras

    class ScaledLogits(keras.Model):
        def __init__(self):
            super().__init__()
            self.inner, self.scale, self.output_kind = inner, float(scale), "logits"

        def call(self, x, training=False):
            return self.inner.logits(x, training=training) * self.scale

    return ScaledLogits()


def bench_art(args, load, get_attack, x_all, y_all, preset, weights):
    """Zoo APGD vs ART APGD: same logits model, images, ε, iterations, restarts and initial step."""
    import art
    import keras
    import numpy as np
    import tensorflow as tf
    from art.attacks.evasion import AutoProjectedGradientDescent
    from art.estimators.classification import TensorFlowV2Classifier

    model = load(preset, weights=weights, output="logits")
    n, steps, eps, bs = args.art_n, args.steps, 0.3, args.art_n
    x, y = x_all[:n], y_all[:n]
    classifier = TensorFlowV2Classifier(model=model, nb_classes=10, input_shape=(28, 28, 1), clip_values=(0.0, 1.0),
                                        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def art_apgd(loss_type):
        attack = AutoProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=steps,
                                              targeted=False, nb_random_init=1, batch_size=bs, loss_type=loss_type,
                                              verbose=False)
        return lambda xs, ys: attack.generate(xs, y=np.eye(10, dtype=np.float32)[ys])

    def zoo_apgd(loss, early_exit):
        attack = get_attack("apgd", eps=eps, steps=steps, loss=loss, restarts=1, early_exit=early_exit)
        return lambda xs, ys: attack(model, xs, ys)

    methods = {
        "zoo_apgd_ce": zoo_apgd("ce", False), "zoo_apgd_ce_early_exit": zoo_apgd("ce", True),
        "art_apgd_ce": art_apgd("cross_entropy"),
        "zoo_apgd_dlr": zoo_apgd("dlr", False), "zoo_apgd_dlr_early_exit": zoo_apgd("dlr", True),
        "art_apgd_dlr": art_apgd("difference_logits_ratio"),
    }

    @tf.function
    def forward_backward(xb, yb):
        with tf.GradientTape() as tape:
            tape.watch(xb)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yb, logits=model(xb)))
        return tape.gradient(loss, xb)

    xt, yt = tf.constant(x), tf.constant(y.astype(np.int32))

    def fb_rate():
        with Timer() as t:
            for _ in range(5):
                forward_backward(xt, yt).numpy()
        return 5 * n / t.cpu, 5 * n / t.wall

    def accuracy(xa):
        return float(np.mean(np.asarray(model(xa)).argmax(-1) == y))

    clean = accuracy(x)
    forward_backward(xt, yt)
    for fn in methods.values():  # trace every method outside the clock, on a few images
        fn(x[:10], y[:10])
    load_before = load_average()
    runs = {m: [] for m in methods}
    names = list(methods)
    for rep in range(args.reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            fb_cpu, fb_wall = fb_rate()
            keras.utils.set_random_seed(args.seed + rep)
            with Timer() as t:
                x_adv = np.asarray(methods[name](x, y))
            delta = np.abs(x_adv - x).reshape(n, -1).max(1)
            runs[name].append(dict(adv_accuracy=accuracy(x_adv), cpu_s=t.cpu, wall_s=t.wall,
                                   images_per_cpu_s=n / t.cpu, images_per_s=n / t.wall,
                                   limit_ratio_cpu=steps * (n / t.cpu) / fb_cpu,
                                   limit_ratio=steps * (n / t.wall) / fb_wall, max_linf=float(delta.max())))
            r = runs[name][-1]
            print(f"rep {rep} {name:24s} acc {r['adv_accuracy']:.4f} {r['images_per_cpu_s']:7.1f} img/CPU-s "
                  f"{r['images_per_s']:7.1f} img/s  limit {r['limit_ratio_cpu']:.2f} (wall {r['limit_ratio']:.2f})",
                  flush=True)
    rows = {}
    for name, rs in runs.items():
        rows[name] = dict(adv_accuracy=statistics.mean(r["adv_accuracy"] for r in rs),
                          adv_accuracy_runs=[r["adv_accuracy"] for r in rs],
                          images_per_cpu_s=statistics.median(r["images_per_cpu_s"] for r in rs),
                          images_per_s=statistics.median(r["images_per_s"] for r in rs),
                          limit_ratio_cpu=statistics.median(r["limit_ratio_cpu"] for r in rs),
                          limit_ratio=statistics.median(r["limit_ratio"] for r in rs),
                          max_linf=max(r["max_linf"] for r in rs), runs=rs)
    return dict(art=art.__version__, n=n, steps=steps, eps=eps, restarts=1, initial_step=2 * eps, batch_size=bs,
                reps=args.reps, clean_accuracy=clean, model=f"{preset} (logit outputs)",
                load_average=dict(before=load_before, after=load_average()), methods=rows)


def wall_limit(report) -> dict:
    """The fastest wall time the run's passes allow on this machine: forward+backward and forward passes
    spent ÷ their measured rates per wall second (all cores), against the measured wall time."""
    rates, n = report["limit"]["rates"], report["n"]
    ideal = (report["forward_backward_per_image"] * n / rates["forward_backward"]["images_per_s"]
             + report["forward_per_image"] * n / rates["forward"]["images_per_s"])
    return dict(ideal_wall_s=round(ideal, 1), limit_ratio_wall=round(ideal / report["wall_s"], 3))


def summarise(record) -> dict:
    """The issue's done-when checks, from whichever parts have been measured."""
    out = {}
    for part, prefix in (("art", "apgd"), ("art_robust", "robust_apgd")):
        if part not in record:
            continue
        m = record[part]["methods"]
        for loss in ("ce", "dlr"):
            zoo, early, peer = m[f"zoo_apgd_{loss}"], m[f"zoo_apgd_{loss}_early_exit"], m[f"art_apgd_{loss}"]
            out[f"{prefix}_{loss}"] = dict(
                zoo_accuracy=zoo["adv_accuracy"], art_accuracy=peer["adv_accuracy"],
                strength_ok=zoo["adv_accuracy"] <= peer["adv_accuracy"] + 0.005,
                zoo_images_per_cpu_s=zoo["images_per_cpu_s"], art_images_per_cpu_s=peer["images_per_cpu_s"],
                speed_vs_art_cpu=zoo["images_per_cpu_s"] / peer["images_per_cpu_s"],
                speed_vs_art_wall=zoo["images_per_s"] / peer["images_per_s"],
                limit_ratio_cpu=zoo["limit_ratio_cpu"], art_limit_ratio_cpu=peer["limit_ratio_cpu"],
                speed_ok=zoo["images_per_cpu_s"] / peer["images_per_cpu_s"] >= 3 and zoo["limit_ratio_cpu"] >= 0.9,
                early_exit_accuracy=early["adv_accuracy"], early_exit_images_per_cpu_s=early["images_per_cpu_s"],
                early_exit_vs_art_cpu=early["images_per_cpu_s"] / peer["images_per_cpu_s"])
    for part in ("normal", "masked", "robust"):
        if part in record:
            r = record[part]
            out[part] = dict(clean_accuracy=r["clean_accuracy"], robust_accuracy=r["robust_accuracy"],
                             stages={s["name"]: s["robust_accuracy"] for s in r["stages"]},
                             broken_by=r["broken_by"], wall_s=r["wall_s"], cpu_s=r["cpu_s"],
                             forward_backward_per_image=r["forward_backward_per_image"],
                             forward_per_image=r["forward_per_image"], limit_ratio_cpu=r["limit"]["limit_ratio_cpu"],
                             **wall_limit(r),
                             warnings=r["warnings"], target=r.get("target"))
            if part == "masked":
                out[part]["pgd40_ce_accuracy"] = r["pgd40_ce_accuracy"]
            if part == "robust":
                out[part].update(pgd100x5_accuracy=r["pgd100x5"]["accuracy"],
                                 drop_from_pgd100x5_pp=r["drop_from_pgd100x5_pp"])
    return out


if __name__ == "__main__":
    sys.exit(main())
