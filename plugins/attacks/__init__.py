"""The standard attacks, registered through ``zoo_attacks()`` exactly like a third-party plugin.

    >>> from zoo import get_attack, load
    >>> pgd = get_attack("pgd", eps=0.3, steps=40, step_size=0.01, random_start=True)
    >>> x_adv = pgd(model, x, y)                       # untargeted
    >>> x_adv = pgd(model, x, y, target=3)             # targeted: ascend ln ŷ_3
    >>> get_attack("pgd", targeted_loss="seed")         # the lecture's ln ŷ_3 − ln ŷ_y instead

Every attack is ``attack(model, x, y=None, *, target=None) -> x_adv``; the result stays in the
ε-ball (``norm`` "inf" or "l2") around ``x`` and in ``clip``. The model's own loss is used (see
``objective.py``), so the same attack works on a ConvNet, a speech recogniser or an adversary head.

The modules import TensorFlow, so they are imported only when an attack is built (keeping
``zoo list`` fast).
"""
from zoo import ConfigError, hookimpl


def _factory(name, module, cls):
    def make(**params):
        import importlib
        import inspect

        attack_cls = getattr(importlib.import_module(f"zoo_plugins.attacks.{module}"), cls)
        valid = [p for p in inspect.signature(attack_cls.__init__).parameters if p != "self"]
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ConfigError(f"{name}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
        return attack_cls(**params)

    make.__name__ = name
    make.__doc__ = f"Build the {name!r} attack (zoo_plugins.attacks.{module}.{cls})."
    return make


ATTACKS = {
    "gradient": ("iterative", "Gradient"),
    "fgsm": ("iterative", "FGSM"),
    "bim": ("iterative", "BIM"),
    "pgd": ("iterative", "PGD"),
    "mim": ("iterative", "MIM"),
    "cw": ("cw", "CarliniWagnerL2"),
    "deepfool": ("deepfool", "DeepFool"),
    "square": ("square", "Square"),
    "apgd": ("apgd", "APGD"),
    "fab": ("fab", "FAB"),
    "autoattack": ("autoattack", "AutoAttack"),
}


@hookimpl
def zoo_attacks():
    return {name: _factory(name, module, cls) for name, (module, cls) in ATTACKS.items()}
