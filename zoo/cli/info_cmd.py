"""zoo info NAME: config, recipe, metadata and the providing plugin."""
import dataclasses

from zoo.api import model_config, resolve
from zoo.cli import print_json
from zoo.plugins import get_plugin_manager


def add_parser(sub):
    p = sub.add_parser("info", help="show a model's config, training recipe, metadata and plugin")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args):
    spec, preset = resolve(args.name)
    plugin = get_plugin_manager().provider("models", spec.name)
    info = dict(
        name=args.name,
        architecture=spec.name,
        family=spec.family,
        description=spec.description,
        config=model_config(spec, preset),
        plugin=dict(name=plugin.name, distribution=plugin.distribution, version=plugin.version),
    )
    if preset:
        info.update(dataset=preset.dataset, train=dataclasses.asdict(preset.train), metadata=preset.metadata)
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")
    if args.json:
        print_json(info)
    return 0
