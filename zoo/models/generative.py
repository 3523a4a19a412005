"""Pieces shared by the generative families (autoencoders, VAE, DCGAN, VAE-GAN).

* conv encoder / decoder stacks that fit any image size divisible by 2**len(filters);
* :func:`images_of`: the image half of a ``(x, y)`` batch (generative models ignore labels);
* :func:`average_over_global_batch`: per-example losses -> the scaled loss a train step
  differentiates (sum / GLOBAL batch, correct under ``tf.distribute``);
* :class:`SampleGrid`: the per-epoch sample grid ``zoo train --out`` writes.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


def check_downsampling(image_shape, filters, what="model"):
    """Each conv block halves height and width, so both must divide by ``2**len(filters)``."""
    factor = 2 ** len(filters)
    h, w = image_shape[:2]
    if h % factor or w % factor:
        raise ValueError(
            f"{what}: image size {h}x{w} must be divisible by 2**len(filters) = {factor} "
            f"(got filters={list(filters)}); use fewer conv blocks"
        )
    return h // factor, w // factor


def conv_encoder(image_shape, filters, outputs, *, name, leaky=False, dropout=0.0):
    """Strided convs (each halves the image), flatten, then a dense layer of ``outputs`` units.

    ``leaky``: DCGAN discriminator style (4x4 kernels, LeakyReLU 0.2) instead of 3x3 ReLU.
    """
    layers = [keras.Input(image_shape)]
    for i, f in enumerate(filters):
        layers.append(keras.layers.Conv2D(f, 4 if leaky else 3, strides=2, padding="same",
                                          activation=None if leaky else "relu", name=f"conv{i}"))
        if leaky:
            layers.append(keras.layers.LeakyReLU(0.2, name=f"lrelu{i}"))
    layers.append(keras.layers.Flatten(name="flatten"))
    if dropout:
        layers.append(keras.layers.Dropout(dropout, name="dropout"))
    layers.append(keras.layers.Dense(outputs, name="out"))
    return keras.Sequential(layers, name=name)


def conv_decoder(latent_dim, image_shape, filters, *, name, batch_norm=False, output_activation=None):
    """Dense to a small feature map, transposed convs (each doubles the size), a 3x3 conv to the image.

    ``filters`` are listed from the image side (as for the encoder) and used in reverse.
    """
    h, w = check_downsampling(image_shape, filters, name)
    filters = list(filters)[::-1]
    layers = [keras.Input((latent_dim,)), keras.layers.Dense(h * w * filters[0], name="project")]
    if batch_norm:
        # synchronized: the batch statistics are the global batch's under tf.distribute, so one and
        # two replicas train the same model.
        layers.append(keras.layers.BatchNormalization(synchronized=True, name="bn_project"))
    layers += [keras.layers.ReLU(name="relu_project"), keras.layers.Reshape((h, w, filters[0]), name="reshape")]
    for i, f in enumerate(filters):
        layers.append(keras.layers.Conv2DTranspose(f, 4 if batch_norm else 3, strides=2, padding="same",
                                                   activation=None if batch_norm else "relu", name=f"deconv{i}"))
        if batch_norm:
            layers += [keras.layers.BatchNormalization(synchronized=True, name=f"bn{i}"),
                       keras.layers.ReLU(name=f"relu{i}")]
    layers.append(keras.layers.Conv2D(image_shape[-1], 3, padding="same", activation=output_activation, name="image"))
    return keras.Sequential(layers, name=name)


def images_of(data):
    """The images of a batch: ``x`` or the ``x`` of ``(x, y[, w])``."""
    if isinstance(data, (tuple, list)):
        return data[0]
    return data


def average_over_global_batch(per_example):
    """Sum of per-example losses divided by the GLOBAL batch size (``tf.nn.compute_average_loss``).

    Under a ``tf.distribute`` strategy each replica sees its share of the batch and the optimizer
    sums the replicas' gradients, so this is the scaling that makes N replicas equal one.
    """
    return tf.nn.compute_average_loss(per_example)


def check_images(x, image_shape, what):
    """Refuse a batch whose shape is not ``(batch, *image_shape)`` with a clear message."""
    shape = tuple(np.shape(x)) if not hasattr(x, "shape") else tuple(x.shape)
    if len(shape) != 4 or tuple(shape[1:]) != tuple(image_shape):
        raise ValueError(f"{what}: expected images of shape (batch, {', '.join(map(str, image_shape))}), got {shape}")


def batch_noise(kind, shape, seed_generator):
    """``"normal"`` or ``"uniform"`` noise of ``shape`` for one replica's share of a batch.

    Under ``tf.distribute`` every replica draws the noise of the whole global batch from the same
    generator state and keeps its own rows, so N replicas see exactly the noise one replica would
    (given the usual even split of the global batch) and train the same model.
    """
    draw = keras.random.normal if kind == "normal" else keras.random.uniform
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    if replicas == 1:
        return draw(shape, seed=seed_generator)
    shape = tf.unstack(tf.convert_to_tensor(shape, tf.int32))
    rows = shape[0]
    full = draw(tf.stack([rows * replicas, *shape[1:]]), seed=seed_generator)
    start = rows * tf.cast(context.replica_id_in_sync_group, tf.int32)
    return full[start:start + rows]


def normal_noise(shape, seed, seed_generator):
    """Gaussian noise: stateless from an integer ``seed`` (reproducible), else from the model's generator."""
    if seed is not None:
        return tf.random.stateless_normal(shape, seed=[int(seed), 0])
    return keras.random.normal(shape, seed=seed_generator)


