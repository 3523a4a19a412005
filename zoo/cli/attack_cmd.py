"""zoo attack NAME --weights DIR --attack pgd: accuracy under attack of a trained classifier."""
from zoo.cli import WEIGHTS_HELP, check_input_dir, check_output, parse_set, print_json, seed_type
from zoo.errors import ConfigError

PANEL_EXAMPLES = 8


def add_parser(sub):
    p = sub.add_parser("attack", help="attack a trained classifier and report accuracy under attack")
    p.add_argument("name", nargs="?", help="preset or architecture (default: the one --weights was trained as)")
    p.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    p.add_argument("--attack", default="pgd", help="attack plugin name (`zoo plugins` lists them)")
    p.add_argument("--eps", type=float, help="radius of the ε-ball")
    p.add_argument("--steps", type=int, help="iterations")
    p.add_argument("--step-size", type=float, help="step length per iteration")
    p.add_argument("--target", help="a class id to aim every example at, or `random` (a random other class)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="further attack parameters (YAML values), e.g. --set restarts=5 --set early_exit=true")
    p.add_argument("--n", type=int, default=1000, help="test images to attack (the first N of the test split)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--data-dir", help="local data (e.g. a directory of MNIST IDX files)")
    p.add_argument("--seed", type=seed_type, default=0, help="seed of random starts and random targets")
    p.add_argument("--png", help="write a panel (original, scaled perturbation, adversarial) of the first examples")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON on the last line")
    p.set_defaults(run=run)


def run(args):
    check_output(args.png, "--png", directory=False)  # before TensorFlow is even imported
    check_input_dir(args.data_dir)

    import keras
    import numpy as np

    from zoo.api import get_attack, load, read_run, resolve
    from zoo.data import load_dataset
    from zoo.evaluation import attack_report

    if args.n < 1 or args.batch_size < 1:
        raise ConfigError(f"--n and --batch-size must be positive, got {args.n} and {args.batch_size}")
    spec, _ = resolve(args.name)
    if spec.family != "classifier":
        raise ConfigError(f"zoo attack attacks image classifiers; {args.name!r} is a {spec.family} model"
                          + (" (attack a LAS model with tools/attack_las.py)" if spec.family == "las" else ""))
    params = {k: v for k, v in dict(eps=args.eps, steps=args.steps, step_size=args.step_size).items() if v is not None}
    params.update(parse_set(args.set))
    attack = get_attack(args.attack, **params)
    run_config = read_run(args.weights, args.name)
    model = load(args.name, weights=args.weights)
    # [:2]: a nuisance dataset (mnist_noise, digits_noise) gives (x, y, nuisance)
    x, y = load_dataset(run_config["dataset"], data_dir=args.data_dir).arrays("test")[:2]
    x, y = x[: args.n], y[: args.n]
    keras.utils.set_random_seed(args.seed)
    target = _targets(args.target, y, model, np.random.default_rng(args.seed))

    metrics, x_adv = attack_report(model, attack, x, y, target=target, batch_size=args.batch_size)
    # params() is not part of the attack contract (any callable is an attack): read it only if present
    params_of = getattr(attack, "params", None)
    attack_params = params_of() if callable(params_of) else params
    metrics.update(attack=args.attack, targeted=target is not None,
                   **{f"param_{k}": v for k, v in dict(attack_params).items()})
    print(f"{args.attack} on {args.name}, {metrics['n']} test images: clean accuracy {metrics['clean_accuracy']:.4f}, "
          f"under attack {metrics['adv_accuracy']:.4f}, success rate {metrics['success_rate']:.4f}")
    print(f"perturbation L∞ mean {metrics['mean_linf']:.4f} max {metrics['max_linf']:.4f}, "
          f"L2 mean {metrics['mean_l2']:.4f} max {metrics['max_l2']:.4f}; {metrics['images_per_s']:.1f} images/s")
    if args.png:
        path = _save_panel(args.png, model, x[:PANEL_EXAMPLES], x_adv[:PANEL_EXAMPLES])
        print(f"wrote {path}")
    if args.json:
        print_json(metrics)
    return 0


def _targets(spec, y, model, rng):
    """No target, one class id for every example, or a random class other than each true label."""
    import numpy as np

    if spec is None:
        return None
    classes = int(model.num_classes) if hasattr(model, "num_classes") else int(model.output_shape[-1])
    if spec == "random":
        return (y + rng.integers(1, classes, size=len(y))) % classes
    try:
        label = int(spec)
    except ValueError:
        raise ConfigError(f"--target must be a class id or 'random', got {spec!r}") from None
    if not 0 <= label < classes:
        raise ConfigError(f"--target must be a class id in 0..{classes - 1}, got {label}")
    return np.full_like(y, label)


def _probabilities(model, x):
    import numpy as np

    out = np.asarray(model(x, training=False), np.float64)
    if getattr(model, "output_kind", "softmax") == "logits":
        out = np.exp(out - out.max(axis=1, keepdims=True))
        out /= out.sum(axis=1, keepdims=True)
    return out


def _save_panel(path, model, x, x_adv):
    """The seed's panel, one row per example: original, perturbation (scaled to be visible), adversarial."""
    import numpy as np

    from zoo.viz import image_grid, save_png

    delta = x_adv - x
    scale = max(float(np.abs(delta).max()), 1e-12)
    shown = 0.5 + 0.5 * delta / scale  # grey is no change; white and black are ±max|δ|
    p_clean, p_adv = _probabilities(model, x), _probabilities(model, x_adv)
    images, captions, colors = [], [], []
    for i in range(len(x)):
        clean_label, adv_label = int(p_clean[i].argmax()), int(p_adv[i].argmax())
        images += [x[i], shown[i], x_adv[i]]
        captions += [f"{clean_label} {p_clean[i, clean_label]:.0%}", f"d x{0.5 / scale:.1f}",
                     f"{adv_label} {p_adv[i, adv_label]:.0%}"]
        colors += [(0, 0, 0), (90, 90, 90), (200, 0, 0) if adv_label != clean_label else (0, 140, 0)]
    return save_png(image_grid(np.stack(images), captions, ncols=3, colors=colors), path)
