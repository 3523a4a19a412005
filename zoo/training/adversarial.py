"""Adversarial-example training: train on attacked inputs, with any attack plugin by name.

    loss = α·E(x, y) + (1 − α)·E(x_adv, y),   x_adv = attack(model, x, y),   E = −ln ŷ_y

* ``adversarial`` — Goodfellow et al. (2015): FGSM, α = 0.5 by default;
* ``madry`` — Madry et al. (2018): PGD, α = 0 (train only on the worst case in the ε-ball);
* ``trades`` — Zhang et al. (2019): E(x, y) + β·KL(ŷ(x) ‖ ŷ(x_adv)), β = 6 by default; the clean
  term keeps accuracy, the KL term makes the prediction flat across the ball (the attack ascends
  the cross-entropy, as for ``madry``, rather than TRADES's own KL).

``step_params`` name the attack and its parameters, e.g.
``{attack: pgd, eps: 0.3, steps: 10, step_size: 0.03, alpha: 0.0}``; any key other than ``attack``,
``alpha``, ``beta``, ``attack_labels``, ``evaluate_adversarial``, ``warmup_steps`` and ``augmentation``
goes to ``zoo.get_attack``.

``augmentation: {name: image, translation: 0.07, ...}`` transforms every training batch with that
augmentation plugin (``zoo.get_augmentation``) before it is attacked: on 8,000 MNIST images the
robust accuracy otherwise overfits (training accuracy under PGD far above the held-out one).

``warmup_steps: n`` trains on x + s·(x_adv − x) with s rising linearly from 0 to 1 over the first n
optimizer steps (a curriculum; s follows ``optimizer.iterations``, so a resumed run continues it). From
scratch at MNIST's ε = 0.3, PGD training can otherwise settle on predicting one class for every input.

The attack uses the true labels by default. Kurakin et al. (2017) found that FGSM training on true
labels "leaks" them (the model learns to read the label from the perturbation and becomes *more*
accurate on adversarial than clean inputs); ``attack_labels: predicted`` attacks the model's own
predictions instead.

The per-batch objective lives in :meth:`AdversarialTraining.compute_loss`, so a custom
(distributed) loop can call it; it scales by the global batch size (``tf.nn.compute_average_loss``)
and the metrics it reports are unscaled means.
"""
from __future__ import annotations

from zoo.errors import ConfigError
from zoo.training.steps import make_optimizer, register_step

OWN_KEYS = ("attack", "alpha", "beta", "attack_labels", "evaluate_adversarial", "warmup_steps", "augmentation")


