"""The built-in train-step kinds, registered through ``zoo_train_steps()`` like any plugin's.

Each kind declares its ``step_params`` as a dataclass; :class:`zoo.TrainStep` checks them. The
trainers themselves import TensorFlow, so they are imported only when a model is compiled.

* ``supervised`` — Keras's own step with cross-entropy E = −ln ŷ_true;
* ``own`` — the model's own ``train_step`` (AE, VAE, DCGAN, VAE-GAN, LAS); ``step_params`` go to
  the model's ``compile``;
* ``adversarial`` / ``madry`` / ``trades`` — adversarial-example training (zoo.training.adversarial);
* ``minimax`` — adversary heads on hidden layers (zoo.training.minimax).
"""
from __future__ import annotations

import dataclasses
from typing import Annotated, Any, ClassVar, Literal

from zoo.hookspecs import hookimpl
from zoo.spec import TrainStep
from zoo.validate import NON_NEGATIVE, POSITIVE, PROBABILITY, Range


@dataclasses.dataclass(frozen=True)
class NoParams:
    """A kind without step_params."""


@dataclasses.dataclass(frozen=True)
class AttackTrainingParams:
    """What every adversarial-example objective takes; any further key is a parameter of ``attack``.

    ``augmentation: {name: image, ...}`` transforms training batches with that augmentation plugin
    before they are attacked; ``warmup_steps`` ramps the perturbation's scale from 0 to 1.
    """

    attack: str = "fgsm"
    attack_labels: Literal["true", "predicted"] = "true"
    evaluate_adversarial: bool = True
    warmup_steps: Annotated[int, NON_NEGATIVE] = 0
    augmentation: dict[str, Any] | None = None
    attack_params: dict[str, Any] = dataclasses.field(default_factory=dict)

    #: the attack's parameters used when the recipe keeps the kind's default attack
    ATTACK_DEFAULTS: ClassVar[dict] = {}

    @classmethod
    def split(cls, step_params: dict) -> dict:
        """``step_params`` with the keys that are not fields gathered under ``attack_params``."""
        own = {f.name for f in dataclasses.fields(cls)} - {"attack_params"}
        mine = {k: v for k, v in step_params.items() if k in own}
        rest = {k: v for k, v in step_params.items() if k not in own}
        if mine.get("attack", cls.attack) == cls.attack:
            rest = {**cls.ATTACK_DEFAULTS, **rest}
        return {**mine, "attack_params": rest}


@dataclasses.dataclass(frozen=True)
class AdversarialParams(AttackTrainingParams):
    """Goodfellow et al. (2015): α·E(x) + (1−α)·E(x_fgsm)."""

    attack: str = "fgsm"
    alpha: Annotated[float, PROBABILITY] = 0.5
    ATTACK_DEFAULTS: ClassVar[dict] = {"eps": 0.25}


@dataclasses.dataclass(frozen=True)
class MadryParams(AdversarialParams):
    """Madry et al. (2018): E(x_pgd) only (α = 0)."""

    attack: str = "pgd"
    alpha: Annotated[float, PROBABILITY] = 0.0
    ATTACK_DEFAULTS: ClassVar[dict] = {"eps": 0.3, "steps": 40, "step_size": 0.01}


@dataclasses.dataclass(frozen=True)
class TradesParams(AttackTrainingParams):
    """Zhang et al. (2019): E(x) + β·KL(ŷ(x) ‖ ŷ(x_pgd)); weighs its terms with β, not α."""

    attack: str = "pgd"
    beta: Annotated[float, NON_NEGATIVE] = 6.0
    ATTACK_DEFAULTS: ClassVar[dict] = {"eps": 0.3, "steps": 40, "step_size": 0.01}


@dataclasses.dataclass(frozen=True)
class MinimaxParams:
    """Adversary heads on hidden layers; see zoo.training.minimax for every field's meaning."""

    nuisance: str
    num_classes: Annotated[int, Range(2)]
    head: str = "mlp"
    head_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    layers: str | list[str] | None = None
    heads: Annotated[int, Range(1)] = 1
    form: Literal["minimax", "reversal"] = "minimax"
    lam: Annotated[float, NON_NEGATIVE] = 1.0
    schedule: Literal["constant", "dann", "linear"] | None = None
    ramp_steps: Annotated[int, Range(1)] = 1000
    ramp_start: Annotated[int, NON_NEGATIVE] = 0
    adversary_steps: Annotated[int, Range(1)] = 1
    adversary_learning_rate: Annotated[float, POSITIVE] | None = None
    reinit_every: Annotated[int, NON_NEGATIVE] = 0
    main_objective: Literal["negative", "confusion"] = "negative"
    clipnorm: Annotated[float, POSITIVE] | None = None


