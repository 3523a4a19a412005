#!/usr/bin/env python
"""What is each augmentation worth with few labels? Writes benchmarks/augmentation.json.

    nice -n 5 python tools/augmentation_value.py --data-dir ../shared/data/mnist --seeds 0 1

A ConvNet (the ``convnet-mnist`` architecture) is trained on only the first 500 labelled images of
the MNIST training split and tested on the 2,000 held-out images, with and without each augmentation
plugin. Every variant gets the same number of optimizer steps on batches of 50 labelled images (plus
whatever the augmentation adds to each batch), so the only difference is the augmentation.

* ``none``: no augmentation; this classifier is also the seed's "second network" that filters the VAE's
  and labels the GAN's examples (so nothing but the 500 labels is ever used for labelling).
* ``image``: random rotation ±18°, translation ±10 %, zoom ±10 % (Keras preprocessing layers).
* ``adversarial``: FGSM (ε = 0.1) examples of the classifier being trained, true labels.
* ``vae-500``: a VAE trained here on the 500 labelled images only, posterior samples with spread 2,
  filtered by the classifier (the seed's fix); ``vae-500-unfiltered`` the same without the filter.
* ``vae-8000``: ``runs/vae-mnist`` (``tools/repro_generative.py``), trained on all 8,000 training images
  *without* their labels (the usual semi-supervised setting), filtered; ``vae-8000-unfiltered``.
* ``vaegan-8000``: the same with ``runs/vaegan-mnist``'s sharper decoder; ``vaegan-8000-unfiltered``.
* ``gan-8000``: ``runs/dcgan-mnist``, also label-free, samples labelled by the classifier, kept when
  it is at least 90 % sure.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from timing import cpu_seconds

REPO = Path(__file__).resolve().parent.parent
VARIANTS = ("none", "image", "adversarial", "vae-500", "vae-500-unfiltered", "vae-8000", "vae-8000-unfiltered",
            "vaegan-8000", "vaegan-8000-unfiltered", "gan-8000")


def new_classifier(seed):
    import keras

    from zoo import load

    keras.utils.set_random_seed(seed)
    return load("convnet-mnist")  # the preset's architecture and recipe (Adam 1e-3, cross-entropy)


def train_classifier(x, y, augmentation, steps, batch, seed, model=None):
    """``steps`` optimizer steps on shuffled batches of ``batch`` labelled images, each augmented."""
    model = model or new_classifier(seed)
    rng = np.random.default_rng(seed)
    order = np.array([], dtype=int)
    for _ in range(steps):
        if len(order) < batch:
            order = np.concatenate([order, rng.permutation(len(x))])
        idx, order = order[:batch], order[batch:]
        xb, yb = x[idx], y[idx]
        if augmentation is not None:
            xb, yb = augmentation(xb, yb)
        model.train_on_batch(np.asarray(xb), np.asarray(yb))
    return model


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, batch_size=500, verbose=0), axis=1) == y))


def train_small_vae(x, seed, epochs):
    """vae-mnist's architecture and recipe, trained on the labelled images only."""
    import keras
    import tensorflow as tf

    from zoo import load

    keras.utils.set_random_seed(seed)
    vae = load("vae-mnist")
    vae.fit(tf.data.Dataset.from_tensor_slices(x).shuffle(len(x), seed=seed).batch(50), epochs=epochs, verbose=0)
    return vae


