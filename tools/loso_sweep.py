#!/usr/bin/env python
"""Leave-one-speaker-out sweep of a LAS preset on FSDD: one training per held-out speaker.

    nice -n 5 python tools/loso_sweep.py las-fsdd --jobs 1                     # all six folds, one at a time
    nice -n 5 python tools/loso_sweep.py las-fsdd-speaker-adversarial --folds theo --folds george
    python tools/loso_sweep.py las-fsdd --epochs 1 --set listener_units=8 --dataset-arg multi_train=50
    python tools/loso_sweep.py las-fsdd-speaker-adversarial --folds george --step-param lam=0.3 \
        --out runs/loso-exp --benchmark benchmarks/las_loso_experiments.json     # a variant

Fold ``S`` trains the preset on ``fsdd_heldout`` with ``speaker=S`` (the other five speakers) into
``OUT/VARIANT/S`` — exactly ``zoo train PRESET --dataset fsdd_heldout --dataset-arg speaker=S --out
OUT/VARIANT/S``, VARIANT the preset's name, followed by ``+KEY=VALUE`` per ``--set`` /
``--step-param`` override and a ``--seed`` other than 0 — and evaluates CER/WER on all of S's
recordings (single digits and sequences of S's digits) and the speaker probe on three poolings of
``encode()`` (``zoo.models.speaker_probe``; chance 1/5). The fold's figures go to
``OUT/VARIANT/S/fold.json`` (written last), and after every fold the per-fold rows and their means
to ``--benchmark`` (``benchmarks/las_loso.json``) under the preset's name, followed by any ``--set``
(model config) and ``--step-param`` (train step) overrides and a seed other than 0: a variant's key.

Resuming: rerun the same command. A fold whose ``fold.json`` was written with the same settings is
skipped, and so is a fold the benchmark entry already holds for the same settings (a sweep continued
on a fresh checkout, whose run directories are gone); any other fold continues from its run
directory's last epoch checkpoint (``zoo train --out``'s own resume). Each fold runs in a fresh
process (``--jobs N`` of them at once, each limited to cpu_count / N TensorFlow threads, or ``--threads T``); its CPU
time (user + system, tools/timing.py) and wall time are recorded: ``cpu_seconds`` of the attempt
that finished the fold, and ``cpu_seconds_all_attempts`` adding the CPU of the epochs earlier
attempts trained (from ``cpu_ledger.json`` in the run directory; ``None`` when some were trained
outside the sweep).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from processes import in_fresh_processes, limit_threads
from timing import Timer, cpu_seconds

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "fsdd"
DEFAULT_OUT = REPO / "runs" / "loso"
BENCHMARK = REPO / "benchmarks" / "las_loso.json"
FOLD_FILE = "fold.json"
#: Per-epoch CPU seconds of a fold's training, kept across attempts so a resumed fold's total counts
#: the epochs an earlier attempt trained (an interrupted epoch's CPU is lost with the epoch).
LEDGER_FILE = "cpu_ledger.json"
#: evaluate_las metrics averaged over the folds.
AVERAGED = ("cer", "cer_single", "cer_multi", "wer", "wer_single", "wer_multi",
            "speaker_probe_accuracy", "speaker_probe_mean_std", "speaker_probe_frames")


def fold_settings(preset, *, epochs, seed, overrides, dataset_args, data_dir, step_params=None) -> dict:
    """What a finished fold must have been trained with to be skipped."""
    settings = dict(preset=preset, epochs=epochs, seed=seed, overrides=dict(overrides or {}),
                    dataset_args={k: v for k, v in (dataset_args or {}).items() if k != "speaker"},
                    data_dir=None if data_dir is None else str(Path(data_dir).resolve()))
    if step_params:  # only when given, so folds finished before the option existed still match
        settings["step_params"] = dict(step_params)
    return settings


def variant_name(preset, overrides=None, step_params=None, seed=0) -> str:
    """The benchmark key: the preset, then every override and step parameter, then a seed other
    than 0 (``las-fsdd vtlp=0.1``, ``las-fsdd seed=1``)."""
    changes = {**(overrides or {}), **(step_params or {}), **({"seed": seed} if seed else {})}
    return " ".join([preset, *(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in changes.items())])


def variant_dir(key) -> str:
    """The directory of a variant's folds: its benchmark key with ``+`` for spaces and ``_`` for
    anything a file name should not hold (a preset as is: its own name)."""
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", key.replace(" ", "+"))


def recipe_with(preset, step_params):
    """The preset's training recipe with ``step_params`` merged into its step parameters (None: as is)."""
    import dataclasses

    from zoo.api import resolve

    if not step_params:
        return None
    recipe = dataclasses.asdict(resolve(preset)[1].train)
    recipe["step_params"] = {**recipe["step_params"], **step_params}
    return recipe


