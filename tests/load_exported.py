"""Load exported SavedModels with TensorFlow alone (``import zoo`` fails here) and run every signature.

    python tests/load_exported.py MODELS_DIR INPUTS.npz OUTPUTS.npz

``INPUTS.npz`` holds ``<model>/<signature>/<input>`` arrays; ``OUTPUTS.npz`` gets
``<model>/<signature>/<output>`` for each, plus ``<model>/show_all``: what ``saved_model_cli show
--all`` prints for the model's newest version (its own code, run here for every model at once).
"""
import contextlib
import io
import sys

sys.modules["zoo"] = None  # any `import zoo` (or zoo_plugins) now raises ImportError
sys.modules["zoo_plugins"] = None

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.tools import saved_model_cli  # noqa: E402


def newest(model_dir):
    return max((p for p in model_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def main(models_dir, inputs_path, outputs_path):
    try:
        import zoo  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("zoo is importable: this check would prove nothing")
    inputs = np.load(inputs_path)
    grouped = {}
    for key in inputs.files:
        model, signature, name = key.split("/")
        grouped.setdefault(model, {}).setdefault(signature, {})[name] = inputs[key]
    outputs = {}
    for model, signatures in grouped.items():
        path = newest(Path(models_dir) / model)
        loaded = tf.saved_model.load(str(path))
        for signature, feeds in signatures.items():
            fn = loaded.signatures[signature]
            result = fn(**{k: tf.constant(v) for k, v in feeds.items()})
            for name, value in result.items():
                value = value.numpy()
                outputs[f"{model}/{signature}/{name}"] = value.astype(str) if value.dtype == object else value
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            saved_model_cli._show_all(str(path))
        outputs[f"{model}/show_all"] = np.array(shown.getvalue())
    np.savez(outputs_path, **outputs)


if __name__ == "__main__":
    main(*sys.argv[1:])
