"""Carlini & Wagner's L2 attack (2017): the smallest L2 perturbation that changes the label.

    minimise ‖x' − x‖₂² + c·f(x'),   x' = lo + (hi − lo)·(tanh(w) + 1)/2   (always in the clip box)
    f = max(Z_y − max_{j≠y} Z_j, −κ)            untargeted
    f = max(max_{j≠t} Z_j − Z_t, −κ)            targeted

Adam on w for ``steps`` iterations, per-example binary search on c over ``binary_search_steps``
rounds, all examples of the batch at once in one graph. Z are the model's class scores (logits,
or ln ŷ for a probability model — margins are unchanged). The result is the smallest successful
x' found (with ‖x' − x‖₂ ≤ ``eps`` when ``eps`` is finite), else ``x`` itself.
"""
from __future__ import annotations

import math

import tensorflow as tf

from zoo import ConfigError

from zoo_plugins.attacks.base import Attack, check_bool, check_int, check_norm, check_number, project


class CarliniWagnerL2(Attack):
    """Carlini–Wagner L2. ``step_size`` is Adam's learning rate; ``early_exit`` aborts a search round
    when the batch loss stopped falling (CleverHans's ``abort_early``)."""

    name = "cw"
    needs_scores = True

    def __init__(self, *, eps=math.inf, norm="l2", steps=100, step_size=0.01, binary_search_steps=5,
                 initial_const=0.01, confidence=0.0, clip=(0.0, 1.0), early_exit=False, batch_size=None,
                 random_start=False, restarts=1, jit_compile=False):
        check_norm(self.name, norm, allowed=("l2",))
        if random_start or restarts != 1:
            raise ConfigError("cw starts from x itself: random_start and restarts are not supported")
        super().__init__(eps=check_number(self.name, "eps", eps, allow_inf=True), norm="l2", clip=clip,
                         batch_size=batch_size, jit_compile=jit_compile)
        self.steps = check_int(self.name, "steps", steps)
        self.step_size = check_number(self.name, "step_size", step_size, low_open=True)
        self.binary_search_steps = check_int(self.name, "binary_search_steps", binary_search_steps)
        self.initial_const = check_number(self.name, "initial_const", initial_const, low_open=True)
        self.confidence = check_number(self.name, "confidence", confidence)
        self.early_exit = check_bool(self.name, "early_exit", early_exit)

    def _margin(self, z, y, target):
        classes = tf.shape(z)[1]
        if target is None:
            own = tf.one_hot(y, classes)
            real = tf.reduce_sum(own * z, axis=1)
            other = tf.reduce_max(z - own * 1e9, axis=1)
            return tf.maximum(real - other, -self.confidence), other > real + self.confidence
        own = tf.one_hot(target, classes)
        real = tf.reduce_sum(own * z, axis=1)
        other = tf.reduce_max(z - own * 1e9, axis=1)
        return tf.maximum(other - real, -self.confidence), real > other + self.confidence

    def _attack(self, objective, x, y, target):
        lo, hi = self.clip
        y = tf.cast(y, tf.int32)
        target = None if target is None else tf.cast(target, tf.int32)
        batch = tf.shape(x)[0]
        axes = list(range(1, x.shape.rank))
        # w with tanh(w) mapping back onto x (0.999999 keeps arctanh finite at the box edges).
        w0 = tf.atanh(tf.clip_by_value(((x - lo) / (hi - lo) * 2.0 - 1.0) * 0.999999, -0.999999, 0.999999))
        eps_sq = self.eps ** 2 if math.isfinite(self.eps) else math.inf
        beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
        check_every = max(self.steps // 10, 1)

        def to_image(w):
            return lo + (hi - lo) * (tf.tanh(w) + 1.0) / 2.0

        def search_round(r, const, lower, upper, best_l2, best_adv):
            def inner(i, w, m, v, prev, best_l2, best_adv, won, stop):
                with tf.GradientTape() as tape:
                    tape.watch(w)
                    x_new = to_image(w)
                    l2 = tf.reduce_sum(tf.square(x_new - x), axis=axes)
                    f, success = self._margin(objective.scores(x_new), y, target)
                    loss_each = l2 + const * f
                    loss = tf.reduce_sum(loss_each)
                g = tape.gradient(loss, w)
                better = tf.logical_and(tf.logical_and(success, l2 < best_l2), l2 <= eps_sq)
                best_l2 = tf.where(better, l2, best_l2)
                best_adv = tf.where(tf.reshape(better, [-1] + [1] * (x.shape.rank - 1)), x_new, best_adv)
                won = tf.logical_or(won, success)
                t = tf.cast(i + 1, tf.float32)
                m = beta1 * m + (1 - beta1) * g
                v = beta2 * v + (1 - beta2) * g * g
                lr = self.step_size * tf.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                w = w - lr * m / (tf.sqrt(v) + adam_eps)
                if self.early_exit:
                    checkpoint = tf.equal(tf.math.floormod(i + 1, check_every), 0)
                    stop = tf.logical_and(checkpoint, loss > prev * 0.9999)
                    prev = tf.where(checkpoint, loss, prev)
                return i + 1, w, m, v, prev, best_l2, best_adv, won, stop

            zeros = tf.zeros_like(x)
            _, _, _, _, _, best_l2, best_adv, won, _ = tf.while_loop(
                lambda i, *s: tf.logical_and(i < self.steps, tf.logical_not(s[-1])),
                inner,
                (tf.constant(0), w0, zeros, zeros, tf.constant(math.inf), best_l2, best_adv,
                 tf.zeros([batch], tf.bool), tf.constant(False)))
            # Binary search on c: smaller after a success, larger (×10 until bracketed) after a failure.
            upper = tf.where(won, tf.minimum(upper, const), upper)
            lower = tf.where(won, lower, tf.maximum(lower, const))
            const = tf.where(upper < 1e9, (lower + upper) / 2.0, const * 10.0)
            return r + 1, const, lower, upper, best_l2, best_adv

        const0 = tf.fill([batch], self.initial_const)
        _, _, _, _, _, best_adv = tf.while_loop(
            lambda r, *_: r < self.binary_search_steps, search_round,
            (tf.constant(0), const0, tf.zeros([batch]), tf.fill([batch], 1e10), tf.fill([batch], math.inf), x))
        return project(best_adv, x, self.eps, "l2", self.clip)