def speakers_of(data_dir) -> list[str]:
    from zoo.data.audio import FSDD_SPEAKERS, fsdd_files

    return fsdd_files(data_dir)[1] if data_dir is not None else list(FSDD_SPEAKERS)


def cpu_ledger(fold_dir, start_cpu):
    """A Keras callback writing each finished epoch's CPU seconds (since ``start_cpu`` or the
    previous epoch; the first epoch of an attempt includes its set-up) to ``LEDGER_FILE``."""
    import keras

    from zoo.training.checkpoint import atomic_write_text

    path = Path(fold_dir) / LEDGER_FILE

    class Ledger(keras.callbacks.Callback):
        last = start_cpu

        def on_epoch_end(self, epoch, logs=None):
            now = cpu_seconds()
            epochs = read_ledger(fold_dir)
            epochs[str(epoch + 1)] = round(now - self.last, 2)
            self.last = now
            atomic_write_text(path, json.dumps({"epoch_cpu_seconds": epochs}))

    return Ledger()


def read_ledger(fold_dir) -> dict:
    try:
        return json.loads((Path(fold_dir) / LEDGER_FILE).read_text())["epoch_cpu_seconds"]
    except (OSError, ValueError, KeyError):
        return {}


def run_fold(speaker, fold_dir, settings, threads=None) -> dict:
    """Train and evaluate one fold in this process; write and return its ``fold.json`` record."""
    limit_threads(threads)
    from zoo.training.checkpoint import atomic_write_text
    from zoo.training.fit import train

    load_before = os.getloadavg()
    with Timer() as timer:
        result = train(settings["preset"], epochs=settings["epochs"], data_dir=settings["data_dir"],
                       dataset="fsdd_heldout", dataset_args={**settings["dataset_args"], "speaker": speaker},
                       overrides=settings["overrides"], recipe=recipe_with(settings["preset"], settings.get("step_params")),
                       seed=settings["seed"], out=fold_dir, verbose=2,
                       callbacks=[cpu_ledger(fold_dir, timer.cpu)])  # inside the block timer.cpu is the start
    speakers = speakers_of(settings["data_dir"])
    ledger = read_ledger(fold_dir)
    earlier = [ledger.get(str(e)) for e in range(1, result.initial_epoch + 1)]  # the checkpoint's epochs
    fold = dict(
        settings=settings, speaker=speaker,
        metrics={k: round(float(v), 4) for k, v in result.metrics.items()},
        probe_chance=round(1 / (len(speakers) - 1), 4),
        epochs_trained=len(result.history.get("loss", [])), resumed_from_epoch=result.initial_epoch,
        final_train_loss=round(result.history["loss"][-1], 4) if result.history.get("loss") else None,
        cpu_seconds=round(timer.cpu, 1), wall_seconds=round(timer.wall, 1),
        # this attempt plus the epochs earlier attempts trained; None if an epoch's CPU is unknown
        # (trained outside the sweep, e.g. by zoo train itself)
        cpu_seconds_all_attempts=round(timer.cpu + sum(earlier), 1) if None not in earlier else None,
        threads=threads, load_average_before=[round(x, 2) for x in load_before],
        load_average_after=[round(x, 2) for x in os.getloadavg()], run_dir=str(fold_dir),
    )
    atomic_write_text(Path(fold_dir) / FOLD_FILE, json.dumps(fold, indent=1))
    return fold


