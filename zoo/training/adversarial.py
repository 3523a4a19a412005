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

:class:`AdversarialTrainer` is a ``keras.Model`` that wraps the network (as keras-io's ``Distiller``
wraps its student): ``fit`` trains the trainer, the network's weights move. Its per-batch objective is
:meth:`AdversarialTrainer.objective`, so a custom (distributed) loop can call it; it scales by the
global batch size (``tf.nn.compute_average_loss``) and the metrics it reports are unscaled means.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from zoo.protocols import class_logits


class AdversarialTrainer(keras.Model):
    """Trains ``network`` (a classifier) on the adversarial-training objective; ``fit`` this model.

    Args:
        network: a zoo classifier (softmax or logit outputs).
        attack: an attack object, ``attack(model, x, y) -> x_adv``.
        alpha: weight of the clean loss (Goodfellow's α); 0 trains on adversarial examples only.
        beta: if given, the TRADES objective E(x, y) + β·KL(ŷ(x) ‖ ŷ(x_adv)) replaces the α-mix.
        attack_labels: ``"true"`` (attack y) or ``"predicted"`` (attack the model's predictions).
        evaluate_adversarial: also attack the validation batches and report ``adv_accuracy``.
        warmup_steps: optimizer steps over which the perturbation's scale rises from 0 to 1.
        augmentation: ``augmentation(x, y) -> (x, y)`` applied to training batches before the attack.
    """

    def __init__(self, network, attack, *, alpha=0.5, beta=None, attack_labels="true", evaluate_adversarial=True,
                 warmup_steps=0, augmentation=None, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.attack = attack
        self.alpha = float(alpha)
        self.beta = None if beta is None else float(beta)
        self.attack_labels = attack_labels
        self.evaluate_adversarial = bool(evaluate_adversarial)
        self.warmup_steps = int(warmup_steps)
        self.augmentation = augmentation
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.adv_loss_tracker = keras.metrics.Mean(name="adv_loss")
        self.adv_accuracy = keras.metrics.SparseCategoricalAccuracy(name="adv_accuracy")
        self.built = network.built  # no weights of its own: built when the network is

    def call(self, x, training=False):
        return self.network(x, training=training)

    @property
    def attacked_metrics(self) -> tuple:
        """The metrics ``evaluate`` measures on attacked inputs (a pack's card names the attack)."""
        if not self.evaluate_adversarial:
            return ()
        mixed = self.beta is not None or self.alpha < 1  # the objective's loss has an attacked term
        return ("loss", "adv_loss", "adv_accuracy") if mixed else ("adv_loss", "adv_accuracy")

    @property
    def metrics(self):
        """Unscaled trackers: combined loss, clean accuracy, adversarial loss and accuracy."""
        return [self.loss_tracker, self.accuracy, self.adv_loss_tracker, self.adv_accuracy]

    def adversarial_examples(self, x, y):
        """The attack's examples for the batch, treated as constants by the weight gradient."""
        labels = None if self.attack_labels == "predicted" else y
        return tf.stop_gradient(self.attack(self.network, x, labels))

    def objective(self, x, y, sample_weight=None, training=True):
        """The per-batch objective: ``(loss scaled by the global batch, outputs)``.

        ``loss`` = Σ_i w_i·[α·E(x_i, y_i) + (1−α)·E(x_adv_i, y_i)] / global batch size (or the TRADES
        sum), ready for summing gradients across replicas; ``outputs`` holds per-replica unscaled
        per-example terms and the logits, and the batch as trained on (after any augmentation).
        """
        if training and self.augmentation is not None:
            x, y = self.augmentation(x, y)
        x_adv = self.adversarial_examples(x, y)
        if training and self.warmup_steps:
            done = tf.cast(self.optimizer.iterations + 1, x_adv.dtype) / self.warmup_steps
            x_adv = x + tf.minimum(done, 1.0) * (x_adv - x)  # inside the ε-ball and the clip box
        labels = tf.cast(y, tf.int32)

        def cross_entropy(logits):
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)

        outputs = {}
        if self.beta is not None:  # TRADES
            clean = class_logits(self.network, x, training=training)
            adv = class_logits(self.network, x_adv, training=training)
            log_p, log_q = tf.nn.log_softmax(clean), tf.nn.log_softmax(adv)
            kl = tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)
            per_example = cross_entropy(clean) + self.beta * kl
            outputs.update(clean_logits=clean, adv_logits=adv, adv_loss=cross_entropy(adv))
        else:  # α-mix; a term with weight 0 is not computed
            per_example = 0.0
            if self.alpha > 0:
                clean = class_logits(self.network, x, training=training)
                per_example += self.alpha * cross_entropy(clean)
                outputs["clean_logits"] = clean
            if self.alpha < 1:
                adv = class_logits(self.network, x_adv, training=training)
                adv_loss = cross_entropy(adv)
                per_example += (1.0 - self.alpha) * adv_loss
                outputs.update(adv_logits=adv, adv_loss=adv_loss)
        loss = tf.nn.compute_average_loss(per_example, sample_weight=sample_weight)
        outputs.update(per_example=per_example, x=x, y=y)
        return loss, outputs

    def _update_metrics(self, x, y, outputs, sample_weight):
        self.loss_tracker.update_state(outputs["per_example"], sample_weight=sample_weight)
        clean = outputs.get("clean_logits")
        if clean is None:  # pure adversarial training: clean accuracy still worth watching
            clean = class_logits(self.network, x, training=False)
        self.accuracy.update_state(y, clean, sample_weight=sample_weight)
        if "adv_logits" in outputs:
            self.adv_loss_tracker.update_state(outputs["adv_loss"], sample_weight=sample_weight)
            self.adv_accuracy.update_state(y, outputs["adv_logits"], sample_weight=sample_weight)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            loss, outputs = self.objective(x, y, sample_weight, training=True)
            scaled = self.optimizer.scale_loss(loss)  # mixed precision: the loss scale (else identity)
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return self._update_metrics(outputs["x"], outputs["y"], outputs, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self.evaluate_adversarial:
            _, outputs = self.objective(x, y, sample_weight, training=False)
            return self._update_metrics(x, y, outputs, sample_weight)
        clean = class_logits(self.network, x, training=False)
        labels = tf.cast(y, tf.int32)
        self.accuracy.update_state(y, clean, sample_weight=sample_weight)
        self.loss_tracker.update_state(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=clean), sample_weight=sample_weight)
        return {m.name: m.result() for m in self.metrics[:2]}


def build_trainer(network, recipe, params, make_optimizer):
    """The compiled :class:`AdversarialTrainer` for ``params`` (a checked ``AttackTrainingParams``)."""
    from zoo.api import get_attack, get_augmentation

    augmentation = None if params.augmentation is None else get_augmentation(**params.augmentation)
    trainer = AdversarialTrainer(
        network, get_attack(params.attack, **params.attack_params), alpha=getattr(params, "alpha", 0.0),
        beta=getattr(params, "beta", None), attack_labels=params.attack_labels,
        evaluate_adversarial=params.evaluate_adversarial, warmup_steps=params.warmup_steps,
        augmentation=augmentation, name=f"{recipe.step}_trainer")
    trainer.compile(optimizer=make_optimizer(recipe))
    return trainer
