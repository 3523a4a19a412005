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
primary loss, {layer: (hidden, mask or None)})`` (LAS) or is a classifier with ``features(x)`` (the
layer ``"features"``) and ``logits(x)`` or softmax outputs (ConvNet).
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf

from zoo.errors import ConfigError
from zoo.training.steps import make_optimizer, register_step

FORMS = ("minimax", "reversal")
_ABSENT = -1e8  # logits at or below this mark a class a head cannot score for an example
MAIN_OBJECTIVES = ("negative", "confusion")


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
    """``adversarial_outputs`` for a classifier with ``features(x)`` (the hidden layer ``"features"``)."""
    if list(layers) != ["features"] or not hasattr(model, "features"):
        raise ConfigError(f"{type(model).__name__} offers only the hidden layer 'features' "
                          f"(through model.features); asked for {list(layers)}")
    labels = tf.cast(y["label"] if isinstance(y, dict) else y, tf.int32)
    hidden = model.features(x, training=training)
    if hasattr(model, "logits"):
        logits = model.logits(x, training=training)
    else:
        out = model(x, training=training)
        logits = out if getattr(model, "output_kind", "softmax") == "logits" else tf.math.log(tf.clip_by_value(out, 1e-12, 1.0))
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    correct = tf.cast(tf.equal(tf.cast(tf.argmax(logits, -1), tf.int32), labels), tf.float32)
    return per_example, {"features": (hidden, None)}, correct


class MinimaxTrainer(keras.layers.Layer):
    """The heads, the adversary optimizer, the metric trackers and the minimax ``train_step``."""

    def __init__(self, heads, layers, nuisance, form="minimax", lam=1.0, schedule=None, ramp_steps=1000,
                 adversary_steps=1, reinit_every=0, main_objective="negative", **kwargs):
        super().__init__(**kwargs)
        self.heads = list(heads)
        self.head_layers = list(layers)  # the hidden layer each head reads
        self.nuisance = nuisance
        self.form = form
        self.lam = float(lam)
        self.schedule = schedule or ("dann" if form == "reversal" else "constant")
        self.ramp_steps = int(ramp_steps)
        self.adversary_steps = int(adversary_steps)
        self.reinit_every = int(reinit_every)
        self.main_objective = main_objective
        self.iterations = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="iterations")
        self.primary_tracker = keras.metrics.Mean(name="loss")
        self.adversary_tracker = keras.metrics.Mean(name="adversary_loss")
        self.adversary_accuracy = keras.metrics.Mean(name="adversary_accuracy")
        self.lambda_tracker = keras.metrics.Mean(name="lambda")
        self.primary_accuracy = keras.metrics.Mean(name="accuracy")

    def current_lambda(self):
        if self.schedule == "constant":
            return tf.constant(self.lam)
        progress = tf.minimum(1.0, tf.cast(self.iterations, tf.float32) / float(max(1, self.ramp_steps)))
        if self.schedule == "dann":
            return self.lam * dann_lambda(progress)
        return self.lam * progress  # "linear"

    @property
    def head_variables(self):
        return [v for h in self.heads for v in h.trainable_variables]

    def adversary_terms(self, hidden, nuisance, reverse_scale=None):
        """Per-example adversary cross-entropy (mean over heads) and per-head accuracy/logits."""
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


def _main_outputs(model, x, y, layers, training):
    if hasattr(model, "adversarial_outputs"):
        per_example, hidden = model.adversarial_outputs(x, y, layers, training=training)
        return per_example, hidden, None
    return classifier_outputs(model, x, y, layers, training=training)