def finished(fold_dir, settings) -> dict | None:
    """The fold's record if it finished with these settings, else ``None``."""
    path = Path(fold_dir) / FOLD_FILE
    if not path.exists():
        return None
    try:
        fold = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a damaged record: the fold is evaluated again (its training resumes)
    return fold if fold.get("settings") == settings else None


def recorded(benchmark, key, settings) -> dict:
    """The fold rows ``benchmark`` already holds under ``key`` for exactly these settings."""
    try:
        entry = json.loads(Path(benchmark).read_text())["runs"][key]
    except (OSError, ValueError, KeyError):
        return {}
    return dict(entry.get("folds") or {}) if entry.get("settings") == settings else {}


def summarize(preset, folds: dict, speakers, settings, command) -> dict:
    """The benchmark entry: one row per finished fold, means over them, total CPU."""
    rows = {s: folds[s] for s in speakers if s in folds}
    mean, spread = {}, {}
    for key in AVERAGED:
        values = [r["metrics"][key] for r in rows.values() if key in r["metrics"]]
        if values:
            m = sum(values) / len(values)
            mean[key] = round(m, 4)
            # between-fold spread: how far one fold (the earlier single-speaker figures) can be from the mean
            spread[key] = dict(min=min(values), max=max(values),
                               std=round((sum((v - m) ** 2 for v in values) / len(values)) ** 0.5, 4))
    return dict(
        preset=preset, dataset="fsdd_heldout", settings=settings,
        complete=len(rows) == len(speakers), folds_done=len(rows), folds_missing=[s for s in speakers if s not in rows],
        mean=mean, spread=spread,
        folds={s: dict(metrics=r["metrics"], probe_chance=r["probe_chance"], cpu_seconds=r["cpu_seconds"],
                       cpu_seconds_all_attempts=r.get("cpu_seconds_all_attempts"), wall_seconds=r["wall_seconds"],
                       epochs_trained=r["epochs_trained"],
                       resumed_from_epoch=r["resumed_from_epoch"], final_train_loss=r["final_train_loss"],
                       threads=r["threads"], load_average_before=r["load_average_before"],
                       run_dir=r["run_dir"]) for s, r in rows.items()},
        cpu_seconds=round(sum(r["cpu_seconds"] for r in rows.values()), 1),
        cpu_seconds_all_attempts=(round(sum(r["cpu_seconds_all_attempts"] for r in rows.values()), 1)
                                  if all(r.get("cpu_seconds_all_attempts") is not None for r in rows.values())
                                  else None),
        cpu_note="process CPU seconds (user + system) of the attempt that finished each fold; "
                 "_all_attempts adds the epochs earlier attempts trained (None: some were trained outside "
                 "the sweep); CPU-seconds / 2 approximates time on two dedicated cores",
        command=command,
    )


def write_benchmark(path, key, entry) -> None:
    from zoo.training.checkpoint import atomic_write_text

    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("runs", {})[key] = entry
    atomic_write_text(path, json.dumps(data, indent=1))