def sample_images(model, n, seed=0):
    """``n`` images from a generative model (``sample`` or ``generate``), or ``None`` if it has neither."""
    for method in ("sample", "generate"):
        if hasattr(model, method):
            return np.asarray(getattr(model, method)(n, seed=seed))
    return None


class SampleGrid(keras.callbacks.Callback):
    """After every epoch, write ``<out>/samples/epoch_NNN.png``: samples drawn with a fixed seed (so
    the grids show the same latent codes improving), or, for plain autoencoders, test images above
    their reconstructions."""

    def __init__(self, out_dir, reference_images, n=64, seed=0):
        super().__init__()
        self.directory = Path(out_dir) / "samples"
        self.reference = np.asarray(reference_images[: n // 2])
        self.n = n
        self.seed = seed

    def grid_images(self):
        images = sample_images(self.model, self.n, self.seed)
        if images is None:  # an autoencoder: originals, then reconstructions
            recon = np.asarray(self.model(self.reference, training=False))
            images = np.concatenate([self.reference, recon])
        return images

    def on_epoch_end(self, epoch, logs=None):
        from zoo.viz import image_grid, save_png

        save_png(image_grid(self.grid_images()), self.directory / f"epoch_{epoch + 1:03d}.png")


def sample_grid_callbacks(model, dataset, out_dir):
    """``ModelSpec.callbacks`` of the generative families."""
    x_test, _ = dataset.arrays("test")
    return [SampleGrid(out_dir, x_test[:32])]


class GenerativeTrainer:
    """Mixin for models with their own ``train_step``: ``compile`` builds every optimizer on its
    variables (so compiling inside ``strategy.scope()`` creates distributed slots — the known trap for
    extra optimizers under MirroredStrategy), records the extra compile arguments, and
    ``compile_from_config`` restores them when ``keras.saving.load_model`` reloads the model.

    Subclasses implement ``compile_extras(**extras) -> dict`` (validate, attach optimizers, return
    the values to record) and list their optimizers with their variables in ``optimizers_and_variables``.
    """

    def compile(self, optimizer="adam", jit_compile=False, cosine_decay_steps=None, **kwargs):
        """Keras ``compile`` plus the family's own arguments (``train.step_params`` of a preset).

        ``cosine_decay_steps``: decay the learning rate to 0 along a cosine over that many steps
        (the linear autoencoder needs it to settle exactly on the PCA subspace).
        """
        # jit_compile off by default: XLA ran slower than plain tf.function for these small convnets
        # on this CPU (see the design guide), and the user can still turn it on.
        if cosine_decay_steps:
            optimizer = keras.optimizers.get(optimizer)
            config = optimizer.get_config()
            if isinstance(config["learning_rate"], (int, float)):  # not already a schedule (a reload)
                config["learning_rate"] = keras.optimizers.schedules.CosineDecay(
                    float(config["learning_rate"]), int(cosine_decay_steps))
                optimizer = type(optimizer).from_config(config)
        # The model's own objective is the loss and its trackers are the metrics, so a Keras loss or
        # metric (what the generic "supervised" recipe of a bare architecture passes) has no role.
        for unused in ("loss", "loss_weights", "metrics", "weighted_metrics"):
            kwargs.pop(unused, None)
        keras_keys = {"run_eagerly", "steps_per_execution", "auto_scale_loss"}
        extras = {k: v for k, v in kwargs.items() if k not in keras_keys}
        keras.Model.compile(self, optimizer=optimizer, jit_compile=jit_compile,
                            **{k: v for k, v in kwargs.items() if k in keras_keys})
        recorded = dict(self.compile_extras(**extras), cosine_decay_steps=cosine_decay_steps)
        self._compile_config = type(self._compile_config)(**self._compile_config.config, **recorded)
        for opt, variables in self.optimizers_and_variables():
            if not opt.built:
                opt.build(variables)

    @property
    def metrics(self):
        """The family's ``trackers`` (a dict name -> ``keras.metrics.Mean``), so ``fit`` resets them."""
        return list(self.trackers.values())

    def _report(self, terms):
        """Update the trackers with the per-example ``terms`` of one step; return their means."""
        for name, tracker in self.trackers.items():
            if name in terms:
                tracker.update_state(terms[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        """One optimizer step on ``objective(x)["loss"]`` (per example), averaged over the global batch;
        two-player families (DCGAN, VAE-GAN) override it."""
        x = images_of(data)
        with tf.GradientTape() as tape:
            terms = self.objective(x, training=True)
            loss = average_over_global_batch(terms["loss"])
            loss = self.optimizer.scale_loss(loss)  # mixed precision: the LossScaleOptimizer's scale
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self._report(terms)

    def test_step(self, data):
        return self._report(self.objective(images_of(data), training=False))

    def compile_extras(self, **extras):
        if extras:
            raise TypeError(f"{type(self).__name__}.compile() got unexpected arguments {sorted(extras)}")
        return {}

    def optimizers_and_variables(self):
        return [(self.optimizer, self.trainable_variables)]

    def compile_from_config(self, config):
        from keras.saving import deserialize_keras_object

        self.compile(**deserialize_keras_object(config))


#: Samples drawn per call of the model's ``sample``/``generate`` (batch k uses seed + k * batch, as
#: ``zoo.models.quality`` does), so memory does not grow with ``n`` beyond the images themselves.
SAMPLE_BATCH = 500


def write_samples(model, png, n=64, seed=0) -> dict:
    """Draw ``n`` (at most :data:`zoo.viz.MAX_GRID_IMAGES`) samples of a generative model with ``seed``, in
    batches of :data:`SAMPLE_BATCH`, and write them as a PNG grid."""
    from zoo.errors import ConfigError
    from zoo.viz import check_grid_size, image_grid, save_png

    n = check_grid_size(n)
    if not any(hasattr(model, m) for m in ("sample", "generate")):
        raise ConfigError(f"{type(model).__name__} cannot generate: only models with sample(n) or generate(n) "
                          f"(vae, dcgan, vaegan) can; an autoencoder's grid comes from `zoo train --out`")
    images = np.concatenate([sample_images(model, min(SAMPLE_BATCH, n - start), seed + start)
                             for start in range(0, n, SAMPLE_BATCH)])
    path = save_png(image_grid(images), png)
    return dict(n=int(len(images)), png=str(path), pixel_mean=float(np.mean(images)))


def demo_step(out, epochs=20, seed=0) -> dict:
    """The generative part of ``zoo demo``: train ``vae-digits`` on the embedded digits into
    ``out/vae-digits`` (sample grid per epoch) and write ``out/vae-digits/generated.png``.

    Returns the test metrics (negative ELBO and IWAE bound in nats, classifier Fréchet distance,
    confidence) plus ``png`` and ``seconds``.
    """
    import time

    from zoo.training.fit import train

    start = time.perf_counter()
    run_dir = Path(out) / "vae-digits"
    result = train("vae-digits", epochs=epochs, seed=seed, out=run_dir, verbose=0)
    summary = write_samples(result.model, run_dir / "generated.png", 64, seed)
    return dict(result.metrics, png=summary["png"], seconds=round(time.perf_counter() - start, 1))
