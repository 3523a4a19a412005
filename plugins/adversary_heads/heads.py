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