def filter_diagnostic(vaes, filters, oracle, x, y, spreads, seed=0) -> dict:
    """How often does a VAE variation really change its label, and how well does each filter catch it?

    The oracle is the quality classifier (trained on all 8,000 labelled training images, ~99 % test
    accuracy); it only measures here and never trains or filters anything.
    """
    from zoo import get_augmentation

    table = {}
    for vae_name, vae in vaes.items():
        for spread in spreads:
            aug = get_augmentation("vae", vae=vae, spread=spread, seed=seed, keep_originals=False)
            generated, labels = aug(x, y)
            changed = np.argmax(oracle.predict(np.asarray(generated), verbose=0), axis=1) != np.asarray(labels)
            row = dict(label_changed=round(float(changed.mean()), 4))
            for filter_name, net in filters.items():
                rejected = np.argmax(net.predict(np.asarray(generated), verbose=0), axis=1) != np.asarray(labels)
                row[filter_name] = dict(
                    rejected=round(float(rejected.mean()), 4),
                    precision=round(float((rejected & changed).sum() / max(1, rejected.sum())), 4),
                    recall=round(float((rejected & changed).sum() / max(1, changed.sum())), 4),
                    changed_after_filter=round(float((changed & ~rejected).sum() / max(1, (~rejected).sum())), 4))
            table[f"{vae_name} spread {spread}"] = row
            print(f"{vae_name} spread {spread}: {row}", flush=True)
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--runs", default=str(REPO / "runs"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "augmentation.json"))
    parser.add_argument("--labelled", type=int, default=500)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--vae-epochs", type=int, default=100, help="epochs of the VAE on the labelled images")
    parser.add_argument("--spread", type=float, default=2.0, help="posterior spread of the VAE variations")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--copies", type=int, default=1, help="VAE variations per labelled image")
    parser.add_argument("--filter", choices=("none", "image"), default="none",
                        help="which 500-label classifier filters/labels generated images: the plain one "
                             "(variant none) or the one trained with image augmentation")
    parser.add_argument("--append", action="store_true", help="add these seeds to an existing --out file")
    parser.add_argument("--diagnose-filter", nargs="*", type=float, metavar="SPREAD",
                        help="instead of training with augmentations, measure (against an oracle classifier) "
                             "how often VAE variations change label at these spreads and what each filter catches")
    parser.add_argument("--validation", type=int, default=0,
                        help="evaluate on the last N training images instead of the test split (for tuning "
                             "without touching the test images)")
    args = parser.parse_args(argv)

    from zoo import get_augmentation, load
    from zoo.data import load_dataset

    data = load_dataset("mnist", data_dir=args.data_dir)
    x_all, y_all = data.arrays("train")
    x, y = x_all[: args.labelled], y_all[: args.labelled]
    x_test, y_test = data.arrays("test")
    if args.validation:
        x_test, y_test = x_all[-args.validation:], y_all[-args.validation:]
    runs = Path(args.runs)
    out = Path(args.out)
    results = dict(
        setup=dict(labelled=args.labelled, label_counts=np.bincount(y, minlength=10).tolist(), test=len(x_test),
                   steps=args.steps, batch=args.batch, spread=args.spread, copies=args.copies, filter=args.filter,
                   evaluated_on=f"last {args.validation} training images" if args.validation else "test split",
                   vae_epochs_500=args.vae_epochs,
                   classifier="convnet-mnist (filters 32/64, dense 128, dropout 0.25), Adam 1e-3",
                   note="2 shared CPU cores, other jobs running; times are this process's"),
        runs={v: [] for v in args.variants})
    if args.append and out.exists():  # more seeds for the same setup: keep the rows already measured
        previous = json.loads(out.read_text())
        if previous["setup"] != results["setup"]:
            raise SystemExit(f"--append: {out} was measured with another setup: {previous['setup']}")
        for variant, rows in previous["runs"].items():
            results["runs"][variant] = rows + results["runs"].get(variant, [])

    def save():
        summary = {}
        for variant, rows in results["runs"].items():
            if rows:
                accs = [r["accuracy"] for r in rows]
                summary[variant] = dict(mean_accuracy=round(float(np.mean(accs)), 4),
                                        std_accuracy=round(float(np.std(accs)), 4), seeds=len(accs))
                kept = [r["acceptance"] for r in rows if "acceptance" in r]
                if kept:
                    summary[variant]["mean_acceptance"] = round(float(np.mean(kept)), 3)
        results["summary"] = summary
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")

    if args.diagnose_filter is not None:
        from zoo.models.quality import quality_classifier

        seed = args.seeds[0]
        plain = train_classifier(x, y, None, args.steps, args.batch, seed)
        image = train_classifier(x, y, get_augmentation("image", rotation=0.05, translation=0.1, zoom=0.1, seed=seed),
                                 args.steps, args.batch, seed)
        vaes = {"vae-500": train_small_vae(x, seed, args.vae_epochs),
                "vae-8000": load("vae-mnist", weights=runs / "vae-mnist"),
                "vaegan-8000": load("vaegan-mnist", weights=runs / "vaegan-mnist")}
        table = filter_diagnostic(vaes, {"filter_plain": plain, "filter_image": image}, quality_classifier(data),
                                  x, y, args.diagnose_filter or [1.0, 2.0, 3.0, 4.0], seed)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(dict(setup=results["setup"], filter_diagnostic=table), indent=2) + "\n")
        return
    big_vae = big_gan = vaegan = None
    if any(v.startswith("vae-8000") for v in args.variants):
        big_vae = load("vae-mnist", weights=runs / "vae-mnist")
    if any(v.startswith("vaegan-8000") for v in args.variants):
        vaegan = load("vaegan-mnist", weights=runs / "vaegan-mnist")
    if "gan-8000" in args.variants:
        big_gan = load("dcgan-mnist", weights=runs / "dcgan-mnist")
    for seed in args.seeds:
        wall, cpu = time.perf_counter(), cpu_seconds()
        filter_net = train_classifier(x, y, None, args.steps, args.batch, seed)
        base = dict(accuracy=accuracy(filter_net, x_test, y_test), wall_seconds=round(time.perf_counter() - wall, 1),
                    cpu_seconds=round(cpu_seconds() - cpu, 1), seed=seed)
        print(f"seed {seed} none {base['accuracy']:.4f}", flush=True)
        if "none" in results["runs"]:
            results["runs"]["none"].append(base)
        if args.filter == "image":
            filter_net = train_classifier(x, y, get_augmentation("image", rotation=0.05, translation=0.1, zoom=0.1,
                                                                 seed=seed), args.steps, args.batch, seed)
        small_vae = None
        if any(v.startswith("vae-500") for v in args.variants):
            t = time.perf_counter()
            small_vae = train_small_vae(x, seed, args.vae_epochs)
            print(f"  small VAE trained in {time.perf_counter() - t:.0f} s", flush=True)
        for variant in args.variants:
            if variant == "none":
                continue
            wall, cpu = time.perf_counter(), cpu_seconds()
            model = new_classifier(seed)
            if variant == "image":
                aug = get_augmentation("image", rotation=0.05, translation=0.1, zoom=0.1, seed=seed)
            elif variant == "adversarial":
                aug = get_augmentation("adversarial", model=model, attack="fgsm", attack_params={"eps": 0.1})
            elif variant.startswith("vae"):
                source = variant.removesuffix("-unfiltered")
                vae = {"vae-500": small_vae, "vae-8000": big_vae, "vaegan-8000": vaegan}[source]
                aug = get_augmentation("vae", vae=vae, spread=args.spread, seed=seed, copies=args.copies,
                                       classifier=None if variant.endswith("unfiltered") else filter_net)
            else:
                aug = get_augmentation("gan", generator=big_gan, classifier=filter_net, ratio=1.0,
                                       min_confidence=0.9, seed=seed)
            train_classifier(x, y, aug, args.steps, args.batch, seed, model=model)
            row = dict(accuracy=accuracy(model, x_test, y_test), wall_seconds=round(time.perf_counter() - wall, 1),
                       cpu_seconds=round(cpu_seconds() - cpu, 1), seed=seed)
            if hasattr(aug, "acceptance") and not variant.endswith("unfiltered"):
                row["acceptance"] = round(aug.acceptance, 4)
            results["runs"][variant].append(row)
            print(f"seed {seed} {variant} {row}", flush=True)
            save()
    save()
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
