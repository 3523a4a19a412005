"""Auto-PGD (Croce & Hein, ICML 2020): PGD whose step size needs no tuning.

One run of ``steps`` iterations from a random point of the ε-ball, step size starting at 2ε:

    z      ← Π(x_k + η·d(∇L(x_k)))                      d = sign (L∞) or ∇/‖∇‖₂ (L2)
    x_k+1  ← Π(x_k + α(z − x_k) + (1 − α)(x_k − x_k−1))   α = 0.75 (1 at the first step)

At checkpoints (after 22% of the steps, then periods shrinking by 3% of the steps down to 6%) the
step size of an example is halved, and the example restarts from its best point so far, when its
loss rose in at most ρ = 75% of the steps since the last checkpoint, or when the step size was
not halved at the last checkpoint and the best loss has not improved since.

Losses: ``"ce"`` (cross-entropy; targeted: ascend −CE(target)) and ``"dlr"``, the Difference of
Logits Ratio −(z_y − max_{j≠y} z_j)/(z_π1 − z_π3) (targeted: −(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2)),
which does not change when the logits are scaled, so a saturated softmax does not mask it. DLR
reads the model's exact logits (``Objective.scores``), never ln of clipped probabilities.

``target_classes=k`` runs the paper's APGD-T: for the k classes ranked 2..k+1 by the clean
logits, a targeted run each, on the examples still classified correctly; success there means
misclassification (the target is a means). ``restarts`` runs are likewise made only on the
examples not yet fooled. ``early_exit`` (default) stops iterating an example once it is fooled,
which changes no result (each example's iterates depend only on itself) but saves the work.

An example that is never fooled returns its highest-loss iterate (the reference returns the input
unchanged; both lie in the ε-ball). Differences from fra31/auto-attack, on purpose: the first
checkpoint's oscillation count compares the first step's loss with the start point's loss (the
reference compares it with an unwritten zero, a wrap-around index).
"""
from __future__ import annotations


import numpy as np
import tensorflow as tf

from zoo import ConfigError

from zoo_plugins.attacks.base import Attack, _flat_norm, _per_example, check_bool, check_int, check_norm, check_number, project

LOSSES = ("ce", "dlr")


def relaxed_function(fn, jit_compile=False):
    """``tf.function(fn)`` traced once, on its first call, for any batch size: every tensor argument's
    leading axis is left open, so the shrinking batches of early exit reuse one graph."""
    compiled = []

    def spec(v):
        v = tf.convert_to_tensor(v)
        shape = [None] + list(v.shape[1:]) if v.shape.rank else []
        return tf.TensorSpec(shape, v.dtype)

    def call(*args):
        if not compiled:
            signature = tf.nest.map_structure(spec, list(args))
            compiled.append(tf.function(fn, input_signature=signature, jit_compile=jit_compile))
        return compiled[0](*args)

    return call


def checkpoints(steps):
    """``{iteration index: period length}`` of the step-size checks for a run of ``steps``."""
    period = max(int(0.22 * steps), 1)
    shrink, shortest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out, i = {}, period - 1
    while i < steps:
        out[i] = period
        period = max(period - shrink, shortest)
        i += period
    return out


def _largest(z, k):
    """The k largest values of each row, largest first (k masked maxima: far cheaper on CPU than top_k's gradient)."""
    out, rest = [], z
    for _ in range(k):
        out.append(tf.reduce_max(rest, axis=1))
        taken = tf.one_hot(tf.argmax(rest, axis=1, output_type=tf.int32), tf.shape(z)[1], on_value=True, off_value=False)
        rest = tf.where(taken, tf.constant(-np.inf, z.dtype), rest)
    return out


def dlr_loss(z, y, target=None):
    """Per-example DLR loss (to ascend) from logits ``z``; targeted when ``target`` is given."""
    y = tf.cast(y, tf.int32)
    z_y = tf.gather(z, y, batch_dims=1)
    if target is None:
        top = _largest(z, 3)
        other = tf.reduce_max(tf.where(tf.one_hot(y, tf.shape(z)[1]) > 0, tf.constant(-np.inf, z.dtype), z), axis=1)
        return -(z_y - other) / (top[0] - top[2] + 1e-12)
    top = _largest(z, 4)
    z_t = tf.gather(z, tf.cast(target, tf.int32), batch_dims=1)
    return -(z_y - z_t) / (top[0] - 0.5 * (top[2] + top[3]) + 1e-12)


