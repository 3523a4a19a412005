"""zoo evaluate NAME --weights DIR: test-split metrics of a trained model."""
from zoo.cli import WEIGHTS_HELP, check_input_dir, parse_set, print_json


def add_parser(sub):
    p = sub.add_parser("evaluate", help="evaluate a model trained with `zoo train --out DIR`")
    p.add_argument("name", nargs="?", help="preset or architecture (default: the one --weights was trained as)")
    p.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    p.add_argument("--data-dir")
    p.add_argument("--dataset", help="evaluate on another dataset than the run's")
    p.add_argument("--dataset-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset parameter (YAML value); the run's recorded ones apply otherwise; repeatable")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args):
    from zoo.training.fit import evaluate

    check_input_dir(args.data_dir)
    metrics = evaluate(args.name, args.weights, data_dir=args.data_dir, dataset=args.dataset,
                       dataset_args=parse_set(args.dataset_arg, "--dataset-arg"))
    print("test metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
    if args.json:
        print_json(metrics)
    return 0
