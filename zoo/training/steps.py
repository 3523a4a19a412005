"""From a model and a recipe to what ``fit`` trains: the recipe's train-step kind, by name.

Kinds come from ``zoo_train_steps()`` hooks (the built-ins from ``zoo.training.kinds``), so a plugin
can add an objective exactly as it adds a model or an attack.
"""
from __future__ import annotations


def trainer_for(model, recipe, where: str = "train.step_params"):
    """The compiled ``keras.Model`` that ``fit`` trains for ``recipe``: ``model`` itself (kinds
    ``supervised``, ``own``) or a trainer model wrapping it (``adversarial``, ``madry``, ``trades``,
    ``minimax``, or a plugin's kind); ``"auto"`` is ``own`` for a model with its own ``train_step``,
    else ``supervised``. ``where`` names the step_params in error messages."""
    from zoo.plugins import get_plugin_manager

    kinds = get_plugin_manager().train_steps()
    if recipe.step == "auto":
        import dataclasses

        from zoo.training.kinds import has_own_train_step

        recipe = dataclasses.replace(recipe, step="own" if has_own_train_step(model) else "supervised")
    if recipe.step not in kinds:
        from zoo.api import unknown

        raise unknown("train-step kind", recipe.step, kinds)
    return kinds[recipe.step](model, recipe, where)

