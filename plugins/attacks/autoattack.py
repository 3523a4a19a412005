"""AutoAttack (Croce & Hein, ICML 2020): the robustness evaluation RobustBench accepts.

    >>> aa = get_attack("autoattack", eps=0.3, norm="inf", version="standard")
    >>> x_adv = aa(model, x, y)                        # the attack contract: per-point worst case
    >>> report, x_adv = aa.evaluate(model, x, y)       # robust accuracy after each stage, warnings

Stages run in order, each only on the points every earlier stage left correctly classified; a
point counts as broken when the model misclassifies the stage's output and that output lies in
the ε-ball (checked here, not trusted). The report records which stage broke each point.

* ``"standard"``: APGD-CE (100 steps), APGD-T (DLR, 9 target classes), FAB-T (9 targets), Square
  (5,000 queries, the reference's fixed schedule);
* ``"plus"``: APGD-CE and APGD-DLR with 5 restarts, FAB with 5 restarts, Square, APGD-T, FAB-T;
* ``attacks=[...]``: a custom list of stage names (``STAGES``) or ``(label, attack)`` pairs with any
  zoo attack object.

With fewer than 10 classes the targeted stages use every other class. Square is L∞ only here: an
L2 evaluation runs without it and says so in the report.

The report's warnings are AutoAttack's signs of gradient masking: probability outputs whose
logits cannot be recovered, points whose loss gradient is exactly zero, a randomised model (two
forward passes differ), and Square (black-box) breaking points the white-box stages could not.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import tensorflow as tf

from zoo import ConfigError, get_attack
from zoo.protocols import exact_logits_of

from zoo_plugins.attacks.apgd import dlr_loss
from zoo_plugins.attacks.base import Attack, check_int, check_norm, check_number
from zoo_plugins.attacks.objective import Objective

TARGETS = 9
STAGES = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
VERSIONS = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
}
#: the stages that read gradients (a black-box stage beating all of them hints at masking)
WHITE_BOX = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t")
SQUARE_MARGIN = 0.002  # the reference's threshold: Square may lower robust accuracy by 0.2 pp at most


class AutoAttack(Attack):
    name = "autoattack"

    def __init__(self, *, eps=0.3, norm="inf", version="standard", attacks=None, steps=100, square_queries=5000,
                 clip=(0.0, 1.0), batch_size=500, jit_compile=False):
        norm = check_norm(self.name, norm)
        super().__init__(eps=check_number(self.name, "eps", eps), norm=norm, clip=clip, batch_size=batch_size,
                         jit_compile=jit_compile)
        if attacks is None and version not in VERSIONS:
            raise ConfigError(f"{self.name}: version must be one of {', '.join(VERSIONS)} (or pass attacks=[...]), "
                              f"got {version!r}")
        self.attacks = self._check_attacks(VERSIONS[version] if attacks is None else attacks)
        # a version's own stage list (as params() reports it) is still that version
        self.version = version if self.attacks == VERSIONS.get(version) else "custom"
        self.steps = check_int(self.name, "steps", steps)
        self.square_queries = check_int(self.name, "square_queries", square_queries)

    def _check_attacks(self, attacks):
        if isinstance(attacks, str) or not attacks:
            raise ConfigError(f"{self.name}: attacks must be a non-empty list of stage names ({', '.join(STAGES)}) "
                              f"or (label, attack) pairs, got {attacks!r}")
        out = []
        for a in attacks:
            if isinstance(a, str):
                if a not in STAGES:
                    raise ConfigError(f"{self.name}: unknown stage {a!r}; stages: {', '.join(STAGES)}")
                out.append(a)
            elif isinstance(a, (tuple, list)) and len(a) == 2 and isinstance(a[0], str) and callable(a[1]):
                out.append((a[0], a[1]))
            else:
                raise ConfigError(f"{self.name}: a custom stage must be a stage name or a (label, attack) pair, got {a!r}")
        labels = [a if isinstance(a, str) else a[0] for a in out]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{self.name}: stage labels must be unique, got {labels}")
        return tuple(out)

    def _stage(self, name, classes):
        """The attack object of a named stage (the reference's settings for this version)."""
        common = dict(eps=self.eps, norm=self.norm, clip=self.clip)
        restarts = 5 if self.version == "plus" else 1
        targets = min(TARGETS, classes - 1)
        if name == "apgd-ce":
            return get_attack("apgd", loss="ce", steps=self.steps, restarts=restarts, **common)
        if name == "apgd-dlr":
            return get_attack("apgd", loss="dlr", steps=self.steps, restarts=restarts, **common)
        if name == "apgd-t":
            return get_attack("apgd", loss="dlr", steps=self.steps, target_classes=targets, **common)
        if name == "fab":
            return get_attack("fab", steps=self.steps, restarts=restarts, **common)
        if name == "fab-t":
            return get_attack("fab", steps=self.steps, target_classes=targets, **common)
        return get_attack("square", steps=self.square_queries, p_init=0.8, schedule="fixed", **common)

    # -- the contract -------------------------------------------------------------------------------
    def __call__(self, model, x, y=None, *, target=None):
        if target is not None:
            raise ConfigError(f"{self.name} is untargeted (its targeted stages pick their own targets); drop target=")
        if not tf.executing_eagerly():
            raise ConfigError(f"{self.name} runs eagerly (it chooses points between stages); call it outside tf.function")
        as_numpy = not tf.is_tensor(x)
        _, x_adv = self.evaluate(model, x, y)
        return x_adv if as_numpy else tf.constant(x_adv)

    def evaluate(self, model, x, y=None, *, progress=None, on_stage=None):
        """``(report, x_adv)``: clean and robust accuracy, each stage's figures, who broke each point, warnings.

        ``progress(stage, done, total)`` is called after every batch of a stage (``True`` prints a bar on stderr);
        ``on_stage(stage_report)`` after every stage (long runs can record their figures as they come).
        """
        if progress is True:
            progress = StderrProgress()
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        x_t = self._check_x(x, True)
        objective = Objective(model)
        if not objective.has_scores:
            raise ConfigError(f"{self.name} reads class scores, but {type(model).__name__} only defines attack_loss")
        xs = x_t.numpy()
        bs = self.batch_size or len(xs)
        scores = tf.function(objective.scores, reduce_retracing=True)

        def predict(v):
            return np.concatenate([scores(tf.constant(v[i:i + bs])).numpy().argmax(-1) for i in range(0, len(v), bs)])

        pred = predict(xs)
        y = pred if y is None else self._check_labels("y", y, x_t, model, objective, True).numpy()
        classes = int(scores(tf.constant(xs[:1])).shape[-1])
        n = len(xs)
        robust = pred == y
        broken_by = np.where(robust, None, "clean").astype(object)
        x_adv = xs.copy()
        report = dict(attack=self.name, version=self.version, norm=self.norm, eps=self.eps, n=n, classes=classes,
                      clean_accuracy=float(robust.mean()), stages=[], warnings=[], notes=[])
        # the gradient checks read correctly classified points (on a misclassified one DLR can be flat: y ranked third)
        probe = np.flatnonzero(robust)[:256]
        report["warnings"] += self._checks(model, objective, xs[probe] if probe.size else xs[:1],
                                           y[probe] if probe.size else y[:1], classes)

        for stage in self.attacks:
            label = stage if isinstance(stage, str) else stage[0]
            if label == "square" and self.norm != "inf":
                report["notes"].append("square skipped: the zoo's Square attack is L-inf only, so this L2 evaluation "
                                       "lacks its black-box check")
                continue
            attack = self._stage(stage, classes) if isinstance(stage, str) else stage[1]
            rows = np.flatnonzero(robust)
            t_wall, t_cpu = time.perf_counter(), time.process_time()
            before = _counters(attack)
            broken = 0
            if progress:
                progress(label, 0, len(rows))
            for i in range(0, len(rows), bs):
                idx = rows[i:i + bs]
                xa = np.asarray(attack(model, xs[idx], y[idx]), np.float32)
                ok = self._in_ball(xa, xs[idx])
                fooled = (predict(xa) != y[idx]) & ok
                x_adv[idx[fooled]] = xa[fooled]
                broken_by[idx[fooled]] = label
                robust[idx[fooled]] = False
                broken += int(fooled.sum())
                if progress:
                    progress(label, min(i + bs, len(rows)), len(rows))
            after = _counters(attack)
            report["stages"].append(dict(
                name=label, attacked=int(len(rows)), broken=broken, robust_accuracy=float(robust.mean()),
                wall_s=round(time.perf_counter() - t_wall, 2), cpu_s=round(time.process_time() - t_cpu, 2),
                **{k: after[k] - before[k] for k in after}))
            if on_stage:
                on_stage(dict(report["stages"][-1]))

        report["robust_accuracy"] = float(robust.mean())
        report["broken_by"] = {s["name"]: s["broken"] for s in report["stages"]}
        report["broken_by"]["clean"] = int((broken_by == "clean").sum())
        report["point_broken_by"] = [None if b is None else str(b) for b in broken_by]
        report["warnings"] += self._square_check(report)
        passes = sum(s.get("forward_backward", 0) for s in report["stages"])
        forwards = sum(s.get("forward", 0) for s in report["stages"])
        report["forward_backward_per_image"] = passes / n
        report["forward_per_image"] = forwards / n
        report["wall_s"] = round(time.perf_counter() - start_wall, 2)
        report["cpu_s"] = round(time.process_time() - start_cpu, 2)
        return report, x_adv

    # -- helpers ------------------------------------------------------------------------------------
    def _in_ball(self, xa, x):
        lo, hi = self.clip
        d = (xa.astype(np.float64) - x).reshape(len(x), -1)
        size = np.abs(d).max(axis=1) if self.norm == "inf" else np.linalg.norm(d, axis=1)
        return (size <= self.eps * (1 + 1e-5) + 1e-6) & np.all(np.isfinite(d), axis=1) & \
            (xa.reshape(len(x), -1).min(axis=1) >= lo - 1e-6) & (xa.reshape(len(x), -1).max(axis=1) <= hi + 1e-6)

    def _checks(self, model, objective, x, y, classes):
        """AutoAttack's warnings that can be read before attacking."""
        warnings = []
        x = tf.constant(x)
        out = model(x, training=False)
        z = [np.asarray(objective.scores(x), np.float64) for _ in range(3)]
        looks_like_p = z[0].min() > -1e-5 and z[0].max() < 1 + 1e-5 and np.abs(z[0].sum(-1) - 1).max() < 1e-5
        if objective.kind == "probabilities" and not _logits_recoverable(model, x[:1], out):
            warnings.append("outputs are probabilities whose logits could not be recovered: the attacks read ln p, "
                            "which saturates where p underflows (give the model a logits() method or logit outputs)")
        elif objective.kind in ("logit_outputs", "logits_method") and looks_like_p:
            warnings.append("the model's 'logits' are a probability distribution: the attacks need the pre-softmax "
                            "scores")
        unit = [v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-10) for v in z]
        if max(np.abs(unit[0] - u).max() for u in unit[1:]) > 1e-4:
            warnings.append("the model is randomised (repeated forward passes differ): AutoAttack's standard version "
                            "assumes a deterministic model; average gradients over randomness (EOT) to evaluate it")
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            logits = objective.scores(x)
            ce = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int32), logits=logits))
            dlr = tf.reduce_sum(dlr_loss(logits, y)) if classes >= 3 else None
        for name, loss in (("cross-entropy", ce), ("DLR", dlr)):
            if loss is None:
                continue
            g = tape.gradient(loss, x)  # None: the loss does not depend on x through any gradient at all
            g = np.zeros((len(y), 1)) if g is None else g.numpy().reshape(len(y), -1)
            zero = int((np.abs(g).sum(axis=1) == 0).sum())
            if zero:
                warnings.append(f"{zero} of {len(y)} points have an exactly zero {name} gradient at the clean input: "
                                f"gradient-based attacks cannot move them (gradient masking)")
        del tape
        return warnings

    @staticmethod
    def _square_check(report):
        stages = {s["name"]: s for s in report["stages"]}
        if "square" not in stages or not any(name in stages for name in WHITE_BOX):
            return []
        share = stages["square"]["broken"] / report["n"]
        if share > SQUARE_MARGIN:
            return [f"Square (black-box) broke {stages['square']['broken']} points ({share:.2%}) that the white-box "
                    f"attacks could not: their gradients may be masked, so the robust accuracy may be overestimated"]
        return []


