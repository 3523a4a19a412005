"""Gradient-ascent attacks on E(x, y): the seed's gradient step, FGSM, BIM, PGD and MIM.

One in-graph engine runs all of them: ``steps`` iterations of

    g ← ∂E/∂x           (targeted: ∂(ln ŷ_target − ln ŷ_true)/∂x)
    m ← μ·m + g/‖g‖₁     (MIM only)
    x ← Π_{ε-ball ∩ clip}(x + η·d(g or m)),   d = sign (L∞), g/‖g‖₂ (L2) or g itself (the seed's step)

on the whole batch, with ``restarts`` random starts stacked along the batch axis (one bigger batch,
not a Python loop). Each example returns its last iterate, or an earlier iterate that fooled the
model if the last one does not; across restarts, a fooling restart wins, else the highest loss.

``early_exit=True`` stops iterating an example as soon as it fools the model: the remaining
steps run only on the examples still classified correctly (gathered into a smaller batch), so
accuracy under attack is the same while the work shrinks with it.
"""
from __future__ import annotations

import tensorflow as tf

from zoo import ConfigError

from zoo_plugins.attacks.base import (
    Attack, check_bool, check_int, check_norm, check_number, project, random_in_ball,
    steepest_direction, tile_batch,
)


class IterativeAttack(Attack):
    """The shared engine; the public attacks below only choose defaults and which knobs exist."""

    name = "iterative"

    def __init__(self, *, eps=0.3, norm="inf", steps=10, step_size=None, random_start=False, restarts=1,
                 momentum=None, raw_gradient=False, clip=(0.0, 1.0), early_exit=False, batch_size=None,
                 jit_compile=False):
        norm = check_norm(self.name, norm)
        super().__init__(eps=check_number(self.name, "eps", eps), norm=norm, clip=clip, batch_size=batch_size,
                         jit_compile=jit_compile)
        self.steps = check_int(self.name, "steps", steps)
        # Madry et al.'s rule of thumb: 2.5·ε/steps lets the iterate cross the ball and come back.
        self.step_size = (2.5 * self.eps / self.steps if step_size is None
                          else check_number(self.name, "step_size", step_size))
        self.random_start = check_bool(self.name, "random_start", random_start)
        self.restarts = check_int(self.name, "restarts", restarts)
        if self.restarts > 1 and not self.random_start:
            raise ConfigError(f"{self.name}: restarts={self.restarts} needs random_start=True "
                              f"(restarts from the same point would repeat the same run)")
        self.momentum = None if momentum is None else check_number(self.name, "decay", momentum)
        self.raw_gradient = raw_gradient
        self.early_exit = check_bool(self.name, "early_exit", early_exit)

    # -- one step on a (sub)batch -------------------------------------------------------------
    def _step(self, objective, x_adv, x, y, target, m):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            e, scores = objective.loss(x_adv, y, target)
            total = tf.reduce_sum(e)
        g = tape.gradient(total, x_adv)
        if self.momentum is not None:
            l1 = tf.reduce_sum(tf.abs(tf.reshape(g, [tf.shape(g)[0], -1])), axis=1)
            l1 = tf.reshape(tf.maximum(l1, 1e-12), tf.concat([[-1], tf.ones([tf.rank(g) - 1], tf.int32)], 0))
            m = self.momentum * m + g / l1
            g = m
        direction = g if self.raw_gradient else steepest_direction(g, self.norm)
        x_next = project(x_adv + self.step_size * direction, x, self.eps, self.norm, self.clip)
        success = None
        if objective.has_labels:
            success = objective.success(objective.labels(x_adv, scores), y, target)
        return x_next, m, success, e

    def _start(self, x):
        if self.random_start and self.eps > 0:
            return project(random_in_ball(x, self.eps, self.norm), x, self.eps, self.norm, self.clip)
        return x

    def _attack(self, objective, x, y, target):
        batch = tf.shape(x)[0]
        xr = tile_batch(x, self.restarts)
        yr = tile_batch(y, self.restarts)
        tr = None if target is None else tile_batch(target, self.restarts)
        if self.early_exit:
            x_adv, success, loss = self._run_early_exit(objective, xr, yr, tr)
        else:
            x_adv, success, loss = self._run_all_steps(objective, xr, yr, tr)
        if self.restarts == 1:
            return x_adv
        # Per example: a fooling restart if there is one, else the restart with the highest loss.
        score = tf.where(success, tf.fill(tf.shape(loss), float("inf")), loss) if success is not None else loss
        best = tf.argmax(tf.reshape(score, [self.restarts, batch]), axis=0, output_type=tf.int32)
        rows = best * batch + tf.range(batch)
        return tf.gather(x_adv, rows)

    def _final(self, objective, x_adv, y, target):
        e, scores = objective.loss(x_adv, y, target)
        success = objective.success(objective.labels(x_adv, scores), y, target) if objective.has_labels else None
        return success, e

    def _run_all_steps(self, objective, x, y, target):
        """Equal work: every step on every example (the contract of CleverHans's and ART's PGD)."""
        tracked = objective.has_labels

        def body(i, x_adv, m, found, kept):
            x_next, m, success, _ = self._step(objective, x_adv, x, y, target, m)
            if tracked:
                first = tf.logical_and(success, tf.logical_not(found))
                kept = tf.where(_mask(first, x_adv), x_adv, kept)
                found = tf.logical_or(found, success)
            return i + 1, x_next, m, found, kept

        x0 = self._start(x)
        found0 = tf.zeros(tf.shape(x)[:1], tf.bool)
        _, x_adv, _, found, kept = tf.while_loop(
            lambda i, *_: i < self.steps, body, (tf.constant(0), x0, tf.zeros_like(x), found0, x0))
        success, loss = self._final(objective, x_adv, y, target)
        if not tracked:
            return x_adv, None, loss
        # Keep the last iterate unless only an earlier one fooled the model.
        use_kept = tf.logical_and(found, tf.logical_not(success))
        return tf.where(_mask(use_kept, x_adv), kept, x_adv), tf.logical_or(success, found), loss

    def _run_early_exit(self, objective, x, y, target):
        """Stop iterating an example once it fools the model (any restart of it), on a gathered batch."""
        n = tf.shape(x)[0]
        batch = n // self.restarts

        def spread(done):  # an example is finished once any of its restarts is
            return tile_batch(tf.reduce_any(tf.reshape(done, [self.restarts, batch]), axis=0), self.restarts)

        def body(i, x_adv, m, done, loss):
            active = tf.where(tf.logical_not(spread(done)))[:, 0]
            xa = tf.gather(x_adv, active)
            ta = None if target is None else tf.gather(target, active)
            x_next, m_next, success, e = self._step(objective, xa, tf.gather(x, active), tf.gather(y, active),
                                                    ta, tf.gather(m, active))
            # A fooling example stays where it is; the others take the step.
            x_keep = tf.where(_mask(success, xa), xa, x_next)
            idx = active[:, None]
            return (i + 1, tf.tensor_scatter_nd_update(x_adv, idx, x_keep),
                    tf.tensor_scatter_nd_update(m, idx, m_next),
                    tf.tensor_scatter_nd_update(done, idx, success),
                    tf.tensor_scatter_nd_update(loss, idx, e))

        x0 = self._start(x)
        done0 = tf.zeros([n], tf.bool)
        _, x_adv, _, done, loss = tf.while_loop(
            lambda i, x_adv, m, done, loss: tf.logical_and(i < self.steps, tf.logical_not(tf.reduce_all(spread(done)))),
            body, (tf.constant(0), x0, tf.zeros_like(x), done0, tf.zeros([n], tf.float32)))
        # The last step's result has not been checked yet: one forward pass on the unfinished ones.
        active = tf.where(tf.logical_not(spread(done)))[:, 0]
        success, e = self._final(objective, tf.gather(x_adv, active), tf.gather(y, active),
                                 None if target is None else tf.gather(target, active))
        done = tf.tensor_scatter_nd_update(done, active[:, None], success)
        loss = tf.tensor_scatter_nd_update(loss, active[:, None], e)
        return x_adv, done, loss


