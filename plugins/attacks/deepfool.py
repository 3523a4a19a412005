"""DeepFool (Moosavi-Dezfooli et al. 2016): step to the nearest decision boundary of the model
linearised at the current point, repeat until the label changes.

With scores Z and w_k = ∇Z_k − ∇Z_y, f_k = Z_k − Z_y, the linearised boundary nearest in L2 is
k* = argmin_{k≠y} |f_k|/‖w_k‖₂ and the step r = (|f_k*| + 10⁻⁴)·w_k*/‖w_k*‖₂² (L∞: the dual norm
‖w‖₁ and sign(w)). The total perturbation is scaled by (1 + overshoot). Targeted: the boundary
between the target and the current strongest other class. Each example stops as soon as it is
fooled — DeepFool is a minimal-perturbation attack by definition — so finished examples drop out of
the batch (the per-class gradients come from one batched Jacobian).
"""
from __future__ import annotations

import math

import tensorflow as tf

from zoo import ConfigError

from zoo_plugins.attacks.base import Attack, check_int, check_norm, check_number, project


class DeepFool(Attack):
    name = "deepfool"
    needs_scores = True

    def __init__(self, *, eps=math.inf, norm="l2", steps=50, overshoot=0.02, clip=(0.0, 1.0), early_exit=True,
                 step_size=None, random_start=False, restarts=1, batch_size=None, jit_compile=False):
        norm = check_norm(self.name, norm)
        if early_exit is not True:
            raise ConfigError("deepfool always stops an example once it is fooled (early_exit must be true)")
        if step_size is not None or random_start or restarts != 1:
            raise ConfigError("deepfool computes its own steps from x: step_size, random_start and restarts "
                              "are not supported (use overshoot)")
        super().__init__(eps=check_number(self.name, "eps", eps, allow_inf=True), norm=norm, clip=clip,
                         batch_size=batch_size, jit_compile=jit_compile)
        self.steps = check_int(self.name, "steps", steps)
        self.overshoot = check_number(self.name, "overshoot", overshoot)
        self.early_exit = True

    def _attack(self, objective, x, y, target):
        y = tf.cast(y, tf.int32)
        target = None if target is None else tf.cast(target, tf.int32)
        n = tf.shape(x)[0]
        rank = x.shape.rank

        def flat(t):
            return tf.reshape(t, [tf.shape(t)[0], tf.shape(t)[1], -1])

        def body(i, r_tot, x_adv, done):
            active = tf.where(tf.logical_not(done))[:, 0]
            xa = tf.gather(x_adv, active)
            ya = tf.gather(y, active)
            with tf.GradientTape() as tape:
                tape.watch(xa)
                z = objective.scores(xa)
            jac = flat(tape.batch_jacobian(z, xa))  # (batch, classes, pixels)
            classes = tf.shape(z)[1]
            pred = tf.argmax(z, axis=1, output_type=tf.int32)
            if target is None:
                success = tf.not_equal(pred, ya)
                ref = ya  # move away from the true class towards the nearest other class
                candidates = tf.one_hot(ya, classes, on_value=False, off_value=True)
            else:
                ta = tf.gather(target, active)
                success = tf.equal(pred, ta)
                # the boundary between the target and the strongest class other than the target
                ref = tf.argmax(z - tf.one_hot(ta, classes) * 1e9, axis=1, output_type=tf.int32)
                candidates = tf.cast(tf.one_hot(ta, classes), tf.bool)
            z_ref = tf.gather(z, ref, batch_dims=1)
            g_ref = tf.gather(jac, ref, batch_dims=1)
            f = z - z_ref[:, None]
            w = jac - g_ref[:, None, :]
            if self.norm == "l2":
                w_norm = tf.norm(w, axis=2)
            else:
                w_norm = tf.reduce_sum(tf.abs(w), axis=2)
            dist = tf.where(candidates, tf.abs(f) / (w_norm + 1e-8), math.inf)
            k = tf.argmin(dist, axis=1, output_type=tf.int32)
            f_k = tf.abs(tf.gather(f, k, batch_dims=1)) + 1e-4
            w_k = tf.gather(w, k, batch_dims=1)
            nk = tf.gather(w_norm, k, batch_dims=1) + 1e-8
            if self.norm == "l2":
                r = (f_k / nk ** 2)[:, None] * w_k
            else:
                r = (f_k / nk)[:, None] * tf.sign(w_k)
            r = tf.reshape(r, tf.shape(xa))
            r = tf.where(tf.reshape(success, [-1] + [1] * (rank - 1)), tf.zeros_like(r), r)
            r_new = tf.gather(r_tot, active) + r
            x_new = tf.clip_by_value(tf.gather(x, active) + (1.0 + self.overshoot) * r_new, *self.clip)
            idx = active[:, None]
            return (i + 1, tf.tensor_scatter_nd_update(r_tot, idx, r_new),
                    tf.tensor_scatter_nd_update(x_adv, idx, x_new),
                    tf.tensor_scatter_nd_update(done, idx, success))

        _, _, x_adv, _ = tf.while_loop(
            lambda i, r, xa, done: tf.logical_and(i < self.steps + 1, tf.logical_not(tf.reduce_all(done))),
            body, (tf.constant(0), tf.zeros_like(x), x, tf.zeros([n], tf.bool)))
        return project(x_adv, x, self.eps, self.norm, self.clip)
