"""Run every custom train step on 1 replica and on 2 logical-CPU replicas; print the results as JSON.

Logical CPU devices must be configured before TensorFlow initialises its devices, so this runs as
its own process (``tests/test_distribute.py`` starts it once for all cases)::

    python tests/distributed_steps.py [CASE ...] [--equivalence] [--mixed-precision] [--jit-compile]

``--equivalence``: each case trains a tiny model for two SGD steps of the same global batches (same
seed) under

* ``default``: the default strategy (one replica) with ``model.fit``;
* ``mirrored-fit``: ``MirroredStrategy`` over 2 logical CPUs with ``model.fit``;
* ``mirrored-loop``: the same strategy with :func:`zoo.distribute.custom_fit`, the multi-worker driver;

and reports per-step logs and how far every weight (trainable or not: batch-norm statistics, seed
states and iteration counters too) is from the default run's. ``--mixed-precision`` and
``--jit-compile`` compare those modes with the plain float32 run. The last stdout line is JSON.
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
from zoo.distribute import configure_cpu_replicas, custom_fit, make_strategy  # noqa: E402
from zoo.registry import TrainRecipe  # noqa: E402
from zoo.training.steps import trainer_for  # noqa: E402

GLOBAL_BATCH = 8
STEPS = 2
#: Plain SGD: Adam's m/√v update is blind to the gradient's scale (a loss halved or doubled by wrong
#: replica scaling would go unnoticed) and turns the float noise of parameters with an exactly zero
#: gradient (a bias before batch norm, an attention-key bias) into ±lr steps.
LR = 0.1
#: Parameters agree when |a − b| <= ATOL + RTOL·|a| elementwise (numpy.allclose).
RTOL, ATOL = 1e-5, 1e-7
#: The cases the custom loop (the multi-worker driver) also runs; it calls the same train_step.
LOOP_CASES = ("minimax", "dcgan", "las")
#: The cases run with XLA: the deterministic ones. XLA's lowering of the stateless RNG draws other
#: numbers than the CPU kernel for the same seed, so VAE/GAN noise (and so their weights) differ.
JIT_CASES = ("supervised", "ae")


def _digits(n=GLOBAL_BATCH * STEPS):
    from zoo.data import load_dataset

    x, y = load_dataset("digits").arrays("train")
    return x[:n], y[:n]


def _images():
    x, y = _digits()
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)


def _noisy_images():
    x, y = _digits()
    noise = (np.arange(len(x)) % 3).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((x, {"label": y, "noise": noise})).batch(GLOBAL_BATCH)


def _speech():
    from zoo.data import load_dataset

    data = load_dataset("tones", multi_train=0, multi_test=0)
    waves, texts, speakers = data.arrays("train")
    n = GLOBAL_BATCH * STEPS
    waves, texts, speakers = waves[:n], texts[:n], speakers[:n]
    from zoo.data.audio import pad_batch, texts_to_ids

    x = np.asarray(pad_batch(waves), np.float32)
    tokens = texts_to_ids(texts)
    return tf.data.Dataset.from_tensor_slices((x, {"tokens": tokens, "speaker": np.asarray(speakers, np.int32)})) \
        .batch(GLOBAL_BATCH)


CONVNET = dict(input_shape=(8, 8, 1), num_classes=10, filters=(4, 8), dense=(16,), dropout=0.0)
MINIMAX = dict(nuisance="noise", num_classes=3, head="mlp", head_params={"hidden": [8]})
LAS_TINY = dict(num_mels=16, listener_layers=1, listener_units=8, speller_units=16, embedding_dim=4,
                attention_dim=8, max_output_length=8, dropout=0.0, scheduled_sampling=0.0)
IMAGE8 = dict(input_shape=(8, 8, 1))


def sgd(step, **step_params):
    return TrainRecipe(optimizer="sgd", learning_rate=LR, step=step, step_params=step_params)


# name -> (architecture, config, recipe, data). Randomness that would give the two replicas different
# draws is configured away where it is optional (dropout 0, PGD without random start, VAE targets
# thresholded); the VAE/GAN noise is drawn per global batch and sliced per replica by the models.
CASES = {
    "supervised": ("convnet", CONVNET, sgd("supervised"), _images),
    "adversarial": ("convnet", CONVNET, sgd("adversarial", attack="fgsm", eps=0.1, alpha=0.5), _images),
    "madry": ("convnet", CONVNET, sgd("madry", attack="pgd", eps=0.1, steps=3, step_size=0.04, random_start=False,
                                      alpha=0.0), _images),
    "minimax": ("convnet", CONVNET, sgd("minimax", **MINIMAX, form="minimax"), _noisy_images),
    "reversal": ("convnet", CONVNET, sgd("minimax", **MINIMAX, form="reversal", ramp_steps=2), _noisy_images),
    "ae": ("ae", dict(IMAGE8, latent_dim=4, filters=(4, 8)), sgd("own"), _images),
    "linear-ae": ("linear-ae", dict(IMAGE8, latent_dim=4), sgd("own"), _images),
    "vae": ("vae", dict(IMAGE8, latent_dim=2, filters=(4, 8), binarize="threshold"),
            sgd("own"), _images),
    "dcgan": ("dcgan", dict(IMAGE8, latent_dim=4, generator_filters=(4, 8), discriminator_filters=(4, 8)),
              sgd("own"), _images),
    "vaegan": ("vaegan", dict(IMAGE8, latent_dim=2, filters=(4, 8), discriminator_filters=(4, 8),
                              binarize="threshold", feature_weight=1.0),
               sgd("own", d_learning_rate=LR), _images),
    "las": ("las", LAS_TINY, sgd("own"), _speech),
}


class StepLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append({k: float(v) for k, v in (logs or {}).items()})


def weights_of(model):
    # by position: variable paths carry per-instance model names (conv_net, conv_net_1, ...)
    return [(v.path, np.asarray(v.numpy(), np.float64)) for v in model.weights]


def compare(a, b):
    """``tolerance``: max over elements of |a − b| / (ATOL + RTOL·|a|) (≤ 1 means allclose), the
    weight where it is largest, and the largest per-weight relative difference ‖a − b‖∞ / ‖a‖∞."""
    assert len(a) == len(b), (len(a), len(b))
    tolerance, relative, worst = 0.0, 0.0, None
    for (path, ref), (_, other) in zip(a, b):
        if not ref.size:
            continue
        ratio = float(np.max(np.abs(ref - other) / (ATOL + RTOL * np.abs(ref))))
        if ratio > tolerance:
            tolerance, worst = ratio, path
        relative = max(relative, float(np.max(np.abs(ref - other))) / max(float(np.max(np.abs(ref))), 1e-12))
    return dict(tolerance=tolerance, worst_weight=worst, max_relative_difference=relative)


def update_difference(initial, a, b):
    """‖Δa − Δb‖₂ / ‖Δa‖₂ of the parameter updates (Δ = trained − initial), over all weights."""
    da = np.concatenate([(w - w0).ravel() for (_, w0), (_, w) in zip(initial, a)])
    db = np.concatenate([(w - w0).ravel() for (_, w0), (_, w) in zip(initial, b)])
    return float(np.linalg.norm(da - db) / max(np.linalg.norm(da), 1e-30)), float(np.max(np.abs(da)))


_DEFAULT_RUNS = {}


def reference(case):
    """The float32 default-strategy run of ``case`` (shared by every comparison)."""
    if case not in _DEFAULT_RUNS:
        _DEFAULT_RUNS[case] = train(case, "default")[:3]
    return _DEFAULT_RUNS[case]


def train(case, driver, *, mixed_precision=False, jit_compile=False):
    """``(initial weights, trained weights, per-step logs, model)`` of two steps of ``case``."""
    arch, config, recipe, data = CASES[case]
    strategy = make_strategy("default" if driver == "default" else "mirrored")
    keras.utils.set_random_seed(0)
    policy = keras.mixed_precision.global_policy()
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with strategy.scope():
            model = trainer_for(load(arch, compile=False, **config), recipe)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    if jit_compile:
        model.jit_compile = True
    if mixed_precision:
        _start_loss_scales(model)
    initial = weights_of(model)
    logs = StepLogs()
    if driver == "mirrored-loop":
        custom_fit(model, data, epochs=1, global_batch_size=GLOBAL_BATCH, strategy=strategy,
                   callbacks=[logs], verbose=False)
    else:
        model.fit(data(), epochs=1, verbose=0, callbacks=[logs], shuffle=False)
    return initial, weights_of(model), logs.steps, model


#: The loss scale the mixed-precision runs start from. Keras starts at 2**15, with which the first
#: steps of these summed-over-pixels losses overflow float16 and are skipped (the scale halves) —
#: correct dynamic loss scaling, but two steps would then compare nothing. 2**7 does not overflow and
#: still exposes a step that forgets ``scale_loss``: its update would shrink 128-fold.
LOSS_SCALE = 2.0 ** 7


def _start_loss_scales(model):
    for name in ("optimizer", "d_optimizer", "adversary_optimizer"):
        optimizer = getattr(model, name, None)
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
            optimizer.dynamic_scale.assign(LOSS_SCALE)


def equivalence(cases):
    """Default strategy against MirroredStrategy on 2 logical CPUs (fit, and the custom loop)."""
    results = {}
    for case in cases:
        initial, expected, steps = reference(case)
        out = {"default": {"steps": steps}}
        for driver in ("mirrored-fit", "mirrored-loop") if case in LOOP_CASES else ("mirrored-fit",):
            _, trained, steps, _ = train(case, driver)
            out[driver] = dict(compare(expected, trained), steps=steps)
        out["update_max"] = update_difference(initial, expected, expected)[1]
        results[case] = out
        print(json.dumps({case: out}), file=sys.stderr, flush=True)
    return results


def mixed_precision(cases):
    """mixed_float16 against float32 (one replica): the update must agree to float16 accuracy.

    A custom step that skips ``optimizer.scale_loss`` hands the LossScaleOptimizer unscaled
    gradients, which it divides by the loss scale (2**15): its update would be ~0, not ≈ float32's.
    """
    results = {}
    for case in cases:
        initial, expected, steps = reference(case)
        _, trained, mixed_steps, model = train(case, "default", mixed_precision=True)
        difference, largest = update_difference(initial, expected, trained)
        results[case] = dict(update_difference=difference, update_max=largest, steps=steps, mixed_steps=mixed_steps,
                             optimizer=type(model.optimizer).__name__,
                             compute_dtype=model.dtype_policy.compute_dtype)
        print(json.dumps({case: results[case]}), file=sys.stderr, flush=True)
    return results


def jit(cases):
    """XLA-compiled steps against plain tf.function steps (default strategy)."""
    results = {}
    for case in cases:
        _, expected, steps = reference(case)
        _, trained, jit_steps, _ = train(case, "default", jit_compile=True)
        results[case] = dict(compare(expected, trained), steps=steps, jit_steps=jit_steps)
        print(json.dumps({case: results[case]}), file=sys.stderr, flush=True)
    return results


def main(argv):
    configure_cpu_replicas(2)  # before anything creates a variable: TF fixes its devices then
    cases = [a for a in argv if a in CASES]
    results = {}
    if "--equivalence" in argv:
        results["equivalence"] = equivalence(cases or list(CASES))
    if "--mixed-precision" in argv:
        chosen = [c for c in os.environ.get("ZOO_MIXED_CASES", "").split(",") if c in CASES]
        results["mixed_precision"] = mixed_precision(cases or chosen or list(CASES))
    if "--jit-compile" in argv:
        results["jit_compile"] = jit(cases or list(JIT_CASES))
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
