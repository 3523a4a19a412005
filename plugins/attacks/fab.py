"""FAB, the Fast Adaptive Boundary attack (Croce & Hein, ICML 2020), L∞ and L2.

A minimum-norm attack: each iteration linearises the decision boundary f(x) = z_t − z_y = 0 at the
current point x_k (targeted; untargeted: the boundary of the class whose linearised boundary is
nearest), projects both x_k and the original x onto that hyperplane inside the clip box, and steps
to a convex combination of the two projections,

    x_k+1 = clip((1 − α)(x_k + η·d_k) + α(x + η·d_0)),   α = min(‖d_k‖ / (‖d_k‖ + ‖d_0‖), α_max),

which keeps the iterate close to x. When x_k+1 is adversarial it is remembered if it is the closest
so far, and pulled back towards x: x_k+1 ← x + β(x_k+1 − x). The attack's result is the closest
adversarial point found if it lies within ε, else the input itself (the point counts as robust).

``target_classes=k`` is FAB-T as in AutoAttack: a run towards each of the classes ranked 2..k+1 by
the clean logits, on the examples not yet fooled; success means misclassification. An explicit
``target`` must be hit. Restarts after the first start from a random point at ε/2. ``early_exit``
(default) stops an example once an adversarial point within ε is found — the reference keeps
shrinking it, which changes no robust-accuracy figure.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf


from zoo_plugins.attacks.apgd import TargetedRuns, relaxed_function
from zoo_plugins.attacks.base import Attack, _per_example, check_bool, check_int, check_norm, check_number

_BIG = 1e12


def _flat(v):
    return tf.reshape(v, [tf.shape(v)[0], -1])


def _norm(v, norm):
    v = _flat(v)
    return tf.reduce_max(tf.abs(v), axis=1) if norm == "inf" else tf.sqrt(tf.reduce_sum(v * v, axis=1))


def project_hyperplane(t, w, b, norm, lo, hi):
    """The smallest ``d`` (L∞ or L2) with w·(t + d) = b and lo ≤ t + d ≤ hi, row-wise on flat (rows, n).

    Moving coordinate i by m_i ≥ 0 in the direction that closes the gap c = |w·t − b| changes w·t by
    |w_i|·m_i, and coordinate i has room p_i before the box. L∞ with radius λ moves m_i = min(λ, p_i);
    L2 moves m_i = min(γ|w_i|, p_i). Either way the gap closed is Σ_i s_i·min(λ, k_i), a concave
    piecewise-linear function with breakpoints k_i = p_i (p_i/|w_i|) and slopes s_i = |w_i| (w_i²):
    sort the breakpoints, find the segment where it reaches c and solve the linear piece. If the box
    cannot close the gap, go to the box corner.

    Runs in NumPy through ``tf.numpy_function`` (inside graphs too): NumPy's vectorised sort is about
    five times faster on CPU than TensorFlow's ``argsort``, and this projection is FAB's cost beside
    the model's gradient.
    """
    d = tf.numpy_function(lambda *a: _project_hyperplane(*a, norm=norm, lo=lo, hi=hi), [t, w, b], tf.float32,
                          stateful=False)
    return tf.ensure_shape(d, t.shape)


def _project_hyperplane(t, w, b, *, norm, lo, hi):
    rows, n = t.shape
    gap = np.einsum("ij,ij->i", w, t) - b
    w = w * np.where(gap >= 0, 1.0, -1.0).astype(np.float32)[:, None]   # now w·z must decrease by c ≥ 0
    c = np.abs(gap)
    down = (w > 0).astype(np.float32)                  # coordinates with w > 0 go down, the others up
    room = (hi - t) + down * (2 * t - lo - hi)          # = t − lo going down, hi − t going up
    aw = np.abs(w)
    if norm == "inf":
        breaks, slope = room, aw
    else:
        slope = aw * aw
        breaks = np.minimum(room / np.maximum(aw, 1e-30), _BIG)  # |w_i| = 0: slope 0, never saturates (no 0/0)
    # (np.where and take_along_axis are several times slower than this arithmetic and flat take)
    flat = np.argsort(breaks, axis=1) + (np.arange(rows) * n)[:, None]
    bs, ss = breaks.take(flat), slope.take(flat)
    done = np.cumsum(ss * bs, axis=1)                   # saturated part up to breakpoint k
    rest = np.cumsum(ss[:, ::-1], axis=1)[:, ::-1] - ss  # slope after breakpoint k
    k = np.sum(done + bs * rest < c[:, None], axis=1)   # the first breakpoint that closes the gap
    at = np.arange(rows), np.minimum(k, n - 1)
    done_before = done[at] - ss[at] * bs[at]
    lam = np.maximum((c - done_before) / np.maximum(rest[at] + ss[at], 1e-30), 0.0).astype(np.float32)
    if norm == "inf":
        m = np.minimum(lam[:, None], room) * (aw > 0)
    else:
        m = np.minimum(lam[:, None] * aw, room)
    corner = k >= n                                     # unreachable inside the box: the corner
    m[corner] = (room * (aw > 0))[corner]
    return m * (1 - 2 * down)


class FAB(TargetedRuns, Attack):
    """FAB (untargeted, targeted, or FAB-T with ``target_classes``), L∞ or L2."""

    name = "fab"
    needs_scores = True
    needs_labels = True

    def __init__(self, *, eps=0.3, norm="inf", steps=100, restarts=1, target_classes=None, alpha_max=0.1, eta=1.05,
                 beta=0.9, clip=(0.0, 1.0), early_exit=True, batch_size=None, jit_compile=False):
        norm = check_norm(self.name, norm)
        super().__init__(eps=check_number(self.name, "eps", eps), norm=norm, clip=clip, batch_size=batch_size,
                         jit_compile=jit_compile)
        self.steps = check_int(self.name, "steps", steps)
        self.restarts = check_int(self.name, "restarts", restarts)
        self.target_classes = None if target_classes is None else check_int(self.name, "target_classes", target_classes)
        self.alpha_max = check_number(self.name, "alpha_max", alpha_max, high=1.0)
        self.eta = check_number(self.name, "eta", eta, low=1.0)
        self.beta = check_number(self.name, "beta", beta, low_open=True, high=1.0)
        self.early_exit = check_bool(self.name, "early_exit", early_exit)
        self._passes = 0
        self._forwards = 0

    @property
    def passes(self):
        """Forward+backward passes (one example's gradient each; untargeted: a Jacobian) so far."""
        return self._passes

    @property
    def forwards(self):
        """Forward-only passes (one example each) so far."""
        return self._forwards

    # -- one iteration ----------------------------------------------------------------------------
    def _boundary(self, objective, x, y, t):
        """(f, ∇f): signed distance-to-boundary numerator and its gradient of the chosen boundary."""
        y = tf.cast(y, tf.int32)
        if t is not None:
            with tf.GradientTape() as tape:
                tape.watch(x)
                z = objective.scores(x)
                f = tf.gather(z, tf.cast(t, tf.int32), batch_dims=1) - tf.gather(z, y, batch_dims=1)
                total = tf.reduce_sum(f)
            return f, tape.gradient(total, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        with tf.GradientTape() as tape:
            tape.watch(x)
            z = objective.scores(x)
        jac = tape.batch_jacobian(z, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)  # (batch, classes, ...)
        classes = tf.shape(z)[1]
        df = z - tf.gather(z, y, batch_dims=1)[:, None]
        dg = jac - tf.gather(jac, y, batch_dims=1)[:, None]
        dg_flat = tf.reshape(dg, [tf.shape(dg)[0], classes, -1])
        dual = tf.reduce_sum(tf.abs(dg_flat), -1) if self.norm == "inf" else tf.sqrt(tf.reduce_sum(dg_flat ** 2, -1))
        dist = tf.abs(df) / (dual + 1e-12)
        dist = tf.where(tf.one_hot(y, classes) > 0, _BIG, dist)
        nearest = tf.argmin(dist, axis=1, output_type=tf.int32)
        return tf.gather(df, nearest, batch_dims=1), tf.gather(dg, nearest, batch_dims=1)

    def _step(self, objective, x0, y, t, goal, x1, best, res):
        lo, hi = self.clip
        f, g = self._boundary(objective, x1, y, t)
        w = _flat(g)
        b = tf.reduce_sum(w * _flat(x1), axis=1) - f
        d = project_hyperplane(tf.concat([_flat(x1), _flat(x0)], 0), tf.concat([w, w], 0), tf.concat([b, b], 0),
                               self.norm, lo, hi)
        rows = tf.shape(x1)[0]
        d1, d0 = tf.reshape(d[:rows], tf.shape(x1)), tf.reshape(d[rows:], tf.shape(x1))
        a1, a0 = tf.maximum(_norm(d1, self.norm), 1e-8), tf.maximum(_norm(d0, self.norm), 1e-8)
        alpha = _per_example(tf.clip_by_value(a1 / (a1 + a0), 0.0, self.alpha_max), x1)
        x1 = tf.clip_by_value((x1 + self.eta * d1) * (1 - alpha) + (x0 + self.eta * d0) * alpha, lo, hi)
        adv = objective.success(objective.labels(x1), y, goal)
        dist = _norm(x1 - x0, self.norm)
        closer = tf.logical_and(adv, dist < res)
        best = tf.where(_per_example(closer, x1), x1, best)
        res = tf.where(closer, dist, res)
        x1 = tf.where(_per_example(adv, x1), x0 + (x1 - x0) * self.beta, x1)
        return x1, best, res

    def _start(self, x0, random):
        lo, hi = self.clip
        if not random:
            return x0
        if self.norm == "inf":
            u = tf.random.uniform(tf.shape(x0), -1.0, 1.0)
        else:
            u = tf.random.normal(tf.shape(x0))
        u /= _per_example(_norm(u, self.norm) + 1e-12, u)
        return tf.clip_by_value(x0 + 0.5 * self.eps * u, lo, hi)

    # -- runs ---------------------------------------------------------------------------------------
    def _attack(self, objective, x, y, target):
        """In-graph version: every run over the whole batch as a tf.while_loop."""
        ranked = self._ranked(objective.scores, x, target is not None)
        x_out = tf.identity(x)
        done = objective.success(objective.labels(x), y, target)
        for rank, restart in self._plan(target is not None):
            t = target if rank is None else ranked[rank]
            x1 = self._start(x, restart > 0)
            res = tf.where(done, -1.0, _BIG)  # already fooled rows never "improve"
            _, _, best, res = tf.while_loop(
                lambda i, *_: i < self.steps,
                lambda i, x1, best, res: (i + 1, *self._step(objective, x, y, t, target, x1, best, res)),
                (tf.constant(0), x1, tf.identity(x), res))
            found = tf.logical_and(res >= 0, res <= self.eps)
            x_out = tf.where(_per_example(found, x), best, x_out)
            done = tf.logical_or(done, found)
        return x_out

    def _eager_run(self, objective, targeted):
        def compiled(fn):
            return relaxed_function(fn, self.jit_compile)

        steps = {lt: compiled(lambda x0, y, t, g, x1, best, res, lt=lt: self._step(
            objective, x0, y, t if lt else None, g if targeted else None, x1, best, res)) for lt in (False, True)}
        start = {r: compiled(lambda x0, r=r: self._start(x0, r)) for r in (False, True)}
        scores = tf.function(objective.scores, reduce_retracing=True)

        def run(x, y, target):
            y, target = tf.cast(y, tf.int32), tf.cast(target, tf.int32)  # one graph for any label dtype
            z = scores(x)
            self._check_target_classes(int(z.shape[-1]))
            ranked = self._ranked(lambda _: z, x, targeted)
            self._forwards += int(x.shape[0])
            x_out = x.numpy().copy()
            done = objective.success(objective.labels(x, z), y, target if targeted else None).numpy()
            for rank, restart in self._plan(targeted):
                rows = np.flatnonzero(~done)
                if rows.size == 0:
                    break
                lt = targeted or rank is not None
                t = target if rank is None else ranked[rank]
                best, res = self._run_rows(steps[lt], start[restart > 0], x, y, t, target, rows)
                found = res <= self.eps
                x_out[rows[found]] = best[found]
                done[rows[found]] = True
            return tf.constant(x_out)

        return run

    def _run_rows(self, step, start, x, y, t, goal, rows):
        """One run on ``rows``; with early exit a row stops once it has an adversarial point within ε."""
        idx = tf.constant(rows)
        x0, ys, ts, gs = (tf.gather(v, idx) for v in (x, y, t, goal))
        x1, best, res = start(x0), tf.identity(x0), tf.fill([len(rows)], _BIG)
        live = np.arange(len(rows))
        out_best = x0.numpy().copy()
        out_res = np.full(len(rows), _BIG, np.float32)
        for _ in range(self.steps):
            x1, best, res = step(x0, ys, ts, gs, x1, best, res)
            self._passes += int(live.size)
            self._forwards += int(live.size)
            if self.early_exit:
                r = res.numpy()
                hit = r <= self.eps
                if hit.any():
                    out_best[live[hit]] = best.numpy()[hit]
                    out_res[live[hit]] = r[hit]
                    keep = np.flatnonzero(~hit)
                    live = live[keep]
                    if live.size == 0:
                        break
                    k = tf.constant(keep)
                    x0, ys, ts, gs, x1, best, res = (tf.gather(v, k) for v in (x0, ys, ts, gs, x1, best, res))
        if live.size:
            out_best[live] = best.numpy()
            out_res[live] = res.numpy()
        return out_best, out_res
