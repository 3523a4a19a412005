"""zoo generate NAME --weights DIR: draw samples from a trained generative model into a PNG grid."""
from zoo.cli import WEIGHTS_HELP, check_output, print_json, seed_type


def add_parser(sub):
    p = sub.add_parser("generate", help="sample a trained VAE, GAN or VAE-GAN into a PNG grid")
    p.add_argument("name", nargs="?", help="preset or architecture (default: the one --weights was trained as)")
    p.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    p.add_argument("-n", "--num", type=int, default=64, help="how many images, at most 1024 (default 64)")
    p.add_argument("--png", help="output file (default: RUN_DIR/generated.png for a run, else ./generated.png)")
    p.add_argument("--seed", type=seed_type, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args):
    from pathlib import Path

    from zoo.viz import check_grid_size

    check_grid_size(args.num)  # before anything is built: a PNG grid holds a bounded number of images
    check_output(args.png, "--png", directory=False)

    from zoo.api import load
    from zoo.models.generative import write_samples

    model = load(args.name, weights=args.weights)
    from zoo.packs import is_local_run

    default = Path(args.weights) / "generated.png" if is_local_run(args.weights) else Path("generated.png")  # never into a pack
    png = Path(args.png) if args.png else default
    summary = write_samples(model, png, args.num, args.seed)
    print(f"wrote {summary['n']} samples of {args.name} to {png}")
    if args.json:
        print_json(summary)
    return 0
