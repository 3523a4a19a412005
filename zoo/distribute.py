"""``tf.distribute`` strategies for training: default, mirrored (GPUs, or N logical CPU devices for
testing) and multi-worker (``TF_CONFIG``), plus the custom loop the multi-worker path uses.

``model.fit`` under ``MultiWorkerMirroredStrategy`` fails in Keras 3.15 / TF 2.21
(keras-team/keras#20585), so the multi-worker path runs :func:`custom_fit`: ``strategy.run`` over the
model's own ``train_step`` — the same per-batch objective ``fit`` uses, driven by a different loop.
"""
from __future__ import annotations

import json
import os

from zoo.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multiworker")


def configure_cpu_replicas(n: int) -> None:
    """Split the physical CPU into ``n`` logical devices (must run before TensorFlow uses a device)."""
    import tensorflow as tf

    if n < 1:
        raise ConfigError(f"--cpu-replicas must be >= 1, got {n}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == n:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as exc:
        have = len(tf.config.list_logical_devices("CPU"))
        raise ConfigError(
            f"cannot split the CPU into {n} devices: TensorFlow is already initialised with {have}; "
            f"set ZOO_CPU_REPLICAS={n} (or pass --cpu-replicas) before anything else uses TensorFlow"
        ) from exc


def make_strategy(kind: str = "default", cpu_replicas: int | None = None):
    """A ``tf.distribute.Strategy`` by name; ``cpu_replicas`` (or ``$ZOO_CPU_REPLICAS``) splits the CPU."""
    import tensorflow as tf

    if kind not in STRATEGIES:
        raise ConfigError(f"unknown strategy {kind!r}; choose from {', '.join(STRATEGIES)}")
    cpu_replicas = cpu_replicas or int(os.environ.get("ZOO_CPU_REPLICAS", "0") or 0) or None
    if cpu_replicas:
        configure_cpu_replicas(cpu_replicas)
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        if len(devices) < 2 and not gpus:
            raise ConfigError("mirrored on CPU needs several logical devices: pass --cpu-replicas 2")
        cross = None if gpus else tf.distribute.ReductionToOneDevice(reduce_to_device=devices[0])
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross)
    if "TF_CONFIG" not in os.environ:
        raise ConfigError("multiworker needs TF_CONFIG (see tools/launch_workers.py for local workers)")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except ValueError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {exc}") from exc
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """True for the worker that writes checkpoints and outputs (task 0, or a single process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0)


def replica_slices(dataset_fn, global_batch_size: int, strategy):
    """Distribute global batches so replica ``i`` gets rows ``[i*b, (i+1)*b)`` of every global batch.

    Every worker builds the same seeded global pipeline and keeps its own slice, so a run on N replicas
    sees exactly the batches of a single-process run with the same global batch size and seed.
    """
    import tensorflow as tf

    n = strategy.num_replicas_in_sync
    if global_batch_size % n:
        raise ConfigError(f"global batch size {global_batch_size} is not divisible by {n} replicas")
    per_replica = global_batch_size // n

    def per_worker(context: tf.distribute.InputContext):
        ds = dataset_fn()
        local = n // context.num_input_pipelines
        first = context.input_pipeline_id * local * per_replica
        take = local * per_replica
        return ds.map(lambda *batch: tf.nest.map_structure(lambda t: t[first:first + take], batch)).rebatch(per_replica)

    return strategy.distribute_datasets_from_function(per_worker)


def global_logs(model, strategy, per_replica_logs) -> dict:
    """The logs of a ``strategy.run`` step as one process would report them.

    Keras metric state is synchronised on read (``ON_READ``, summed), so a metric's ``result()`` read
    here, in cross-replica context, covers the whole global batch; a value that is no metric of the
    model falls back to the mean over replicas.
    """
    import tensorflow as tf

    results = {}
    for metric in model.metrics:
        value = metric.result()
        results.update(value if isinstance(value, dict) else {metric.name: value})
    return {key: results[key] if key in results else strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
            for key, value in per_replica_logs.items()}


def custom_fit(model, dataset_fn, *, epochs: int, global_batch_size: int, strategy, initial_epoch: int = 0,
               callbacks=(), verbose: bool = True) -> dict:
    """Train with ``strategy.run(model.train_step)`` (the path for ``MultiWorkerMirroredStrategy``).

    ``dataset_fn()`` returns the global, batched, seeded ``tf.data`` pipeline of one epoch; batches
    smaller than ``global_batch_size`` are dropped (every replica must get an equal share), and epoch
    ``k`` sees the ``k``-th reshuffle whether or not the run was resumed. Callbacks receive
    ``on_epoch_begin``, ``on_train_batch_end`` and ``on_epoch_end`` as under ``fit``. Returns ``{metric: [per epoch]}``.
    """
    import tensorflow as tf

    def full(*batch):
        return tf.equal(tf.shape(tf.nest.flatten(batch)[0])[0], global_batch_size)

    # All epochs as one seeded stream (as _epoch_stream does for fit): a run resumed after epoch k
    # skips exactly k epochs of batches and sees the reshuffles an uninterrupted run sees.
    per_epoch = int(dataset_fn().cardinality())
    if per_epoch > 0:
        last = tf.nest.flatten(next(iter(dataset_fn().skip(per_epoch - 1))))[0]
        steps = per_epoch - (0 if int(last.shape[0]) == global_batch_size else 1)
        stream = iter(replica_slices(lambda: dataset_fn().repeat().skip(initial_epoch * per_epoch).filter(full),
                                     global_batch_size, strategy))
    else:  # a pipeline of unknown length: one pass per epoch
        dist = replica_slices(lambda: dataset_fn().filter(full), global_batch_size, strategy)

    def epoch_batches():
        return (next(stream) for _ in range(steps)) if per_epoch > 0 else iter(dist)

    train_step = tf.function(model.train_step, jit_compile=bool(getattr(model, "jit_compile", False)))

    @tf.function
    def step(batch):
        return global_logs(model, strategy, strategy.run(train_step, args=(batch,)))

    history: dict = {}
    for callback in callbacks:
        callback.set_model(model)
    for epoch in range(initial_epoch, epochs):
        for metric in model.metrics:
            metric.reset_state()
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        logs = {}
        for index, batch in enumerate(epoch_batches()):
            logs = step(batch)
            for callback in callbacks:
                callback.on_train_batch_end(index, logs)
        logs = {k: float(v) for k, v in logs.items()}
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), flush=True)
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
    return history