def _mask(flags, like):
    return tf.reshape(flags, tf.concat([[-1], tf.ones([tf.rank(like) - 1], tf.int32)], 0))


class Gradient(IterativeAttack):
    """The seed's step x ← x + η·∂E/∂x (raw gradient, no sign), ``steps`` times, kept in the ε-ball.

    Weak against confident models by design (the gradient of −ln ŷ is tiny where ŷ ≈ 1); it is the
    lecture's baseline. ``step_size`` is η.
    """

    name = "gradient"

    def __init__(self, *, eps=0.3, norm="inf", steps=10, step_size=10.0, random_start=False, restarts=1,
                 clip=(0.0, 1.0), early_exit=False, batch_size=None, jit_compile=False):
        super().__init__(eps=eps, norm=norm, steps=steps, step_size=step_size, random_start=random_start,
                         restarts=restarts, raw_gradient=True, clip=clip, early_exit=early_exit,
                         batch_size=batch_size, jit_compile=jit_compile)


class FGSM(IterativeAttack):
    """Fast gradient sign method (Goodfellow et al. 2015): one step x + ε·sign(∂E/∂x) (L∞) or
    x + ε·g/‖g‖₂ (L2, the fast gradient method). With ``random_start`` it is R+FGSM / "fast is
    better than free" FGSM (step_size then defaults to 1.25·ε)."""

    name = "fgsm"

    def __init__(self, *, eps=0.3, norm="inf", steps=1, step_size=None, random_start=False, restarts=1,
                 clip=(0.0, 1.0), early_exit=False, batch_size=None, jit_compile=False):
        if steps != 1:
            raise ConfigError(f"fgsm takes exactly one step (got steps={steps!r}); use bim or pgd for more")
        eps = check_number(self.name, "eps", eps)
        if step_size is None:
            step_size = 1.25 * eps if random_start else eps
        super().__init__(eps=eps, norm=norm, steps=1, step_size=step_size, random_start=random_start,
                         restarts=restarts, clip=clip, early_exit=early_exit, batch_size=batch_size,
                         jit_compile=jit_compile)


