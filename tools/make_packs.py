#!/usr/bin/env python
"""Train every preset and pack it into the packs the zoo ships: the one regeneration command.

    nice -n 10 python tools/make_packs.py                          # every preset of registry.yaml
    nice -n 10 python tools/make_packs.py --presets convnet-digits,vae-digits --jobs 2
    python tools/make_packs.py --presets convnet-digits --epochs 1 --out /tmp/packs --summary /tmp/packs.json

Preset ``P`` is trained exactly as ``zoo train P --out RUNS/P`` (``--data-dir DATA/<dataset>`` when
that folder exists, e.g. ``../shared/data/mnist`` for ``mnist`` and ``mnist_noise``; the embedded
``digits`` and ``tones`` need none), each training in a fresh process (``--jobs N`` at once, each
limited to cpu_count / N TensorFlow threads). Its wall and CPU time go to ``RUNS/P/trained.json``,
written last. Then ``zoo.packs.make_pack`` measures the run on the pack's own weights (classifiers
also under PGD, see ``ROBUSTNESS``) and the new pack replaces ``OUT/P/`` — only once it is complete:
it is built in a hidden staging directory inside ``OUT`` and moved into place by ``rename``. If its
weights, config and metrics equal the pack already there, the old pack is kept as it is.

Resuming: rerun the same command. A preset whose ``trained.json`` records the same settings is not
trained again; any other continues from its run directory's last epoch (``zoo train --out``'s own
resume). A failing preset is reported and the others go on; the exit status is then 1.

``--out`` defaults to the shipped packs, ``zoo/packs/shipped/<preset>/``, which the built-in plugin
``zoo.packs.shipped`` offers through ``zoo_weights()``. ``--epochs`` (a schedule that is not the
preset's, for smoke tests) is refused there, so a shortened run never becomes a shipped pack. All
packs in ``OUT`` together must stay under ``BUDGET_BYTES`` (32 MiB): a pack that would exceed it is
not installed. The summary — every pack's size and files, the total, each card's metrics, the
training times, and how long each pack takes to load in a fresh process once TensorFlow is imported
(offline, empty cache: ``load_seconds``) — goes to ``--summary`` (``benchmarks/packs.json``).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from processes import in_fresh_processes, limit_threads
from timing import Timer

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "zoo" / "packs" / "shipped"
DEFAULT_RUNS = REPO / "runs" / "packs"
DEFAULT_DATA = REPO.parent / "shared" / "data"
SUMMARY = REPO / "benchmarks" / "packs.json"
#: What every shipped pack together may weigh (issue 11: the wheel stays small enough to install).
BUDGET_BYTES = 32 * 2**20
TRAINED_FILE = "trained.json"
STAGING_PREFIX = ".staging-"
#: The robustness metric on a classifier's card, by dataset: ``(PGD parameters, test images)``.
#: MNIST: the issue's PGD-100 with 5 restarts at ε 0.3 on 1,000 images; the 8×8 digits: the ε their
#: PGD-trained preset is trained at, on the whole test split (360 images).
_PGD_MNIST = dict(eps=0.3, steps=100, step_size=0.01, random_start=True, restarts=5)
_PGD_DIGITS = dict(eps=0.1, steps=20, step_size=0.01, random_start=True)
ROBUSTNESS = {"mnist": (_PGD_MNIST, 1000), "mnist_noise": (_PGD_MNIST, 1000),
              "digits": (_PGD_DIGITS, 1000), "digits_noise": (_PGD_DIGITS, 1000)}


def all_presets() -> list[str]:
    """Every preset of the registry in use, in its order."""
    from zoo.registry import load_registry

    return list(load_registry())


def data_dir_for(dataset: str, root) -> str | None:
    """``root/<dataset's first word>`` if that folder exists (``mnist_noise`` reads ``mnist``), else
    ``None``: embedded data, or TFDS on a connected machine."""
    if root is None:
        return None
    folder = Path(root) / dataset.split("_")[0]
    return str(folder) if folder.is_dir() else None


def train_settings(preset, *, epochs, seed, data_dir) -> dict:
    """What a finished run must have been trained with to be skipped."""
    return dict(preset=preset, epochs=epochs, seed=seed, data_dir=data_dir)


def finished(run_dir, settings) -> dict | None:
    """The run's ``trained.json`` if it finished with these settings, else ``None``."""
    try:
        record = json.loads((Path(run_dir) / TRAINED_FILE).read_text())
    except (OSError, ValueError):
        return None  # none, or damaged: train() resumes or merely re-evaluates the run
    return record if record.get("settings") == settings else None