def make_optimizer(recipe, learning_rate=None):
    """A Keras optimizer from a recipe's ``optimizer`` name, ``learning_rate`` and ``ema_momentum``."""
    import keras

    from zoo.errors import ConfigError

    try:
        cls = keras.optimizers.get(recipe.optimizer).__class__
    except ValueError:
        raise ConfigError(f"unknown optimizer {recipe.optimizer!r} in the training recipe; "
                          f"use a Keras optimizer name such as adam, sgd, rmsprop") from None
    ema = {} if recipe.ema_momentum is None else {"use_ema": True, "ema_momentum": recipe.ema_momentum}
    return cls(learning_rate=recipe.learning_rate if learning_rate is None else learning_rate, **ema)


# -- what each kind can train (asked before anything is built) ------------------------------------
def _classifier(model):
    from zoo.protocols import Classifier

    if isinstance(model, Classifier):
        return None
    outputs = getattr(model, "outputs", None)  # a plain Keras classifier: one (batch, classes) output
    if outputs and len(outputs) == 1 and len(outputs[0].shape) == 2 and (outputs[0].shape[-1] or 0) > 1:
        return None
    return "it needs a classifier (num_classes, or one (batch, classes) output)"


def has_own_train_step(model) -> bool:
    """True when the model's class overrides Keras's ``train_step`` (AE, VAE, GAN, LAS)."""
    import keras

    return type(model).train_step is not keras.Model.train_step


def _own_step(model):
    if not has_own_train_step(model):
        return "the model has no train_step of its own; use step 'supervised' (a classifier) or another kind"
    return None


def _hidden_layers(model):
    from zoo.protocols import HasFeatures, HasHiddenLayers

    if isinstance(model, HasHiddenLayers) or (isinstance(model, HasFeatures) and _classifier(model) is None):
        return None
    return "adversary heads need hidden layers to read: model.adversarial_outputs or a classifier's features()"


# -- the builds -----------------------------------------------------------------------------------
def _supervised(model, recipe, params):
    import keras

    model.compile(optimizer=make_optimizer(recipe),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=getattr(model, "output_kind", "softmax") == "logits"),
                  metrics=["accuracy"])
    return model


def _own(model, recipe, params):
    from zoo.errors import ConfigError

    try:
        model.compile(optimizer=make_optimizer(recipe), **params)
    except (TypeError, ValueError) as exc:  # the model's compile names what it does not take
        raise ConfigError(f"train.step_params for step 'own' of {type(model).__name__}: {exc}") from None
    return model


def _attack_training(model, recipe, params):
    from zoo.training.adversarial import build_trainer

    return build_trainer(model, recipe, params, make_optimizer)


def _minimax(model, recipe, params):
    from zoo.training.minimax import build_trainer

    return build_trainer(model, recipe, params, make_optimizer)


class _SplitParams(TrainStep):
    """Adversarial kinds: their own fields are declared, every other key goes to the attack."""

    def check_params(self, step_params: dict, where: str = "train.step_params"):
        return super().check_params(self.params.split(dict(step_params)), where)

    def __call__(self, model, recipe, where: str = "train.step_params"):
        import dataclasses as dc
        import difflib

        from zoo.errors import ConfigError

        try:
            return super().__call__(model, recipe, where)
        except ConfigError as exc:
            if str(exc).startswith(where):
                raise
            own = sorted(f.name for f in dc.fields(self.params) if f.name != "attack_params")
            close = [m for key in self.params.split(dict(recipe.step_params))["attack_params"]
                     for m in difflib.get_close_matches(key, own, n=1)]
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: {exc} (the step's own fields: {', '.join(own)}){hint}") from None


STEPS = {
    "supervised": TrainStep(_supervised, NoParams, "Keras's own step, cross-entropy E = -ln y_true", _classifier),
    "own": TrainStep(_own, None, "the model's own train_step (AE, VAE, GAN, LAS); step_params go to its compile",
                     _own_step),
    "adversarial": _SplitParams(_attack_training, AdversarialParams,
                                "Goodfellow: a*E(x) + (1-a)*E(x_fgsm)", _classifier),
    "madry": _SplitParams(_attack_training, MadryParams, "Madry: E(x_pgd)", _classifier),
    "trades": _SplitParams(_attack_training, TradesParams, "TRADES: E(x) + beta*KL(y(x) || y(x_pgd))", _classifier),
    "minimax": TrainStep(_minimax, MinimaxParams,
                         "adversary heads on hidden layers: main net minimises E_primary - lam*E_adversary",
                         _hidden_layers),
}


@hookimpl
def zoo_train_steps():
    return STEPS
