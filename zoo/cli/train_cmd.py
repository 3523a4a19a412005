"""zoo train NAME: train a preset with checkpoints in --out; rerunning resumes."""
from zoo.cli import check_input_dir, check_output, parse_set, positive_int, print_json, seed_type
from zoo.distribute import STRATEGIES


def add_parser(sub):
    p = sub.add_parser("train", help="train a preset or architecture (resumable with --out)")
    p.add_argument("name")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--data-dir", help="local data (e.g. a directory of MNIST IDX files)")
    p.add_argument("--dataset", help="dataset name (needed for a bare architecture)")
    p.add_argument("--dataset-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset parameter (YAML value), e.g. speaker=theo for fsdd_heldout; repeatable")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (YAML value)")
    p.add_argument("--seed", type=seed_type, default=0)
    p.add_argument("--out", help="run directory: checkpoints, TensorBoard logs, weights, metrics")
    p.add_argument("--strategy", choices=STRATEGIES, default="default",
                   help="tf.distribute strategy; multiworker reads TF_CONFIG")
    p.add_argument("--cpu-replicas", type=positive_int, help="split the CPU into N logical devices (env ZOO_CPU_REPLICAS)")
    p.add_argument("--mixed-precision", action="store_true", help="mixed_float16 with loss scaling")
    p.add_argument("--jit-compile", action="store_true", help="compile the train step with XLA")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON on the last line")
    p.set_defaults(run=run)


def run(args):
    check_output(args.out, "--out", directory=True)
    check_input_dir(args.data_dir)
    overrides = parse_set(args.set)

    from zoo.training.fit import train  # TensorFlow: after the checks, which need none

    result = train(
        args.name, epochs=args.epochs, batch_size=args.batch_size, data_dir=args.data_dir,
        dataset=args.dataset, dataset_args=parse_set(args.dataset_arg, "--dataset-arg"),
        overrides=overrides, seed=args.seed, out=args.out,
        strategy=args.strategy, cpu_replicas=args.cpu_replicas, mixed_precision=args.mixed_precision,
        jit_compile=args.jit_compile,
    )
    if result.initial_epoch:
        print(f"resumed from the checkpoint after epoch {result.initial_epoch}")
    print("test metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.metrics.items())))
    if args.out:
        print(f"wrote {args.out}")
    if args.json:
        print_json(result.metrics)
    return 0