class AdversarialTraining:
    """The adversarial-training objective of one classifier, plus ``train_step``/``test_step`` for fit.

    Args:
        model: a zoo classifier (softmax or logit outputs).
        attack: an attack object, ``attack(model, x, y) -> x_adv``.
        alpha: weight of the clean loss (Goodfellow's α); 0 trains on adversarial examples only.
        beta: if given, the TRADES objective E(x, y) + β·KL(ŷ(x) ‖ ŷ(x_adv)) replaces the α-mix.
        attack_labels: ``"true"`` (attack y) or ``"predicted"`` (attack the model's predictions).
        evaluate_adversarial: also attack the validation batches and report ``adv_accuracy``.
        warmup_steps: optimizer steps over which the perturbation's scale rises from 0 to 1.
        augmentation: ``augmentation(x, y) -> (x, y)`` applied to training batches before the attack.
    """

    def __init__(self, model, attack, *, alpha=0.5, beta=None, attack_labels="true", evaluate_adversarial=True,
                 warmup_steps=0, augmentation=None):
        import keras

        self.model = model
        self.attack = attack
        self.alpha = float(alpha)
        self.beta = None if beta is None else float(beta)
        self.attack_labels = attack_labels
        self.evaluate_adversarial = bool(evaluate_adversarial)
        self.warmup_steps = int(warmup_steps)
        self.augmentation = augmentation
        self.from_logits = getattr(model, "output_kind", "softmax") == "logits"
        self.per_example_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=self.from_logits,
                                                                           reduction=None)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.adv_loss_tracker = keras.metrics.Mean(name="adv_loss")
        self.adv_accuracy = keras.metrics.SparseCategoricalAccuracy(name="adv_accuracy")

    @property
    def metrics(self):
        """Unscaled trackers: combined loss, clean accuracy, adversarial loss and accuracy."""
        return [self.loss_tracker, self.accuracy, self.adv_loss_tracker, self.adv_accuracy]

    def adversarial_examples(self, x, y):
        """The attack's examples for the batch, treated as constants by the weight gradient."""
        import tensorflow as tf

        labels = None if self.attack_labels == "predicted" else y
        return tf.stop_gradient(self.attack(self.model, x, labels))

    def compute_loss(self, x, y, sample_weight=None, training=True):
        """The per-batch objective: ``(loss scaled by the global batch, metric values)``.

        ``loss`` = Σ_i w_i·[α·E(x_i, y_i) + (1−α)·E(x_adv_i, y_i)] / global batch size, ready for
        summing gradients across replicas; the metric values are per-replica unscaled tensors.
        """
        import tensorflow as tf

        if training and self.augmentation is not None:
            x, y = self.augmentation(x, y)
        x_adv = self.adversarial_examples(x, y)
        if training and self.warmup_steps:
            done = tf.cast(self.model.optimizer.iterations + 1, x_adv.dtype) / self.warmup_steps
            x_adv = x + tf.minimum(done, 1.0) * (x_adv - x)  # inside the ε-ball and the clip box
        outputs = {}
        if self.beta is not None:  # TRADES
            clean_pred = self.model(x, training=training)
            adv_pred = self.model(x_adv, training=training)
            per_example = self.per_example_loss(y, clean_pred) + self.beta * self._kl(clean_pred, adv_pred)
            outputs.update(clean_pred=clean_pred, adv_pred=adv_pred, adv_loss=self.per_example_loss(y, adv_pred))
        else:  # α-mix; a term with weight 0 is not computed
            per_example = 0.0
            if self.alpha > 0:
                clean_pred = self.model(x, training=training)
                per_example += self.alpha * self.per_example_loss(y, clean_pred)
                outputs["clean_pred"] = clean_pred
            if self.alpha < 1:
                adv_pred = self.model(x_adv, training=training)
                adv = self.per_example_loss(y, adv_pred)
                per_example += (1.0 - self.alpha) * adv
                outputs.update(adv_pred=adv_pred, adv_loss=adv)
        loss = tf.nn.compute_average_loss(per_example, sample_weight=sample_weight)
        outputs.update(per_example=per_example, x=x, y=y)  # the batch as trained on (after any augmentation)
        return loss, outputs

    def _kl(self, clean_pred, adv_pred):
        """Per-example KL(ŷ(x) ‖ ŷ(x_adv)), from log-probabilities (log-softmax of logits)."""
        import tensorflow as tf

        clean_pred, adv_pred = tf.cast(clean_pred, tf.float32), tf.cast(adv_pred, tf.float32)  # float16 under mixed precision
        if self.from_logits:
            log_p, log_q = tf.nn.log_softmax(clean_pred), tf.nn.log_softmax(adv_pred)
        else:
            log_p = tf.math.log(tf.clip_by_value(clean_pred, 1e-7, 1.0))
            log_q = tf.math.log(tf.clip_by_value(adv_pred, 1e-7, 1.0))
        return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)

    def _update_metrics(self, x, y, outputs, sample_weight):
        self.loss_tracker.update_state(outputs["per_example"], sample_weight=sample_weight)
        clean_pred = outputs.get("clean_pred")
        if clean_pred is None:  # pure adversarial training: clean accuracy still worth watching
            clean_pred = self.model(x, training=False)
        self.accuracy.update_state(y, clean_pred, sample_weight=sample_weight)
        if "adv_pred" in outputs:
            self.adv_loss_tracker.update_state(outputs["adv_loss"], sample_weight=sample_weight)
            self.adv_accuracy.update_state(y, outputs["adv_pred"], sample_weight=sample_weight)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        import keras
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        model = self.model
        with tf.GradientTape() as tape:
            loss, outputs = self.compute_loss(x, y, sample_weight, training=True)
            scaled = model.optimizer.scale_loss(loss) if hasattr(model.optimizer, "scale_loss") else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return self._update_metrics(outputs["x"], outputs["y"], outputs, sample_weight)

    def test_step(self, data):
        import keras

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self.evaluate_adversarial:
            _, outputs = self.compute_loss(x, y, sample_weight, training=False)
            return self._update_metrics(x, y, outputs, sample_weight)
        clean_pred = self.model(x, training=False)
        self.accuracy.update_state(y, clean_pred, sample_weight=sample_weight)
        self.loss_tracker.update_state(self.per_example_loss(y, clean_pred), sample_weight=sample_weight)
        return {m.name: m.result() for m in self.metrics[:2]}


