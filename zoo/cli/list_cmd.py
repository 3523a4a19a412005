"""zoo list [PATTERN]: architectures and presets."""
import sys

from zoo.api import list_models, resolve
from zoo.errors import UnknownNameError
from zoo.cli import print_json


def add_parser(sub):
    p = sub.add_parser("list", help="list architectures and presets (fnmatch PATTERN)")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--json", action="store_true", help="print the list as JSON on the last line")
    p.set_defaults(run=run)


def run(args):
    rows = []
    for name in list_models(args.pattern):
        try:
            spec, preset = resolve(name)
        except UnknownNameError as exc:  # a preset whose architecture's plugin is missing
            print(f"zoo list: {name}: {exc}", file=sys.stderr)
            continue
        description = preset.metadata.get("description", spec.description) if preset else spec.description
        rows.append(dict(name=name, kind="preset" if preset else "architecture", architecture=spec.name,
                         description=description))
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['kind']:<12}  {r['description']}")
    if args.json:
        print_json({"models": rows})
    return 0
