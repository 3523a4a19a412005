"""The seed's ConvNet classifier: conv/pool blocks, dense layers, softmax output, E = −ln ŷ_true."""
from __future__ import annotations

from typing import Annotated, Literal

import keras

from zoo.validate import ImageShape, Range, Rate, Size


@keras.saving.register_keras_serializable(package="zoo")
class ConvNet(keras.Model):
    """A configurable conv/pool/dense stack.

    Args:
        input_shape: ``(height, width, channels)`` of one image, pixels in [0, 1].
        num_classes: number of labels L.
        filters: output channels of each conv block (one block = conv + ReLU + max-pool).
        kernel_size: conv kernel size.
        pool: max-pool size after each block (1 disables pooling).
        dense: widths of the hidden dense layers.
        dropout: dropout rate before the output layer.
        output: ``"softmax"`` (probabilities ŷ, the seed's form) or ``"logits"``.
    """

    family = "classifier"

    def __init__(
        self,
        input_shape: ImageShape = (28, 28, 1),
        num_classes: Annotated[int, Range(2)] = 10,
        filters: tuple[Size, ...] = (32, 64),
        kernel_size: Size = 3,
        pool: Size = 2,
        dense: tuple[Size, ...] = (128,),
        dropout: Rate = 0.0,
        output: Literal["softmax", "logits"] = "softmax",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if output not in ("softmax", "logits"):
            raise ValueError(f"output must be 'softmax' or 'logits', got {output!r}")
        if len(input_shape) != 3:
            raise ValueError(f"input_shape must be (height, width, channels), got {input_shape!r}")
        self.image_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)
        self.filters = tuple(int(f) for f in filters)
        self.kernel_size = int(kernel_size)
        self.pool = int(pool)
        self.dense_units = tuple(int(u) for u in dense)
        self.dropout = float(dropout)
        self.output_kind = output
        self.blocks = []
        for i, f in enumerate(self.filters):
            self.blocks.append(keras.layers.Conv2D(f, self.kernel_size, padding="same", activation="relu", name=f"conv{i}"))
            if self.pool > 1:
                self.blocks.append(keras.layers.MaxPooling2D(self.pool, padding="same", name=f"pool{i}"))
        self.flatten = keras.layers.Flatten(name="flatten")
        self.hidden = [keras.layers.Dense(u, activation="relu", name=f"dense{i}") for i, u in enumerate(self.dense_units)]
        self.drop = keras.layers.Dropout(self.dropout, name="dropout")
        self.classifier = keras.layers.Dense(
            self.num_classes, activation="softmax" if output == "softmax" else None, name="output"
        )
        self.build((None, *self.image_shape))  # every weight exists at once, so the model is savable

    hidden_layers = ("features",)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in [*self.blocks, self.flatten, *self.hidden]:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.drop.build(shape)
        self.classifier.build(shape)
        self.built = True

    def hidden_shapes(self, layers=("features",)):
        """``{"features": shape}`` of the penultimate representation, from the layers' shape rules."""
        shape = (None, *self.image_shape)
        for layer in [*self.blocks, self.flatten, *self.hidden]:
            shape = layer.compute_output_shape(shape)
        return {"features": tuple(shape)}

    def features(self, x, training=False):
        """The penultimate representation (the hidden layer adversary heads and FID read)."""
        _check_image_shape(self.image_shape, x.shape)
        h = x
        for layer in self.blocks:
            h = layer(h)
        h = self.flatten(h)
        for layer in self.hidden:
            h = layer(h)
        return h

    def logits(self, x, training=False):
        """Pre-softmax scores; attacks use them to avoid the saturation of ln(softmax)."""
        h = self.drop(self.features(x, training=training), training=training)
        return keras.ops.matmul(h, self.classifier.kernel) + self.classifier.bias

    def call(self, x, training=False):
        return self.classifier(self.drop(self.features(x, training=training), training=training))

    def get_config(self):
        config = super().get_config()
        config.update(
            input_shape=list(self.image_shape),
            num_classes=self.num_classes,
            filters=list(self.filters),
            kernel_size=self.kernel_size,
            pool=self.pool,
            dense=list(self.dense_units),
            dropout=self.dropout,
            output=self.output_kind,
        )
        return config


def _check_image_shape(expected, got):
    got = tuple(got)
    if len(got) != 4 or tuple(got[1:]) != tuple(expected):
        raise ValueError(
            f"expected a batch of images of shape (batch, {', '.join(map(str, expected))}), "
            f"got shape {got}"
        )