def make_train_step(model, trainer: MinimaxTrainer):
    """The minimax ``train_step`` (also the per-batch objective a custom loop can call)."""
    main_variables = [v for v in model.trainable_variables if not any(v is w for w in trainer.head_variables)]

    def train_step(data):
        x, y = data[0], data[1]
        nuisance = tf.cast(y[trainer.nuisance], tf.int32)
        lam = trainer.current_lambda()
        trainer._maybe_reinitialise()
        layers = sorted(set(trainer.head_layers))
        with tf.GradientTape(persistent=True) as tape:
            primary, hidden, correct = _main_outputs(model, x, y, layers, True)
            primary = tf.cast(primary, tf.float32)  # losses in float32 under mixed precision too
            with tape.stop_recording():
                frozen = {k: (tf.stop_gradient(h), m) for k, (h, m) in hidden.items()}
                trainer.fit_closed_form(frozen, nuisance)
            if trainer.form == "reversal":
                adversary, logits_all = trainer.adversary_terms(hidden, nuisance, reverse_scale=lam)
                # heads: ∂E_adversary; main net (through the reversal layer): ∂E_primary − λ·∂E_adversary
                total = tf.nn.compute_average_loss(primary) + tf.nn.compute_average_loss(adversary)
            else:
                with tape.stop_recording():
                    for _ in range(trainer.adversary_steps if trainer.head_variables else 0):
                        with tf.GradientTape() as adv_tape:
                            adv_loss, _ = trainer.adversary_terms(frozen, nuisance)
                            scaled = tf.nn.compute_average_loss(adv_loss)
                        grads = adv_tape.gradient(scaled, trainer.head_variables)
                        model.adversary_optimizer.apply_gradients(zip(grads, trainer.head_variables))
                adversary, logits_all = trainer.adversary_terms(hidden, nuisance)
                if trainer.main_objective == "confusion":
                    main_adv = -trainer.confusion_terms(logits_all)  # maximise −CE(uniform, ŝ)
                else:
                    main_adv = adversary
                total = tf.nn.compute_average_loss(primary) - lam * tf.nn.compute_average_loss(main_adv)
            # mixed precision: the main optimizer's loss scale (identity for a plain optimizer)
            scaled_total = model.optimizer.scale_loss(total)
        if trainer.form == "reversal":
            grads = tape.gradient(scaled_total, main_variables)
            model.optimizer.apply_gradients(zip(grads, main_variables))
            if trainer.head_variables:
                head_grads = tape.gradient(total, trainer.head_variables)
                model.adversary_optimizer.apply_gradients(zip(head_grads, trainer.head_variables))
        else:
            grads = tape.gradient(scaled_total, main_variables)
            model.optimizer.apply_gradients(zip(grads, main_variables))
        del tape
        trainer.iterations.assign_add(1)
        trainer.primary_tracker.update_state(primary)
        trainer.adversary_tracker.update_state(adversary)
        trainer.adversary_accuracy.update_state(trainer._accuracy(logits_all, nuisance))
        trainer.lambda_tracker.update_state(lam)
        return _logs(model, trainer, correct)

    def test_step(data):
        x, y = data[0], data[1]
        nuisance = tf.cast(y[trainer.nuisance], tf.int32)
        primary, hidden, correct = _main_outputs(model, x, y, sorted(set(trainer.head_layers)), False)
        adversary, logits_all = trainer.adversary_terms(hidden, nuisance)
        trainer.primary_tracker.update_state(primary)
        trainer.adversary_tracker.update_state(adversary)
        trainer.adversary_accuracy.update_state(trainer._accuracy(logits_all, nuisance))
        return _logs(model, trainer, correct)

    return train_step, test_step


def _logs(model, trainer, correct):
    logs = {m.name: m.result() for m in (trainer.primary_tracker, trainer.adversary_tracker,
                                          trainer.adversary_accuracy, trainer.lambda_tracker)}
    if correct is not None:
        trainer.primary_accuracy.update_state(correct)
        logs["accuracy"] = trainer.primary_accuracy.result()
    elif hasattr(model, "accuracy_tracker"):
        logs["char_accuracy"] = model.accuracy_tracker.result()
    return logs


_PARAMS = dict(head="mlp", head_params={}, layers=None, heads=1, nuisance=None, num_classes=None, form="minimax",
               lam=1.0, schedule=None, ramp_steps=1000, adversary_steps=1, adversary_learning_rate=None,
               reinit_every=0, main_objective="negative", clipnorm=None)


