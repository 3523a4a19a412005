"""The augmentations behind ``zoo_augmentations()``; see the package docstring for the user's view.

Each is ``augmentation(x, y) -> (x, y)``: ``x`` a batch of images in [0, 1] of shape
(batch, height, width, channels), ``y`` integer labels of shape (batch,). ``image`` and ``vae`` are
TensorFlow all the way (usable in ``tf.data.Dataset.map`` or a train step); ``adversarial`` calls an
attack plugin, which may leave the graph, and ``gan`` seeds each draw from a Python counter, so those
two run eagerly (in a Python loop over batches).
"""
from __future__ import annotations

import inspect

import keras
import tensorflow as tf

from zoo import ConfigError, DataError, load


class Augmentation:
    """Input checks, parameter checks and the originals-plus-generated batch shared by all."""

    name = "augmentation"
    keep_originals = True

    @classmethod
    def from_params(cls, name, params):
        valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ConfigError(f"augmentation {name!r}: unknown parameter(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(valid)}")
        return cls(**params)

    def check(self, x, y):
        x = tf.convert_to_tensor(x)
        y = tf.convert_to_tensor(y)
        if not x.dtype.is_floating:
            raise DataError(f"{self.name} augmentation: images must be floats in [0, 1], got dtype {x.dtype.name}")
        if x.shape.rank != 4:
            raise DataError(f"{self.name} augmentation: expected images of shape (batch, height, width, channels), "
                            f"got {tuple(x.shape)}")
        if not y.dtype.is_integer or y.shape.rank != 1:
            raise DataError(f"{self.name} augmentation: expected integer labels of shape (batch,), "
                            f"got {y.dtype.name} {tuple(y.shape)}")
        if x.shape[0] is not None and y.shape[0] is not None and x.shape[0] != y.shape[0]:
            raise DataError(f"{self.name} augmentation: {x.shape[0]} images but {y.shape[0]} labels")
        return tf.cast(x, tf.float32), y

    def combine(self, x, y, new_x, new_y):
        """The originals followed by the generated examples (or only the latter)."""
        new_y = tf.cast(new_y, y.dtype)
        if not self.keep_originals:
            return new_x, new_y
        return tf.concat([x, new_x], axis=0), tf.concat([y, new_y], axis=0)


def _model(what, model, weights):
    """A model object, or a zoo name (+ a ``zoo train --out`` directory) to load."""
    if isinstance(model, str):
        return load(model, weights=weights)
    if model is None or not callable(model):
        raise ConfigError(f"{what} must be a keras model or a zoo model name, got {model!r}")
    return model


def _probabilities(classifier, x):
    out = classifier(x, training=False)
    return tf.nn.softmax(out) if getattr(classifier, "output_kind", "softmax") == "logits" else out


class _Counted(Augmentation):
    """Counts generated and kept examples, so a user can see what a filter drops."""

    def _init_counters(self):
        self.generated = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.kept = tf.Variable(0, dtype=tf.int64, trainable=False)

    def _count(self, generated, kept):
        self.generated.assign_add(tf.cast(generated, tf.int64))
        self.kept.assign_add(tf.cast(kept, tf.int64))

    @property
    def acceptance(self) -> float:
        """The fraction of generated examples kept so far."""
        return float(self.kept.numpy()) / max(1, int(self.generated.numpy()))


