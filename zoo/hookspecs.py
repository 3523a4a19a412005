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

    ``spec.build(**config)`` must return a (not necessarily compiled) ``keras.Model``; ``build`` may
    be an import path (``"my_package.models:MyNet"``), imported only when a model is built. The
    config keys are ``build``'s keyword parameters (or ``spec.defaults`` when given), so an unknown
    override is refused before ``build`` is called and its annotations check every value. Presets in
    ``registry.yaml`` refer to a spec by ``spec.name``. A model takes part in attacks, adversary
    training, export and evaluation through the methods of ``zoo.protocols``.
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


@hookspec
def zoo_train_steps():
    """Return a mapping ``name -> zoo.TrainStep``: train-step kinds a recipe names as ``train.step``.

    ``TrainStep(build, params=None, description="", accepts=None)``: ``build(model, recipe, params)``
    returns the compiled ``keras.Model`` that ``fit`` trains — the model itself, or a trainer model
    wrapping it that owns any extra networks, optimizers and metrics (keras-io's ``Distiller``
    pattern); ``params`` is a dataclass declaring ``recipe.step_params`` (checked before ``build``);
    ``accepts(model)`` returns why the kind cannot train a model, or ``None``. The built-in kinds
    (``supervised``, ``own``, ``adversarial``, ``madry``, ``trades``, ``minimax``) come through this
    hook too (module ``zoo.training.kinds``).
    """


@hookspec
def zoo_weights():
    """Return a mapping ``preset name -> pack location`` (or a list of locations) of the trained
    weights this plugin provides; ``load(name, weights="pretrained")`` picks the best of them.

    A location is one of:

    * a local pack directory or pack archive, as ``str`` or ``os.PathLike`` — usually one shipped
      inside your package (``Path(__file__).parent / "packs" / "convnet-mnist"``); its version is
      read from its ``card.json``;
    * a mapping ``{"location": URL, "version": "1.0.0"}`` for a pack elsewhere, the URL ending in
      the archive's hash, ``#sha256=<hex>`` (``https``, ``file`` or a ``tf.io.gfile`` scheme). The
      version is needed to rank it without downloading; it must match the card once fetched.

    ``zoo pack RUN_DIR --out DIR --wheel`` builds a plugin distribution doing exactly this.

    Unlike the other hooks, several plugins may provide packs for the same preset: the highest
    version (``FORMAT.ARCHITECTURE.RETRAIN``, compared as numbers) wins; a tie goes to the
    distribution whose name sorts first, then the plugin name, then the location. ``zoo info NAME``
    lists every pack on offer and the one chosen; a specific one is loaded by passing its location
    as ``weights=``, and ``ZOO_BLOCKED_PLUGINS`` removes a plugin's offers altogether.
    """


#: Decorator marking a function as a zoo hook implementation (re-exported as ``zoo.hookimpl``).
hookimpl = pluggy.HookimplMarker("zoo")