def configure_minimax(model, recipe):
    """Attach adversary heads to ``model`` and compile it for the minimax step (see the module doc)."""
    from zoo.api import get_adversary_head

    if recipe.ema_momentum is not None:
        raise ConfigError("the minimax step does not take train.ema_momentum: its optimizer updates only the "
                          "main network's share of the model's variables")
    params = dict(recipe.step_params)
    unknown = sorted(set(params) - set(_PARAMS))
    if unknown:
        raise ConfigError(f"unknown minimax step_params {unknown}; valid: {sorted(_PARAMS)}")
    p = {**_PARAMS, **params}
    if p["form"] not in FORMS:
        raise ConfigError(f"minimax form must be one of {FORMS}, got {p['form']!r}")
    if p["main_objective"] not in MAIN_OBJECTIVES:
        raise ConfigError(f"main_objective must be one of {MAIN_OBJECTIVES}, got {p['main_objective']!r}")
    if p["form"] == "reversal" and p["main_objective"] != "negative":
        raise ConfigError("the gradient-reversal form negates E_adversary; main_objective 'confusion' needs form 'minimax'")
    if p["schedule"] not in (None, "constant", "dann", "linear"):
        raise ConfigError(f"schedule must be 'constant', 'dann' or 'linear', got {p['schedule']!r}")
    if not p["nuisance"] or not p["num_classes"]:
        raise ConfigError("the minimax step needs step_params 'nuisance' (the label key) and 'num_classes'")
    if int(p["heads"]) < 1 or int(p["adversary_steps"]) < 1:
        raise ConfigError("heads and adversary_steps must be at least 1")
    layers = p["layers"] or ["listener" if hasattr(model, "adversarial_outputs") else "features"]
    layers = [layers] if isinstance(layers, str) else list(layers)

    dims = _hidden_dims(model, layers)
    heads, head_layers = [], []
    for layer in layers:
        for j in range(int(p["heads"])):
            head = get_adversary_head(p["head"], num_classes=int(p["num_classes"]), layer=layer,
                                      **p["head_params"])
            head.build(dims[layer])
            heads.append(head)
            head_layers.append(layer)
    trainer = MinimaxTrainer(heads, head_layers, p["nuisance"], form=p["form"], lam=p["lam"], schedule=p["schedule"],
                             ramp_steps=p["ramp_steps"], adversary_steps=p["adversary_steps"],
                             reinit_every=p["reinit_every"], main_objective=p["main_objective"], name="minimax")
    # A built Keras model refuses new state; the heads are part of this model's training state, so they
    # are attached (and saved with its weights) deliberately.
    tracker = getattr(model, "_tracker", None)
    locked = bool(tracker is not None and tracker.locked)
    if locked:
        tracker.unlock()
    try:
        model.minimax = trainer
    finally:
        if locked:
            tracker.lock()

    optimizer = make_optimizer(recipe)
    adversary_recipe = recipe if p["adversary_learning_rate"] is None else _with_lr(recipe, p["adversary_learning_rate"])
    adversary_optimizer = make_optimizer(adversary_recipe)
    if p["clipnorm"] is not None:
        optimizer.clipnorm = float(p["clipnorm"])
    keras.Model.compile(model, optimizer=optimizer, jit_compile=False)
    main_variables = [v for v in model.trainable_variables if not any(v is w for w in trainer.head_variables)]
    model.optimizer.build(main_variables)
    adversary_optimizer.build(trainer.head_variables)
    object.__setattr__(model, "adversary_optimizer", adversary_optimizer)  # not a layer: kept out of tracking
    train_step, test_step = make_train_step(model, trainer)
    object.__setattr__(model, "train_step", train_step)
    object.__setattr__(model, "test_step", test_step)
    return model


def _with_lr(recipe, lr):
    import dataclasses

    return dataclasses.replace(recipe, learning_rate=float(lr))


def _hidden_dims(model, layers):
    """Shapes of the hidden layers, from one forward pass on a dummy input."""
    if hasattr(model, "adversarial_outputs"):
        x = tf.zeros((1, 4000))
        y = {"tokens": tf.constant([[3, 2]], tf.int32)}
        _, hidden = model.adversarial_outputs(x, y, layers, training=False)
    else:
        shape = getattr(model, "image_shape", None)
        if shape is None:
            raise ConfigError(f"cannot find the input shape of {type(model).__name__} to size the adversary heads")
        _, hidden, _ = classifier_outputs(model, tf.zeros((1, *shape)), tf.zeros((1,), tf.int32), layers)
    return {k: tuple(h.shape) for k, (h, _) in hidden.items()}


register_step("minimax")(configure_minimax)