def train_preset(run_dir, settings, threads=None) -> dict:
    """Train one preset into ``run_dir`` in this process; write and return its ``trained.json``."""
    limit_threads(threads)
    from zoo.files import atomic_write_text
    from zoo.training.fit import train

    with Timer() as timer:
        result = train(settings["preset"], epochs=settings["epochs"], data_dir=settings["data_dir"],
                       seed=settings["seed"], out=run_dir, verbose=2)
    record = dict(
        settings=settings, threads=threads,
        epochs_trained=max((len(v) for v in result.history.values()), default=result.initial_epoch) - result.initial_epoch,
        resumed_from_epoch=result.initial_epoch,
        wall_seconds=round(timer.wall, 1), cpu_seconds=round(timer.cpu, 1),
    )
    atomic_write_text(Path(run_dir) / TRAINED_FILE, json.dumps(record, indent=1))
    return record


def pack_bytes(directory) -> int:
    """The bytes of the files in a pack directory."""
    return sum(p.stat().st_size for p in Path(directory).iterdir() if p.is_file())


def same_pack(old_dir: Path, new_dir: Path) -> bool:
    """Whether two packs hold the same config, weight values and measured metrics (their versions,
    times and HDF5 bookkeeping bytes aside)."""
    import numpy as np

    from zoo.packs import CONFIG_FILE, WEIGHTS_FILE, verify_pack
    from zoo.packs.weights_io import weight_arrays

    old_card, new_card = verify_pack(old_dir), verify_pack(new_dir)
    if old_card["files"][CONFIG_FILE] != new_card["files"][CONFIG_FILE] or old_card["metrics"] != new_card["metrics"]:
        return False
    old, new = weight_arrays(old_dir / WEIGHTS_FILE), weight_arrays(new_dir / WEIGHTS_FILE)
    return old.keys() == new.keys() and all(np.array_equal(old[k], new[k]) for k in old)


def install(new_dir: Path, target: Path) -> None:
    """Put the complete pack ``new_dir`` at ``target`` by ``rename``, replacing any pack there; on
    failure the old pack is put back."""
    old = None
    if target.exists():
        old = replaced(target)
        os.rename(target, old)
    try:
        os.chmod(new_dir, 0o755)  # a staging directory is private; a shipped pack is read by everyone
        os.rename(new_dir, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old)


