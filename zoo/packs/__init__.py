"""Packs: trained weights as one self-describing, verifiable artifact (see docs/weights.md).

A pack is a directory (and the same files as one zip archive) holding ``config.json``,
``model.weights.h5`` (no optimizer state), ``card.json`` (what it is and how it was made) and a
Hugging Face style ``README.md`` rendered from the card.

* :func:`resolve_weights` turns any ``weights=`` value of :func:`zoo.load` into a verified local
  directory (:class:`LocalWeights`), fetching and caching URLs;
* :func:`make_pack` writes a pack from a run directory of ``zoo train --out`` (``zoo pack``);
* :func:`offers` / :func:`best_offer` list and rank the packs ``zoo_weights()`` plugins provide.

Nothing here imports TensorFlow until a model is built or a ``tf.io.gfile`` URL is read.
"""
from zoo.errors import WeightsError
from zoo.packs.card import (
    CARD_FILE,
    CONFIG_FILE,
    PACK_FORMAT,
    README_FILE,
    WEIGHTS_FILE,
    next_version,
    parse_version,
    render_readme,
    split_front_matter,
    validate_card,
)
from zoo.packs.files import safe_extract, sha256_file, verify_pack, write_archive
from zoo.packs.offers import Offer, best_offer, offers
from zoo.packs.store import LocalWeights, cache_dir, is_local_run, offline, resolve_weights


def make_pack(run_dir, out, **options):
    """Write a pack (directory + archive) from a run directory; see :func:`zoo.packs.build.make_pack`."""
    from zoo.packs.build import make_pack as build

    return build(run_dir, out, **options)


def build_wheel(pack_dir, card, out, dist_name=None):
    """An installable plugin wheel providing a pack; see :func:`zoo.packs.wheel.build_wheel`."""
    from zoo.packs.wheel import build_wheel as build

    return build(pack_dir, card, out, dist_name)


__all__ = [
    "CARD_FILE", "CONFIG_FILE", "LocalWeights", "Offer", "PACK_FORMAT", "README_FILE", "WEIGHTS_FILE", "WeightsError",
    "best_offer", "build_wheel", "cache_dir", "is_local_run", "make_pack", "next_version", "offers", "offline",
    "parse_version", "render_readme", "resolve_weights", "safe_extract", "sha256_file", "split_front_matter",
    "validate_card", "verify_pack", "write_archive",
]
