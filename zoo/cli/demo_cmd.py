"""zoo demo: the README's main job, on the embedded default data with no network.

The demo is a list of steps; each takes the output folder and returns its metrics. Later model
families append their own step to :data:`DEMO_STEPS`.
"""
from pathlib import Path

import numpy as np

from zoo.cli import check_output, print_json

DEFAULT_OUT = "zoo-demo"


def classifier_step(out: Path) -> dict:
    """Train the seed's ConvNet on the embedded digits and draw its test predictions."""
    from zoo.training.fit import train
    from zoo.viz import image_grid, save_png
    from zoo.data import load_dataset

    print("== ConvNet on the embedded 8x8 digits (convnet-digits) ==", flush=True)
    result = train("convnet-digits", out=out / "convnet-digits", verbose=2)
    x, y = load_dataset("digits").arrays("test")
    probs = np.asarray(result.model.predict(x[:32], verbose=0))
    pred = probs.argmax(1)
    captions = [f"{p} {probs[i, p]:.0%}" for i, p in enumerate(pred)]
    colors = [(0, 128, 0) if p == t else (200, 0, 0) for p, t in zip(pred, y[:32])]
    save_png(image_grid(x[:32], captions, colors=colors), out / "convnet-digits" / "predictions.png")
    return {"convnet_digits_accuracy": result.metrics["accuracy"]}


def attack_step(out: Path) -> dict:
    """Break the ConvNet of the first step with PGD and draw the seed's panel of a few examples."""
    from zoo import get_attack, load
    from zoo.cli.attack_cmd import PANEL_EXAMPLES, _save_panel
    from zoo.data import load_dataset
    from zoo.evaluation import attack_report

    print("== PGD against that ConvNet (eps 0.2, 20 steps) ==", flush=True)
    model = load("convnet-digits", weights=out / "convnet-digits")
    x, y = load_dataset("digits").arrays("test")
    metrics, x_adv = attack_report(model, get_attack("pgd", eps=0.2, steps=20, step_size=0.02), x, y)
    _save_panel(out / "convnet-digits" / "pgd-panel.png", model, x[:PANEL_EXAMPLES], x_adv[:PANEL_EXAMPLES])
    return {"convnet_digits_pgd_accuracy": metrics["adv_accuracy"]}


def generative_step(out: Path) -> dict:
    """A VAE on the same digits, with a grid of its samples."""
    from zoo.models.generative import demo_step

    print("== VAE on the embedded digits (vae-digits) ==", flush=True)
    metrics = demo_step(out)
    return {"vae_digits_nll_elbo": metrics["nll_elbo"], "vae_digits_fid": metrics["fid"]}


def speech_step(out: Path) -> dict:
    """Listen, Attend and Spell on generated tone "speech"."""
    from zoo.models.las import demo_step

    return demo_step(out)


DEMO_STEPS = [classifier_step, attack_step, generative_step, speech_step]


def add_parser(sub):
    p = sub.add_parser("demo", help="train and show the zoo's models on the embedded default data")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: ./{DEFAULT_OUT})")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args):
    check_output(args.out, "--out", directory=True)
    out = Path(args.out)
    metrics = {}
    for step in DEMO_STEPS:
        metrics.update(step(out))
    for key, value in metrics.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"outputs written to {out.resolve()}")
    if args.json:
        print_json(metrics)
    return 0
