"""Train a tiny ConvNet a few steps and save its weights: one process, or a MultiWorkerMirroredStrategy worker.

    python tests/multiworker_convnet.py single OUT.npz        # default strategy, model.fit
    python tools/launch_workers.py -n 2 -- python tests/multiworker_convnet.py worker OUT.npz

Workers (``TF_CONFIG`` from tools/launch_workers.py) train with :func:`zoo.distribute.custom_fit`, the
zoo's multi-worker driver (``model.fit`` fails under MultiWorkerMirroredStrategy, keras-team/keras#20585);
every worker saves its own weights to ``OUT.<task index>.npz`` so the test can check that all workers
agree with each other and with the single process. The last stdout line is the per-step logs as JSON.
"""
from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from zoo import load  # noqa: E402
from zoo.data import load_dataset  # noqa: E402
from zoo.distribute import custom_fit, make_strategy  # noqa: E402
from zoo.registry import TrainRecipe  # noqa: E402

from distributed_steps import StepLogs  # noqa: E402  (this script runs with tests/ on sys.path)

GLOBAL_BATCH, STEPS, SEED = 16, 4, 0
CONVNET = dict(input_shape=(8, 8, 1), num_classes=10, filters=(4, 8), dense=(16,), dropout=0.0)


def dataset():
    x, y = load_dataset("digits").arrays("train")
    n = GLOBAL_BATCH * STEPS
    return tf.data.Dataset.from_tensor_slices((x[:n], y[:n])).shuffle(n, seed=SEED).batch(GLOBAL_BATCH)


def main(mode, out):
    strategy = make_strategy("multiworker" if mode == "worker" else "default")
    keras.utils.set_random_seed(SEED)
    with strategy.scope():
        model = load("convnet", recipe=TrainRecipe(optimizer="sgd", learning_rate=0.1), **CONVNET)
    logs = StepLogs()
    if mode == "worker":
        custom_fit(model, dataset, epochs=1, global_batch_size=GLOBAL_BATCH, strategy=strategy,
                   callbacks=[logs], verbose=False)
        out = out.replace(".npz", f".{json.loads(os.environ['TF_CONFIG'])['task']['index']}.npz")
    else:
        model.fit(dataset(), epochs=1, verbose=0, callbacks=[logs])
    np.savez(out, *[v.numpy() for v in model.trainable_variables])
    # one write() of the whole line: the two workers share the launcher's stdout, and print() under
    # PYTHONUNBUFFERED writes the text and the newline separately, so their lines could interleave
    sys.stdout.write(json.dumps(logs.steps) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