class ImageAugmentation(Augmentation):
    """Random rotation (fraction of a full turn), translation and zoom (fractions of the image size),
    contrast and flips, from Keras preprocessing layers; the batch keeps its size and labels.

    ``keep_originals=True`` returns the originals plus one transformed copy instead.
    """

    name = "image"

    def __init__(self, rotation=0.05, translation=0.1, zoom=0.1, contrast=0.0, flip=None, keep_originals=False,
                 seed=0):
        for key, value in dict(rotation=rotation, translation=translation, zoom=zoom, contrast=contrast).items():
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(f"image augmentation: {key} must be a number in [0, 1), got {value!r}")
        if flip not in (None, "horizontal", "vertical", "horizontal_and_vertical"):
            raise ConfigError(f"image augmentation: flip must be None, 'horizontal', 'vertical' or "
                              f"'horizontal_and_vertical', got {flip!r}")
        self.keep_originals = bool(keep_originals)
        L = keras.layers
        # Constant (black) fill: a digit moved off-centre leaves background behind, not smeared strokes.
        layers = [L.RandomRotation(rotation, fill_mode="constant", seed=seed) if rotation else None,
                  L.RandomTranslation(translation, translation, fill_mode="constant", seed=seed + 1)
                  if translation else None,
                  L.RandomZoom(zoom, fill_mode="constant", seed=seed + 2) if zoom else None,
                  L.RandomContrast(contrast, value_range=(0, 1), seed=seed + 3) if contrast else None,
                  L.RandomFlip(flip, seed=seed + 4) if flip else None]
        self.layers = [layer for layer in layers if layer is not None]

    def __call__(self, x, y):
        x, y = self.check(x, y)
        out = x
        for layer in self.layers:
            out = layer(out, training=True)
        out = tf.clip_by_value(tf.cast(out, tf.float32), 0.0, 1.0)
        if self.keep_originals:
            return self.combine(x, y, out, y)
        return out, y


class AdversarialAugmentation(Augmentation):
    """Adversarial examples of ``model`` (usually the classifier being trained, so they follow its
    weights) from the attack plugin ``attack`` built with ``attack_params``, keeping the true labels.

    ``fraction`` of each batch (the first rows) is attacked.
    """

    name = "adversarial"

    def __init__(self, model=None, attack="fgsm", attack_params=None, fraction=1.0, keep_originals=True,
                 model_weights=None):
        from zoo import get_attack

        self.model = _model("adversarial augmentation: model", model, model_weights)
        self.attack = get_attack(attack, **dict(attack_params or {}))
        if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ConfigError(f"adversarial augmentation: fraction must be in (0, 1], got {fraction!r}")
        self.fraction = float(fraction)
        self.keep_originals = bool(keep_originals)

    def __call__(self, x, y):
        x, y = self.check(x, y)
        n = max(1, int(round(self.fraction * int(tf.shape(x)[0]))))
        x_adv = tf.convert_to_tensor(self.attack(self.model, x[:n], y[:n]), tf.float32)
        return self.combine(x, y, x_adv, y[:n])