def sweep(preset, *, folds=None, jobs=1, threads=None, epochs=None, data_dir=DEFAULT_DATA, out=DEFAULT_OUT,
          benchmark=BENCHMARK, seed=0, overrides=None, dataset_args=None, step_params=None, command="") -> dict:
    """Run the missing folds of ``preset`` (all six by default) and return the benchmark entry, kept
    in ``benchmark`` under :func:`variant_name`."""
    from zoo.api import resolve
    from zoo.errors import ConfigError

    spec, _ = resolve(preset)  # an unknown preset fails here, before any process starts
    if spec.family != "las":
        raise ConfigError(f"{preset!r} is a {spec.family} model; the sweep trains LAS presets on fsdd_heldout")
    if jobs < 1 or (threads is not None and threads < 1):
        raise ConfigError(f"--jobs and --threads must be at least 1, got {jobs} and {threads}")
    if "speaker" in (dataset_args or {}):
        raise ConfigError("the sweep sets the speaker of each fold; choose folds with --folds, not --dataset-arg speaker=")
    speakers = speakers_of(data_dir)
    folds = list(folds or speakers)
    unknown = [f for f in folds if f not in speakers]
    if unknown:
        raise ConfigError(f"unknown fold(s) {', '.join(unknown)}; the speakers are {', '.join(speakers)}")
    settings = fold_settings(preset, epochs=epochs, seed=seed, overrides=overrides, dataset_args=dataset_args,
                             data_dir=data_dir, step_params=step_params)
    key = variant_name(preset, overrides, step_params, seed)
    root = Path(out) / variant_dir(key)  # variants of one preset never resume each other's folds
    done = {**recorded(benchmark, key, settings),
            **{s: f for s in speakers if (f := finished(root / s, settings))}}
    todo = [s for s in folds if s not in done]
    for s in folds:
        if s in done:
            print(f"[loso] {preset} fold {s}: finished earlier (CER {done[s]['metrics'].get('cer')}), skipped", flush=True)
    failures = {}
    for s in todo:
        print(f"[loso] {preset} fold {s}: training into {root / s}", flush=True)
    calls = {s: (run_fold, s, str(root / s), settings) for s in todo}
    for s, fold, error in in_fresh_processes(calls, jobs, threads):
        if error:  # one failed fold must not lose the others' figures
            failures[s] = error
            print(f"[loso] {preset} fold {s}: FAILED: {error}", flush=True)
            continue
        done[s] = fold
        print(f"[loso] {preset} fold {s}: CER {fold['metrics'].get('cer')} "
              f"({fold['cpu_seconds']} CPU s, {fold['wall_seconds']} s wall)", flush=True)
        write_benchmark(benchmark, key, summarize(preset, done, speakers, settings, command))
    entry = summarize(preset, done, speakers, settings, command)
    entry["failed"] = failures
    write_benchmark(benchmark, key, entry)
    return entry


def main(argv=None) -> int:
    from zoo.cli import parse_set
    from zoo.errors import ZooError

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("preset", help="las-fsdd, las-fsdd-speaker-adversarial, ...")
    parser.add_argument("--folds", action="append", default=[], metavar="SPEAKER[,SPEAKER]",
                        help="held-out speakers to run (default: all six); repeatable or comma-separated")
    parser.add_argument("--jobs", type=int, default=1, help="folds trained at once, each in its own process")
    parser.add_argument("--threads", type=int, help="TensorFlow threads per fold (default: cpu_count / jobs)")
    parser.add_argument("--epochs", type=int, help="replace the preset's epochs (default: its schedule)")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="FSDD recordings (default ../shared/data/fsdd)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="sweep directory: OUT/VARIANT/SPEAKER per fold")
    parser.add_argument("--benchmark", default=str(BENCHMARK), help="JSON file the per-fold and mean figures go to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model config override")
    parser.add_argument("--step-param", action="append", default=[], metavar="KEY=VALUE",
                        help="train step parameter override (YAML value), e.g. lam=0.5 or 'head_params={pool: mean_std}'")
    parser.add_argument("--dataset-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="further fsdd_heldout parameters (multi_train, multi_test)")
    args = parser.parse_args(argv)
    folds = [f.strip() for group in args.folds for f in group.split(",") if f.strip()]
    start = time.time()
    try:
        entry = sweep(args.preset, folds=folds, jobs=args.jobs, threads=args.threads, epochs=args.epochs,
                      data_dir=args.data_dir, out=args.out, benchmark=args.benchmark, seed=args.seed,
                      overrides=parse_set(args.set),
                      dataset_args=parse_set(args.dataset_arg, "--dataset-arg"),
                      step_params=parse_set(args.step_param, "--step-param"),
                      command=" ".join(["python tools/loso_sweep.py", *(argv if argv is not None else sys.argv[1:])]))
    except ZooError as exc:
        print(f"loso_sweep: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(dict(preset=entry["preset"], folds_done=entry["folds_done"], mean=entry["mean"],
                          cpu_seconds=entry["cpu_seconds"], wall_seconds=round(time.time() - start, 1),
                          failed=entry["failed"])))
    return 1 if entry["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
