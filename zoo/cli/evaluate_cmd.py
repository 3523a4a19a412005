"""zoo evaluate NAME --weights DIR: test-split metrics of a trained model."""
from zoo.cli import check_input_dir, print_json


def add_parser(sub):
    p = sub.add_parser("evaluate", help="evaluate a model trained with `zoo train --out DIR`")
    p.add_argument("name")
    p.add_argument("--weights", required=True, help="directory written by `zoo train --out`")
    p.add_argument("--data-dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args):
    from zoo.training.fit import evaluate

    check_input_dir(args.data_dir)
    metrics = evaluate(args.name, args.weights, data_dir=args.data_dir)
    print("test metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
    if args.json:
        print_json(metrics)
    return 0
