"""The command-line reference, rendered from the parser itself (``docs/cli.md``).

    python -m zoo.cli.reference > docs/cli.md

A test renders it again and compares, so a flag cannot change without its documentation.
"""
from __future__ import annotations

import argparse


def render() -> str:
    """Markdown: every command with its usage line and each option's help."""
    from zoo.cli import COMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    lines = ["# Command-line reference", "",
             "Generated from the parser by `python -m zoo.cli.reference > docs/cli.md`; a test keeps it current.",
             "Every command exits 0 on success, 2 with one line on stderr for anything the user can fix, and",
             "130 when interrupted; `--json` prints the result as one JSON object on the last line of stdout.", ""]
    for name in COMMANDS:
        command = sub.choices[name]
        lines += [f"## zoo {name}", "", command.description or sub_help(sub, name), "", "```",
                  command.format_usage().replace("usage: ", "").strip(), "```", ""]
        for action in command._actions:  # noqa: SLF001
            if isinstance(action, argparse._HelpAction):  # noqa: SLF001
                continue
            flags = ", ".join(action.option_strings) or action.dest.upper()
            meta = "" if action.nargs == 0 or not action.option_strings else f" {action.metavar or action.dest.upper()}"
            default = "" if action.default in (None, False, [], argparse.SUPPRESS) or action.nargs == 0 \
                else f" (default: {action.default})"
            choices = f" (one of: {', '.join(map(str, action.choices))})" if action.choices else ""
            lines.append(f"- `{flags}{meta}` — {(action.help or '').strip()}{choices}{default}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def sub_help(sub, name) -> str:
    for action in sub._choices_actions:  # noqa: SLF001
        if action.dest == name:
            return action.help or ""
    return ""


if __name__ == "__main__":
    print(render(), end="")
