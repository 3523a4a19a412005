"""Packs the installed plugins offer through ``zoo_weights()``, and the rule that picks one.

The rule (also in the ``zoo_weights`` hook's docstring and docs/weights.md): the highest version
wins, versions compared as numbers (``FORMAT.ARCHITECTURE.RETRAIN``); a tie goes to the
distribution whose name sorts first, then the plugin name, then the location. An offer whose
version cannot be known without fetching it is listed with its problem and never chosen.
"""
from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path

from zoo.errors import WeightsError
from zoo.packs.card import CARD_FILE, parse_version, validate_card
from zoo.packs.files import MAX_CARD_BYTES, read_card


@dataclasses.dataclass
class Offer:
    """One pack a plugin offers for ``preset``."""

    preset: str
    location: str
    version: str | None
    plugin: str
    distribution: str
    distribution_version: str
    card: dict | None = None  # known without fetching for a local pack
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.problem is None and self.version is not None

    def rank_key(self):
        return (tuple(-v for v in parse_version(self.version)), self.distribution, self.plugin, self.location)

    def describe(self) -> str:
        return f"{self.preset} {self.version} from plugin {self.plugin!r} (distribution {self.distribution})"

    def check(self, card: dict | None) -> None:
        """The fetched pack must be what the plugin said it was."""
        if card is None:
            raise WeightsError(f"{self.describe()}: {self.location} is a run directory, not a pack with a card")
        if card["name"] != self.preset or card["version"] != self.version:
            raise WeightsError(f"{self.describe()}: {self.location} holds {card['name']} {card['version']}; "
                               f"the plugin's zoo_weights() is wrong — tell its authors or block it with ZOO_BLOCKED_PLUGINS")


def offers(preset: str) -> list[Offer]:
    """Every pack offered for ``preset``, best first (usable ones before those with a problem)."""
    from zoo.plugins import get_plugin_manager

    pm = get_plugin_manager()
    origin = {p.name: p for p in pm.plugins()}
    out = []
    for location, plugin in pm.weights().get(preset, []):
        info = origin.get(plugin)
        out.append(_offer(preset, location, plugin, info.distribution if info else "?", info.version if info else "?"))
    usable = sorted((o for o in out if o.usable), key=Offer.rank_key)
    return usable + [o for o in out if not o.usable]


def best_offer(preset: str) -> Offer:
    """The pack ``weights="pretrained"`` loads for ``preset``."""
    found = offers(preset)
    if found and found[0].usable:
        return found[0]
    from zoo.plugins import get_plugin_manager

    broken = "; ".join(f"{o.location} from {o.plugin!r}: {o.problem}" for o in found)
    presets = sorted(get_plugin_manager().weights())
    raise WeightsError(
        f"no pretrained pack for {preset!r}"
        + (f" (offers that cannot be used: {broken})" if broken else "")
        + f"; installed plugins offer packs for: {', '.join(presets) or 'nothing'}. Install a weights plugin, "
        f"pass a pack or URL as weights=, or train one: `zoo train {preset} --out RUN && zoo pack RUN --out PACKS` "
        f"(in a checkout, `python tools/make_packs.py --presets {preset}` makes the zoo's own shipped pack)"
    )


def _offer(preset, location, plugin, dist, dist_version) -> Offer:
    declared = None
    if isinstance(location, dict):
        declared, location = location.get("version"), location["location"]
    location = os.fspath(location)
    offer = Offer(preset, location, None, plugin, dist, dist_version)
    try:
        if declared is not None:
            parse_version(declared)
        if "://" in location:
            if declared is None:
                raise WeightsError("a URL offer needs its version: {'location': URL, 'version': 'X.Y.Z'}")
            offer.version = declared
            return offer
        card = _local_card(Path(location))
        if declared is not None and declared != card["version"]:
            raise WeightsError(f"the plugin says version {declared}, the pack's card says {card['version']}")
        if card["name"] != preset:
            raise WeightsError(f"the pack is {card['name']!r}, offered for {preset!r}")
        offer.version, offer.card = card["version"], card
    except WeightsError as exc:
        offer.problem = str(exc)
    return offer


def _local_card(path: Path) -> dict:
    """The card of a local pack directory or archive, read without unpacking anything."""
    if path.is_dir():
        return read_card(path)
    if not path.is_file():
        raise WeightsError(f"{path} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == CARD_FILE]
            if len(names) != 1 or zf.getinfo(names[0]).file_size > MAX_CARD_BYTES:
                raise WeightsError(f"{path}: a pack archive holds exactly one card.json (at most {MAX_CARD_BYTES} bytes)")
            card = json.loads(zf.read(names[0]).decode("utf-8"))
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: cannot read its card: {exc}") from exc
    return validate_card(card, where=f"{path}:{names[0]}")
