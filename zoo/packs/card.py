"""The pack's card: its schema, the version scheme, and the Hugging Face ``README.md`` rendered from it.

A card (``card.json``) says what a pack holds and how it was made; :class:`_Card` is its schema,
checked by the zoo's one validator, so each problem names its field (``metrics[1].eps: ...``).

Versions are ``FORMAT.ARCHITECTURE.RETRAIN`` (three integers, compared numerically):

* ``FORMAT`` is the pack format (:data:`PACK_FORMAT`): the file layout and card schema. A loader
  refuses a pack whose format it does not know, so it never half-reads one.
* ``ARCHITECTURE`` goes up when the model's architecture or config changes (the weights of the old
  and new pack do not fit each other); ``RETRAIN`` restarts at 0.
* ``RETRAIN`` goes up for new weights of the same architecture and config (another seed, more
  epochs, a better recipe): same shapes, new metrics.

:func:`next_version` applies these rules to a previous card and a new one.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any, Literal

from zoo.errors import ConfigError, WeightsError
from zoo.validate import Count, Match, NonNegative, Size, check

PACK_FORMAT = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
CARD_FILE = "card.json"
README_FILE = "README.md"
#: Files a pack must list in its card (``card.json`` and ``README.md`` are derived from the card).
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE)
#: The only kinds of file a pack may hold: data, never code (weights as HDF5, configs as JSON).
ALLOWED_SUFFIXES = (".json", ".h5", ".md", ".txt", ".png")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
VERSION_RE = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
OUTPUT_KINDS = ("probabilities", "logits", "images", "reconstruction", "text", "distribution", "scores")
METRIC_KINDS = ("clean", "robustness", "generative", "speech")
MEASURED_BY = ("zoo evaluate", "zoo pack")


def parse_version(version) -> tuple[int, int, int]:
    """``"1.2.3"`` -> ``(1, 2, 3)``; anything else is a :class:`WeightsError`."""
    match = VERSION_RE.match(version) if isinstance(version, str) else None
    if not match:
        raise WeightsError(f"pack version {version!r} is not FORMAT.ARCHITECTURE.RETRAIN (three integers, e.g. '1.0.0')")
    return tuple(int(g) for g in match.groups())


def next_version(previous: dict | None, card: dict) -> str:
    """The version of ``card`` after ``previous`` (a card of the same preset, or ``None``)."""
    if previous is None:
        return f"{PACK_FORMAT}.0.0"
    fmt, arch, retrain = parse_version(previous["version"])
    if fmt != PACK_FORMAT:
        return f"{PACK_FORMAT}.0.0"
    if previous.get("architecture") != card.get("architecture") or previous.get("config") != card.get("config"):
        return f"{fmt}.{arch + 1}.0"
    return f"{fmt}.{arch}.{retrain + 1}"


# -- the schema ---------------------------------------------------------------------------------
_SHA256 = Annotated[str, Match(SHA256_RE, "64 lowercase hex digits")]
_TEXT = Annotated[str, Match(re.compile(r"\S"), "a non-empty string")]


@dataclasses.dataclass(frozen=True)
class _File:
    sha256: _SHA256
    size: Count


@dataclasses.dataclass(frozen=True)
class _Tensor:
    name: _TEXT
    shape: list[Size | None]
    dtype: _TEXT
    range: tuple[float, float] | None = None
    description: str = ""
    kind: Literal[OUTPUT_KINDS] | None = None  # outputs only
    labels: list[str] | None = None


@dataclasses.dataclass(frozen=True)
class _Dataset:
    name: _TEXT
    splits: dict[str, Count]
    sha256: _SHA256
    checksum_of: _TEXT
    source: str = ""
    args: dict[str, Any] | None = None  # the dataset factory's parameters (--dataset-arg) trained and measured with


@dataclasses.dataclass(frozen=True)
class _Versions:
    zoo: _TEXT
    keras: _TEXT
    tensorflow: _TEXT
    python: _TEXT


@dataclasses.dataclass(frozen=True)
class _Recipe:
    command: Annotated[str, Match(re.compile(r"^zoo train "), "the `zoo train ...` command that made the weights")]
    seed: int
    epochs: Size
    train: dict[str, Any]
    cpu_time_s: NonNegative | None
    versions: _Versions
    commit: str | None
    recorded: str = ""
    note: str = ""


@dataclasses.dataclass(frozen=True)
class _Metric:
    name: _TEXT
    value: float
    split: _TEXT
    n: Size
    dataset: _TEXT
    kind: Literal[METRIC_KINDS]
    attack: str | None = None  # robustness metrics: the attack, its eps and parameters
    eps: NonNegative | None = None
    params: dict[str, Any] | None = None
    # "zoo evaluate": `zoo evaluate --weights PACK` reports it under this name; "zoo pack": an attack
    # `zoo pack --attack` ran. seed: what the evaluation's randomness was seeded with (the run's seed).
    measured_by: Literal[MEASURED_BY] | None = None
    seed: int | None = None


@dataclasses.dataclass(frozen=True)
class _Card:
    """card.json, pack format 1."""

    pack_format: int
    name: Annotated[str, Match(NAME_RE, "letters, digits, '.', '-' and '_' (at most 100)")]
    version: Annotated[str, Match(VERSION_RE, "FORMAT.ARCHITECTURE.RETRAIN, three integers")]
    architecture: _TEXT
    config: dict[str, Any]
    parameters: Count
    created: _TEXT
    files: dict[str, _File]
    inputs: list[_Tensor]
    outputs: list[_Tensor]
    dataset: _Dataset
    recipe: _Recipe
    metrics: list[_Metric]
    license: _TEXT
    citation: _TEXT
    intended_use: _TEXT
    limitations: _TEXT
    family: str = ""
    description: str = ""


def validate_card(card, *, where: str = "card") -> dict:
    """Check ``card`` against the pack-format-1 schema (:class:`_Card`, checked by
    :func:`zoo.validate.check`); returns it, or raises a :class:`WeightsError` naming the field."""
    if isinstance(card, dict) and card.get("pack_format") not in (None, PACK_FORMAT):
        raise WeightsError(f"{where}: pack format {card['pack_format']} is not supported by this zoo (it reads format "
                           f"{PACK_FORMAT}); upgrade zoo or use a pack of format {PACK_FORMAT}")
    try:
        parsed = check(_Card, card, f"{where} does not fit the pack card schema")
    except ConfigError as exc:
        raise WeightsError(str(exc)) from None
    problems = [f"files: must list {f}" for f in REQUIRED_FILES if f not in parsed.files]
    problems += [f"files[{f!r}]: a pack file is a plain file name ending in {', '.join(ALLOWED_SUFFIXES)}, "
                 f"not card.json or README.md (rendered from the card)" for f in parsed.files
                 if not NAME_RE.match(f) or not f.endswith(ALLOWED_SUFFIXES) or f in (CARD_FILE, README_FILE)]
    problems += [f"{k}: must describe at least one tensor" for k in ("inputs", "outputs") if not getattr(parsed, k)]
    problems += ["metrics: a pack publishes at least one measured metric"] if not parsed.metrics else []
    problems += [f"metrics[{i}]: a robustness metric names its attack, eps and params" for i, m in enumerate(parsed.metrics)
                 if m.kind == "robustness" and None in (m.attack, m.eps, m.params)]
    problems += [f"outputs[{i}].kind: required" for i, t in enumerate(parsed.outputs) if t.kind is None]
    problems += [f"version: {parsed.version!r}: the first number is the pack format, {PACK_FORMAT}"] \
        if parse_version(parsed.version)[0] != PACK_FORMAT else []
    if problems:
        raise WeightsError(f"{where} does not fit the pack card schema: " + "; ".join(problems))
    return card


# -- the Hugging Face model card ------------------------------------------------------------------
_TASKS = {"classifier": "image-classification", "las": "automatic-speech-recognition", "autoencoder": "image-to-image",
          "vae": "unconditional-image-generation", "gan": "unconditional-image-generation",
          "vaegan": "unconditional-image-generation"}


def render_readme(card: dict) -> str:
    """``README.md`` in the Hugging Face format: YAML front matter (with ``model-index`` results)
    and a Markdown body, both from ``card``."""
    import yaml

    task = _TASKS.get(card.get("family", ""), "other")
    groups: dict[tuple, list] = {}
    for m in card["metrics"]:
        groups.setdefault((m["dataset"], m["split"]), []).append(m)
    results = []
    for (dataset, split), metrics in groups.items():
        results.append({
            "task": {"type": task},
            "dataset": {"name": dataset, "type": dataset, "split": split},
            "metrics": [_hf_metric(m) for m in metrics],
        })
    front = {
        "library_name": "keras",
        "license": card["license"],
        "tags": ["zoo", "keras", "tensorflow", card["architecture"], *([card["family"]] if card.get("family") else [])],
        "datasets": [card["dataset"]["name"]],
        "metrics": sorted({m["name"] for m in card["metrics"]}),
        "model-index": [{"name": f"{card['name']} {card['version']}", "results": results}],
    }
    ds, recipe = card["dataset"], card["recipe"]
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
        f"# {card['name']} {card['version']}", "",
        card.get("description") or f"A `{card['architecture']}` model of the zoo.", "",
        "```python", "from zoo import load", "",
        f"model = load({card['name']!r}, weights=\"pretrained\")  # or weights=\"path/to/this/pack\"",
        "```", "",
        "## Results", "",
        "| metric | value | split | n | dataset | attack |", "| --- | --- | --- | --- | --- | --- |",
        *[f"| {m['name']} | {m['value']:.4f} | {m['split']} | {m['n']} | {m['dataset']} | {_attack_text(m)} |"
          for m in card["metrics"]],
        "",
        *([f"`zoo evaluate --weights <this pack> --json` measures {_evaluated(card)} again, exactly: "
           "it evaluates the same way, seeded with the run's seed.", ""] if _evaluated(card) else []),
        "## Model", "",
        f"- architecture: `{card['architecture']}`, {card['parameters']:,} parameters",
        f"- config: `{_compact(card['config'])}`",
        *[f"- input `{t['name']}`: shape {t['shape']}, {t['dtype']}" + (f", range {t['range']}" if t.get("range") else "")
          + (f" — {t['description']}" if t.get("description") else "") for t in card["inputs"]],
        *[f"- output `{t['name']}`: {t['kind']}, shape {t['shape']}, {t['dtype']}"
          + (f", labels {', '.join(t['labels'])}" if t.get("labels") else "") for t in card["outputs"]],
        "",
        "## Training", "",
        f"- data: `{ds['name']}`" + (f" ({ds['source']})" if ds.get("source") else "")
        + (f", dataset arguments `{_compact(ds['args'])}`" if ds.get("args") else "")
        + ", splits " + ", ".join(f"{k} {v}" for k, v in ds["splits"].items())
        + f"; SHA-256 of the {ds['checksum_of']}: `{ds['sha256']}`",
        f"- command: `{recipe['command']}`",
        f"- seed {recipe['seed']}, {recipe['epochs']} epochs"
        + (f", {recipe['cpu_time_s']:.0f} s CPU time" if recipe.get("cpu_time_s") is not None else ", CPU time not recorded"),
        "- versions: " + ", ".join(f"{k} {v}" for k, v in recipe["versions"].items())
        + (f"; project commit `{recipe['commit']}`" if recipe.get("commit") else ""),
        "",
        "## Intended use", "", card["intended_use"], "",
        "## Limitations", "", card["limitations"], "",
        "## Files", "",
        "| file | SHA-256 | bytes |", "| --- | --- | --- |",
        *[f"| `{f}` | `{e['sha256']}` | {e['size']} |" for f, e in card["files"].items()],
        "",
        "## License and citation", "",
        f"License: {card['license']}.", "", card["citation"], "",
    ]
    return "\n".join(lines)


def _evaluated(card: dict) -> str:
    """The names of the card's metrics that `zoo evaluate` reports, as text."""
    return ", ".join(f"`{m['name']}`" for m in card["metrics"] if m.get("measured_by") == "zoo evaluate")


