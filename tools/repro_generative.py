#!/usr/bin/env python
"""Reproduce issue 4's generative figures on the real MNIST files and write benchmarks/generative.json.

    nice -n 5 python tools/repro_generative.py --data-dir ../shared/data/mnist [--parts linear_ae vae ...]

Parts (each trains its preset through ``zoo.training.fit.train`` into ``runs/<preset>``, so the
per-epoch sample grids land in ``runs/<preset>/samples``, and records wall and CPU time):

* ``linear_ae``: ``ae-linear-mnist`` (q = 16) against the optimal rank-16 PCA of the same 8,000
  training images: reconstruction MSE ratio and the angle between each of the top 8 principal
  directions and the decoder's subspace.
* ``vae``: ``vae-mnist``: negative ELBO (one posterior sample) and the IWAE-100 bound on the 2,000
  test images binarised at 0.5, nats per image; classifier Fréchet distance and confidence.
* ``dcgan``: no NaN in the training history; Fréchet distance and confidence.
* ``vaegan``: the seed's "train the VAE so it can fool a real-versus-fake adversary" taken literally:
  the trained ``vae-mnist`` of the ``vae`` part continues as ``vaegan-mnist`` for ``--vaegan-epochs``
  (``--vaegan-from-scratch`` trains the preset from scratch instead); same measures, plus the VAE's.
* ``noise``: the pixel-noise baseline's Fréchet distance.

Results merge into the JSON file part by part, so parts can run one at a time.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from timing import Timer


REPO = Path(__file__).resolve().parent.parent
PARTS = ("linear_ae", "vae", "dcgan", "vaegan", "noise")




def train_part(preset, data_dir, runs, seed=0, **kwargs):
    from zoo.training.fit import train

    with Timer() as t:
        result = train(preset, data_dir=data_dir, out=runs / preset, seed=seed, verbose=2, **kwargs)
    history = {k: [float(v) for v in vals] for k, vals in result.history.items()}
    finite = all(math.isfinite(v) for vals in history.values() for v in vals)
    grid_paths = sorted((runs / preset / "samples").glob("*.png"))
    grids = [str(p.relative_to(REPO)) for p in grid_paths]
    # Training alone (evaluation excluded): config.json is written before the first epoch and a
    # sample grid at the end of each.
    train_wall = grid_paths[-1].stat().st_mtime - (runs / preset / "config.json").stat().st_mtime if grids else None
    return result, dict(preset=preset, epochs=len(next(iter(history.values()), [])), metrics=result.metrics,
                        history_finite=finite, final_train=dict((k, v[-1]) for k, v in history.items()),
                        sample_grids=len(grids), last_grid=grids[-1] if grids else None,
                        out=str((runs / preset).relative_to(REPO)),
                        train_wall_seconds=round(train_wall, 1) if train_wall else None, **t.as_dict())


def finetune_vaegan(data, runs, epochs, seed=0):
    """The seed's conclusion taken literally: start from the trained ``vae-mnist`` (runs/vae-mnist) and
    train it on as ``vaegan-mnist`` so its decoder also fools a real/fake discriminator. Writes a
    ``zoo train``-style run directory (config.json, model.weights.h5, samples/) for ``zoo generate``."""
    import keras

    from zoo import load
    from zoo.models.generative import SampleGrid
    from zoo.models.quality import evaluate_vaegan

    out = runs / "vaegan-mnist"
    keras.utils.set_random_seed(seed)
    model = load("vaegan-mnist")
    model.vae.set_weights(load("vae-mnist", weights=runs / "vae-mnist").get_weights())
    x_test, _ = data.arrays("test")
    with Timer() as t:
        history = model.fit(data.pipeline("train", 64, seed=seed), epochs=epochs, verbose=2,
                            callbacks=[SampleGrid(out, x_test[:32])]).history
    train_time = t.as_dict()
    from zoo.api import resolve

    spec, _ = resolve("vaegan-mnist")
    config = {k: v for k, v in model.get_config().items() if k in spec.config_defaults()}
    model.save_weights(out / "model.weights.h5")
    (out / "config.json").write_text(json.dumps(dict(name="vaegan-mnist", architecture="vaegan", config=config,
                                                     dataset="mnist", seed=seed,
                                                     warm_start="runs/vae-mnist"), indent=2))
    with Timer() as t:
        metrics = {k: float(v) for k, v in evaluate_vaegan(model, data).items()}
    history = {k: [float(v) for v in vals] for k, vals in history.items()}
    grids = sorted((out / "samples").glob("*.png"))
    return dict(preset="vaegan-mnist", warm_start="runs/vae-mnist (the vae part)", epochs=epochs, metrics=metrics,
                history_finite=all(math.isfinite(v) for vals in history.values() for v in vals),
                final_train={k: v[-1] for k, v in history.items()}, sample_grids=len(grids),
                last_grid=str(grids[-1].relative_to(REPO)), out=str(out.relative_to(REPO)),
                train_wall_seconds=train_time["wall_seconds"], train_cpu_seconds=train_time["cpu_seconds"],
                eval_wall_seconds=t.as_dict()["wall_seconds"], eval_cpu_seconds=t.as_dict()["cpu_seconds"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--runs", default=str(REPO / "runs"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "generative.json"))
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--epochs", type=int, help="override every preset's epochs (quick checks)")
    parser.add_argument("--vaegan-epochs", type=int, default=5,
                        help="epochs of VAE-GAN training started from the trained vae-mnist")
    parser.add_argument("--vaegan-from-scratch", action="store_true",
                        help="train vaegan-mnist from scratch with its preset recipe instead")
    args = parser.parse_args(argv)

    from zoo.data import load_dataset
    from zoo.models.quality import image_quality, noise_baseline, quality_classifier

    runs, out = Path(args.runs), Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    results["environment"] = dict(
        cpus=os.cpu_count(), note="2 shared CPU cores; other jobs were running, so wall time exceeds CPU time "
                                  "divided by cores", data="MNIST t10k: first 8,000 train, last 2,000 test")
    data = load_dataset("mnist", data_dir=args.data_dir)
    x_train, _ = data.arrays("train")
    x_test, _ = data.arrays("test")
    extra = dict(epochs=args.epochs) if args.epochs else {}

    def save():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")

    with Timer() as t:
        classifier = quality_classifier(data)
    results["quality_classifier"] = t.as_dict()
    for part in args.parts:
        print(f"== {part}", flush=True)
        if part == "linear_ae":
            result, record = train_part("ae-linear-mnist", args.data_dir, runs, **extra)
            from zoo.models.ae import pca_comparison

            record["pca"] = pca_comparison(result.model, x_train, x_test, top=8)
        elif part == "vae":
            _, record = train_part("vae-mnist", args.data_dir, runs, **extra)
        elif part == "dcgan":
            _, record = train_part("dcgan-mnist", args.data_dir, runs, **extra)
        elif part == "vaegan" and args.vaegan_from_scratch:
            _, record = train_part("vaegan-mnist", args.data_dir, runs, **extra)
        elif part == "vaegan":
            record = finetune_vaegan(data, runs, args.epochs or args.vaegan_epochs)
        else:
            record = dict(metrics=image_quality(noise_baseline(data, len(x_test)), x_test, classifier),
                          what="each pixel drawn from the training images' values at that position")
        results[part] = record
        save()
        print(json.dumps(record, indent=2), flush=True)
    fids = {k: results[k]["metrics"]["fid"] for k in ("vae", "dcgan", "vaegan", "noise") if k in results}
    results["fid_summary"] = fids
    save()
    print(json.dumps(fids))


if __name__ == "__main__":
    main()