def _logits_recoverable(model, x, out):
    """Whether the attack graphs see logits behind probability outputs: Keras's cached pre-softmax
    tensor, or a Softmax op at the output of the traced graph."""
    if exact_logits_of(out) is not None:
        return True
    seen = []

    @tf.function
    def probe(v):
        p = model(v, training=False)
        seen.append(exact_logits_of(p) is not None)
        return p

    probe(x)
    return bool(seen and seen[0])


def _counters(attack):
    """Passes spent so far by an attack that counts them (zoo APGD, FAB, Square)."""
    out = {}
    if hasattr(attack, "passes"):
        out["forward_backward"] = int(attack.passes)
    forwards = int(getattr(attack, "forwards", 0)) + int(getattr(attack, "queries", 0))
    if hasattr(attack, "forwards") or hasattr(attack, "queries"):
        out["forward"] = forwards
    return out


class StderrProgress:
    """A one-line progress bar per stage on stderr."""

    def __init__(self, width=30, stream=None):
        self.width, self.stream, self.stage, self.t0 = width, stream or sys.stderr, None, 0.0

    def __call__(self, stage, done, total):
        if stage != self.stage:
            self.stage, self.t0 = stage, time.perf_counter()
        filled = int(self.width * done / max(total, 1))
        bar = "=" * filled + (">" if filled < self.width else "") + " " * max(self.width - filled - 1, 0)
        self.stream.write(f"\r{stage:8s} [{bar}] {done}/{total} points  {time.perf_counter() - self.t0:6.1f}s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