class VAEAugmentation(_Counted):
    """The seed's VAE augmentation with its label-keeping filter.

    For each image, ``copies`` codes z = μ + ``spread``·σ ⊙ ε are drawn around the VAE's posterior
    q(z|x) and decoded (the likelihood's mean image). With a ``classifier`` (the seed's second
    network), each generated image is kept only if the classifier gives it the original's label, with
    probability at least ``min_confidence``; without one every image is kept (the unfiltered VAE
    augmentation, to compare). ``acceptance`` reports the fraction kept.
    """

    name = "vae"

    def __init__(self, vae=None, classifier=None, copies=1, spread=1.0, min_confidence=0.0, keep_originals=True,
                 seed=0, vae_weights=None, classifier_weights=None):
        self.vae = _model("vae augmentation: vae", vae, vae_weights)
        if not hasattr(self.vae, "encode") or not hasattr(self.vae, "decode"):
            raise ConfigError("vae augmentation: vae must have encode(x) -> distribution and decode(z) "
                              f"(a zoo 'vae' or 'vaegan'), got {type(self.vae).__name__}")
        self.classifier = None if classifier is None else _model("vae augmentation: classifier", classifier,
                                                                  classifier_weights)
        if not isinstance(copies, int) or copies < 1:
            raise ConfigError(f"vae augmentation: copies must be an integer >= 1, got {copies!r}")
        if not isinstance(spread, (int, float)) or spread < 0:
            raise ConfigError(f"vae augmentation: spread must be >= 0, got {spread!r}")
        if not isinstance(min_confidence, (int, float)) or not 0 <= min_confidence < 1:
            raise ConfigError(f"vae augmentation: min_confidence must be in [0, 1), got {min_confidence!r}")
        self.copies, self.spread, self.min_confidence = copies, float(spread), float(min_confidence)
        self.keep_originals = bool(keep_originals)
        self.rng = tf.random.Generator.from_seed(int(seed))
        self._init_counters()

    def generate(self, x):
        """``copies`` decoded variations of every image in ``x`` (copy-major order)."""
        posterior = self.vae.encode(x, training=False)
        mean, std = posterior.mean(), posterior.stddev()
        mean, std = tf.tile(mean, [self.copies, 1]), tf.tile(std, [self.copies, 1])
        z = mean + self.spread * std * self.rng.normal(tf.shape(mean))
        return tf.cast(self.vae.decode(z, training=False).mean(), tf.float32)

    def __call__(self, x, y):
        x, y = self.check(x, y)
        new_x, new_y = self.generate(x), tf.tile(y, [self.copies])
        if self.classifier is not None:
            probs = _probabilities(self.classifier, new_x)
            keep = tf.logical_and(tf.equal(tf.argmax(probs, axis=-1, output_type=tf.int64), tf.cast(new_y, tf.int64)),
                                  tf.reduce_max(probs, axis=-1) >= self.min_confidence)
            self._count(tf.size(keep), tf.reduce_sum(tf.cast(keep, tf.int64)))
            new_x, new_y = tf.boolean_mask(new_x, keep), tf.boolean_mask(new_y, keep)
        else:
            self._count(tf.shape(new_y)[0], tf.shape(new_y)[0])
        return self.combine(x, y, new_x, new_y)


class GANAugmentation(_Counted):
    """Images from ``generator.generate(n)`` (``ratio`` × the batch size per batch), labelled by
    ``classifier``; only those labelled with probability at least ``min_confidence`` are kept."""

    name = "gan"

    def __init__(self, generator=None, classifier=None, ratio=1.0, min_confidence=0.9, keep_originals=True,
                 seed=0, generator_weights=None, classifier_weights=None):
        self.generator = _model("gan augmentation: generator", generator, generator_weights)
        if not hasattr(self.generator, "generate"):
            raise ConfigError(f"gan augmentation: generator must have generate(n), got {type(self.generator).__name__}")
        if classifier is None:
            raise ConfigError("gan augmentation: a classifier is needed to label the generated images")
        self.classifier = _model("gan augmentation: classifier", classifier, classifier_weights)
        if not isinstance(ratio, (int, float)) or ratio <= 0:
            raise ConfigError(f"gan augmentation: ratio must be > 0, got {ratio!r}")
        if not isinstance(min_confidence, (int, float)) or not 0 <= min_confidence < 1:
            raise ConfigError(f"gan augmentation: min_confidence must be in [0, 1), got {min_confidence!r}")
        self.ratio, self.min_confidence = float(ratio), float(min_confidence)
        self.keep_originals = bool(keep_originals)
        self.seed = int(seed)
        self.calls = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._init_counters()

    def __call__(self, x, y):
        x, y = self.check(x, y)
        n = max(1, int(round(self.ratio * int(x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]))))
        # A different reproducible draw on every call.
        new_x = tf.cast(self.generator.generate(n, seed=self.seed * 1_000_003 + int(self.calls.numpy())), tf.float32)
        self.calls.assign_add(1)
        probs = _probabilities(self.classifier, new_x)
        keep = tf.reduce_max(probs, axis=-1) >= self.min_confidence
        self._count(n, tf.reduce_sum(tf.cast(keep, tf.int64)))
        new_x = tf.boolean_mask(new_x, keep)
        new_y = tf.boolean_mask(tf.argmax(probs, axis=-1), keep)
        return self.combine(x, y, new_x, new_y)
