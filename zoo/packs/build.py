"""Making a pack from a run directory of ``zoo train --out``: measure, describe, write, archive.

The metrics on the card are measured here, on the pack's own weights (the run's weights with the
optimizer state left out, loaded into a fresh model), never copied from the run's ``metrics.json``.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path

from zoo.errors import WeightsError
from zoo.packs.card import (
    CARD_FILE,
    CONFIG_FILE,
    PACK_FORMAT,
    README_FILE,
    WEIGHTS_FILE,
    parse_version,
    render_readme,
    validate_card,
)
from zoo.packs.files import file_entry, sha256_file, write_archive
from zoo.packs.provenance import DATA_SPLIT, PROVENANCE_FILE, data_checksum, project_commit, versions

DEFAULT_LICENSE = "other"


@dataclasses.dataclass
class AttackSpec:
    """A robustness metric to measure for the card: ``attack`` built with ``params`` on the first
    ``n`` test examples."""

    attack: str
    params: dict
    n: int = 1000


@dataclasses.dataclass
class PackResult:
    directory: Path
    archive: Path
    sha256: str
    card: dict
    wheel: Path | None = None


def make_pack(run_dir, out, *, version: str | None = None, previous=None, data_dir=None,
              license: str = DEFAULT_LICENSE, citation: str | None = None, intended_use: str | None = None,
              limitations: str | None = None, attacks: list[AttackSpec] = (), batch_size: int = 256) -> PackResult:
    """Write ``out/<name>-<version>/`` and ``out/<name>-<version>.zip`` from the run in ``run_dir``.

    ``version`` defaults to the next version after ``previous`` (a pack directory or archive of the
    same preset; see :func:`zoo.packs.card.next_version`), or ``1.0.0``.
    """
    import numpy as np

    from zoo.api import load, model_config, resolve
    from zoo.packs.store import resolve_weights
    from zoo.packs.weights_io import load_weights, save_weights
    from zoo.training.fit import evaluate_run

    run_dir = Path(run_dir)
    local = resolve_weights(run_dir)
    if local.is_pack:
        raise WeightsError(f"{run_dir} is already a pack; `zoo pack` takes a run directory of `zoo train --out`")
    run = local.run
    missing = [k for k in ("architecture", "config", "dataset", "recipe") if k not in run]
    if missing or not isinstance(run["recipe"], dict) or "epochs" not in run["recipe"]:
        raise WeightsError(f"{run_dir}/config.json lacks {', '.join(missing) or 'recipe.epochs'}: "
                           f"it was not written by `zoo train --out`")
    name = run.get("name") or run["architecture"]
    spec, preset = resolve(name)
    if spec.name != run["architecture"]:
        raise WeightsError(f"{run_dir}: config.json names {name!r}, a {spec.name!r}, but holds a {run['architecture']!r}")
    out = Path(out)
    version = _version(version, previous, dict(name=name, architecture=spec.name, config=run["config"]))
    stem = f"{name}-{version}"
    directory, archive = out / stem, out / f"{stem}.zip"
    if directory.exists() or archive.exists():
        raise WeightsError(f"{directory} or {archive} already exists; a published version is never overwritten "
                           f"— pass --version (or --previous) for a new one, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".pack-"))
    try:
        # the pack's weights: the run's model without optimizer state, measured as a fresh model loads them
        trained = load(name, weights=run_dir, compile=False)
        save_weights(trained, staging / WEIGHTS_FILE)
        (staging / CONFIG_FILE).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
        provenance = _read_json(run_dir / PROVENANCE_FILE)
        data_dir = data_dir if data_dir is not None else provenance.get("data_dir")  # where it was trained from
        model = load(name, compile=False, **run["config"])
        load_weights(model, staging / WEIGHTS_FILE, str(staging))
        # measured exactly as `zoo evaluate --weights PACK` measures it, so the two agree
        evaluation = evaluate_run(name, model, run, data_dir=data_dir, batch_size=batch_size,
                                  where=f"{run_dir}/{CONFIG_FILE}")
        data, seed = evaluation.data, evaluation.seed
        sizes = {k: int(v) for k, v in (data.info.get("sizes") or {}).items()}
        metrics = card_metrics(spec, evaluation, run["recipe"], sizes.get("test", 1))
        metrics += [_robustness(model, data, a, evaluation.dataset, seed) for a in attacks]

        checksum = data_checksum(data)
        trained_on = provenance.get("data_sha256")
        if trained_on and trained_on != checksum:
            raise WeightsError(f"the {run['dataset']} data found now (SHA-256 {checksum} of its {DATA_SPLIT} split) is not "
                               f"the data {run_dir} was trained on ({trained_on}); pass the --data-dir it was trained with")
        recipe_note = _recipe_note(run, preset)
        card = dict(
            pack_format=PACK_FORMAT,
            name=name,
            version=version,
            architecture=spec.name,
            family=spec.family,
            description=(preset.metadata.get("description") if preset else None) or spec.description,
            config=run["config"],
            parameters=int(sum(int(np.prod(v.shape)) for v in model.weights)),
            files={},
            inputs=[],
            outputs=[],
            dataset=dict(name=run["dataset"], source=str(data.info.get("source", "")) or run["dataset"], splits=sizes,
                         sha256=checksum, checksum_of=f"{DATA_SPLIT} split arrays", args=evaluation.dataset_args),
            recipe=dict(
                command=train_command(run, spec, preset, model_config, provenance.get("data_dir")),
                seed=seed,
                epochs=int(run["recipe"]["epochs"]),
                train=run["recipe"],
                cpu_time_s=provenance.get("cpu_time_s"),
                versions=provenance.get("versions") or versions(),
                commit=provenance.get("commit") if provenance else project_commit(),
                recorded=("by zoo train" if provenance else "at pack time: the run has no provenance.json"),
                **({"note": recipe_note} if recipe_note else {}),
            ),
            metrics=metrics,
            license=license,
            citation=citation or (preset.metadata.get("citation") if preset else None) or "zoo, a Keras model zoo.",
            intended_use=intended_use or _intended_use(spec, preset, run),
            limitations=limitations or _limitations(spec, preset, run),
            created=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        )
        card["inputs"], card["outputs"] = describe_io(spec, model, run["config"], data.info)
        card["files"] = {f: file_entry(staging / f) for f in (CONFIG_FILE, WEIGHTS_FILE)}
        validate_card(card, where=f"the card of {name}")
        (staging / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        (staging / README_FILE).write_text(render_readme(card), encoding="utf-8")

        if directory.exists() or archive.exists():  # written by another process meanwhile
            raise WeightsError(f"{directory} or {archive} appeared while packing; nothing was overwritten")
        write_archive(staging, archive, stem)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PackResult(directory, archive, sha256_file(archive), card)


def train_command(run: dict, spec, preset, model_config, data_dir=None) -> str:
    """The ``zoo train`` command that makes this run again (``--out`` names the run's folder;
    ``--data-dir`` is the one it was trained with, if any, relative to the directory the pack was
    made in — a checkout's root — so the card names no path of the machine that made it)."""
    from zoo.registry import TrainRecipe

    base_recipe = dataclasses.asdict(preset.train if preset else TrainRecipe())
    parts = ["zoo", "train", run.get("name") or run["architecture"]]
    if preset is None or run["dataset"] != preset.dataset:
        parts += ["--dataset", run["dataset"]]
    for key, value in sorted((run.get("dataset_args") or {}).items()):
        parts += ["--dataset-arg", f"{key}={_yaml(value)}"]
    if data_dir:
        parts += ["--data-dir", _relative(data_dir)]
    for key, flag in (("epochs", "--epochs"), ("batch_size", "--batch-size")):
        if run["recipe"].get(key) != base_recipe[key]:
            parts += [flag, str(run["recipe"][key])]
    defaults = json.loads(json.dumps(model_config(spec, preset)))
    for key, value in sorted(run["config"].items()):
        if defaults.get(key) != value:
            parts += ["--set", f"{key}={_yaml(value)}"]
    parts += ["--seed", str(run.get("seed", 0)), "--out", "run"]
    return " ".join(shlex.quote(p) for p in parts)


def _relative(path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows): nothing relative to say
        return str(path)


def _recipe_note(run, preset) -> str | None:
    """Recipe fields the command cannot set (they come from the registry the run was trained with)."""
    from zoo.registry import TrainRecipe

    base = dataclasses.asdict(preset.train if preset else TrainRecipe())
    other = sorted(k for k, v in run["recipe"].items() if k not in ("epochs", "batch_size") and base.get(k) != v)
    if not other:
        return None
    return (f"the run's {', '.join(other)} differ from the preset in this zoo's registry; recipe.train holds the "
            f"values used (set them in a registry file given by ZOO_REGISTRY)")


def _yaml(value) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def _version(version, previous, card) -> str:
    if version is not None:
        if parse_version(version)[0] != PACK_FORMAT:
            raise WeightsError(f"version {version}: its first number is the pack format, {PACK_FORMAT}")
        return version
    if previous is None:
        return f"{PACK_FORMAT}.0.0"
    from zoo.packs.card import next_version
    from zoo.packs.store import resolve_weights

    before = resolve_weights(previous).card
    if before is None:
        raise WeightsError(f"--previous {previous} is a run directory, not a pack")
    if before["name"] != card["name"]:
        raise WeightsError(f"--previous {previous} is a pack of {before['name']!r}, not {card['name']!r}")
    return next_version(before, card)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def card_metrics(spec, evaluation, recipe: dict, n: int) -> list[dict]:
    """The card's entries for what ``zoo evaluate`` measured (``evaluation``, of ``n`` test
    examples), under the names it reports them by; metrics the trainer measures on attacked inputs
    are robustness entries naming the recipe's attack."""
    kind = {"classifier": "clean", "las": "speech"}.get(spec.family, "generative")
    attacked = getattr(evaluation.model, "attacked_metrics", ())
    attack = _attack_fields(recipe["step_params"]["attack"], evaluation.model.attack, {}) if attacked else {}
    return [dict(name=k, value=float(v), split="test", n=n, dataset=evaluation.dataset,
                 **(dict(kind="robustness", **attack) if k in attacked else dict(kind=kind)),
                 measured_by="zoo evaluate", seed=evaluation.seed)
            for k, v in sorted(evaluation.metrics.items())]


def _robustness(model, data, spec: AttackSpec, dataset: str, seed: int) -> dict:
    """Accuracy under ``spec``'s attack on the first ``n`` test images."""
    import keras

    from zoo.api import get_attack
    from zoo.evaluation import attack_report

    attack = get_attack(spec.attack, **spec.params)
    x, y = data.arrays("test")[:2]
    x, y = x[: spec.n], y[: spec.n]
    keras.utils.set_random_seed(seed)
    report, _ = attack_report(model, attack, x, y)
    return dict(name="adv_accuracy", value=float(report["adv_accuracy"]), split="test", n=int(report["n"]),
                dataset=dataset, kind="robustness", **_attack_fields(spec.attack, attack, spec.params),
                measured_by="zoo pack", seed=seed)


def _attack_fields(name: str, attack, given: dict) -> dict:
    """A robustness entry's ``attack``, ``eps`` and ``params`` (the attack's other parameters)."""
    params = {k: v for k, v in attack.params().items() if k != "eps"}
    eps = attack.params().get("eps", given.get("eps"))
    if eps is None:
        raise WeightsError(f"attack {name!r} has no eps; a robustness metric states its ε")
    return dict(attack=name, eps=float(eps), params=json.loads(json.dumps(params, default=str)))


def describe_io(spec, model, config: dict, info: dict) -> tuple[list, list]:
    """The card's ``inputs`` and ``outputs`` for the model families of the zoo."""
    family = spec.family
    if family == "las":
        rate = int(config.get("sample_rate", info.get("sample_rate", 8000)))
        inputs = [dict(name="waveforms", shape=[None, None], dtype="float32", range=[-1.0, 1.0],
                       description=f"mono audio at {rate} Hz, zero-padded to the longest in the batch")]
        outputs = [dict(name="transcripts", shape=[None], dtype="string", kind="text", range=None,
                        labels=[str(c) for c in info.get("vocabulary", [])] or None,
                        description="model.transcribe(waveforms) -> list of strings")]
        return inputs, outputs
    image = [None, *[int(d) for d in config.get("input_shape", info.get("input_shape", ()))]]
    pixels = dict(dtype="float32", range=[0.0, 1.0])
    if family == "classifier":
        kind = "logits" if getattr(model, "output_kind", "softmax") == "logits" else "probabilities"
        classes = int(config.get("num_classes", info.get("num_classes", 0)))
        labels = info.get("class_names") or [str(i) for i in range(classes)]
        return ([dict(name="images", shape=image, description="a batch of images", **pixels)],
                [dict(name="scores", shape=[None, classes], dtype="float32", kind=kind,
                      range=[0.0, 1.0] if kind == "probabilities" else None, labels=[str(v) for v in labels],
                      description=f"class {kind} (model(images))")])
    if family == "gan":
        latent = int(config.get("latent_dim", 0)) or None
        return ([dict(name="images", shape=image, description="model(images): the discriminator's input", **pixels),
                 dict(name="z", shape=[None, latent], dtype="float32", range=None,
                      description="latent codes, N(0, I), that model.generate(n) draws")],
                [dict(name="real_probability", shape=[None, 1], dtype="float32", kind="probabilities", range=[0.0, 1.0],
                      labels=None, description="model(images): D's probability that each image is real"),
                 dict(name="generated", shape=image, kind="images", description="model.generate(n): G(z)", **pixels)])
    outputs = [dict(name="reconstruction", shape=image, kind="reconstruction",
                    description="model(images): the reconstructed images", **pixels)]
    if family in ("vae", "vaegan"):
        outputs.append(dict(name="samples", shape=image, kind="images",
                            description="model.sample(n): images decoded from the prior", **pixels))
    return [dict(name="images", shape=image, description="a batch of images", **pixels)], outputs


def _intended_use(spec, preset, run) -> str:
    what = (preset.metadata.get("description") if preset else None) or spec.description
    return (f"Research and teaching on {run['dataset']}-like inputs: {what} Load it with "
            f"`zoo.load({(run.get('name') or spec.name)!r}, weights=...)` to evaluate, attack, fine-tune or compare.")


def _limitations(spec, preset, run) -> str:
    notes = (preset.metadata.get("notes") if preset else None) or ""
    text = (f"Trained and measured on {run['dataset']} only; inputs from elsewhere (other sizes, value ranges or "
            f"distributions) are out of its scope and its metrics do not carry over to them.")
    if spec.family == "classifier" and not str(run["recipe"].get("step", "")).startswith(("madry", "trades", "adversarial")):
        text += " Not trained against adversarial examples: small perturbations fool it."
    return f"{text} {notes}".strip()
