#!/usr/bin/env python
"""Check the shipped packs the way a user would meet them: every card metric measured again through
the CLI, and every pack's first load timed.

    python tools/check_packs.py --data-dir ../shared/data          # metrics and load times, every pack
    python tools/check_packs.py --presets convnet-mnist --data-dir ../shared/data
    python tools/check_packs.py --load-only                        # no data: e.g. in a fresh venv after `pip install .`

The packs are the ones the installed zoo ships (the built-in plugin ``zoo.packs.shipped``), so run
from a fresh venv this checks what ``pip install .`` installed. A card metric ``zoo evaluate``
measured is compared with ``zoo evaluate PACK --json``; a robustness metric ``zoo pack`` measured
with ``zoo attack PACK --attack A`` and the card's ε, parameters, number of images and seed. Each
command runs as a subprocess with ``ZOO_OFFLINE=1``. A metric agrees when it is equal to 6 decimals,
or — for a fraction (accuracy, CER) — within 0.1 pp (issue 11's tolerance where evaluation has
randomness). Load time: ``load(preset, weights="pretrained")`` in a fresh process after TensorFlow's
import, offline, empty cache (``make_packs.load_seconds``; issue 11: at most 3 s).

The report goes to ``--report`` (default ``benchmarks/packs_check.json``; ``-`` for none), each
pack's entry naming the command that checked it; with ``--presets`` the other packs' entries already
in the report are kept. The exit status is 1 if any metric disagrees or any load fails or takes
over 3 s.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from make_packs import DEFAULT_DATA, data_dir_for, load_seconds
from processes import in_fresh_processes

REPO = Path(__file__).resolve().parent.parent
REPORT = REPO / "benchmarks" / "packs_check.json"
LOAD_LIMIT_S = 3.0
FRACTION_TOLERANCE = 0.001  # 0.1 pp
#: Metrics that are fractions of examples (the others, −ELBO nats or a Fréchet distance, must be equal).
FRACTIONS = ("accuracy", "cer", "wer", "probe")


def zoo_json(*args) -> dict:
    """The JSON last line of ``zoo ARGS --json``, run offline in a subprocess (a failure raises with
    its stderr's last lines)."""
    env = dict(os.environ, ZOO_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "zoo", *map(str, args), "--json"], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"zoo {' '.join(map(str, args))} exited {proc.returncode}: "
                           + " | ".join(proc.stderr.strip().splitlines()[-3:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def attack_args(metric: dict) -> list:
    """``zoo attack`` options that repeat a card's robustness metric."""
    args = ["--attack", metric["attack"], "--eps", metric["eps"], "--n", metric["n"], "--seed", metric.get("seed", 0)]
    for key, value in (metric.get("params") or {}).items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    return args


def agrees(name: str, card_value: float, measured: float) -> bool:
    if round(card_value, 6) == round(measured, 6):
        return True
    return any(word in name for word in FRACTIONS) and abs(card_value - measured) <= FRACTION_TOLERANCE + 1e-12


def check_metrics(preset: str, directory: Path, data_root) -> list[dict]:
    """Every metric on the pack's card against the CLI's measurement of the pack."""
    from zoo.packs import verify_pack

    card = verify_pack(directory)
    data_dir = data_dir_for(card["dataset"]["name"], data_root)
    where = ["--weights", directory] + (["--data-dir", data_dir] if data_dir else [])
    evaluated, attacked, rows = None, {}, []
    for metric in card["metrics"]:
        by = metric.get("measured_by")
        if by == "zoo evaluate":
            evaluated = evaluated if evaluated is not None else zoo_json("evaluate", *where)
            measured = evaluated.get(metric["name"])
        elif by == "zoo pack" and metric.get("attack"):
            args = tuple(attack_args(metric))
            if args not in attacked:
                attacked[args] = zoo_json("attack", *where, *args)
            measured = attacked[args].get(metric["name"])
        else:
            measured = None
        rows.append(dict(name=metric["name"], attack=metric.get("attack"), card=metric["value"], measured=measured,
                         agrees=measured is not None and agrees(metric["name"], metric["value"], measured),
                         command="zoo " + ("evaluate" if by == "zoo evaluate" else "attack")))
    return rows


def passed(entry: dict) -> bool:
    """A pack's entry passes when it loaded in time and, if its metrics were checked (not
    ``--load-only``), every one agreed."""
    checked = "metrics" in entry or "metrics_error" in entry
    return bool(entry.get("load_ok")) and (not checked or bool(entry.get("metrics_ok")))


def check(presets=None, *, data_root=DEFAULT_DATA, load_only=False) -> dict:
    from zoo.packs.shipped import shipped_packs

    packs = shipped_packs()
    presets = presets or list(packs)
    missing = [p for p in presets if p not in packs]
    results = {p: dict(error="no shipped pack") for p in missing}
    calls = {p: (load_seconds, p, "pretrained") for p in presets if p in packs}
    for preset, seconds, error in in_fresh_processes(calls, jobs=1):
        results[preset] = dict(load_seconds=seconds, load_error=error, pack=str(packs[preset]),
                               load_ok=error is None and seconds <= LOAD_LIMIT_S)
        print(f"[check] {preset}: load {seconds if error is None else error}", flush=True)
    if not load_only:
        for preset in calls:
            start = time.time()
            try:
                rows = check_metrics(preset, packs[preset], data_root)
            except Exception as exc:
                results[preset]["metrics_error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                print(f"[check] {preset}: FAILED {results[preset]['metrics_error']}", flush=True)
                continue
            results[preset].update(metrics=rows, metrics_ok=all(r["agrees"] for r in rows),
                                   check_seconds=round(time.time() - start, 1))
            print(f"[check] {preset}: " + ", ".join(f"{r['name']}{'(' + r['attack'] + ')' if r['attack'] else ''} "
                                                    f"{r['card']:.4f}/{r['measured'] if r['measured'] is None else round(r['measured'], 4)}"
                                                    for r in rows), flush=True)
    ok = all(map(passed, results.values()))
    import zoo

    return dict(ok=ok, zoo=str(Path(zoo.__file__).parent), load_limit_seconds=LOAD_LIMIT_S,
                offline=True, packs=results)


def merged(report: Path, result: dict) -> dict:
    """``result`` (a check of some presets) merged into the report already at ``report``: the other
    presets' entries are kept, so checking again the packs that failed completes the report."""
    try:
        previous = json.loads(report.read_text())
    except (OSError, ValueError):
        return result
    packs = {**previous.get("packs", {}), **result["packs"]}
    return {**result, "packs": dict(sorted(packs.items())), "ok": all(map(passed, packs.values()))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", help="comma-separated presets (default: every shipped pack)")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="data root, DATA/mnist, DATA/fsdd (default ../shared/data)")
    parser.add_argument("--load-only", action="store_true", help="time the loads only (needs no data)")
    parser.add_argument("--report", default=str(REPORT), help="JSON report (default benchmarks/packs_check.json; - for none)")
    args = parser.parse_args(argv)
    presets = [p.strip() for p in (args.presets or "").split(",") if p.strip()]
    result = check(presets, data_root=args.data_dir, load_only=args.load_only)
    command = " ".join(["python tools/check_packs.py", *(argv if argv is not None else sys.argv[1:])])
    for entry in result["packs"].values():
        entry["command"] = command
    if args.report != "-":
        from zoo.files import atomic_write_text

        result = merged(Path(args.report), result) if presets else result
        atomic_write_text(Path(args.report), json.dumps(result, indent=1) + "\n")
    print(json.dumps(dict(ok=result["ok"], packs=len(result["packs"]))))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