def ranked_targets(scores, ranks):
    """The class ranked ``r`` (1 = highest) by ``scores``, for each r in ``ranks``: (len(ranks), batch)."""
    order = tf.argsort(scores, axis=1, direction="DESCENDING", stable=True)
    return [tf.cast(order[:, r - 1], tf.int32) for r in ranks]


class TargetedRuns:
    """The runs of APGD-T and FAB-T: a targeted run towards each of the classes ranked 2..k+1 by the
    clean scores (``target_classes=k``), times ``restarts``; without ``target_classes``, or for an
    explicitly targeted call, one target (``None``: the call's own) times ``restarts``."""

    def _plan(self, targeted):
        """(target rank or None, restart) for every run, in the reference's order."""
        ranks = [None] if self.target_classes is None or targeted else list(range(2, self.target_classes + 2))
        return [(r, k) for r in ranks for k in range(self.restarts)]

    def _ranked(self, scores, x, targeted):
        """``{rank: target class per example}`` of the plan's ranks (``scores(x)`` read only if needed)."""
        if self.target_classes is None or targeted:
            return {}
        ranks = list(range(2, self.target_classes + 2))
        return dict(zip(ranks, ranked_targets(scores(x), ranks)))

    def _check_target_classes(self, classes):
        if self.target_classes is not None and self.target_classes > classes - 1:
            raise ConfigError(f"{self.name}: target_classes={self.target_classes} but the model has only "
                              f"{classes - 1} classes besides the true one")


