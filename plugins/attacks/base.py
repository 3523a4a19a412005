"""What every attack shares: parameter checks, input checks, the ε-ball projection and the call
``attack(model, x, y=None, *, target=None) -> x_adv``.

An attack object holds only its parameters; the compiled graph for a model is built on first use
and cached per model (a ``tf.function`` with ``reduce_retracing``, so batch sizes do not retrace).
"""
from __future__ import annotations

import inspect
import logging
import math
import re
import weakref

import numpy as np
import tensorflow as tf

from zoo import ConfigError, DataError

from zoo_plugins.attacks.objective import Objective

NORM_ALIASES = {"inf": "inf", "linf": "inf", "l_inf": "inf", "2": "l2", "l2": "l2"}


# -- parameter checks (each raises ConfigError naming the attack, the parameter and what is valid) --
def check_norm(attack, norm, allowed=("inf", "l2")):
    key = "inf" if (isinstance(norm, float) and math.isinf(norm)) else str(norm).lower()
    if key not in NORM_ALIASES or NORM_ALIASES[key] not in allowed:
        raise ConfigError(f"{attack}: norm must be one of {', '.join(allowed)} (got {norm!r})")
    return NORM_ALIASES[key]


def check_number(attack, name, value, *, low=0.0, low_open=False, high=None, allow_inf=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{attack}: {name} must be a number, got {value!r}")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ConfigError(f"{attack}: {name} must be finite, got {value!r}")
    if value < low or (low_open and value == low) or (high is not None and value > high):
        bound = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise ConfigError(f"{attack}: {name} must be {bound}, got {value!r}")
    return value


def check_int(attack, name, value, *, low=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{attack}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_bool(attack, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{attack}: {name} must be true or false, got {value!r}")
    return bool(value)


def check_clip(attack, clip):
    try:
        lo, hi = (float(c) for c in clip)
    except (TypeError, ValueError):
        raise ConfigError(f"{attack}: clip must be a pair (low, high), got {clip!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(f"{attack}: clip must be finite with low < high, got {clip!r}")
    return lo, hi


# -- geometry ---------------------------------------------------------------------------------
def _flat_norm(v, axis_keep=1):
    return tf.sqrt(tf.reduce_sum(tf.reshape(v * v, [tf.shape(v)[0], -1]), axis=1))


def _per_example(v, like):
    """Reshape a (batch,) vector to broadcast against ``like`` (batch, ...)."""
    return tf.reshape(v, tf.concat([[-1], tf.ones([tf.rank(like) - 1], tf.int32)], 0))


def project(x_adv, x, eps, norm, clip):
    """The nearest point of the ε-ball around ``x`` (in ``norm``) intersected with the clip box.

    For L∞ the two are boxes, so clipping twice is exact; for L2 clipping after the radial
    projection only moves coordinates towards ``x`` (which lies in the box), so the norm stays ≤ ε.
    """
    lo, hi = clip
    if norm == "inf":
        if math.isinf(eps):
            return tf.clip_by_value(x_adv, lo, hi)
        return tf.clip_by_value(tf.clip_by_value(x_adv, x - eps, x + eps), lo, hi)
    if math.isinf(eps):
        return tf.clip_by_value(x_adv, lo, hi)
    delta = x_adv - x
    n = _flat_norm(delta)
    factor = tf.minimum(1.0, eps / tf.maximum(n, 1e-12))
    return tf.clip_by_value(x + delta * _per_example(factor, delta), lo, hi)


def random_in_ball(x, eps, norm):
    """A uniformly random point of the ε-ball around ``x`` (not yet clipped)."""
    if norm == "inf":
        return x + tf.random.uniform(tf.shape(x), -eps, eps, dtype=x.dtype)
    direction = tf.random.normal(tf.shape(x), dtype=x.dtype)
    direction /= _per_example(tf.maximum(_flat_norm(direction), 1e-12), x)
    dims = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), x.dtype)
    radius = eps * tf.random.uniform([tf.shape(x)[0]], dtype=x.dtype) ** (1.0 / dims)
    return x + direction * _per_example(radius, x)


def steepest_direction(g, norm):
    """The unit-norm steepest-ascent direction of the gradient: sign for L∞, g/‖g‖₂ for L2."""
    if norm == "inf":
        return tf.sign(g)
    return g / _per_example(tf.maximum(_flat_norm(g), 1e-12), g)


def tile_batch(t, times):
    """``times`` copies of a batch stacked along the batch axis (restart r = rows r*B..(r+1)*B-1)."""
    if times == 1:
        return t
    return tf.tile(t, tf.concat([[times], tf.ones([tf.rank(t) - 1], tf.int32)], 0))


# -- the call -----------------------------------------------------------------------------------
class _PerModelTracing(logging.Filter):
    """Each attacked model gets compiled functions of its own (they close over it), so a process that
    attacks several models — the demo attacks three — traces the same Python code once per model,
    which TensorFlow's heuristic reports as "excessive retracing". That warning, for an attack's own
    functions only, is dropped; any other function's still shows."""

    CALLED = re.compile(r"calls to <(?:bound method|function) (\w+)\.")

    def filter(self, record):
        message = record.getMessage()
        if "triggered tf.function retracing" not in message:
            return True
        owner = self.CALLED.search(message)
        return not (owner and owner.group(1) in _attack_classes())


def _attack_classes() -> set[str]:
    found, todo = set(), [Attack]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo += cls.__subclasses__()
    return found


tf.get_logger().addFilter(_PerModelTracing())


class Attack:
    """Base class: subclasses set ``name`` and implement ``_attack(objective, x, y, target)`` as
    graph code (it runs inside ``tf.function``); ``target`` is ``None`` for untargeted attacks."""

    name = "attack"
    needs_scores = False  # True: the attack reads class scores (margins), not just a loss
    needs_labels = False  # True: the attack must know which examples already succeeded

    def __init__(self, *, eps, norm, clip, batch_size, jit_compile=False):
        self.norm = norm
        self.eps = eps
        self.clip = check_clip(self.name, clip)
        self.batch_size = None if batch_size is None else check_int(self.name, "batch_size", batch_size)
        self.jit_compile = check_bool(self.name, "jit_compile", jit_compile)
        self._compiled = weakref.WeakKeyDictionary()

    def params(self) -> dict:
        """The attack's parameters as its constructor takes them (for reports, JSON and cards):
        ``type(attack)(**attack.params())`` builds the same attack. A parameter an attack only
        accepts at one value (cw's ``restarts``) is not stored, so not listed."""
        names = inspect.signature(type(self).__init__).parameters
        return {k: getattr(self, k) for k in names if k != "self" and hasattr(self, k)}

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"

    def __call__(self, model, x, y=None, *, target=None):
        """Adversarial examples for ``x`` (same shape, dtype and kind — numpy in, numpy out).

        ``y=None`` attacks the model's own predictions. That avoids the label-leaking effect of
        adversarial training on true labels (Kurakin et al. 2017: the FGSM-trained model learns to
        read the label from the perturbation), but an example the model already gets wrong then
        counts as a success only if the attack moves it to yet another label.
        """
        as_numpy = not tf.is_tensor(x)
        eager = tf.executing_eagerly()
        x = self._check_x(x, eager)
        objective = self._objective(model)
        if self.needs_scores and not objective.has_scores:
            raise ConfigError(f"{self.name} reads class scores, but {type(model).__name__} only defines "
                              f"attack_loss; use a loss-based attack such as pgd, bim, mim or fgsm")
        if (self.needs_labels or getattr(self, "early_exit", False)) and not objective.has_labels:
            raise ConfigError(f"{self.name}{' with early_exit' if not self.needs_labels else ''} needs the "
                              f"model's labels: give {type(model).__name__} a predict_labels(x) method")
        if eager and objective.kind == "probabilities" and not self._compiled.get(model, {}).get("probabilities"):
            self._check_probabilities(model, x)
            self._compiled.setdefault(model, {})["probabilities"] = True
        if y is None:
            if not objective.has_labels:
                raise ConfigError(f"{self.name}: pass y; {type(model).__name__} has no predict_labels(x) "
                                  f"to attack its own predictions")
            y = self._chunked(lambda xb: objective.labels(xb), x, eager)
        y = self._check_labels("y", y, x, model, objective, eager)
        if target is not None:
            target = self._check_labels("target", target, x, model, objective, eager)
        run = self._graph(objective, target is not None)
        if target is None:
            out = self._chunked(lambda xb, yb: run(xb, yb, yb), x, eager, y)
        else:
            out = self._chunked(run, x, eager, y, target)
        return out.numpy() if as_numpy and eager else out

    # -- helpers ------------------------------------------------------------------------------
    def _objective(self, model):
        return Objective(model)

    #: ``_eager_run(objective, targeted) -> run(x, y, target)``: an attack whose eager calls drive
    #: compiled pieces from Python (early exit, shrinking batches) defines it; built once per model.
    _eager_run = None

    def _graph(self, objective, targeted):
        cache = self._compiled.setdefault(objective.model, {})
        if self._eager_run is not None and tf.executing_eagerly():
            if ("eager", targeted) not in cache:
                cache["eager", targeted] = self._eager_run(objective, targeted)
            return cache["eager", targeted]
        if targeted not in cache:
            def run(x, y, target):
                return self._attack(objective, x, y, target if targeted else None)

            cache[targeted] = tf.function(run, reduce_retracing=True, jit_compile=self.jit_compile)
        return cache[targeted]

    def _chunked(self, fn, x, eager, *rest):
        n = int(x.shape[0]) if x.shape[0] is not None else None
        if not eager or self.batch_size is None or n is None or n <= self.batch_size:
            return fn(x, *rest)
        parts = [fn(*(t[i:i + self.batch_size] for t in (x, *rest))) for i in range(0, n, self.batch_size)]
        if parts[0].shape.rank == 2 and parts[0].dtype.is_integer:
            # token sequences (LAS transcripts) of each chunk are as wide as its longest: pad with 0
            width = max(int(p.shape[1]) for p in parts)
            parts = [tf.pad(p, [[0, 0], [0, width - int(p.shape[1])]]) for p in parts]
        return tf.concat(parts, axis=0)

    def _check_x(self, x, eager):
        name = f"{self.name}: x"
        if not tf.is_tensor(x):
            arr = np.asarray(x)
            if not np.issubdtype(arr.dtype, np.floating):
                raise DataError(f"{name} must hold floating-point pixels in the clip range {self.clip}, "
                                f"got dtype {arr.dtype} (scale uint8 images by 1/255 first)")
            x = tf.convert_to_tensor(arr)
        elif not x.dtype.is_floating:
            raise DataError(f"{name} must be a floating-point tensor, got {x.dtype.name}")
        if x.shape.rank is not None and x.shape.rank < 2:
            raise DataError(f"{name} must be a batch (batch, ...), got shape {tuple(x.shape)}")
        if eager:
            if x.shape[0] == 0:
                raise DataError(f"{name} is an empty batch")
            values = x.numpy()
            if not np.all(np.isfinite(values)):
                raise DataError(f"{name} contains NaN or infinite values")
            lo, hi = self.clip
            if values.min() < lo or values.max() > hi:
                raise DataError(f"{name} must lie in the clip range [{lo}, {hi}], got "
                                f"[{values.min():.4g}, {values.max():.4g}] (set clip= to the model's input range)")
        return tf.cast(x, tf.float32) if x.dtype != tf.float32 else x

    def _check_probabilities(self, model, x):
        """A model without ``logits``/``output_kind = "logits"`` is read as giving probabilities:
        refuse one that plainly does not, rather than attacking ln of its logits."""
        p = np.asarray(model(x[:8], training=False), np.float64)
        if p.ndim != 2 or p.min() < 0 or np.abs(p.sum(axis=1) - 1).max() > 1e-3:
            raise ConfigError(f"{self.name}: {type(model).__name__} outputs are not class probabilities (rows must "
                              f"be >= 0 and sum to 1); if it outputs logits, set model.output_kind = \"logits\"")

    def _check_labels(self, name, labels, x, model, objective, eager):
        labels = tf.convert_to_tensor(labels)
        if not labels.dtype.is_integer:
            if eager and labels.dtype.is_floating and np.all(np.mod(labels.numpy(), 1) == 0):
                labels = tf.cast(labels, tf.int32)
            else:
                raise DataError(f"{self.name}: {name} must hold integer labels, got {labels.dtype.name}")
        if not eager:
            return labels
        if labels.shape.rank == 0:
            labels = tf.fill([int(x.shape[0])], tf.cast(labels, tf.int32))
        if labels.shape[0] != x.shape[0]:
            raise DataError(f"{self.name}: {name} has {labels.shape[0]} entries for a batch of {x.shape[0]} inputs")
        if objective.has_scores and labels.shape.rank == 1:
            cache = self._compiled.setdefault(model, {})
            if "classes" not in cache:  # one forward pass per model, not per call
                cache["classes"] = int(objective.scores(x[:1]).shape[-1])
            classes = cache["classes"]
            values = labels.numpy()
            if values.min() < 0 or values.max() >= classes:
                raise DataError(f"{self.name}: {name} must be class ids in 0..{classes - 1}, "
                                f"got {values.min()}..{values.max()}")
        return labels

    def _attack(self, objective, x, y, target):  # pragma: no cover - abstract
        raise NotImplementedError
