"""Square Attack, L∞ (Andriushchenko et al. 2020): a black-box random search that needs only the
model's outputs, never its gradients.

Start from vertical stripes of ±ε; each of ``steps`` queries replaces one random square window
(side shrinking on the paper's schedule from ``p_init`` of the image area) by ±ε per channel and
keeps the change for the examples whose loss went down. The schedule halves the window's area
after 10, 50, 200, 500, 1,000, 2,000, 4,000, 6,000 and 8,000 queries: ``schedule="rescaled"``
(the Square paper's code) stretches those counts to the ``steps`` budget as if it were 10,000;
``schedule="fixed"`` (AutoAttack's, ``resc_schedule=False``) keeps them as query counts. Loss: the margin Z_y − max_{j≠y} Z_j
(untargeted) or cross-entropy to the target (targeted); for a model with only ``attack_loss``, −E
(untargeted) or E(target) − E(y) (targeted). With ``early_exit`` (the default, as in the paper)
fooled examples stop querying.
"""
from __future__ import annotations

import tensorflow as tf

from zoo import ConfigError

from zoo_plugins.attacks.base import Attack, check_bool, check_int, check_norm, check_number, project

# (last query, divisor of p_init) — the paper's schedule, stated for 10,000 queries.
_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
             (8000, 256))
SCHEDULES = ("rescaled", "fixed")


class Square(Attack):
    name = "square"

    def __init__(self, *, eps=0.3, norm="inf", steps=1000, p_init=0.8, schedule="rescaled", clip=(0.0, 1.0),
                 early_exit=True, step_size=None, random_start=True, restarts=1, batch_size=None, jit_compile=False):
        check_norm(self.name, norm, allowed=("inf",))
        if step_size is not None or restarts != 1 or random_start is not True:
            raise ConfigError("square: step_size and restarts are not used (the square size follows p_init), "
                              "and the stripe initialisation is always random (random_start must be true)")
        super().__init__(eps=check_number(self.name, "eps", eps), norm="inf", clip=clip, batch_size=batch_size,
                         jit_compile=jit_compile)
        self.steps = check_int(self.name, "steps", steps)
        self.p_init = check_number(self.name, "p_init", p_init, low_open=True, high=1.0)
        self.early_exit = check_bool(self.name, "early_exit", early_exit)
        if schedule not in SCHEDULES:
            raise ConfigError(f"square: schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        self.schedule = schedule

    def _loss(self, objective, x_adv, y, target):
        """(loss to minimise, success) for a batch, from forward passes only."""
        if objective.has_scores:
            z = objective.scores(x_adv)
            labels = objective.labels(x_adv, z)
            if target is None:
                own = tf.one_hot(tf.cast(y, tf.int32), tf.shape(z)[1])
                loss = tf.reduce_sum(own * z, 1) - tf.reduce_max(z - own * 1e9, 1)
            else:
                loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(target, tf.int32), logits=z)
        else:
            e, _ = objective.loss(x_adv, y, target)
            loss = -e
            labels = objective.labels(x_adv) if objective.has_labels else None
        success = objective.success(labels, y, target) if labels is not None else tf.zeros_like(loss, tf.bool)
        return loss, success

    @property
    def queries(self):
        """Model queries (forward passes of one example) of every eager call so far."""
        return getattr(self, "_queries", 0)

    def _attack(self, objective, x, y, target):
        return self._search(objective, x, y, target)[0]

    def _eager_run(self, objective, targeted):
        search = tf.function(lambda x, y, t: self._search(objective, x, y, t if targeted else None),
                             reduce_retracing=True, jit_compile=self.jit_compile)

        def run(x, y, target):
            x_adv, queries = search(x, y, target)
            self._queries = self.queries + int(tf.reduce_sum(queries))
            return x_adv

        return run

    def _search(self, objective, x, y, target):
        """(adversarial batch, model queries per example: the start plus one per iteration it took part in)."""
        if x.shape.rank != 4:
            raise ConfigError(f"square attacks images (batch, height, width, channels), got rank {x.shape.rank}")
        eps = self.eps
        n, h, w, c = (tf.shape(x)[i] for i in range(4))
        hw = tf.cast(h * w, tf.float32)
        x_best = project(x + eps * tf.sign(tf.random.uniform([n, 1, w, c], -1.0, 1.0)), x, eps, "inf", self.clip)
        loss, done = self._loss(objective, x_best, y, target)
        ta_all = target

        def body(i, x_best, loss, done, queries):
            # Square side from the schedule: sqrt(p·h·w) pixels, at least 1, at most h − 1.
            it = tf.cast(i, tf.float32)
            if self.schedule == "rescaled":
                it = tf.floor(it / float(self.steps) * 10000.0)
            divisor = tf.constant(512.0)
            for bound, d in reversed(_SCHEDULE):
                divisor = tf.where(it <= bound, float(d), divisor)
            side = tf.cast(tf.round(tf.sqrt(self.p_init / divisor * hw)), tf.int32)
            side = tf.clip_by_value(side, 1, tf.maximum(tf.minimum(h, w) - 1, 1))
            active = tf.where(tf.logical_not(done))[:, 0] if self.early_exit else tf.range(tf.cast(n, tf.int64))
            xa, xo = tf.gather(x_best, active), tf.gather(x, active)
            m = tf.shape(active)[0]
            top = tf.random.uniform([m, 1, 1, 1], 0, h - side + 1, dtype=tf.int32)
            left = tf.random.uniform([m, 1, 1, 1], 0, w - side + 1, dtype=tf.int32)
            rows = tf.range(h)[None, :, None, None]
            cols = tf.range(w)[None, None, :, None]
            window = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
            values = eps * tf.sign(tf.random.uniform([m, 1, 1, c], -1.0, 1.0))
            delta = tf.ensure_shape(tf.where(window, values, xa - xo), xa.shape)
            x_new = project(xo + delta, xo, eps, "inf", self.clip)
            ya = tf.gather(y, active)
            ta = None if ta_all is None else tf.gather(ta_all, active)
            new_loss, success = self._loss(objective, x_new, ya, ta)
            old_loss = tf.gather(loss, active)
            better = new_loss < old_loss
            idx = active[:, None]
            x_best = tf.tensor_scatter_nd_update(x_best, idx, tf.where(better[:, None, None, None], x_new, xa))
            loss = tf.tensor_scatter_nd_update(loss, idx, tf.where(better, new_loss, old_loss))
            done = tf.tensor_scatter_nd_update(done, idx, tf.logical_or(tf.gather(done, active),
                                                                        tf.logical_and(better, success)))
            queries = tf.tensor_scatter_nd_add(queries, idx, tf.ones_like(active, tf.int32))
            return i + 1, x_best, loss, done, queries

        cond = (lambda i, xb, l, d, q: tf.logical_and(i < self.steps, tf.logical_not(tf.reduce_all(d)))) \
            if self.early_exit else (lambda i, *_: i < self.steps)
        _, x_best, _, _, queries = tf.while_loop(cond, body, (tf.constant(0), x_best, loss, done, tf.ones([n], tf.int32)))
        return x_best, queries