def configure(model, recipe, defaults, attack_defaults):
    """Compile ``model`` for adversarial training as ``recipe.step_params`` say, over ``defaults``
    and, when they keep the default attack, over that attack's ``attack_defaults``."""
    from zoo.api import get_attack, get_augmentation

    params = {**defaults, **recipe.step_params}
    if params["attack"] == defaults["attack"]:
        params = {**attack_defaults, **params}
    attack_name = params.pop("attack")
    alpha = params.pop("alpha")
    beta = params.pop("beta", None)
    if beta is not None and not (isinstance(beta, (int, float)) and not isinstance(beta, bool) and beta >= 0):
        raise ConfigError(f"step {recipe.step!r}: beta must be a number >= 0, got {beta!r}")
    attack_labels = params.pop("attack_labels", "true")
    evaluate_adversarial = params.pop("evaluate_adversarial", True)
    warmup_steps = params.pop("warmup_steps", 0)
    if not isinstance(warmup_steps, int) or isinstance(warmup_steps, bool) or warmup_steps < 0:
        raise ConfigError(f"step {recipe.step!r}: warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    augmentation = params.pop("augmentation", None)
    if augmentation is not None:
        if not isinstance(augmentation, dict) or not isinstance(augmentation.get("name"), str):
            raise ConfigError(f"step {recipe.step!r}: augmentation must be a mapping with a 'name', got {augmentation!r}")
        augmentation = get_augmentation(**augmentation)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"step {recipe.step!r}: alpha must be a number in [0, 1], got {alpha!r}")
    if attack_labels not in ("true", "predicted"):
        raise ConfigError(f"step {recipe.step!r}: attack_labels must be 'true' or 'predicted', got {attack_labels!r}")
    if not isinstance(attack_name, str):
        raise ConfigError(f"step {recipe.step!r}: attack must be an attack name, got {attack_name!r}")
    attack = get_attack(attack_name, **params)
    objective = AdversarialTraining(model, attack, alpha=alpha, beta=beta, attack_labels=attack_labels,
                                    evaluate_adversarial=evaluate_adversarial, warmup_steps=warmup_steps,
                                    augmentation=augmentation)
    model.compile(optimizer=make_optimizer(recipe))
    # The model is already built, so Keras refuses new tracked state; the trackers must still be
    # in ``model.metrics`` so that fit resets them every epoch and reports them.
    tracker = model._tracker
    was_locked = tracker.locked
    tracker.unlock()
    try:
        model.adversarial_metrics = objective.metrics
    finally:
        if was_locked:
            tracker.lock()
    model.adversarial_training = objective
    model.train_step = objective.train_step
    model.test_step = objective.test_step
    return model


@register_step("adversarial")
def _goodfellow(model, recipe):
    """Goodfellow et al. (2015): α·E(x) + (1−α)·E(x_fgsm), α = 0.5, ε = 0.25 unless step_params say."""
    configure(model, recipe, dict(attack="fgsm", alpha=0.5), dict(eps=0.25))


@register_step("madry")
def _madry(model, recipe):
    """Madry et al. (2018): E(x_pgd) only; PGD ε = 0.3, 40 steps of 0.01 unless step_params say."""
    configure(model, recipe, dict(attack="pgd", alpha=0.0), dict(eps=0.3, steps=40, step_size=0.01))


@register_step("trades")
def _trades(model, recipe):
    """Zhang et al. (2019): E(x) + β·KL(ŷ(x) ‖ ŷ(x_pgd)), β = 6; PGD ε = 0.3, 40 steps of 0.01 unless step_params say."""
    if "alpha" in recipe.step_params:
        raise ConfigError("step 'trades' weighs its terms with beta, not alpha")
    configure(model, recipe, dict(attack="pgd", alpha=0.0, beta=6.0), dict(eps=0.3, steps=40, step_size=0.01))


def attack_report(model, attack, x, y, *, target=None, batch_size=500) -> tuple[dict, object]:
    """Run ``attack`` on ``(x, y)`` and measure it: ``(metrics, x_adv)``.

    Metrics: ``clean_accuracy``, ``adv_accuracy`` (accuracy under attack), ``success_rate``
    (untargeted: share of the correctly classified examples the attack fools; targeted: share
    classified as ``target``), mean and max L∞ and L2 perturbation norms, and ``images_per_s`` of
    the attack alone (after one warm-up call on a small batch, so tracing is not timed).
    """
    import time

    import numpy as np

    x = np.asarray(x, np.float32)
    y = np.asarray(y).astype(np.int64)
    if target is not None:
        target = np.broadcast_to(np.asarray(target).astype(np.int64), y.shape).copy()

    def predict(images):
        return np.concatenate([np.asarray(model(images[i:i + batch_size], training=False)).argmax(-1)
                               for i in range(0, len(images), batch_size)])

    attack(model, x[:2], y[:2], target=None if target is None else target[:2])  # trace outside the clock
    start = time.perf_counter()
    x_adv = np.concatenate([
        np.asarray(attack(model, x[i:i + batch_size], y[i:i + batch_size],
                          target=None if target is None else target[i:i + batch_size]))
        for i in range(0, len(x), batch_size)])
    seconds = time.perf_counter() - start
    clean, adv = predict(x) == y, predict(x_adv)
    if target is None:
        fooled = (adv != y)[clean]
        success = float(fooled.mean()) if fooled.size else 0.0
    else:
        success = float(np.mean(adv == target))
    delta = (x_adv - x).reshape(len(x), -1)
    linf, l2 = np.abs(delta).max(axis=1), np.linalg.norm(delta, axis=1)
    metrics = dict(n=len(x), clean_accuracy=float(clean.mean()), adv_accuracy=float(np.mean(adv == y)),
                   success_rate=success, mean_linf=float(linf.mean()), max_linf=float(linf.max()),
                   mean_l2=float(l2.mean()), max_l2=float(l2.max()), seconds=seconds,
                   images_per_s=len(x) / seconds)
    return metrics, x_adv
