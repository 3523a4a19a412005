"""zoo robustness NAME --weights DIR: AutoAttack's robust accuracy of a trained classifier."""
from zoo.cli import WEIGHTS_HELP, check_input_dir, positive_int, print_json, seed_type

#: the usual MNIST radii when --eps is not given
DEFAULT_EPS = {"inf": 0.3, "l2": 2.0}


def add_parser(sub):
    p = sub.add_parser("robustness", help="AutoAttack evaluation: robust accuracy after each stage, with warnings")
    p.add_argument("name", nargs="?", help="preset or architecture (default: the one --weights was trained as)")
    p.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    p.add_argument("--norm", choices=("inf", "l2"), default="inf", help="threat model")
    p.add_argument("--eps", type=float, help="radius of the threat model (default 0.3 for inf, 2.0 for l2)")
    p.add_argument("--n", type=positive_int, default=1000,
                   help="held-out images to evaluate (the first N of the test split)")
    p.add_argument("--version", choices=("standard", "plus"), default="standard", help="AutoAttack's attack set")
    p.add_argument("--batch-size", type=positive_int, default=500, help="images per attack batch")
    p.add_argument("--data-dir", help="local data (e.g. a directory of MNIST IDX files)")
    p.add_argument("--seed", type=seed_type, default=0, help="seed of the random starts")
    p.add_argument("--json", action="store_true", help="print the report as JSON on the last line")
    p.set_defaults(run=run)


def run(args):
    import keras

    from zoo.api import get_attack, load, read_run
    from zoo.data import load_dataset

    check_input_dir(args.data_dir)
    eps = DEFAULT_EPS[args.norm] if args.eps is None else args.eps
    attack = get_attack("autoattack", eps=eps, norm=args.norm, version=args.version, batch_size=args.batch_size)
    run_config = read_run(args.weights)
    model = load(args.name, weights=args.weights)
    # [:2]: a nuisance dataset (mnist_noise, digits_noise) gives (x, y, nuisance)
    x, y = load_dataset(run_config["dataset"], data_dir=args.data_dir).arrays("test")[:2]
    x, y = x[: args.n], y[: args.n]
    keras.utils.set_random_seed(args.seed)

    report, _ = attack.evaluate(model, x, y, progress=True)
    report.pop("point_broken_by")
    report.update(model=args.name, dataset=run_config["dataset"], seed=args.seed)
    report["model_info"] = dict(  # RobustBench's model_info fields
        name=args.name, architecture=run_config.get("architecture", args.name), dataset=run_config["dataset"],
        threat_model="Linf" if args.norm == "inf" else "L2", eps=eps, clean_acc=round(100 * report["clean_accuracy"], 2),
        autoattack_acc=round(100 * report["robust_accuracy"], 2), additional_data=False, number_forward_passes=1,
        n_eval=report["n"], version=args.version)

    print(f"AutoAttack ({args.version}, L{'∞' if args.norm == 'inf' else '2'} ε={eps:g}) on {args.name}, "
          f"{report['n']} test images")
    print(f"  clean accuracy      {report['clean_accuracy']:.2%}")
    for stage in report["stages"]:
        print(f"  after {stage['name']:10s}    {stage['robust_accuracy']:.2%}   broke {stage['broken']:5d} of "
              f"{stage['attacked']:5d}   {stage['wall_s']:7.1f} s")
    print(f"  robust accuracy     {report['robust_accuracy']:.2%}   ({report['wall_s']:.1f} s, "
          f"{report['cpu_s']:.1f} CPU-s; {report['forward_backward_per_image']:.0f} forward+backward and "
          f"{report['forward_per_image']:.0f} forward passes per image)")
    for note in report["notes"]:
        print(f"  note: {note}")
    for warning in report["warnings"]:
        print(f"  WARNING: {warning}")
    if args.json:
        print_json(report)
    return 0