class APGD(TargetedRuns, Attack):
    """Auto-PGD, L∞ or L2, cross-entropy or DLR loss, untargeted, targeted or APGD-T."""

    name = "apgd"

    def __init__(self, *, eps=0.3, norm="inf", steps=100, restarts=1, loss="ce", target_classes=None, rho=0.75,
                 momentum=0.75, clip=(0.0, 1.0), early_exit=True, batch_size=None, jit_compile=False):
        norm = check_norm(self.name, norm)
        super().__init__(eps=check_number(self.name, "eps", eps), norm=norm, clip=clip, batch_size=batch_size,
                         jit_compile=jit_compile)
        self.steps = check_int(self.name, "steps", steps)
        self.restarts = check_int(self.name, "restarts", restarts)
        if loss not in LOSSES:
            raise ConfigError(f"{self.name}: loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.loss = loss
        self.target_classes = None if target_classes is None else check_int(self.name, "target_classes", target_classes)
        self.rho = check_number(self.name, "rho", rho, high=1.0)
        self.momentum = check_number(self.name, "momentum", momentum, high=1.0)
        self.early_exit = check_bool(self.name, "early_exit", early_exit)
        self._passes = 0

    @property
    def passes(self):
        """Forward+backward passes (one example's loss gradient each) of every eager call so far."""
        return self._passes

    # DLR and APGD-T's ranking read class scores; cross-entropy alone works on any model with labels.
    @property
    def needs_scores(self):
        return self.loss == "dlr" or self.target_classes is not None

    needs_labels = True

    # -- the loss and its gradient ----------------------------------------------------------------
    def _loss(self, objective, x, y, target):
        """(loss to ascend, class scores or None) per example."""
        if self.loss == "dlr":
            z = objective.scores(x)
            return dlr_loss(z, y, target), z
        if target is None:
            return objective.loss(x, y)
        e, z = objective.loss(x, y, target, "target")  # −CE(target)
        return e, z

    def _loss_grad(self, objective, x, y, target, goal):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss, z = self._loss(objective, x, y, target)
            total = tf.reduce_sum(loss)
        grad = tape.gradient(total, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        fooled = objective.success(objective.labels(x, z), y, goal)
        return loss, grad, fooled

    def _check_classes(self, objective, x, targeted_loss):
        if not objective.has_scores:
            return
        classes = int(objective.scores(x[:1]).shape[-1])
        need = (4 if targeted_loss else 3) if self.loss == "dlr" else 2
        if classes < need:
            raise ConfigError(f"{self.name}: the {'targeted ' if targeted_loss else ''}{self.loss.upper()} loss needs "
                              f"at least {need} classes, the model has {classes}")
        self._check_target_classes(classes)

    # -- one run on a batch: init / step / result --------------------------------------------------
    def _init(self, objective, x, y, target, goal, done):
        """Start state of a run; ``done`` rows (already fooled) are frozen from the start."""
        lo, hi = self.clip
        if self.norm == "inf":
            u = tf.random.uniform(tf.shape(x), -1.0, 1.0)
            u /= _per_example(tf.reduce_max(tf.abs(tf.reshape(u, [tf.shape(u)[0], -1])), axis=1) + 1e-12, u)
        else:
            u = tf.random.normal(tf.shape(x))
            u /= _per_example(_flat_norm(u) + 1e-12, u)
        x0 = tf.clip_by_value(x + self.eps * u, lo, hi)
        loss, grad, fooled = self._loss_grad(objective, x0, y, target, goal)
        n = tf.shape(x)[0]
        return dict(
            x_adv=x0, x_prev=x0, grad=grad, step=tf.fill([n], 2.0 * self.eps),
            x_best=x0, loss_best=loss, grad_best=grad, loss_prev=loss, rises=tf.zeros([n]),
            loss_checked=loss, reduced=tf.ones([n], tf.bool),
            x_fool=x0, fooled=fooled, frozen=tf.logical_or(done, fooled) if self.early_exit else done)

    def _step(self, objective, i, period, x, y, target, goal, s, masked=True):
        """Iteration ``i`` (``period`` > 0 when it ends at a checkpoint) on every row; frozen rows keep their
        state. ``masked=False`` when the caller has removed every frozen row (the eager path), which
        saves a select over each state tensor per step."""
        a = tf.where(i > 0, self.momentum, 1.0)
        step = _per_example(s["step"], x)
        if self.norm == "inf":
            direction = tf.sign(s["grad"])
        else:
            direction = s["grad"] / _per_example(_flat_norm(s["grad"]) + 1e-12, x)
        z = project(s["x_adv"] + step * direction, x, self.eps, self.norm, self.clip)
        x_new = project(s["x_adv"] + a * (z - s["x_adv"]) + (1.0 - a) * (s["x_adv"] - s["x_prev"]),
                        x, self.eps, self.norm, self.clip)
        loss, grad, fooled_now = self._loss_grad(objective, x_new, y, target, goal)

        new = dict(s)
        new["x_prev"], new["x_adv"], new["grad"] = s["x_adv"], x_new, grad
        # the last fooling iterate (with early exit: the first), as the reference keeps it
        new["x_fool"] = tf.where(_per_example(fooled_now, x), x_new, s["x_fool"])
        new["fooled"] = tf.logical_or(s["fooled"], fooled_now)
        new["rises"] = s["rises"] + tf.cast(loss > s["loss_prev"], tf.float32)
        new["loss_prev"] = loss
        better = loss > s["loss_best"]
        new["x_best"] = tf.where(_per_example(better, x), x_new, s["x_best"])
        new["grad_best"] = tf.where(_per_example(better, x), grad, s["grad_best"])
        new["loss_best"] = tf.where(better, loss, s["loss_best"])

        # checkpoint: halve the step and go back to the best point where progress stalled
        period = tf.cast(period, tf.float32)
        at_check = period > 0
        oscillating = new["rises"] <= period * self.rho
        stalled = tf.logical_and(tf.logical_not(s["reduced"]), s["loss_checked"] >= new["loss_best"])
        reduce = tf.logical_and(at_check, tf.logical_or(oscillating, stalled))
        new["step"] = tf.where(reduce, s["step"] / 2.0, s["step"])
        new["x_adv"] = tf.where(_per_example(reduce, x), new["x_best"], new["x_adv"])
        new["grad"] = tf.where(_per_example(reduce, x), new["grad_best"], new["grad"])
        new["reduced"] = tf.where(at_check, reduce, s["reduced"])
        new["loss_checked"] = tf.where(at_check, new["loss_best"], s["loss_checked"])
        new["rises"] = tf.where(at_check, tf.zeros_like(new["rises"]), new["rises"])

        if self.early_exit:
            new["frozen"] = tf.logical_or(s["frozen"], new["fooled"])
        if not masked:
            return new
        keep = s["frozen"]
        return {k: (v if k == "frozen" else tf.where(_per_example(keep, v) if v.shape.rank > 1 else keep, s[k], v))
                for k, v in new.items()}

    @staticmethod
    def _result(s):
        return tf.where(_per_example(s["fooled"], s["x_adv"]), s["x_fool"], s["x_best"]), s["fooled"]

    # -- runs: restarts × targets, each on the rows not yet fooled ---------------------------------
    def _attack(self, objective, x, y, target):
        """In-graph version (e.g. inside a train step): every run over the whole batch as a tf.while_loop."""
        ranked = self._ranked(objective.scores, x, target is not None)
        checks = checkpoints(self.steps)
        periods = tf.constant([checks.get(i, 0) for i in range(self.steps)], tf.int32)
        x_out, done = tf.identity(x), tf.zeros(tf.shape(x)[:1], tf.bool)
        best_loss_x = None
        for rank, _ in self._plan(target is not None):
            t = target if rank is None else ranked[rank]
            s = self._init(objective, x, y, t, target, done)
            _, s = tf.while_loop(lambda i, s: i < self.steps,
                                 lambda i, s: (i + 1, self._step(objective, i, periods[i], x, y, t, target, s)),
                                 (tf.constant(0), s))
            x_run, fooled = self._result(s)
            x_out = tf.where(_per_example(tf.logical_and(fooled, tf.logical_not(done)), x), x_run, x_out)
            best_loss_x = x_run if best_loss_x is None else best_loss_x
            done = tf.logical_or(done, fooled)
        return tf.where(_per_example(done, x), x_out, best_loss_x)

    def _eager_run(self, objective, targeted):
        def compiled(fn):
            return relaxed_function(fn, self.jit_compile)

        # one pair of graphs per kind of loss: untargeted (t ignored) or targeted at t
        fns = {}
        for loss_targeted in (False, True):
            def init(x, y, t, g, done, lt=loss_targeted):
                return self._init(objective, x, y, t if lt else None, g if targeted else None, done)

            def step(i, p, x, y, t, g, s, lt=loss_targeted):  # _run_rows drops frozen rows before each step
                return self._step(objective, i, p, x, y, t if lt else None, g if targeted else None, s, masked=False)

            fns[loss_targeted] = (compiled(init), compiled(step))
        scores = tf.function(objective.scores, reduce_retracing=True)
        checks = checkpoints(self.steps)

        def run(x, y, target):
            y, target = tf.cast(y, tf.int32), tf.cast(target, tf.int32)  # one graph for any label dtype
            # target is y itself for an untargeted call (a placeholder the graphs ignore)
            self._check_classes(objective, x, targeted or self.target_classes is not None)
            ranked = self._ranked(scores, x, targeted)
            n = int(x.shape[0])
            x_out = x.numpy().copy()
            best_loss_x = None
            done = np.zeros(n, bool)
            for rank, _ in self._plan(targeted):
                rows = np.flatnonzero(~done)
                if rows.size == 0:
                    break
                loss_targeted = targeted or rank is not None
                t = target if rank is None else ranked[rank]
                x_run, fooled = self._run_rows(*fns[loss_targeted], checks, x, y, t, target, rows)
                if best_loss_x is None:  # the first run's best-loss point stands for the never fooled
                    best_loss_x = x_out.copy()
                    best_loss_x[rows] = x_run
                x_out[rows[fooled]] = x_run[fooled]
                done[rows[fooled]] = True
            if best_loss_x is not None:
                x_out[~done] = best_loss_x[~done]
            return tf.constant(x_out)

        return run

    def _run_rows(self, init, step, checks, x, y, t, goal, rows):
        """One run on ``rows`` of the batch, compacting away fooled rows (early exit)."""
        idx = tf.constant(rows)
        xs, ys, ts, gs = (tf.gather(v, idx) for v in (x, y, t, goal))
        s = init(xs, ys, ts, gs, tf.zeros([len(rows)], tf.bool))
        self._passes += len(rows)
        live = np.arange(len(rows))  # positions (in this run's rows) of the state's rows
        out_x = np.empty((len(rows),) + tuple(x.shape[1:]), np.float32)
        out_fooled = np.zeros(len(rows), bool)
        for i in range(self.steps):
            if self.early_exit:
                frozen = s["frozen"].numpy()
                if frozen.any():
                    x_res, fooled = self._result(s)
                    out_x[live[frozen]] = x_res.numpy()[frozen]
                    out_fooled[live[frozen]] = fooled.numpy()[frozen]
                    keep = np.flatnonzero(~frozen)
                    live = live[keep]
                    if live.size == 0:
                        break
                    k = tf.constant(keep)
                    s = {name: tf.gather(v, k) for name, v in s.items()}
                    xs, ys, ts, gs = (tf.gather(v, k) for v in (xs, ys, ts, gs))
            s = step(tf.constant(i), tf.constant(checks.get(i, 0), tf.int32), xs, ys, ts, gs, s)
            self._passes += int(live.size)
        if live.size:
            x_res, fooled = self._result(s)
            out_x[live] = x_res.numpy()
            out_fooled[live] = fooled.numpy()
        return out_x, out_fooled