def pack_preset(preset, run_dir, out: Path, data_dir) -> tuple[str, dict]:
    """Pack the run of ``preset`` into ``out/<preset>``; returns ``(status, card)`` with status
    ``installed`` or ``unchanged`` (the pack there already holds these weights and metrics)."""
    from zoo.api import resolve
    from zoo.packs import CARD_FILE, WeightsError, make_pack, verify_pack
    from zoo.packs.build import AttackSpec
    from zoo.packs.shipped import shipped_packs

    spec, entry = resolve(preset)
    attacks = []
    if spec.family == "classifier" and entry.dataset in ROBUSTNESS:
        params, n = ROBUSTNESS[entry.dataset]
        attacks.append(AttackSpec("pgd", params, n))
    target = out / preset
    out.mkdir(parents=True, exist_ok=True)
    recover(out, preset)
    previous = target if (target / CARD_FILE).exists() else None
    staging = Path(tempfile.mkdtemp(dir=out, prefix=f"{STAGING_PREFIX}{preset}-"))
    try:
        result = make_pack(run_dir, staging, previous=previous, data_dir=data_dir, attacks=attacks)
        if previous is not None and same_pack(previous, result.directory):
            return "unchanged", verify_pack(previous)
        others = sum(pack_bytes(d) for p, d in shipped_packs(out).items() if p != preset)
        size = pack_bytes(result.directory)
        if others + size > BUDGET_BYTES:
            raise WeightsError(f"{preset}'s pack ({size / 2**20:.2f} MiB) would make the packs in {out} "
                              f"{(others + size) / 2**20:.2f} MiB, over the {BUDGET_BYTES / 2**20:g} MiB budget; "
                              f"not installed (make the preset smaller, or drop a pack)")
        install(result.directory, target)
        return "installed", result.card
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def recover(out: Path, preset: str) -> None:
    """Clean up after a run of this tool that was killed while packing ``preset``: delete its staging
    directories, and undo an :func:`install` that died between its two renames (put the old pack
    back if no pack took its place, else delete it)."""
    for stale in out.glob(f"{STAGING_PREFIX}{preset}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    old = replaced(out / preset)
    if old.exists():
        if (out / preset).exists():
            shutil.rmtree(old)
        else:
            os.rename(old, out / preset)


def replaced(target: Path) -> Path:
    """Where :func:`install` keeps the pack it replaces until the new one is in place (hidden, so
    the shipped-packs plugin never offers it)."""
    return target.with_name(f".replaced+{target.name}")


def load_seconds(preset, weights, threads=None) -> float:
    """Seconds ``load(preset, weights=weights)`` takes in this (fresh) process once TensorFlow is
    imported, offline (``ZOO_OFFLINE=1``) and with an empty cache: what a user's first load costs."""
    limit_threads(threads)
    os.environ["ZOO_OFFLINE"] = "1"
    os.environ["ZOO_CACHE_DIR"] = tempfile.mkdtemp(prefix="zoo-cache-")
    try:
        importlib.import_module("tensorflow")  # its import is not the load's cost
        from zoo import load

        start = time.perf_counter()
        load(preset, weights=weights)
        return round(time.perf_counter() - start, 2)
    finally:
        shutil.rmtree(os.environ["ZOO_CACHE_DIR"], ignore_errors=True)


def load_times(out: Path, presets) -> dict:
    """:func:`load_seconds` of each pack in ``out``, one fresh process at a time (the shipped ones
    as ``weights="pretrained"``, through the built-in plugin; others by their directory)."""
    shipped = out.resolve() == SHIPPED.resolve()
    calls = {p: (load_seconds, p, "pretrained" if shipped else str(out / p)) for p in presets}
    times = {}
    for p, seconds, error in in_fresh_processes(calls, jobs=1):
        times[p] = seconds if error is None else error
    return times


def summarize(out: Path, runs: Path, command: str, statuses: dict, failures: dict) -> dict:
    """Every pack in ``out``: its size, files, version and card metrics, and its run's times."""
    from zoo.packs import verify_pack
    from zoo.packs.shipped import shipped_packs

    packs = {}
    found = shipped_packs(out)
    loads = load_times(out, list(found))
    for preset, directory in found.items():
        card = verify_pack(directory)
        files = {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()}
        metrics = [{k: m[k] for k in ("name", "value", "split", "n", "dataset", "kind", "attack", "eps") if k in m}
                   for m in card["metrics"]]
        trained = _read(runs / preset / TRAINED_FILE)
        packs[preset] = dict(
            version=card["version"], bytes=sum(files.values()), files=files, parameters=card["parameters"],
            metrics=metrics, status=statuses.get(preset, "not rebuilt by this command"),
            load_seconds=loads[preset],
            training=dict(epochs=card["recipe"]["epochs"], command=card["recipe"]["command"],
                          fit_cpu_seconds_all_sessions=card["recipe"].get("cpu_time_s"),
                          **{k: trained[k] for k in ("wall_seconds", "cpu_seconds", "epochs_trained") if k in trained}),
        )
    total = sum(p["bytes"] for p in packs.values())
    return dict(
        out=str(out), budget_bytes=BUDGET_BYTES, total_bytes=total, total_mib=round(total / 2**20, 3),
        within_budget=total <= BUDGET_BYTES, packs=packs, failed=failures, command=command,
        load_note="load_seconds: load(preset, weights=...) in a fresh process after TensorFlow's import, "
                  "ZOO_OFFLINE=1, empty cache (issue 11: at most 3 s); a string is the error it raised",
        time_note="training.wall_seconds / cpu_seconds: the session of this tool that finished the run "
                  "(process CPU, user + system, including evaluation); fit_cpu_seconds_all_sessions: "
                  "zoo train's fit over every session (the card's recipe.cpu_time_s)",
    )


#: The README's table of the shipped packs sits between these lines; make_packs rewrites it from the
#: cards, so the README quotes them rather than keeping a copy of its own.
README = REPO / "README.md"
TABLE_BEGIN = "<!-- packs: written by tools/make_packs.py from the shipped cards -->"
TABLE_END = "<!-- /packs -->"
#: Card metrics the table leaves out: losses, a bound's terms, a discriminator's outputs (and word
#: error rates, beside the character error rates of the same transcripts).
TABLE_SKIP = ("loss", "reconstruction", "kl", "confidence", "d_real", "d_fake")
PERCENT = ("accuracy", "cer", "wer", "probe")


def metric_text(metric: dict) -> str:
    """One card metric as the table shows it: ``adv_accuracy (PGD-100 × 5, ε 0.3) 91.20%``."""
    name, value = metric["name"], metric["value"]
    text = f"{100 * value:.2f}%" if any(w in name for w in PERCENT) else f"{value:.4g}"
    if metric.get("attack"):
        params = metric.get("params") or {}
        steps = f"-{params['steps']}" if (params.get("steps") or 1) > 1 else ""
        restarts = f" × {params['restarts']}" if (params.get("restarts") or 1) > 1 else ""
        name += f" ({metric['attack'].upper()}{steps}{restarts}, ε {metric['eps']:g})"
    return f"{name} {text}"


def readme_table(out: Path = SHIPPED) -> str:
    """The Markdown table of the packs in ``out``: version, size, headline card metrics (test split,
    with the number of examples), training epochs and CPU time."""
    from zoo.packs import verify_pack
    from zoo.packs.shipped import shipped_packs

    rows = ["| pack | version | size | card metrics (test split) | trained |", "| --- | --- | --- | --- | --- |"]
    for preset, directory in shipped_packs(out).items():
        card = verify_pack(directory)
        shown = [m for m in card["metrics"] if m["name"] not in TABLE_SKIP and not m["name"].endswith("_loss")
                 and not m["name"].startswith("wer")]
        by_n = {}
        for m in shown:
            by_n.setdefault(m["n"], []).append(metric_text(m))
        metrics = "; ".join(f"{', '.join(texts)} ({n:,} examples)" for n, texts in by_n.items())
        cpu = card["recipe"].get("cpu_time_s")
        trained = f"{card['recipe']['epochs']} epochs" + (f", {cpu:,.0f} CPU-s" if cpu is not None else "")
        rows.append(f"| `{preset}` | {card['version']} | {pack_bytes(directory) / 2**20:.2f} MiB | {metrics} | {trained} |")
    return "\n".join(rows)


def update_readme(table: str, readme: Path = README) -> bool:
    """Put ``table`` between the README's markers; ``False`` if it has none (nothing is written)."""
    from zoo.files import atomic_write_text

    text = readme.read_text(encoding="utf-8")
    begin, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if begin < 0 or end < begin:
        return False
    new = text[:begin + len(TABLE_BEGIN)] + "\n" + table + "\n" + text[end:]
    if new != text:
        atomic_write_text(readme, new)
    return True


def _read(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def make_packs(presets=None, *, jobs=1, runs=DEFAULT_RUNS, data_dir=DEFAULT_DATA, out=SHIPPED, epochs=None,
               seed=0, summary=SUMMARY, command="") -> dict:
    """Train (or resume) and pack ``presets`` (default: every preset); returns the summary."""
    from zoo.api import resolve
    from zoo.errors import ConfigError
    from zoo.files import atomic_write_text

    presets = list(presets or all_presets())
    for preset in presets:  # an unknown name fails here, before any process starts
        if resolve(preset)[1] is None:
            raise ConfigError(f"{preset!r} is an architecture, not a preset; packs are made for presets")
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    out, runs = Path(out), Path(runs)
    if epochs is not None and out.resolve() == SHIPPED.resolve():
        raise ConfigError(f"--epochs {epochs} is not the presets' schedule, so its packs may not be shipped; "
                          f"give another --out for a smoke test")
    from zoo.registry import load_registry

    registry = load_registry()
    settings = {p: train_settings(p, epochs=epochs, seed=seed,
                                  data_dir=data_dir_for(registry[p].dataset, data_dir)) for p in presets}
    done = {p: r for p in presets if (r := finished(runs / p, settings[p]))}
    for p in done:
        print(f"[packs] {p}: trained earlier ({done[p]['wall_seconds']} s wall), not retrained", flush=True)
    statuses, failures = {}, {}

    def pack(p):
        try:
            statuses[p], card = pack_preset(p, runs / p, out, settings[p]["data_dir"])
        except Exception as exc:  # one failed preset must not lose the others' packs
            failures[p] = f"packing: {type(exc).__name__}: {' '.join(str(exc).split())}"  # one line
            print(f"[packs] {p}: FAILED {failures[p]}", flush=True)
            return
        shown = ", ".join(f"{m['name']}{'(' + m['attack'] + ')' if m.get('attack') else ''}={m['value']:.4f}"
                          for m in card["metrics"])
        print(f"[packs] {p}: {statuses[p]} {out / p} ({card['version']}): {shown}", flush=True)

    todo = [p for p in presets if p not in done]
    for p in todo:
        print(f"[packs] {p}: training into {runs / p}", flush=True)
    trainings = in_fresh_processes({p: (train_preset, str(runs / p), settings[p]) for p in todo}, jobs)
    for p in [p for p in presets if p in done]:  # while the trainings run
        pack(p)
    for p, record, error in trainings:
        if error:
            failures[p] = f"training: {error}"
            print(f"[packs] {p}: FAILED {failures[p]}", flush=True)
            continue
        print(f"[packs] {p}: trained ({record['wall_seconds']} s wall, {record['cpu_seconds']} CPU s)", flush=True)
        pack(p)
    result = summarize(out, runs, command, statuses, failures)
    if out.resolve() == SHIPPED.resolve() and not update_readme(readme_table(out)):
        print(f"[packs] {README} has no {TABLE_BEGIN!r} ... {TABLE_END!r} block; its table was not updated", flush=True)
    if summary is not None:
        Path(summary).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(summary), json.dumps(result, indent=1) + "\n")
    return result


def main(argv=None) -> int:
    from zoo.errors import ZooError

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", help="comma-separated presets (default: every preset in the registry)")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once, each in its own process (default 1)")
    parser.add_argument("--runs", default=str(DEFAULT_RUNS), help="training run directories, RUNS/PRESET (resumable)")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA),
                        help="data root: DATA/mnist, DATA/fsdd (default ../shared/data); embedded data needs none")
    parser.add_argument("--out", default=str(SHIPPED), help="pack directory, OUT/PRESET (default: the shipped packs)")
    parser.add_argument("--summary", default=str(SUMMARY), help="JSON summary (default benchmarks/packs.json)")
    parser.add_argument("--epochs", type=int, help="smoke tests only: replace every preset's epochs (refused for the shipped packs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    presets = [p.strip() for p in (args.presets or "").split(",") if p.strip()]
    start = time.time()
    try:
        result = make_packs(presets, jobs=args.jobs, runs=args.runs, data_dir=args.data_dir, out=args.out,
                            epochs=args.epochs, seed=args.seed, summary=args.summary,
                            command=" ".join(["python tools/make_packs.py", *(argv if argv is not None else sys.argv[1:])]))
    except ZooError as exc:
        print(f"make_packs: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(dict(packs=len(result["packs"]), total_mib=result["total_mib"], failed=result["failed"],
                          wall_seconds=round(time.time() - start, 1))))
    if not result["within_budget"]:
        print(f"make_packs: error: the packs in {result['out']} hold {result['total_mib']} MiB, over the "
              f"{BUDGET_BYTES / 2**20:g} MiB budget", file=sys.stderr)
        return 1
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
