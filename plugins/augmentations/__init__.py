"""The standard augmentations, registered through ``zoo_augmentations()`` like a third-party plugin.

    >>> from zoo import get_augmentation, load
    >>> flip = get_augmentation("image", rotation=0.05, translation=0.1, zoom=0.1)
    >>> x2, y2 = flip(x, y)                                   # same batch, randomly transformed
    >>> adv = get_augmentation("adversarial", model=classifier, attack="fgsm", attack_params={"eps": 0.1})
    >>> vae = get_augmentation("vae", vae=load("vae-mnist", weights="runs/vae-mnist"), classifier=classifier)
    >>> x2, y2 = vae(x, y)          # x plus VAE variations of x whose label the classifier confirms

Every augmentation is ``augmentation(x, y) -> (x, y)`` on a batch of images in [0, 1] with integer
labels, and may change the batch size: ``image`` transforms the batch in place; ``adversarial``,
``vae`` and ``gan`` append generated examples to the originals (``keep_originals=False`` returns only
the generated ones). Models may be passed as objects, or as a zoo name plus a ``zoo train --out``
directory (``vae="vae-mnist", vae_weights="runs/vae-mnist"``).

* ``image``: Keras preprocessing layers (random rotation, translation, zoom, contrast; flips off by
  default because a mirrored digit is another symbol).
* ``adversarial``: adversarial examples of the current classifier from any attack plugin, labelled
  with the true label (adversarial training as data augmentation, Goodfellow et al. 2015).
* ``vae``: the seed's "data augmentation using a VAE": sample z ~ q(z|x) (its spread scaled by
  ``spread``), decode, and — the seed's fix for "the VAE doesn't know what variability changes the
  label" — let a second network, a classifier, drop each generated example whose label it does not
  confirm (or confirms with less than ``min_confidence``).
* ``gan``: images from any model with ``generate(n)`` (DCGAN) labelled by a classifier; only those it
  labels with at least ``min_confidence`` are kept.
"""
from zoo import hookimpl

AUGMENTATIONS = {
    "image": "ImageAugmentation",
    "adversarial": "AdversarialAugmentation",
    "vae": "VAEAugmentation",
    "gan": "GANAugmentation",
}


def _factory(name, cls):
    def make(**params):
        from zoo_plugins.augmentations import augment

        return getattr(augment, cls).from_params(name, params)

    make.__name__ = name
    make.__doc__ = f"Build the {name!r} augmentation (zoo_plugins.augmentations.augment.{cls})."
    return make


@hookimpl
def zoo_augmentations():
    return {name: _factory(name, cls) for name, cls in AUGMENTATIONS.items()}
