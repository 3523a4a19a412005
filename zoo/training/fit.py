"""``train``: preset -> dataset -> compiled model -> ``fit`` with checkpoints -> evaluation."""
from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
from pathlib import Path

from zoo.api import RUN_FILE, WEIGHTS_FILE, load, model_config, resolve
from zoo.data import load_dataset
from zoo.errors import ConfigError
from zoo.registry import TrainRecipe
from zoo.training.checkpoint import EpochCheckpoint, atomic_save_weights, atomic_write_text

METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoint"


@dataclasses.dataclass
class TrainResult:
    model: object
    metrics: dict
    history: dict
    out: Path | None
    initial_epoch: int


def evaluate_model(spec, model, dataset, batch_size=256) -> dict:
    """Test-split metrics: the family's own ``evaluate`` or Keras's ``model.evaluate``."""
    if spec.evaluate is not None:
        return {k: float(v) for k, v in spec.evaluate(model, dataset).items()}
    results = model.evaluate(dataset.pipeline("test", batch_size), verbose=0, return_dict=True)
    return {k: float(v) for k, v in results.items()}


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def train(
    name: str,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    data_dir=None,
    dataset: str | None = None,
    overrides: dict | None = None,
    seed: int = 0,
    out=None,
    verbose="auto",
    strategy: str = "default",
    cpu_replicas: int | None = None,
    mixed_precision: bool = False,
    jit_compile: bool = False,
    callbacks=(),
) -> TrainResult:
    """Train the preset (or architecture) ``name``; with ``out``, checkpoint every epoch and resume.

    Rerunning with the same ``out`` continues from the last completed epoch; ``out`` then holds
    ``config.json``, ``model.weights.h5``, ``metrics.json``, TensorBoard ``logs/`` and the family's
    extra outputs (e.g. sample grids).

    ``strategy`` is ``default``, ``mirrored`` (all GPUs, or ``cpu_replicas`` logical CPU devices) or
    ``multiworker`` (``TF_CONFIG``; only the chief writes to ``out``, which every worker must be able
    to read to resume). ``batch_size`` is the global batch. ``mixed_precision`` uses the
    ``mixed_float16`` policy (with loss scaling); ``jit_compile`` compiles the train step with XLA.
    ``callbacks`` are further Keras callbacks for the training loop.
    """
    import keras

    from zoo.distribute import custom_fit, is_chief, make_strategy

    spec, preset = resolve(name)
    dataset_name = dataset or (preset.dataset if preset else None)
    if dataset_name is None:
        raise ConfigError(f"{name!r} is an architecture without a preset: name a dataset (--dataset)")
    recipe = preset.train if preset else TrainRecipe()
    recipe = dataclasses.replace(
        recipe, **{k: v for k, v in dict(epochs=epochs, batch_size=batch_size).items() if v is not None}
    )
    if recipe.epochs < 1 or recipe.batch_size < 1:
        raise ConfigError(f"epochs and batch size must be positive, got {recipe.epochs} and {recipe.batch_size}")

    dist = make_strategy(strategy, cpu_replicas)  # first: logical CPU devices must exist before TF starts
    keras.utils.set_random_seed(seed)
    data = load_dataset(dataset_name, data_dir=data_dir, seed=seed)
    # Bare architectures take their input shape and class count from the data.
    inferred = {k: data.info[k] for k in ("input_shape", "num_classes")
                if k in spec.defaults and k in data.info and not (preset and k in preset.config)}
    config = model_config(spec, preset, inferred, overrides)
    run = dict(name=name, architecture=spec.name, config=_jsonable(config), dataset=dataset_name,
               recipe=dataclasses.asdict(recipe), seed=seed)

    multiworker = strategy == "multiworker"
    chief = is_chief(dist)
    policy = keras.mixed_precision.global_policy()
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with dist.scope():  # variables, optimizers and metrics are created under the strategy
            model = load(name, recipe=recipe, **{**inferred, **(overrides or {})})
    finally:
        keras.mixed_precision.set_global_policy(policy)
    if jit_compile:
        _check_jit(dist)
        model.jit_compile = True

    # the schedule first: it adds the epoch's learning rate to the logs the checkpoint records
    callbacks, initial_epoch, history = [*schedule_callbacks(recipe), *callbacks], 0, {}
    out = Path(out) if out is not None else None
    if out is not None:
        if chief:
            initial_epoch, history = _prepare_out(out, run, model)
            callbacks.append(EpochCheckpoint(out / CHECKPOINT_DIR, history))
            if not multiworker:
                callbacks.append(keras.callbacks.TensorBoard(str(out / "logs"), write_graph=False))
                if spec.callbacks is not None:
                    callbacks += spec.callbacks(model, data, out)
        else:  # other workers only read the chief's checkpoint so every replica resumes alike
            initial_epoch, history = EpochCheckpoint.restore(model, out / CHECKPOINT_DIR)

    if verbose == "auto":  # a bar on a terminal; one line per epoch in a log file or CI
        verbose = 1 if sys.stdout.isatty() else 2
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        if initial_epoch < recipe.epochs and multiworker:
            new = custom_fit(
                model, lambda: data.pipeline("train", recipe.batch_size, seed=seed),
                epochs=recipe.epochs, global_batch_size=recipe.batch_size, strategy=dist,
                initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose != 0,
            )
            for key, values in new.items():
                history.setdefault(key, []).extend(values)
        elif initial_epoch < recipe.epochs:
            train_data, steps_per_epoch = _epoch_stream(data.pipeline("train", recipe.batch_size, seed=seed),
                                                        initial_epoch)
            fit = model.fit(
                train_data,
                shuffle=False,  # the pipeline shuffles (seeded); Keras would warn that it ignores shuffle=True
                steps_per_epoch=steps_per_epoch,
                epochs=recipe.epochs,
                initial_epoch=initial_epoch,
                validation_data=data.pipeline("test", 256) if spec.evaluate is None else None,
                callbacks=callbacks,
                verbose=verbose,
            )
            for key, values in fit.history.items():
                history.setdefault(key, []).extend(float(v) for v in values)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if getattr(model.optimizer, "use_ema", False):
        # fit ends on the averaged weights, but custom_fit and an already finished run restored from
        # its checkpoint hold the raw ones; overwriting with the average is idempotent.
        model.optimizer.finalize_variable_values(model.trainable_variables)

    metrics = evaluate_model(spec, model, data)
    if out is not None and chief:
        atomic_save_weights(model, out / WEIGHTS_FILE)
        atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=2))
    return TrainResult(model, metrics, history, out, initial_epoch)


