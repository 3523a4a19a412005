"""zoo info NAME: config, recipe, metadata, the providing plugin and the packs on offer with their metrics."""
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
    info["packs"] = _packs(args.name)
    if args.json:
        print_json(info)
    return 0


def _packs(name) -> list[dict]:
    """The packs plugins offer for ``name``, best first, with their published metrics (printed too)."""
    from zoo.packs import offers

    found = offers(name)
    print("packs:" if found else f"packs: none offered (train one: `zoo train {name} --out RUN && zoo pack RUN "
          f"--out DIR`; in a checkout, `python tools/make_packs.py --presets {name}` makes the zoo's shipped pack)")
    out = []
    for i, offer in enumerate(found):
        mark = "pretrained" if i == 0 and offer.usable else ("unusable" if not offer.usable else "also offered")
        print(f"  {offer.version or '?'} [{mark}] from plugin {offer.plugin} ({offer.distribution} "
              f"{offer.distribution_version}): {offer.location}")
        metrics = offer.card["metrics"] if offer.card else []
        for m in metrics:
            attack = f" under {m['attack']} eps {m['eps']:g}" if m.get("attack") else ""
            print(f"    {m['name']}{attack} = {m['value']:.4f} ({m['split']}, n={m['n']}, {m['dataset']})")
        if offer.problem:
            print(f"    problem: {offer.problem}")
        elif not offer.card:
            print("    metrics: in its card once fetched")
        out.append(dict(version=offer.version, location=offer.location, plugin=offer.plugin,
                        distribution=offer.distribution, chosen=mark == "pretrained", metrics=metrics,
                        problem=offer.problem))
    return out