class BIM(IterativeAttack):
    """Basic iterative method / I-FGSM (Kurakin et al. 2017): FGSM steps of ``step_size`` from x,
    projected on the ε-ball after each (PGD without the random start)."""

    name = "bim"

    def __init__(self, *, eps=0.3, norm="inf", steps=10, step_size=None, random_start=False, restarts=1,
                 clip=(0.0, 1.0), early_exit=False, batch_size=None, jit_compile=False):
        super().__init__(eps=eps, norm=norm, steps=steps, step_size=step_size, random_start=random_start,
                         restarts=restarts, clip=clip, early_exit=early_exit, batch_size=batch_size,
                         jit_compile=jit_compile)


class PGD(IterativeAttack):
    """Projected gradient descent (Madry et al. 2018): a uniform random start in the ε-ball, then
    steepest-ascent steps projected on the ball; ``restarts`` random starts run as one batch."""

    name = "pgd"

    def __init__(self, *, eps=0.3, norm="inf", steps=40, step_size=0.01, random_start=True, restarts=1,
                 clip=(0.0, 1.0), early_exit=False, batch_size=None, jit_compile=False):
        super().__init__(eps=eps, norm=norm, steps=steps, step_size=step_size, random_start=random_start,
                         restarts=restarts, clip=clip, early_exit=early_exit, batch_size=batch_size,
                         jit_compile=jit_compile)


class MIM(IterativeAttack):
    """Momentum iterative method (Dong et al. 2018): g accumulates ∂E/∂x / ‖∂E/∂x‖₁ with ``decay``;
    each step moves ``step_size`` (default ε/steps) along sign(g) (L∞) or g/‖g‖₂ (L2)."""

    name = "mim"

    def __init__(self, *, eps=0.3, norm="inf", steps=10, step_size=None, decay=1.0, random_start=False,
                 restarts=1, clip=(0.0, 1.0), early_exit=False, batch_size=None, jit_compile=False):
        steps = check_int(self.name, "steps", steps)
        if step_size is None:
            step_size = check_number(self.name, "eps", eps) / steps
        super().__init__(eps=eps, norm=norm, steps=steps, step_size=step_size, random_start=random_start,
                         restarts=restarts, momentum=decay, clip=clip, early_exit=early_exit,
                         batch_size=batch_size, jit_compile=jit_compile)
