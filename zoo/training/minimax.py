"""Adversarial training against nuisance labels (the seed's "Adversarial Training: General Idea").

An adversary head (a ``zoo_adversary_heads()`` plugin) reads a hidden layer of the main model and
predicts a nuisance label s (speaker, noise type, domain)::

    ADVERSARY:    minimise  E_adversary = −ln ŝ_true                      (over the heads' weights)
    MAIN SYSTEM:  minimise  E_primary − λ·E_adversary                     (over the main weights)

The train-step kind ``minimax`` (``train.step: minimax`` in a preset) implements it in two forms,
chosen by ``step_params.form``:

* ``"minimax"`` — the seed literally: two optimizers; every step first updates the heads
  (``adversary_steps`` times, on the batch's frozen hidden features), then the main net descends
  E_primary − λ·E_adversary against the updated heads.
* ``"reversal"`` — DANN (Ganin & Lempitsky 2015): one backward pass through a gradient-reversal
  layer that is the identity forwards and multiplies the gradient by −λ backwards, with the schedule
  λ_p = λ·(2/(1+exp(−10p)) − 1), p = step / ``ramp_steps`` (capped at 1).

Remedies against a head that is merely fooled (the encoder permutes the nuisance rather than
removing it) are step_params too: ``heads`` (several heads per layer), ``layers`` (heads on several
hidden layers), ``adversary_steps``, ``reinit_every`` (heads re-initialised in a staggered cycle, so a
fresh head keeps looking), closed-form heads (with ``fit_batch``: ``centroid`` and ``lda`` keep running
class statistics, re-fitted from the current features every step, so there are no weights to fool),
and ``main_objective: confusion`` — the main net drives the heads towards the uniform distribution
(cross-entropy to uniform, Tzeng et al. 2015 / Alvi et al. 2018) instead of maximising their error,
which a permutation cannot satisfy.

Data: batches ``(x, y)`` with ``y`` a dict holding the primary target and the nuisance label under
``step_params.nuisance`` (audio datasets: ``{"tokens", "speaker"}``; ``mnist_noise``: ``{"label",
"noise"}``).

The main model either implements ``adversarial_outputs(x, y, layers, training) -> (per-example
primary loss, {layer: (hidden, mask or None)})`` (LAS; ``zoo.protocols.HasHiddenLayers``) or is a
classifier with ``features(x)`` (the layer ``"features"``; ``zoo.protocols.HasFeatures``).

:class:`MinimaxTrainer` is a ``keras.Model`` wrapping the main network, the heads and the adversary
optimizer; ``fit`` trains it.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf

from zoo.errors import ConfigError
from zoo.protocols import class_logits

_ABSENT = -1e8  # logits at or below this mark a class a head cannot score for an example


@tf.custom_gradient
def reverse_gradient(x, scale):
    """Identity forwards; multiplies the incoming gradient by −``scale`` backwards (DANN's GRL)."""

    def grad(dy):
        return -tf.cast(scale, dy.dtype) * dy, tf.zeros_like(scale)

    return tf.identity(x), grad


def dann_lambda(progress):
    """DANN's schedule 2/(1+exp(−10p)) − 1: 0 at p=0, → 1 as p → 1."""
    return 2.0 / (1.0 + tf.exp(-10.0 * progress)) - 1.0


def classifier_outputs(model, x, y, layers, training=False):
    """``adversarial_outputs`` of a classifier with ``features(x)`` (the hidden layer ``"features"``):
    ``(per-example cross-entropy, {"features": (hidden, None)}, per-example correctness)``."""
    if list(layers) != ["features"]:
        raise ConfigError(f"{type(model).__name__} offers only the hidden layer 'features' "
                          f"(through model.features); asked for {list(layers)}")
    labels = tf.cast(y["label"] if isinstance(y, dict) else y, tf.int32)
    hidden = model.features(x, training=training)
    logits = class_logits(model, x, training=training)
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    correct = tf.cast(tf.equal(tf.cast(tf.argmax(logits, -1), tf.int32), labels), tf.float32)
    return per_example, {"features": (hidden, None)}, correct


class MinimaxTrainer(keras.Model):
    """Trains ``network`` against adversary ``heads`` that read its hidden layers; ``fit`` this model.

    Args:
        network: the main model (LAS with ``adversarial_outputs``, or a classifier with ``features``).
        heads: adversary heads (``zoo_adversary_heads()`` plugins), built for their layer's shape.
        layers: the hidden layer each head reads.
        nuisance: the key of the nuisance label in the batch's ``y`` dict.
        form: ``"minimax"`` (two optimizers, heads first) or ``"reversal"`` (gradient reversal).
        lam, schedule, ramp_steps: λ and its schedule (``constant``, ``dann``, ``linear``).
        ramp_start: steps trained with λ = 0 before the schedule starts (the heads still learn), so
            the adversary can wait until the primary task has converged.
        adversary_steps: head updates per main update (``minimax`` form).
        reinit_every: re-initialise each head every that many steps (staggered), 0 never.
        main_objective: ``"negative"`` (main net ascends E_adversary) or ``"confusion"``.
    """

    #: Metrics of the trainer's own state, not of the network: the adversary heads (which a pack
    #: does not hold, so a reloaded network is measured against fresh ones) and λ's schedule.
    state_metrics = ("adversary_loss", "adversary_accuracy", "lambda")

    def __init__(self, network, heads, layers, nuisance, form="minimax", lam=1.0, schedule=None, ramp_steps=1000,
                 adversary_steps=1, reinit_every=0, main_objective="negative", ramp_start=0, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.heads = list(heads)
        self.head_layers = list(layers)  # the hidden layer each head reads
        self.nuisance = nuisance
        self.form = form
        self.lam = float(lam)
        self.schedule = schedule or ("dann" if form == "reversal" else "constant")
        self.ramp_steps = int(ramp_steps)
        self.ramp_start = int(ramp_start)
        self.adversary_steps = int(adversary_steps)
        self.reinit_every = int(reinit_every)
        self.main_objective = main_objective
        self.iterations = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False,
                                          name="iterations")
        self.primary_tracker = keras.metrics.Mean(name="loss")
        self.adversary_tracker = keras.metrics.Mean(name="adversary_loss")
        self.adversary_accuracy = keras.metrics.Mean(name="adversary_accuracy")
        self.lambda_tracker = keras.metrics.Mean(name="lambda")
        self.primary_accuracy = keras.metrics.Mean(name="accuracy")
        self.built = network.built

    def call(self, x, training=False):
        return self.network(x, training=training)

    def compile(self, optimizer, adversary_optimizer, **kwargs):
        """Keras ``compile`` with the main net's optimizer, plus the heads' own optimizer; both are
        built here, on their variables, so they are created under the strategy's scope."""
        super().compile(optimizer=optimizer, **kwargs)
        self.adversary_optimizer = adversary_optimizer
        self.optimizer.build(self.main_variables)
        self.adversary_optimizer.build(self.head_variables)

    @property
    def metrics(self):
        return [self.primary_tracker, self.adversary_tracker, self.adversary_accuracy, self.lambda_tracker,
                self.primary_accuracy] + list(getattr(self.network, "metrics", []))

    @property
    def head_variables(self):
        return [v for h in self.heads for v in h.trainable_variables]

    @property
    def main_variables(self):
        return self.network.trainable_variables

    def current_lambda(self):
        steps = tf.cast(self.iterations - self.ramp_start, tf.float32)  # negative: not started yet
        if self.schedule == "constant":
            return tf.where(steps >= 0.0, self.lam, 0.0)
        progress = tf.clip_by_value(steps / float(max(1, self.ramp_steps)), 0.0, 1.0)
        if self.schedule == "dann":
            return self.lam * dann_lambda(progress)
        return self.lam * progress  # "linear"

    def main_outputs(self, x, y, training):
        """``(per-example primary loss, {layer: (hidden, mask)}, per-example correctness or None)``."""
        layers = sorted(set(self.head_layers))
        if hasattr(self.network, "adversarial_outputs"):
            per_example, hidden = self.network.adversarial_outputs(x, y, layers, training=training)
            return per_example, hidden, None
        return classifier_outputs(self.network, x, y, layers, training=training)

    def adversary_terms(self, hidden, nuisance, reverse_scale=None):
        """Per-example adversary cross-entropy (mean over heads) and per-head logits."""
        losses, logits_all = [], []
        for head, layer in zip(self.heads, self.head_layers):
            h, mask = hidden[layer]
            if reverse_scale is not None:
                h = reverse_gradient(h, reverse_scale)
            logits = tf.cast(head(h, mask=mask), tf.float32)  # float16 under mixed precision
            logits_all.append(logits)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=nuisance, logits=logits)
            # a class a head marks absent (logit ≤ ABSENT) for an example carries no loss for it
            own = tf.gather(logits, nuisance, batch_dims=1)
            losses.append(tf.where(own > _ABSENT, ce, tf.zeros_like(ce)))
        return tf.add_n(losses) / len(losses), logits_all

    def fit_closed_form(self, frozen, nuisance):
        """The adversary step of heads fitted in closed form (``fit_batch``; e.g. the centroid head)."""
        for head, layer in zip(self.heads, self.head_layers):
            if hasattr(head, "fit_batch"):
                h, mask = frozen[layer]
                head.fit_batch(h, mask=mask, labels=nuisance)

    def confusion_terms(self, logits_all):
        """Per-example cross-entropy between the uniform distribution over the classes a head
        considers (logit > ABSENT) and the head's prediction (mean over heads)."""
        terms = []
        for logits in logits_all:
            present = tf.cast(logits > _ABSENT, logits.dtype)
            logp = tf.nn.log_softmax(logits, -1)
            terms.append(-tf.reduce_sum(present * logp, -1) / tf.maximum(tf.reduce_sum(present, -1), 1.0))
        return tf.add_n(terms) / len(terms)

    def _accuracy(self, logits_all, nuisance):
        hits = [tf.cast(tf.equal(tf.cast(tf.argmax(l, -1), tf.int32), nuisance), tf.float32) for l in logits_all]
        return tf.add_n(hits) / len(hits)

    def _maybe_reinitialise(self):
        """Staggered re-initialisation: head j is reset when (step + j·N/H) is a multiple of N."""
        if not self.reinit_every:
            return
        n, count = self.reinit_every, len(self.heads)
        for j, head in enumerate(self.heads):
            due = tf.equal((self.iterations + (j * n) // count) % n, 0) & (self.iterations > 0)
            for v in head.trainable_variables:
                fan = float(sum(v.shape)) if len(v.shape) > 1 else 0.0
                fresh = (tf.random.uniform(v.shape, -1.0, 1.0) * math.sqrt(6.0 / fan)) if fan else tf.zeros(v.shape)
                v.assign(tf.where(due, tf.cast(fresh, v.dtype), v))

    def train_step(self, data):
        x, y = data[0], data[1]
        nuisance = tf.cast(y[self.nuisance], tf.int32)
        lam = self.current_lambda()
        self._maybe_reinitialise()
        main_variables, head_variables = self.main_variables, self.head_variables
        with tf.GradientTape(persistent=True) as tape:
            primary, hidden, correct = self.main_outputs(x, y, True)
            primary = tf.cast(primary, tf.float32)  # losses in float32 under mixed precision too
            with tape.stop_recording():
                frozen = {k: (tf.stop_gradient(h), m) for k, (h, m) in hidden.items()}
                self.fit_closed_form(frozen, nuisance)
            if self.form == "reversal":
                adversary, logits_all = self.adversary_terms(hidden, nuisance, reverse_scale=lam)
                # heads: ∂E_adversary; main net (through the reversal layer): ∂E_primary − λ·∂E_adversary
                total = tf.nn.compute_average_loss(primary) + tf.nn.compute_average_loss(adversary)
            else:
                with tape.stop_recording():
                    for _ in range(self.adversary_steps if head_variables else 0):
                        with tf.GradientTape() as adv_tape:
                            adv_loss, _ = self.adversary_terms(frozen, nuisance)
                            scaled = tf.nn.compute_average_loss(adv_loss)
                        grads = adv_tape.gradient(scaled, head_variables)
                        self.adversary_optimizer.apply_gradients(zip(grads, head_variables))
                adversary, logits_all = self.adversary_terms(hidden, nuisance)
                if self.main_objective == "confusion":
                    main_adv = -self.confusion_terms(logits_all)  # maximise −CE(uniform, ŝ)
                else:
                    main_adv = adversary
                total = tf.nn.compute_average_loss(primary) - lam * tf.nn.compute_average_loss(main_adv)
            # mixed precision: the main optimizer's loss scale (identity for a plain optimizer)
            scaled_total = self.optimizer.scale_loss(total)
        grads = tape.gradient(scaled_total, main_variables)
        self.optimizer.apply_gradients(zip(grads, main_variables))
        if self.form == "reversal" and head_variables:
            head_grads = tape.gradient(total, head_variables)
            self.adversary_optimizer.apply_gradients(zip(head_grads, head_variables))
        del tape
        self.iterations.assign_add(1)
        return self._report(primary, adversary, logits_all, nuisance, lam, correct)

    def test_step(self, data):
        x, y = data[0], data[1]
        nuisance = tf.cast(y[self.nuisance], tf.int32)
        primary, hidden, correct = self.main_outputs(x, y, False)
        adversary, logits_all = self.adversary_terms(hidden, nuisance)
        return self._report(primary, adversary, logits_all, nuisance, None, correct)

    def probe_metrics(self, dataset) -> dict:
        """``{"<nuisance>_probe_accuracy": ...}``: how much of the nuisance a probe fitted afresh on
        a classifier's frozen features finds (a LAS network's own evaluation probes it instead)."""
        from zoo.evaluation import nuisance_probe_accuracy

        if hasattr(self.network, "adversarial_outputs"):
            return {}
        return {f"{self.nuisance}_probe_accuracy": nuisance_probe_accuracy(self.network, dataset)}

    def _report(self, primary, adversary, logits_all, nuisance, lam, correct):
        self.primary_tracker.update_state(primary)
        self.adversary_tracker.update_state(adversary)
        self.adversary_accuracy.update_state(self._accuracy(logits_all, nuisance))
        if lam is not None:
            self.lambda_tracker.update_state(lam)
        logs = {m.name: m.result() for m in (self.primary_tracker, self.adversary_tracker,
                                              self.adversary_accuracy, self.lambda_tracker)}
        if correct is not None:
            self.primary_accuracy.update_state(correct)
            logs["accuracy"] = self.primary_accuracy.result()
        elif hasattr(self.network, "accuracy_tracker"):
            logs["char_accuracy"] = self.network.accuracy_tracker.result()
        return logs


def build_trainer(network, recipe, params, make_optimizer):
    """The compiled :class:`MinimaxTrainer` for ``params`` (a checked ``MinimaxParams``)."""
    import dataclasses

    from zoo.api import get_adversary_head

    if recipe.ema_momentum is not None:
        raise ConfigError("the minimax step does not take train.ema_momentum: its optimizer updates only the "
                          "main network's share of the trained variables")
    if params.form == "reversal" and params.main_objective != "negative":
        raise ConfigError("train.step_params: the gradient-reversal form negates E_adversary; "
                          "main_objective 'confusion' needs form 'minimax'")
    offered = getattr(network, "hidden_layers", ("features",))
    layers = params.layers or [offered[0]]
    layers = [layers] if isinstance(layers, str) else list(layers)
    unknown = [layer for layer in layers if layer not in offered]
    if unknown:
        raise ConfigError(f"train.step_params: field 'layers': {type(network).__name__} has no hidden layer "
                          f"{', '.join(map(repr, unknown))}; choose from {', '.join(offered)}")
    shapes = hidden_shapes(network, layers)
    heads, head_layers = [], []
    for layer in layers:
        for _ in range(params.heads):
            head = get_adversary_head(params.head, num_classes=params.num_classes, layer=layer, **params.head_params)
            head.build(shapes[layer])
            heads.append(head)
            head_layers.append(layer)
    trainer = MinimaxTrainer(network, heads, head_layers, params.nuisance, form=params.form, lam=params.lam,
                             schedule=params.schedule, ramp_steps=params.ramp_steps,
                             adversary_steps=params.adversary_steps, reinit_every=params.reinit_every,
                             main_objective=params.main_objective, ramp_start=params.ramp_start,
                             name="minimax_trainer")
    optimizer = make_optimizer(recipe)
    if params.clipnorm is not None:
        optimizer.clipnorm = params.clipnorm
    adversary_optimizer = make_optimizer(dataclasses.replace(recipe, ema_momentum=None),
                                         learning_rate=params.adversary_learning_rate)
    trainer.compile(optimizer, adversary_optimizer, jit_compile=False)
    return trainer


def hidden_shapes(network, layers) -> dict:
    """The shape of each hidden layer: the model's own ``hidden_shapes``, else a symbolic trace of a
    classifier's ``features`` (a graph is traced; no data goes through the model)."""
    if hasattr(network, "hidden_shapes"):
        return network.hidden_shapes(layers)
    shape = tuple(network.inputs[0].shape[1:]) if getattr(network, "inputs", None) else network.image_shape
    trace = tf.function(lambda x: network.features(x, training=False))
    out = trace.get_concrete_function(tf.TensorSpec((None, *shape), tf.float32)).structured_outputs
    return {"features": tuple(out.shape)}