def _hf_metric(m: dict) -> dict:
    out = {"type": m["name"], "value": m["value"], "name": m["name"]}
    if m["kind"] == "robustness":
        out["name"] = f"{m['name']} under {m['attack']} (eps {m['eps']:g})"
        out["args"] = {"attack": m["attack"], "eps": m["eps"], **m["params"]}
    return out


def _attack_text(m: dict) -> str:
    if m["kind"] != "robustness":
        return ""
    params = ", ".join(f"{k} {v}" for k, v in m["params"].items())
    return f"{m['attack']} ε {m['eps']:g}" + (f" ({params})" if params else "")


def _compact(config: dict) -> str:
    import json

    return json.dumps(config, sort_keys=True, separators=(", ", ": "))


def split_front_matter(text: str) -> tuple[dict, str]:
    """A model card's ``(front matter, Markdown body)``; a :class:`WeightsError` if it has none."""
    import yaml

    if not text.startswith("---\n"):
        raise WeightsError("model card has no YAML front matter (it must start with a '---' line)")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise WeightsError("model card's YAML front matter is not closed by a '---' line")
    front = yaml.safe_load(text[4:end])
    if not isinstance(front, dict):
        raise WeightsError("model card's front matter is not a YAML mapping")
    return front, text[end + 5:]
