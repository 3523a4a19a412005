"""``train``: preset -> dataset -> compiled model -> ``fit`` with checkpoints -> evaluation."""
from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

from zoo.api import build_model, load, model_config, resolve
from zoo.data import dataset_params, load_dataset
from zoo.errors import ConfigError
from zoo.evaluation import evaluate_model
from zoo.files import atomic_save_weights, atomic_write_text, strict_json
from zoo.packs.provenance import record_training
from zoo.registry import TrainRecipe
from zoo.training.checkpoint import EpochCheckpoint
from zoo.training.run import (CHECKPOINT_DIR, METRICS_FILE, RUN_FILE, SEED, WEIGHTS_FILE, RunLock,
                              check_epochs, check_same_run, read_run_record, record_of, write_run_record)
from zoo.validate import check, check_value


@dataclasses.dataclass
class TrainResult:
    model: object
    metrics: dict
    history: dict
    out: Path | None
    initial_epoch: int


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def train(
    name: str,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    data_dir=None,
    dataset: str | None = None,
    dataset_args: dict | None = None,
    overrides: dict | None = None,
    recipe: TrainRecipe | dict | None = None,
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
    ``config.json`` (the run record), ``model.weights.h5``, ``metrics.json``, TensorBoard ``logs/``
    and the family's extra outputs (e.g. sample grids). A directory holding another run (another
    preset, config, dataset, seed or recipe) is refused, as is one another process is training into.

    ``recipe`` (a ``TrainRecipe`` or a mapping of its fields) replaces the preset's training recipe;
    ``epochs`` and ``batch_size`` override single fields of it. ``dataset_args`` are the dataset
    factory's parameters (``--dataset-arg``, e.g. ``{"speaker": "theo"}``), recorded in ``config.json``.
    ``strategy`` is ``default``, ``mirrored`` (all GPUs, or ``cpu_replicas`` logical CPU devices) or
    ``multiworker`` (``TF_CONFIG``; only the chief writes to ``out``, which every worker must be able
    to read to resume). ``batch_size`` is the global batch. ``mixed_precision`` uses the
    ``mixed_float16`` policy (with loss scaling); ``jit_compile`` compiles the train step with XLA.
    ``callbacks`` are further Keras callbacks for the training loop.
    """
    import keras

    from zoo import __version__
    from zoo.distribute import is_chief, make_strategy

    spec, preset = resolve(name)
    seed = check_value(Annotated[int, SEED], seed, "train", "seed")
    dataset_name = dataset or (preset.dataset if preset else None)
    if dataset_name is None:
        raise ConfigError(f"{name!r} is an architecture without a preset: name a dataset (--dataset)")
    recipe = _recipe(preset, recipe, epochs=epochs, batch_size=batch_size)
    dataset_args = dataset_params(dataset_args)
    # bad overrides and step_params are refused before any data is read
    model_config(spec, preset, None, overrides)
    _check_step_params(recipe, f"{_where(name, preset)}: train.step_params")

    dist = make_strategy(strategy, cpu_replicas)  # first: logical CPU devices must exist before TF starts
    keras.utils.set_random_seed(seed)
    data = load_dataset(dataset_name, data_dir=data_dir, seed=seed, **dataset_args)
    # Bare architectures take their input shape and class count from the data.
    defaults = spec.config_defaults()
    inferred = {k: data.info[k] for k in ("input_shape", "num_classes")
                if k in defaults and k in data.info and not (preset and k in preset.config)}
    config = model_config(spec, preset, inferred, overrides)
    _check_data_fits(name, dataset_name, data.info, config)
    run = record_of(dict(name=name, architecture=spec.name, config=config, dataset=dataset_name,
                         dataset_args=dataset_args, recipe=dataclasses.asdict(recipe), seed=seed,
                         zoo_version=__version__))

    multiworker = strategy == "multiworker"
    chief = is_chief(dist)
    out = Path(out) if out is not None else None
    lock = RunLock(out) if out is not None and chief else contextlib.nullcontext()
    with lock:
        previous = None
        if out is not None and (out / RUN_FILE).exists():
            previous = record_of(read_run_record(out, need_weights=False))
            check_same_run(out, previous, run)
        network, model = _build(spec, config, recipe, dist, mixed_precision, jit_compile,
                                f"{_where(name, preset)}: train.step_params")

        # the schedule first: it adds the epoch's learning rate to the logs the checkpoint records
        callbacks, initial_epoch, history = [*schedule_callbacks(recipe), *callbacks], 0, {}
        if out is not None:
            with dist.scope():  # restoring builds the optimizer's variables
                initial_epoch, history = EpochCheckpoint.restore(model, out / CHECKPOINT_DIR)
            if previous is not None:
                check_epochs(out, previous, run, initial_epoch)
            if chief:  # written only now: a refused or failed restore leaves the directory as it was
                write_run_record(out, run)
                callbacks.append(EpochCheckpoint(out / CHECKPOINT_DIR, history))
                if not multiworker:
                    callbacks.append(keras.callbacks.TensorBoard(str(out / "logs"), write_graph=False))
                    if spec.callbacks is not None:
                        callbacks += spec.callbacks(network, data, out)

        previous_handler = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        cpu_start = time.process_time()
        try:
            if initial_epoch < recipe.epochs:
                new = _fit(model, data, recipe, seed=seed, initial_epoch=initial_epoch, callbacks=callbacks,
                           verbose=verbose, strategy=dist if multiworker else None,
                           validate=spec.evaluate is None)
                for key, values in new.items():
                    history.setdefault(key, []).extend(values)
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
            if out is not None and chief and initial_epoch < recipe.epochs:  # the recipe a pack publishes
                record_training(out, time.process_time() - cpu_start, data, data_dir)
        if getattr(model.optimizer, "use_ema", False):
            # fit ends on the averaged weights, but custom_fit and an already finished run restored from
            # its checkpoint hold the raw ones; overwriting with the average is idempotent.
            model.optimizer.finalize_variable_values(model.trainable_variables)

        if multiworker:  # Keras's evaluate cannot run under MultiWorkerMirroredStrategy (keras-team/keras#20585)
            network, model = _local_copy(spec, config, recipe, model)
        metrics = evaluate_model(spec, model, data)
        if out is not None and chief:
            atomic_save_weights(network, out / WEIGHTS_FILE)
            atomic_write_text(out / METRICS_FILE, strict_json(metrics, indent=2)[0])
    return TrainResult(network, metrics, history, out, initial_epoch)


def _recipe(preset, recipe, **fields) -> TrainRecipe:
    """The checked recipe: ``recipe`` (or the preset's, or the default) with ``fields`` not None."""
    base = preset.train if preset else TrainRecipe()
    if recipe is not None:
        base = check(TrainRecipe, recipe if isinstance(recipe, dict) else dataclasses.asdict(recipe), "recipe")
    given = {k: v for k, v in fields.items() if v is not None}
    return check(TrainRecipe, {**dataclasses.asdict(base), **given}, "training recipe (--epochs, --batch-size)")


def _check_step_params(recipe, where) -> None:
    from zoo.plugins import get_plugin_manager

    kind = get_plugin_manager().train_steps().get(recipe.step)
    if kind is not None:  # "auto" and unknown kinds are settled when the model exists
        kind.check_params(recipe.step_params, where)


def _build(spec, config, recipe, strategy, mixed_precision, jit_compile, where):
    """``(network, what fit trains)``, their variables created under ``strategy`` and the policy."""
    import keras

    from zoo.training.steps import trainer_for

    policy = keras.mixed_precision.global_policy()
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with strategy.scope():  # variables, optimizers and metrics are created under the strategy
            network = build_model(spec, config)
            model = trainer_for(network, recipe, where)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    if jit_compile:
        _check_jit(strategy)
        model.jit_compile = True
    return network, model


def _fit(model, data, recipe, *, seed, initial_epoch, callbacks, verbose, strategy, validate) -> dict:
    """Epochs ``initial_epoch..recipe.epochs`` of ``model`` on the data's seeded stream: Keras's
    ``fit``, or the zoo's loop under a multi-worker ``strategy``. Returns the new history."""
    from zoo.distribute import custom_fit

    if verbose == "auto":  # a bar on a terminal; one line per epoch in a log file or CI
        verbose = 1 if sys.stdout.isatty() else 2
    if strategy is not None:
        return custom_fit(model, lambda: data.pipeline("train", recipe.batch_size, seed=seed), epochs=recipe.epochs,
                          global_batch_size=recipe.batch_size, strategy=strategy, initial_epoch=initial_epoch,
                          callbacks=callbacks, verbose=verbose != 0)
    train_data, steps_per_epoch = _epoch_stream(data.pipeline("train", recipe.batch_size, seed=seed), initial_epoch)
    fit = model.fit(
        train_data,
        shuffle=False,  # the pipeline shuffles (seeded); Keras would warn that it ignores shuffle=True
        steps_per_epoch=steps_per_epoch,
        epochs=recipe.epochs,
        initial_epoch=initial_epoch,
        validation_data=data.pipeline("test", 256) if validate else None,
        callbacks=callbacks,
        verbose=verbose,
    )
    return {key: [float(v) for v in values] for key, values in fit.history.items()}


def _local_copy(spec, config, recipe, model):
    """``(network, trained model)`` rebuilt outside the distribution strategy with ``model``'s weights."""
    from zoo.training.steps import trainer_for

    network = build_model(spec, config)
    local = trainer_for(network, recipe)
    local.set_weights(model.get_weights())
    return network, local


def _where(name, preset) -> str:
    from zoo.registry import registry_path

    return f"{registry_path()}: preset {name!r}" if preset else f"architecture {name!r}"


def _check_data_fits(name, dataset, info, config) -> None:
    """A dataset whose examples do not fit the model's input is refused before anything is built."""
    fix = "pass --set {key}=... or a dataset that fits"
    if "input_shape" in info and "input_shape" in config and list(info["input_shape"]) != list(config["input_shape"]):
        raise ConfigError(f"dataset {dataset!r} gives inputs of shape {tuple(info['input_shape'])}, but {name!r} "
                          f"is configured for {tuple(config['input_shape'])}; " + fix.format(key="input_shape"))
    if "num_classes" in info and "num_classes" in config and int(info["num_classes"]) > int(config["num_classes"]):
        raise ConfigError(f"dataset {dataset!r} has {info['num_classes']} classes, but {name!r} is configured for "
                          f"{config['num_classes']}; " + fix.format(key="num_classes"))


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


@dataclasses.dataclass
class Evaluation:
    """What :func:`evaluate_run` measured, and on what."""

    metrics: dict  # name -> value, as `zoo evaluate` reports them
    model: object  # what was evaluated: the network, or the recipe's trainer wrapping it
    data: object  # the dataset measured on
    dataset: str
    dataset_args: dict
    seed: int


def evaluate(name: str | None, weights, *, data_dir=None, dataset: str | None = None,
             dataset_args: dict | None = None, batch_size: int = 256) -> dict:
    """Metrics of a model trained into ``weights`` (a run or pack directory, ...) on its dataset's
    test split, measured as :func:`evaluate_run` measures them. ``name`` may be ``None``: the run
    record names the preset."""
    from zoo.api import read_run

    run = read_run(weights, name)
    name = name or run["name"]
    network = load(name, weights=weights, compile=False)
    return evaluate_run(name, network, run, data_dir=data_dir, dataset=dataset, dataset_args=dataset_args,
                        batch_size=batch_size, where=f"{weights}: {RUN_FILE}").metrics


def evaluate_run(name: str, network, run: dict, *, data_dir=None, dataset: str | None = None,
                 dataset_args: dict | None = None, batch_size: int = 256, where: str = RUN_FILE) -> Evaluation:
    """Test-split metrics of ``network`` (the model ``name`` trained in the run recorded by ``run``,
    its ``config.json``), measured as training measured them: through the run's recipe's trainer,
    so the objective's own metrics (accuracy under the training attack, a nuisance probe) come too;
    on the run's dataset with its recorded ``dataset_args`` (``dataset_args`` given here override
    them; naming another ``dataset`` drops them); under the run's seed, so a random evaluation (PGD's
    random start, a VAE's posterior sample) gives the same figures every time. ``zoo evaluate`` and
    ``zoo pack`` both measure through here, so a pack's card and ``zoo evaluate`` agree. Metrics of
    the trainer's own state (``state_metrics``: adversary heads, λ) are left out."""
    import keras

    from zoo.training.steps import trainer_for

    spec, _ = resolve(name)
    recipe = check(TrainRecipe, run.get("recipe", {}), f"{where}: recipe")
    model = trainer_for(network, recipe, f"{where}: recipe.step_params")
    dataset_name = dataset or run["dataset"]
    args = {**((run.get("dataset_args") or {}) if dataset_name == run["dataset"] else {}), **dataset_params(dataset_args)}
    seed = int(run.get("seed", 0))
    data = load_dataset(dataset_name, data_dir=data_dir, seed=seed, **args)
    keras.utils.set_random_seed(seed)
    metrics = evaluate_model(spec, model, data, batch_size)
    # the trainer's own state (a minimax trainer's adversary heads and λ) is not in a run's weights:
    # a reloaded network is measured against fresh heads, which says nothing about it
    left_out = getattr(model, "state_metrics", ())
    metrics = {k: v for k, v in metrics.items() if k not in left_out}
    return Evaluation(metrics, model, data, dataset_name, args, seed)