def schedule_callbacks(recipe) -> list:
    """The recipe's learning-rate schedule as Keras callbacks (none for ``constant``). Cosine decay
    is a function of the epoch index alone, so a resumed run continues the same curve."""
    import keras

    if recipe.lr_schedule == "constant":
        return []
    lr, epochs = recipe.learning_rate, recipe.epochs
    return [keras.callbacks.LearningRateScheduler(
        lambda epoch, _lr=None: float(lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))))]


def _epoch_stream(dataset, initial_epoch: int):
    """``(dataset, steps per epoch)``: all epochs as one stream of batches, so that a run resumed
    after epoch k skips exactly the batches of epochs 1..k and then sees the same reshuffled batches
    as an uninterrupted run (a fresh pipeline would start again from the first epoch's shuffle).
    A pipeline of unknown length is returned as it is (``None`` steps: one pass per epoch)."""
    steps = int(dataset.cardinality())
    if steps <= 0:
        return dataset, None
    return dataset.repeat().skip(initial_epoch * steps), steps


def _check_jit(strategy) -> None:
    """XLA on CPU compiles every replica for one device, so logical CPU replicas cannot use it."""
    import tensorflow as tf

    if strategy.num_replicas_in_sync > 1 and not tf.config.list_logical_devices("GPU"):
        raise ConfigError(
            "--jit-compile with several replicas needs GPUs: XLA compiles for CPU:0 while replica 1's "
            "variables live on CPU:1 (tensorflow.org/xla/known_issues); drop --jit-compile or the CPU replicas"
        )


def _prepare_out(out: Path, run: dict, model) -> tuple[int, dict]:
    """Write (or check) ``config.json`` in ``out`` and restore a checkpoint if one is there."""
    run_path = out / RUN_FILE
    if run_path.exists():
        previous = json.loads(run_path.read_text())
        same = {k: previous.get(k) for k in ("architecture", "config", "dataset", "seed")}
        if same != {k: run[k] for k in same}:
            raise ConfigError(
                f"{out} already holds a different run ({previous.get('name')}, config {previous.get('config')}); "
                f"choose another --out or delete it"
            )
    atomic_write_text(run_path, json.dumps(run, indent=2))
    return EpochCheckpoint.restore(model, out / CHECKPOINT_DIR)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def evaluate(name: str, weights, *, data_dir=None, dataset: str | None = None, batch_size: int = 256) -> dict:
    """Metrics of a model trained into ``weights`` on its dataset's test split."""
    from zoo.api import read_run

    spec, _ = resolve(name)
    run = read_run(weights)
    model = load(name, weights=weights)
    data = load_dataset(dataset or run["dataset"], data_dir=data_dir, seed=run.get("seed", 0))
    return evaluate_model(spec, model, data, batch_size)
