"""zoo pack RUN_DIR --out DIR: measure a trained run and publish it as a pack (directory + archive)."""
from zoo.cli import parse_set, print_json
from zoo.errors import ConfigError


def add_parser(sub):
    p = sub.add_parser("pack", help="turn a run of `zoo train --out` into a pack with a model card (and a plugin wheel)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `zoo train --out`")
    p.add_argument("--out", required=True, help="where <name>-<version>/ and <name>-<version>.zip are written")
    p.add_argument("--version", help="pack version FORMAT.ARCHITECTURE.RETRAIN (default 1.0.0, or the next after --previous)")
    p.add_argument("--previous", help="the pack this one follows (directory, archive or URL): the version is bumped by what changed")
    p.add_argument("--data-dir", help="local data the run was trained on (e.g. a directory of MNIST IDX files)")
    p.add_argument("--attack", help="also measure accuracy under this attack for the card (e.g. pgd)")
    p.add_argument("--attack-set", action="append", default=[], metavar="KEY=VALUE",
                   help="attack parameters (YAML values), e.g. --attack-set eps=0.3 --attack-set steps=40")
    p.add_argument("--attack-n", type=int, default=1000, help="test images to attack (the first N)")
    p.add_argument("--license", default="other", help="license of the weights (SPDX id; default 'other')")
    p.add_argument("--citation", help="how to cite the weights (default: the preset's citation)")
    p.add_argument("--intended-use", help="intended use (default: from the preset's description)")
    p.add_argument("--limitations", help="known limitations (default: from the preset's notes and the data)")
    p.add_argument("--wheel", action="store_true", help="also build a plugin wheel providing the pack via zoo_weights()")
    p.add_argument("--dist-name", help="the wheel's distribution name (default zoo-weights-<name>)")
    p.add_argument("--json", action="store_true", help="print path and sha256 as JSON on the last line")
    p.set_defaults(run=run)


def run(args):
    from zoo.packs import build_wheel, make_pack
    from zoo.packs.build import AttackSpec

    attacks = []
    if args.attack:
        if args.attack_n < 1:
            raise ConfigError(f"--attack-n must be positive, got {args.attack_n}")
        attacks.append(AttackSpec(args.attack, parse_set(args.attack_set), args.attack_n))
    elif args.attack_set:
        raise ConfigError("--attack-set needs --attack NAME")
    result = make_pack(
        args.run_dir, args.out, version=args.version, previous=args.previous, data_dir=args.data_dir,
        license=args.license, citation=args.citation, intended_use=args.intended_use,
        limitations=args.limitations, attacks=attacks,
    )
    card = result.card
    print(f"pack {card['name']} {card['version']}: " + ", ".join(
        f"{m['name']}{' (' + m['attack'] + ')' if m.get('attack') else ''}={m['value']:.4f}" for m in card["metrics"]))
    print(f"wrote {result.directory}")
    print(f"wrote {result.archive}")
    print(f"sha256 {result.sha256}")
    wheel = None
    if args.wheel:
        wheel = build_wheel(result.directory, card, args.out, args.dist_name)
        print(f"wrote {wheel} (pip install it to provide the pack through zoo_weights())")
    if args.json:
        print_json({"path": str(result.archive), "sha256": result.sha256, "directory": str(result.directory),
                    "name": card["name"], "version": card["version"], "wheel": str(wheel) if wheel else None})
    return 0
