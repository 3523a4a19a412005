"""zoo demo: the README's main job, on the embedded default data with no network, then the zoo's
pretrained packs on the samples bundled with the package (:mod:`zoo.data.samples`).

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


#: The PGD the pretrained ConvNets face: the lecture's MNIST setting (Madry et al.), ε 0.3, 40 steps
#: of 0.01 from a random start.
PRETRAINED_PGD = dict(eps=0.3, steps=40, step_size=0.01, random_start=True)
PRETRAINED_SEED = 0
PRETRAINED_SAMPLES = 32


def pretrained_step(out: Path) -> dict:
    """The zoo's packs on the bundled samples (zoo.data.samples): the plain MNIST ConvNet falls under
    PGD, the PGD-trained one holds; the VAE and GAN draw digits; LAS transcribes real spoken digits.
    A part whose preset has no pack installed is skipped with one line saying how to make one."""
    print("== The pretrained packs on bundled MNIST digits and FSDD recordings ==", flush=True)
    metrics = {}
    for preset, part in PRETRAINED_PARTS:
        model = _pretrained(preset)
        if model is not None:
            metrics.update(part(model, out / "pretrained" / preset, "pretrained_" + preset.replace("-", "_")))
    return metrics


def _pretrained(preset: str):
    """The best pack offered for ``preset``, loaded; ``None`` after one line saying why not."""
    from zoo import load
    from zoo.errors import WeightsError
    from zoo.packs import offers

    found = offers(preset)
    if not found or not found[0].usable:
        print(f"skipped {preset}: no pack for {preset} is installed "
              f"(make one in a checkout: python tools/make_packs.py --presets {preset})", flush=True)
        return None
    try:
        model = load(preset, weights="pretrained", compile=False)
    except WeightsError as exc:  # e.g. a plugin's URL pack while offline: the rest of the demo still runs
        print(f"skipped {preset}: its pack did not load: {exc}", flush=True)
        return None
    print(f"{preset}: pack {model.card['version']} from {found[0].distribution}", flush=True)
    return model


def _pretrained_classifier(model, out: Path, key: str) -> dict:
    """Clean accuracy and accuracy under PGD on the bundled MNIST digits, and the seed's panel."""
    import keras

    from zoo import get_attack
    from zoo.cli.attack_cmd import PANEL_EXAMPLES, _save_panel
    from zoo.data.samples import mnist_samples
    from zoo.evaluation import attack_report

    x, y = mnist_samples()
    keras.utils.set_random_seed(PRETRAINED_SEED)  # PGD's random start: the same figures every run
    metrics, x_adv = attack_report(model, get_attack("pgd", **PRETRAINED_PGD), x, y)
    _save_panel(out / "pgd-panel.png", model, x[:PANEL_EXAMPLES], x_adv[:PANEL_EXAMPLES])
    print(f"  {len(x)} MNIST test digits: accuracy {metrics['clean_accuracy']:.0%} clean, "
          f"{metrics['adv_accuracy']:.0%} under PGD (eps {PRETRAINED_PGD['eps']}, {PRETRAINED_PGD['steps']} steps)",
          flush=True)
    return {f"{key}_accuracy": metrics["clean_accuracy"], f"{key}_pgd_accuracy": metrics["adv_accuracy"]}


def _pretrained_generator(model, out: Path, key: str) -> dict:
    """A grid of samples, drawn as ``zoo generate --weights PACK -n 32 --seed 0`` draws them."""
    from zoo.models.generative import write_samples

    summary = write_samples(model, out / "generated.png", PRETRAINED_SAMPLES, PRETRAINED_SEED)
    print(f"  {summary['n']} samples drawn into {summary['png']}", flush=True)
    return {f"{key}_samples": summary["n"]}


def _pretrained_transcriber(model, out: Path, key: str) -> dict:
    """Transcripts of the bundled FSDD recordings and their character error rate."""
    from zoo.data.samples import fsdd_samples
    from zoo.files import atomic_write_text
    from zoo.models.las import error_rate

    waves, refs = fsdd_samples()
    hyps = model.transcribe(waves)
    lines = [f"{r!r:>8} -> {h!r}" for r, h in zip(refs, hyps)]
    atomic_write_text(out / "transcripts.txt", "\n".join(lines) + "\n")
    cer = error_rate(refs, hyps)
    print("\n".join(f"  {line}" for line in lines), flush=True)
    print(f"  CER {cer:.1%} on {len(refs)} FSDD recordings", flush=True)
    return {f"{key}_cer": cer, f"{key}_wer": error_rate(refs, hyps, unit="word")}


#: What the step shows of each preset: ``part(model, out_dir, metric_key_prefix) -> metrics``.
PRETRAINED_PARTS = [
    ("convnet-mnist", _pretrained_classifier),
    ("convnet-mnist-pgd-trained", _pretrained_classifier),
    ("vae-mnist", _pretrained_generator),
    ("dcgan-mnist", _pretrained_generator),
    ("las-fsdd", _pretrained_transcriber),
]

DEMO_STEPS = [classifier_step, attack_step, generative_step, speech_step, pretrained_step]


def add_parser(sub):
    p = sub.add_parser("demo", help="train and show the zoo's models on the embedded default data, "
                       "and its pretrained packs on bundled samples")
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
