"""The ``zoo`` command: a thin layer over the Python API.

Each subcommand lives in its own module ``zoo/cli/<name>_cmd.py`` with ``add_parser(subparsers)``
and ``run(args) -> int``; dropping such a module here adds the command.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported: keep its C++ chatter out

from zoo.errors import ZooError

#: The subcommands, one module each, in the order ``zoo --help`` shows them (the rest alphabetically).
_FIRST = ("list", "info", "plugins", "train", "evaluate")
_FOUND = {p.name[: -len("_cmd.py")] for p in Path(__file__).parent.glob("*_cmd.py")}
COMMANDS = tuple(c for c in _FIRST if c in _FOUND) + tuple(sorted(_FOUND - set(_FIRST)))


#: Help of every ``--weights`` option: anything ``zoo.load(weights=...)`` accepts.
WEIGHTS_HELP = ("a run directory of `zoo train --out`, a pack directory or archive, a URL ending in "
                "#sha256=<hex>, or `pretrained`")


def parse_set(pairs, option="--set") -> dict:
    """``["k=v", ...]`` -> dict, values parsed as YAML (numbers, lists, booleans, strings)."""
    import yaml

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ZooError(f"{option} expects key=value, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ZooError(f"{option} {pair!r}: the value is not valid YAML ({exc.problem or exc})") from exc
    return out


def print_json(obj) -> None:
    """Print ``obj`` as one JSON object on the last line of stdout."""
    sys.stdout.flush()
    print(json.dumps(obj, sort_keys=True, default=str))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="A Keras model zoo for adversarial learning and generative models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"zoo.cli.{name}_cmd").add_parser(sub)
    return parser


def name_from_weights(args) -> None:
    """``NAME --weights DIR`` with NAME left out: the run's or pack's config names the preset."""
    if getattr(args, "name", "") is None and getattr(args, "weights", None):
        from zoo.api import read_run

        run = read_run(args.weights)
        args.name = run.get("name") or run["architecture"]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        name_from_weights(args)
        return int(args.run(args) or 0)
    except ZooError as exc:
        print(f"zoo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"zoo {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
