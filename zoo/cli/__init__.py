"""The ``zoo`` command: a thin layer over the Python API.

Each subcommand lives in its own module ``zoo/cli/<name>_cmd.py`` with ``add_parser(subparsers)``
and ``run(args) -> int``; dropping such a module here adds the command.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.abc
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

#: The user's own TF_CPP_MIN_LOG_LEVEL, if any: "0" keeps all of TensorFlow's start-up lines.
_USER_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported: keep its C++ chatter out

from zoo.errors import ConfigError, ZooError

#: The subcommands, one module each, in the order ``zoo --help`` shows them (the rest alphabetically).
_FIRST = ("list", "info", "plugins", "train", "evaluate")
_FOUND = {p.name[: -len("_cmd.py")] for p in Path(__file__).parent.glob("*_cmd.py")}
COMMANDS = tuple(c for c in _FIRST if c in _FOUND) + tuple(sorted(_FOUND - set(_FIRST)))


def parse_set(pairs, option: str = "--set") -> dict:
    """``["k=v", ...]`` -> dict, values parsed as YAML (numbers, lists, booleans, strings) through
    :mod:`zoo.yamlio` (no duplicate keys, no alias bombs); a malformed value is a :class:`ConfigError`."""
    from zoo import yamlio

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{option} expects key=value, got {pair!r}")
        try:
            out[key] = yamlio.loads(value, f"{option} {key}")
        except yamlio.YamlError as exc:
            raise ConfigError(f"{exc} (quote a string value: {option} '{key}=\"...\"')") from None
    return out


def print_json(obj) -> None:
    """Print ``obj`` as one strict JSON object on the last line of stdout.

    JSON has no NaN or Infinity: a non-finite number (a diverged loss, say) is printed as ``null``,
    with a warning on stderr naming the field, so the line stays parseable by any JSON reader.
    NumPy scalars and arrays become plain numbers and lists.
    """
    bad = []
    text = json.dumps(_strict(obj, "", bad), sort_keys=True, default=str, allow_nan=False)
    for path in bad:
        print(f"zoo: warning: {path} is not a finite number; printed as null in the JSON", file=sys.stderr)
    sys.stdout.flush()
    print(text)


def _strict(value, path, bad):
    """``value`` with non-finite floats replaced by ``None`` (their paths appended to ``bad``)."""
    if isinstance(value, dict):
        return {k: _strict(v, f"{path}.{k}" if path else str(k), bad) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v, f"{path}[{i}]", bad) for i, v in enumerate(value)]
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":  # numpy scalars and arrays
        return _strict(value.tolist(), path, bad)
    if isinstance(value, float) and not math.isfinite(value):
        bad.append(path or "value")
        return None
    return value


def check_output(path, option: str, *, directory: bool):
    """Refuse an output path that cannot be written, before any computation.

    ``directory``: ``path`` is (or will be) a directory — an existing file there is refused; else it
    is a file — an existing directory there is refused (an existing file is replaced). The nearest
    existing ancestor must be a directory zoo can create files in.
    """
    if path is None:
        return None
    p = Path(path)
    if directory and p.exists() and not p.is_dir():
        raise ConfigError(f"{option} {path}: is a file, not a directory; choose another {option}")
    if not directory and p.is_dir():
        raise ConfigError(f"{option} {path}: is a directory; give a file name, e.g. {p / 'out.png'}")
    ancestor = p if directory and p.is_dir() else p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{option} {path}: {ancestor} is a file, not a directory; choose another {option}")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write in {ancestor} ({exc.strerror or exc}); "
                          f"choose another {option}") from None
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="A Keras model zoo for adversarial learning and generative models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"zoo.cli.{name}_cmd").add_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    quiet_tensorflow_import()
    try:
        return int(args.run(args) or 0)
    except ZooError as exc:
        print(f"zoo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"zoo {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


# -- a quiet console ----------------------------------------------------------------------------
# TensorFlow 2.21 logs through absl before absl::InitializeLog() runs, so TF_CPP_MIN_LOG_LEVEL does
# not reach its start-up lines ("oneDNN custom operations are on", "Could not find cuda drivers",
# "This TensorFlow binary is optimized ...", each time one of its libraries loads; "failed call to
# cuInit" on a machine without a GPU when it first looks for devices). While ``tensorflow`` is being
# imported and looks for its devices, file descriptor 2 goes to a temporary file; afterwards every
# line is passed on to stderr except the INFO (and, at level 2 or more, WARNING) lines of that
# format. A user who sets TF_CPP_MIN_LOG_LEVEL=0 sees everything.
_CHATTER = re.compile(r"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\] |WARNING: All log messages before "
                      r"absl::InitializeLog\(\) is called|To enable the following instructions: )")
#: An ERROR line that only says this machine has no usable CUDA driver (TensorFlow then runs on CPU).
_NO_CUDA = re.compile(r"^E\d{4} [\d:. ]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit")


def _tf_log_level() -> int:
    try:
        return int(_USER_TF_LOG_LEVEL if _USER_TF_LOG_LEVEL is not None else 2)
    except ValueError:
        return 2


def _drop(line: str, level: int) -> bool:
    if _NO_CUDA.match(line):
        return level >= 2
    if not _CHATTER.match(line):
        return False
    return level >= 2 or line.startswith(("I", "WARNING: All log", "To enable"))


class _QuietLoader:
    """Wraps TensorFlow's loader: its module runs with fd 2 captured and filtered."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        level = _tf_log_level()
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self._loader.exec_module(module)
                # Looking for devices probes CUDA (one more line on a machine without a GPU); do it now,
                # inside the filter. Only physical devices: logical ones can still be configured after.
                module.config.list_physical_devices()
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                        if not _drop(line, level)]
                if kept:
                    sys.stderr.write("".join(kept))
                    sys.stderr.flush()
        if level >= 2:
            try:
                from absl import logging as absl_logging

                absl_logging.set_verbosity(absl_logging.ERROR)
            except ImportError:
                pass


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the next finder and hands it a :class:`_QuietLoader`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def quiet_tensorflow_import() -> None:
    """Filter TensorFlow's start-up chatter when it is first imported (no-op if already imported or
    the user asked for TensorFlow's INFO lines with TF_CPP_MIN_LOG_LEVEL=0)."""
    if "tensorflow" in sys.modules or _tf_log_level() < 1:
        return
    if not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


if __name__ == "__main__":
    sys.exit(main())
