"""An adversary head: pool a hidden layer over time, then a small classifier of the nuisance label."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo_adversary_heads")
class AdversaryHead(keras.Model):
    """Reads a hidden layer and predicts a nuisance label (logits).

    Args:
        num_classes: nuisance classes (6 FSDD speakers, 3 noise types, ...).
        layer: name of the main model's hidden layer the head reads (metadata for the train step).
        hidden: widths of the ReLU hidden layers (``()`` = multinomial logistic regression).
        pool: how a sequence ``(batch, time, dim)`` becomes a vector: ``"mean"`` over valid frames,
            or ``"mean_std"`` (mean and standard deviation, "statistics pooling").
        dropout: dropout before the output layer while training.
    """

    def __init__(self, num_classes, layer="features", hidden=(64,), pool="mean", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if int(num_classes) < 2:
            raise ValueError(f"an adversary head needs at least 2 nuisance classes, got {num_classes}")
        if pool not in ("mean", "mean_std"):
            raise ValueError(f"pool must be 'mean' or 'mean_std', got {pool!r}")
        self.num_classes = int(num_classes)
        self.layer = str(layer)
        self.hidden_units = tuple(int(u) for u in hidden)
        self.pool = pool
        self.dropout_rate = float(dropout)
        self.hidden_layers = [keras.layers.Dense(u, activation="relu", name=f"hidden{i}")
                              for i, u in enumerate(self.hidden_units)]
        self.drop = keras.layers.Dropout(self.dropout_rate)
        self.classifier = keras.layers.Dense(self.num_classes, name="logits")
        self.supports_masking = True  # the mask is consumed by the pooling, not passed on

    def compute_mask(self, inputs, mask=None):
        return None

    def build(self, input_shape):
        width = int(input_shape[-1]) * (2 if self.pool == "mean_std" and len(input_shape) == 3 else 1)
        for layer in self.hidden_layers:
            layer.build((None, width))
            width = layer.units
        self.classifier.build((None, width))
        self.built = True

    def pooled(self, h, mask=None):
        """``(batch, dim)``: a sequence pooled over its valid frames; a vector passes through."""
        if len(h.shape) == 2:
            return h
        if len(h.shape) != 3:
            raise ValueError(f"an adversary head reads (batch, dim) or (batch, time, dim), got shape {h.shape}")
        m = ops.ones(ops.shape(h)[:2], h.dtype) if mask is None else ops.cast(mask, h.dtype)
        m = ops.expand_dims(m, -1)
        count = ops.maximum(ops.sum(m, axis=1), 1.0)
        mean = ops.sum(h * m, axis=1) / count
        if self.pool == "mean":
            return mean
        var = ops.sum(ops.square(h - ops.expand_dims(mean, 1)) * m, axis=1) / count
        return ops.concatenate([mean, ops.sqrt(var + 1e-6)], axis=-1)

    def call(self, h, mask=None, training=False):
        z = self.pooled(h, mask)
        for layer in self.hidden_layers:
            z = layer(z)
        return self.classifier(self.drop(z, training=training))

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, layer=self.layer, hidden=list(self.hidden_units),
                      pool=self.pool, dropout=self.dropout_rate)
        return config


@keras.saving.register_keras_serializable(package="zoo_adversary_heads")
class CentroidHead(AdversaryHead):
    """A closed-form adversary: nearest class centroid of standardised pooled features.

    It has no weights for gradient descent, so it cannot be fooled the way a trained head can (an
    encoder that moves the nuisance to where the head is not looking): the adversary's "step" is
    :meth:`fit_batch`, an exponential running mean of the features' mean and variance and of each
    class's centroid — an estimate the encoder cannot outrun for long, because any remaining
    difference between class centroids shows up in it again. Running means (not one batch's) keep a
    batch's content (which digits each speaker happened to say) out of the centroids.

    Logits are Gaussian log-likelihoods −‖z − μ_c‖² / (2·temperature) of the standardised pooled
    features z; ``temperature`` defaults to √dim so logits stay O(1)-spaced whatever the width. With
    ``whiten=True`` (the ``lda`` head) the distance is Mahalanobis under a running within-class
    covariance (shrunk by ``shrinkage`` towards its mean variance; temperature 1): linear discriminant
    analysis, which, like the logistic-regression probe, also uses directions of small variance. A
    class not seen yet gets logit −1e9 (absent).
    """

    ABSENT = -1e9

    def __init__(self, num_classes, layer="features", pool="mean", momentum=0.95, temperature=None, whiten=False,
                 shrinkage=0.01, **kwargs):
        kwargs.pop("hidden", None)
        super().__init__(num_classes, layer=layer, hidden=(), pool=pool, **kwargs)
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not 0.0 < float(shrinkage) <= 1.0:
            raise ValueError(f"shrinkage must be in (0, 1], got {shrinkage}")
        self.momentum = float(momentum)
        self.temperature = None if temperature is None else float(temperature)
        self.whiten = bool(whiten)
        self.shrinkage = float(shrinkage)

    def build(self, input_shape):
        dim = int(input_shape[-1]) * (2 if self.pool == "mean_std" and len(input_shape) == 3 else 1)
        state = dict(trainable=False, aggregation="mean")
        self.feature_mean = self.add_weight(shape=(dim,), initializer="zeros", name="feature_mean", **state)
        self.feature_var = self.add_weight(shape=(dim,), initializer="ones", name="feature_var", **state)
        self.centroids = self.add_weight(shape=(self.num_classes, dim), initializer="zeros", name="centroids", **state)
        self.seen = self.add_weight(shape=(self.num_classes,), initializer="zeros", name="seen", **state)
        self.fitted = self.add_weight(shape=(), initializer="zeros", name="fitted", **state)
        if self.whiten:
            self.within = self.add_weight(shape=(dim, dim), initializer="identity", name="within_covariance", **state)
        self.built = True

    def _standardise(self, z):
        return (z - self.feature_mean) / ops.sqrt(self.feature_var + 1e-5)

    def fit_batch(self, h, mask=None, labels=None):
        """The adversary's step: update the running statistics and centroids with a batch."""
        z = ops.stop_gradient(self.pooled(h, mask))
        first = ops.equal(self.fitted, 0.0)
        m = ops.where(first, 0.0, self.momentum)  # the first batch initialises the statistics
        self.feature_mean.assign(m * self.feature_mean + (1 - m) * ops.mean(z, axis=0))
        self.feature_var.assign(m * self.feature_var + (1 - m) * ops.var(z, axis=0))
        z = self._standardise(z)
        onehot = ops.one_hot(ops.cast(labels, "int32"), self.num_classes, dtype=z.dtype)
        counts = ops.sum(onehot, axis=0)
        batch_means = ops.matmul(ops.transpose(onehot), z) / ops.maximum(counts, 1.0)[:, None]
        present = counts > 0
        # a class seen for the first time takes its batch mean; later ones move by (1 - momentum)
        weight = ops.where(present, ops.where(self.seen > 0, 1 - self.momentum, 1.0), 0.0)[:, None]
        self.centroids.assign(self.centroids + weight * (batch_means - self.centroids))
        self.seen.assign(ops.maximum(self.seen, ops.cast(present, self.seen.dtype)))
        if self.whiten:
            residual = z - ops.matmul(onehot, self.centroids)
            scatter = ops.matmul(ops.transpose(residual), residual) / ops.cast(ops.shape(z)[0], z.dtype)
            self.within.assign(m * self.within + (1 - m) * scatter)
        self.fitted.assign(1.0)

    def call(self, h, mask=None, training=False):
        z = self._standardise(self.pooled(h, mask))
        if self.whiten:
            dim = ops.shape(self.within)[0]
            eye = ops.eye(dim, dtype=z.dtype)
            scale = ops.trace(self.within) / ops.cast(dim, z.dtype)
            precision = ops.inv((1 - self.shrinkage) * self.within + self.shrinkage * scale * eye)
            projected = ops.matmul(self.centroids, precision)  # (c, d): P μ_c
            logits = ops.matmul(z, ops.transpose(projected)) - 0.5 * ops.sum(projected * self.centroids, -1)
            logits = logits / (self.temperature or 1.0)
        else:
            temperature = self.temperature or float(z.shape[-1]) ** 0.5
            d2 = ops.sum(ops.square(z[:, None, :] - self.centroids[None, :, :]), axis=-1)
            logits = -0.5 * d2 / temperature
        return ops.where(self.seen[None, :] > 0, logits, self.ABSENT)

    def get_config(self):
        config = super().get_config()
        config.pop("hidden", None)
        config.pop("dropout", None)
        config.update(momentum=self.momentum, temperature=self.temperature, whiten=self.whiten,
                      shrinkage=self.shrinkage)
        return config
