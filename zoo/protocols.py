"""What attacks, adversary heads, training objectives, export and evaluation need from a model.

A model takes part in whatever its methods allow; nothing else is asked of it. The zoo's families
and any plugin's models are read through these protocols only (``isinstance(model, Classifier)``
checks the methods are there; the docstrings say what they must do).

:func:`class_logits` is the one way the zoo turns a classifier's output into logits: exactly, also
for a softmax output (Keras keeps the pre-softmax tensor), and never as ``ln clip(p)``, whose flat
top zeroes the gradient of a confident model.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Classifier(Protocol):
    """``model(x)`` gives class probabilities (or logits when ``output_kind == "logits"``) for
    ``num_classes`` classes. A ``logits(x, training)`` method, when present, is used first."""

    num_classes: int

    def __call__(self, x, training: bool = False) -> Any: ...


@runtime_checkable
class HasFeatures(Protocol):
    """A classifier's hidden representation, read by adversary heads (layer ``"features"``) and FID."""

    def features(self, x, training: bool = False) -> Any: ...


@runtime_checkable
class HasHiddenLayers(Protocol):
    """A model whose hidden layers adversary heads may read, with its own primary loss (LAS).

    ``adversarial_outputs(x, y, layers, training)`` returns ``(per-example primary loss,
    {layer: (hidden, mask or None)})``; ``hidden_layers`` names the layers it offers, the first being
    the default, and ``hidden_shapes(layers)`` gives each one's shape without a forward pass.
    """

    hidden_layers: tuple

    def adversarial_outputs(self, x, y, layers, training: bool = False) -> Any: ...

    def hidden_shapes(self, layers) -> dict: ...


@runtime_checkable
class HasAttackLoss(Protocol):
    """A model that defines its own differentiable per-example loss E(x, y) for attacks (LAS: the
    sequence loss) and, optionally, ``predict_labels(x)``."""

    def attack_loss(self, x, y, training: bool = False) -> Any: ...


@runtime_checkable
class Exportable(Protocol):
    """A model that names its TF Serving signatures: ``{name: tf.function with input_signature}``."""

    def export_signatures(self) -> dict: ...


_TINY = 1e-30


def exact_logits_of(p):
    """The logits behind a probability tensor ``p`` if they can be recovered exactly — Keras's
    cached pre-softmax tensor, or the input of a Softmax op in a graph — else ``None``."""
    import tensorflow as tf

    logits = getattr(p, "_keras_logits", None)
    if logits is not None:
        return tf.cast(logits, tf.float32)
    if not tf.executing_eagerly() and hasattr(p, "op") and p.op.type == "Softmax":
        return tf.cast(p.op.inputs[0], tf.float32)
    return None


def logits_from_probabilities(p):
    """Class scores whose softmax is ``p``: the exact logits when recoverable, else
    ``ln max(p, tiny)`` (an opaque probability model: exact up to a per-example constant, which
    softmax and margins ignore)."""
    import tensorflow as tf

    logits = exact_logits_of(p)
    if logits is not None:
        return logits
    return tf.math.log(tf.maximum(tf.cast(p, tf.float32), _TINY))


def class_logits(model, x, training: bool = False):
    """Float32 logits of a classifier for ``x``: ``model.logits`` if it has one, its outputs if
    ``output_kind == "logits"``, else logits recovered exactly from its probabilities."""
    import tensorflow as tf

    if hasattr(model, "logits"):
        return tf.cast(model.logits(x, training=training), tf.float32)
    out = model(x, training=training)
    if getattr(model, "output_kind", "softmax") == "logits":
        return tf.cast(out, tf.float32)
    return logits_from_probabilities(out)


def log_probabilities(model, x, training: bool = False):
    """ln ŷ of a classifier, computed from its logits (finite however confident the model is)."""
    import tensorflow as tf

    return tf.nn.log_softmax(class_logits(model, x, training=training), axis=-1)
