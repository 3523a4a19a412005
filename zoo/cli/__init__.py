"""The ``zoo`` command: a thin layer over the Python API.

Each subcommand lives in its own module ``zoo/cli/<name>_cmd.py`` with ``add_parser(subparsers)``
and ``run(args) -> int``; dropping such a module here adds the command.
"""
from __future__ import annotations

import argparse
import atexit
import importlib
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


#: Help of every ``--weights`` option: anything ``zoo.load(weights=...)`` accepts.
WEIGHTS_HELP = ("a run directory of `zoo train --out`, a pack directory or archive, a URL ending in "
                "#sha256=<hex>, or `pretrained`")


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
    from zoo.files import strict_json

    text, bad = strict_json(obj, sort_keys=True, default=str)
    for path in bad:
        print(f"zoo: warning: {path} is not a finite number; printed as null in the JSON", file=sys.stderr)
    sys.stdout.flush()
    print(text)


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


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line (no usage block): ``zoo train: error: ...``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


#: Seeds are 32-bit unsigned integers (numpy's and Keras's seeding accept no more).
MAX_SEED = 2**32 - 1


def seed_type(text: str) -> int:
    """argparse type of ``--seed``: an integer in 0..2**32-1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: expected an integer in 0..{MAX_SEED}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seed {value} is outside 0..{MAX_SEED}")
    return value


def positive_int(text: str) -> int:
    """argparse type of counts: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected an integer >= 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="zoo", description="A Keras model zoo for adversarial learning and generative models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"zoo.cli.{name}_cmd").add_parser(sub)
    parser.set_defaults(_commands=sub.choices)
    return parser


def name_from_weights(args) -> None:
    """``NAME --weights DIR`` with NAME left out: the run's or pack's config names the preset."""
    if getattr(args, "name", "") is None and getattr(args, "weights", None):
        from zoo.api import read_run

        run = read_run(args.weights)
        args.name = run.get("name") or run["architecture"]


def parse_args(parser, argv):
    """``parser.parse_args``, but an unknown option is reported by the subcommand (``zoo train:
    error: unrecognized arguments: ...``), not by ``zoo`` itself."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        args._commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def check_input_dir(path, option: str = "--data-dir"):
    """Refuse a directory option that names no directory (instead of silently ignoring it)."""
    if path is not None and not Path(path).is_dir():
        what = "is a file, not a directory" if Path(path).exists() else "does not exist"
        raise ConfigError(f"{option} {path}: {what}")
    return path


def main(argv=None) -> int:
    """The ``zoo`` command. Run as the command (``argv`` None: it reads ``sys.argv``), its stderr
    passes through :func:`filter_stderr`; called with an argument list (tests, scripts) it does not."""
    args = parse_args(build_parser(), argv)
    if argv is None:
        filter_stderr()
    try:
        name_from_weights(args)
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
# "This TensorFlow binary is optimized ...", twice, as two of its libraries load), nor a few ERROR
# lines that only describe the machine ("failed call to cuInit" without a GPU, oneDNN falling back
# to Eigen for booleans). As the `zoo` command, zoo passes its stderr through a small filter process
# that drops exactly those lines and passes on everything else as it comes (a separate process, so
# nothing is lost if zoo itself dies). TF_CPP_MIN_LOG_LEVEL=0 (or 1: INFO dropped, WARNING kept)
# set by the user is honoured; ZOO_RAW_STDERR=1 turns the filter off.
_GLOG = r"[{levels}]\d{{4}} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\] "
_MACHINE_ONLY = (r"failed call to cuInit", r"oneDNN supports DT_BOOL only on platforms with AVX-512")
_ABSL_BANNER = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
                "To enable the following instructions: ")


def chatter_pattern(level: int):
    """The lines a TF_CPP_MIN_LOG_LEVEL of ``level`` (1 or more) drops from TensorFlow's stderr."""
    levels = "IW" if level >= 2 else "I"
    alternatives = [_GLOG.format(levels=levels) + ".*", *map(re.escape, _ABSL_BANNER)]
    if level >= 2:
        alternatives += [_GLOG.format(levels="E") + m for m in _MACHINE_ONLY]
    return re.compile("^(?:" + "|".join(alternatives) + ")")


def _tf_log_level() -> int:
    try:
        return int(_USER_TF_LOG_LEVEL if _USER_TF_LOG_LEVEL is not None else 2)
    except ValueError:
        return 2


def filter_stderr() -> None:
    """Route this process's fd 2 through a child process that drops TensorFlow's chatter."""
    level = _tf_log_level()
    if level < 1 or os.environ.get("ZOO_RAW_STDERR") or not hasattr(os, "fork"):
        return
    pattern = chatter_pattern(level)
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the filter: read until every writer has closed the pipe, then exit
        os.close(write_end)
        try:
            _filter_loop(read_end, pattern)
        finally:
            os._exit(0)
    os.close(read_end)
    original = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    atexit.register(_finish_filter, pid, original)


def _finish_filter(pid: int, original: int) -> None:
    """At exit: give stderr back, so the filter sees the end of its input, and wait (briefly) for it to
    pass on zoo's last lines, so they come before the shell's next prompt."""
    import time

    sys.stderr.flush()
    os.dup2(original, 2)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.01)


def _filter_loop(read_end: int, pattern) -> None:
    import signal

    # Ctrl-C or a SIGTERM to the process group is for zoo: the filter ends only when every writer has
    # closed the pipe, so zoo's last words ("interrupted; rerun ...") still get through.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    pending = b""
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        out = b"".join(line + b"\n" for line in lines if not pattern.match(line.decode("utf-8", "replace")))
        if pending and not re.match(rb"^(?:[IWE]\d|WARNING: All|To enable)", pending):
            out, pending = out + pending, b""  # a partial line that cannot be chatter (a progress bar): now
        if out:
            os.write(2, out)
    if pending and not pattern.match(pending.decode("utf-8", "replace")):
        os.write(2, pending)


if __name__ == "__main__":
    sys.exit(main())
