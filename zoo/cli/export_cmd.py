"""zoo export NAME --weights DIR --out MODELS_DIR: a SavedModel version in TF Serving's layout."""
from zoo.cli import WEIGHTS_HELP, check_output, print_json


def add_parser(sub):
    p = sub.add_parser("export", help="export a trained model for TF Serving (MODELS_DIR/<name>/<version>/)")
    p.add_argument("name", nargs="?", help="preset or architecture (default: the one --weights was trained as)")
    p.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    p.add_argument("--out", required=True, help="TF Serving models directory (gets models.config)")
    p.add_argument("--version", type=int, help="version number (default: newest + 1, or 1)")
    p.add_argument("--model-name", help="name under MODELS_DIR and in models.config (default: NAME)")
    p.add_argument("--base-path", default="/models",
                   help="where TF Serving sees MODELS_DIR, for models.config (default: /models)")
    p.add_argument("--json", action="store_true", help="print the export as JSON on the last line")
    p.set_defaults(run=run)


def run(args):
    from zoo.export import export, signature_names

    check_output(args.out, "--out", directory=True)
    path = export(args.name, args.weights, args.out, args.version, model_name=args.model_name,
                  base_path=args.base_path)
    names = signature_names(path)
    print(f"wrote {path} (signatures: {', '.join(names)})")
    if args.json:
        print_json({"path": str(path), "version": int(path.name), "signatures": names})
    return 0
