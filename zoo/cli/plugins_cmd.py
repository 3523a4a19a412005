"""zoo plugins: every loaded plugin's distribution, version and hooks, and those that failed.

Every hook of every plugin is called; any failure (import, registration, a hook, a name conflict)
is listed on stderr and the exit status is 1.
"""
import dataclasses
import sys

from zoo.cli import print_json
from zoo.plugins import get_plugin_manager


def add_parser(sub):
    p = sub.add_parser("plugins", help="list loaded plugins (distribution, version, hooks) and failures")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args):
    pm = get_plugin_manager()
    pm.check_all()  # call every hook, so a plugin that fails only there is listed as failed too
    plugins = pm.plugins()
    width = max((len(p.name) for p in plugins), default=4)
    for p in plugins:
        print(f"{p.name:<{width}}  {p.distribution} {p.version}  hooks: {', '.join(p.hooks) or '-'}")
    for line in pm.errors:
        print(f"FAILED: {line}", file=sys.stderr)
    if args.json:
        print_json({"plugins": [dataclasses.asdict(p) for p in plugins], "errors": pm.errors})
    return 1 if pm.errors else 0
