"""The pack's card: its schema, the version scheme, and the Hugging Face ``README.md`` rendered from it.

A card (``card.json``) says what a pack holds and how it was made; :func:`validate_card` is the
schema, written as code so each problem names its field (``metrics[1].eps: ...``).

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

import math
import re

from zoo.errors import WeightsError

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
class _Check:
    """Collects problems with the field path of each."""

    def __init__(self):
        self.problems: list[str] = []

    def fail(self, path, message):
        self.problems.append(f"{path}: {message}")

    def field(self, obj, key, path, kinds, *, required=True, nullable=False):
        """``obj[key]`` if it has one of ``kinds``; records a problem (and returns None) otherwise."""
        where = f"{path}.{key}" if path else key
        if key not in obj:
            if required:
                self.fail(where, "required")
            return None
        value = obj[key]
        if value is None and nullable:
            return None
        if isinstance(value, bool) and bool not in kinds:
            self.fail(where, f"expected {_names(kinds)}, got a boolean")
            return None
        if not isinstance(value, kinds):
            self.fail(where, f"expected {_names(kinds)}{' or null' if nullable else ''}, got {type(value).__name__}")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(where, "must be a finite number")
            return None
        return value

    def text(self, obj, key, path, *, required=True, nullable=False):
        value = self.field(obj, key, path, (str,), required=required, nullable=nullable)
        if isinstance(value, str) and not value.strip():
            self.fail(f"{path}.{key}" if path else key, "must not be empty")
            return None
        return value


def _names(kinds):
    names = {str: "a string", int: "an integer", float: "a number", dict: "a mapping", list: "a list", bool: "a boolean"}
    return " or ".join(names.get(k, k.__name__) for k in kinds if not (k is int and float in kinds))


def validate_card(card, *, where: str = "card") -> dict:
    """Check ``card`` against the pack-format-1 schema; returns it, or raises one
    :class:`WeightsError` listing every problem (``where`` names the card's file in the message)."""
    c = _Check()
    if not isinstance(card, dict):
        raise WeightsError(f"{where}: a card must be a JSON object, got {type(card).__name__}")
    fmt = c.field(card, "pack_format", "", (int,))
    if fmt is not None and fmt != PACK_FORMAT:
        raise WeightsError(f"{where}: pack format {fmt} is not supported by this zoo (it reads format {PACK_FORMAT}); "
                           f"upgrade zoo or use a pack of format {PACK_FORMAT}")
    name = c.text(card, "name", "")
    if name is not None and not NAME_RE.match(name):
        c.fail("name", f"{name!r} must be letters, digits, '.', '-' and '_' (at most 100)")
    version = c.text(card, "version", "")
    if version is not None:
        try:
            if parse_version(version)[0] != PACK_FORMAT:
                c.fail("version", f"{version!r}: the first number is the pack format, {PACK_FORMAT}")
        except WeightsError as exc:
            c.fail("version", str(exc))
    c.text(card, "architecture", "")
    c.text(card, "family", "", required=False)
    c.text(card, "description", "", required=False)
    c.field(card, "config", "", (dict,))
    params = c.field(card, "parameters", "", (int,))
    if params is not None and params < 0:
        c.fail("parameters", "must be >= 0")
    c.text(card, "created", "")

    files = c.field(card, "files", "", (dict,))
    if files is not None:
        for required in REQUIRED_FILES:
            if required not in files:
                c.fail("files", f"must list {required}")
        for fname, entry in files.items():
            path = f"files[{fname!r}]"
            if not isinstance(fname, str) or not NAME_RE.match(fname) or not fname.endswith(ALLOWED_SUFFIXES):
                c.fail(path, f"a pack file is a plain file name ending in {', '.join(ALLOWED_SUFFIXES)}")
            if fname in (CARD_FILE, README_FILE):
                c.fail(path, "card.json and README.md are rendered from the card and are not listed")
            if not isinstance(entry, dict):
                c.fail(path, "expected a mapping with sha256 and size")
                continue
            digest = c.field(entry, "sha256", path, (str,))
            if digest is not None and not SHA256_RE.match(digest):
                c.fail(f"{path}.sha256", "expected 64 lowercase hex digits")
            size = c.field(entry, "size", path, (int,))
            if size is not None and size < 0:
                c.fail(f"{path}.size", "must be >= 0")

    for key in ("inputs", "outputs"):
        items = c.field(card, key, "", (list,))
        if items is not None and not items:
            c.fail(key, "must describe at least one tensor")
        for i, item in enumerate(items or []):
            path = f"{key}[{i}]"
            if not isinstance(item, dict):
                c.fail(path, "expected a mapping")
                continue
            c.text(item, "name", path)
            shape = c.field(item, "shape", path, (list,))
            if shape is not None and not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0) for d in shape):
                c.fail(f"{path}.shape", "dimensions are positive integers or null (any size)")
            c.text(item, "dtype", path)
            value_range = c.field(item, "range", path, (list,), required=False, nullable=True)
            if value_range is not None and not (len(value_range) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value_range) and value_range[0] <= value_range[1]):
                c.fail(f"{path}.range", "expected [low, high]")
            c.text(item, "description", path, required=False)
            if key == "outputs":
                kind = c.text(item, "kind", path)
                if kind is not None and kind not in OUTPUT_KINDS:
                    c.fail(f"{path}.kind", f"expected one of {', '.join(OUTPUT_KINDS)}, got {kind!r}")
                labels = c.field(item, "labels", path, (list,), required=False, nullable=True)
                if labels is not None and not all(isinstance(v, str) for v in labels):
                    c.fail(f"{path}.labels", "expected a list of strings")

    dataset = c.field(card, "dataset", "", (dict,))
    if dataset is not None:
        c.text(dataset, "name", "dataset")
        c.text(dataset, "source", "dataset", required=False)
        splits = c.field(dataset, "splits", "dataset", (dict,))
        if splits is not None and not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in splits.values()):
            c.fail("dataset.splits", "expected split name -> number of examples")
        digest = c.field(dataset, "sha256", "dataset", (str,))
        if digest is not None and not SHA256_RE.match(digest):
            c.fail("dataset.sha256", "expected 64 lowercase hex digits")
        c.text(dataset, "checksum_of", "dataset")

    recipe = c.field(card, "recipe", "", (dict,))
    if recipe is not None:
        command = c.text(recipe, "command", "recipe")
        if command is not None and not command.startswith("zoo train "):
            c.fail("recipe.command", "must be the `zoo train ...` command that made the weights")
        c.field(recipe, "seed", "recipe", (int,))
        epochs = c.field(recipe, "epochs", "recipe", (int,))
        if epochs is not None and epochs < 1:
            c.fail("recipe.epochs", "must be >= 1")
        c.field(recipe, "train", "recipe", (dict,))
        cpu = c.field(recipe, "cpu_time_s", "recipe", (int, float), nullable=True)
        if cpu is not None and cpu < 0:
            c.fail("recipe.cpu_time_s", "must be >= 0")
        versions = c.field(recipe, "versions", "recipe", (dict,))
        if versions is not None:
            for key in ("zoo", "keras", "tensorflow", "python"):
                c.text(versions, key, "recipe.versions")
        c.text(recipe, "commit", "recipe", nullable=True)

    metrics = c.field(card, "metrics", "", (list,))
    if metrics is not None and not metrics:
        c.fail("metrics", "a pack publishes at least one measured metric")
    for i, metric in enumerate(metrics or []):
        path = f"metrics[{i}]"
        if not isinstance(metric, dict):
            c.fail(path, "expected a mapping")
            continue
        c.text(metric, "name", path)
        c.field(metric, "value", path, (int, float))
        c.text(metric, "split", path)
        n = c.field(metric, "n", path, (int,))
        if n is not None and n < 1:
            c.fail(f"{path}.n", "must be >= 1")
        c.text(metric, "dataset", path)
        kind = c.text(metric, "kind", path)
        if kind is not None and kind not in METRIC_KINDS:
            c.fail(f"{path}.kind", f"expected one of {', '.join(METRIC_KINDS)}, got {kind!r}")
        if kind == "robustness":
            c.text(metric, "attack", path)
            eps = c.field(metric, "eps", path, (int, float))
            if eps is not None and eps < 0:
                c.fail(f"{path}.eps", "must be >= 0")
            c.field(metric, "params", path, (dict,))

    for key in ("license", "citation", "intended_use", "limitations"):
        c.text(card, key, "")
    if c.problems:
        raise WeightsError(f"{where} does not fit the pack card schema: " + "; ".join(c.problems))
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
