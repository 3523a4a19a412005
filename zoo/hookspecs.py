"""The hooks a zoo plugin can implement — this module is the plugin author's manual.

A plugin is any module or object with functions decorated by ``zoo.hookimpl`` whose names are the
hooks below. Publish it under the ``zoo`` entry-point group of your distribution::

    # setup.py / pyproject.toml of your package
    entry_points={"zoo": ["my_plugin = my_package.zoo_plugin"]}

Every hook takes no arguments and *returns what it adds*; zoo collects the results of all plugins.
Names must be unique across plugins: a name another plugin already adds is reported (naming both
plugins and distributions) and only that entry is skipped; a built-in name (``convnet``, ``pgd``...)
always stays the built-in, and between two outside plugins the one whose entry-point name sorts
first keeps it. A hook that raises — even ``SystemExit`` or ``KeyboardInterrupt`` — is reported and
its plugin's contribution to that hook skipped; ``zoo plugins`` calls every hook and exits 1 on any
failure.
Hook names are validated when the plugin is loaded, so a misspelt hook is reported, never ignored.
"""
import pluggy

hookspec = pluggy.HookspecMarker("zoo")


@hookspec
def zoo_models():
    """Return an iterable of :class:`zoo.ModelSpec`.

    ``spec.build(**config)`` must return a (not necessarily compiled) ``keras.Model``;
    ``spec.defaults`` lists every key ``build`` accepts, so an unknown override is refused before
    ``build`` is called. Presets in ``registry.yaml`` refer to a spec by ``spec.name``.
    """


@hookspec
def zoo_attacks():
    """Return a mapping ``name -> factory``; ``factory(**params)`` returns an attack.

    An attack is any object callable as ``attack(model, x, y=None, *, target=None) -> x_adv``:
    ``x`` a batch of inputs, ``y`` their labels (``None``: the model's own predictions),
    ``target`` the labels to reach for a targeted attack. The result has ``x``'s shape and dtype.
    """


@hookspec
def zoo_adversary_heads():
    """Return a mapping ``name -> factory``; ``factory(**params)`` returns an adversary head.

    An adversary head is a ``keras.Model`` that reads a hidden representation of the main model
    and predicts a nuisance label (speaker, noise type, domain); the main model is trained to
    make it fail.
    """


@hookspec
def zoo_augmentations():
    """Return a mapping ``name -> factory``; ``factory(**params)`` returns an augmentation.

    An augmentation is callable as ``augmentation(x, y) -> (x, y)`` on a batch (it may change the
    batch size, e.g. to add generated examples or drop rejected ones).
    """


@hookspec
def zoo_datasets():
    """Return a mapping ``name -> factory``; ``factory(data_dir=None, seed=0, **params)``
    returns a :class:`zoo.data.Dataset` (anything with ``info``, ``arrays(split)`` and
    ``pipeline(split, batch_size, shuffle=..., seed=...)``).
    """


#: Decorator marking a function as a zoo hook implementation (re-exported as ``zoo.hookimpl``).
hookimpl = pluggy.HookimplMarker("zoo")
