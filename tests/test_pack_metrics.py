"""A pack's card measures its metrics the way `zoo evaluate` does (issue 11: `zoo evaluate` on a pack
reproduces its card): through the run's trainer, on the run's dataset and dataset arguments, seeded
with the run's seed. One tiny 1-epoch run per preset, packed once, feeds every test."""
from __future__ import annotations

import contextlib
import copy
import io
import json

import pytest

from zoo.errors import WeightsError

TINY_CONVNET = {"filters": [4], "dense": [8]}
# preset -> (config overrides, dataset args, the metric names its card carries)
RUNS = {
    # a dataset argument the card must keep: 30% of the digits held out instead of 20%
    "convnet-digits": (TINY_CONVNET, {"test_fraction": 0.3}, {"accuracy", "loss"}),
    # the adversary heads are not in the pack: their metrics stay off the card, the probe is on it
    "convnet-digits-noise-adversarial": (TINY_CONVNET, {}, {"accuracy", "loss", "noise_probe_accuracy"}),
    # PGD with a random start: random, so only the run's seed makes it repeat
    "convnet-digits-pgd-trained": (TINY_CONVNET, {}, {"accuracy", "loss", "adv_accuracy", "adv_loss"}),
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def pack(request, tmp_path_factory):
    """``(preset, pack directory, card)`` of a 1-epoch run packed by `zoo pack`'s ``make_pack``."""
    from zoo.packs import make_pack
    from zoo.training.fit import train

    preset = request.param
    overrides, dataset_args, _ = RUNS[preset]
    root = tmp_path_factory.mktemp(preset)
    train(preset, epochs=1, overrides=overrides, dataset_args=dataset_args, seed=5, out=root / "run", verbose=0)
    result = make_pack(root / "run", root / "packs")
    return preset, result.directory, result.card


def zoo_evaluate(*args) -> dict:
    """The JSON line of `zoo evaluate ... --json`."""
    from zoo.cli import main

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["evaluate", *args, "--json"]) == 0
    return json.loads(stdout.getvalue().strip().splitlines()[-1])


def test_zoo_evaluate_on_the_pack_gives_exactly_the_cards_metrics(pack):
    preset, directory, card = pack
    measured = zoo_evaluate("--weights", str(directory))
    on_card = {m["name"]: m["value"] for m in card["metrics"] if m["measured_by"] == "zoo evaluate"}
    assert set(on_card) == RUNS[preset][2]
    assert on_card == {name: measured[name] for name in on_card}
    assert all(m["seed"] == 5 == card["recipe"]["seed"] for m in card["metrics"])


def test_the_card_describes_the_data_the_metrics_were_measured_on(pack):
    preset, _, card = pack
    dataset_args = RUNS[preset][1]
    assert card["dataset"]["args"] == dataset_args
    assert {m["dataset"] for m in card["metrics"]} == {card["dataset"]["name"]}
    assert {m["n"] for m in card["metrics"]} == {card["dataset"]["splits"]["test"]}
    if preset == "convnet-digits":  # 30% of the 1,797 digits, not the default 20%
        assert card["dataset"]["splits"]["test"] == 540
        assert "--dataset-arg test_fraction=0.3" in card["recipe"]["command"]
        readme = (pack[1] / "README.md").read_text()
        assert 'dataset arguments `{"test_fraction": 0.3}`' in readme
        assert "`zoo evaluate --weights <this pack> --json` measures `accuracy`, `loss` again" in readme


def test_metrics_under_the_training_attack_name_it(pack):
    preset, _, card = pack
    robust = {m["name"]: m for m in card["metrics"] if m["kind"] == "robustness"}
    if preset != "convnet-digits-pgd-trained":
        assert not robust
        return
    assert set(robust) == {"adv_accuracy", "adv_loss", "loss"}  # madry, alpha 0: its loss is the attacked one
    for metric in robust.values():
        assert (metric["attack"], metric["eps"], metric["params"]["steps"]) == ("pgd", 0.1, 7)
    assert {m["name"]: m["kind"] for m in card["metrics"]}["accuracy"] == "clean"


def test_the_card_and_evaluate_leave_out_the_adversary_heads_the_pack_does_not_hold(pack):
    """A reloaded network meets fresh heads, whose metrics say nothing about it: neither `zoo evaluate`
    nor the card reports them; both keep the probe, which is fitted afresh on the packed features and
    so measures the weights alone."""
    preset, directory, card = pack
    if preset != "convnet-digits-noise-adversarial":
        pytest.skip("the adversary heads are the noise-adversarial preset's")
    measured = zoo_evaluate("--weights", str(directory))
    heads = {"adversary_accuracy", "adversary_loss", "lambda"}
    assert not heads & set(measured) and not heads & {m["name"] for m in card["metrics"]}
    assert measured["noise_probe_accuracy"] == next(m["value"] for m in card["metrics"]
                                                    if m["name"] == "noise_probe_accuracy")
    probe = next(m for m in card["metrics"] if m["name"] == "noise_probe_accuracy")
    assert probe["kind"] == "clean" and 0.0 <= probe["value"] <= 1.0


def test_card_schema_checks_how_a_metric_was_measured(pack):
    from zoo.packs import validate_card

    card = pack[2]
    bad = copy.deepcopy(card)
    bad["metrics"][0]["measured_by"] = "by hand"
    with pytest.raises(WeightsError, match=r"metrics\[0\].measured_by"):
        validate_card(bad)
    bad = copy.deepcopy(card)
    bad["dataset"]["args"] = ["test_fraction"]
    with pytest.raises(WeightsError, match=r"dataset.args"):
        validate_card(bad)


def test_dataset_args_given_to_zoo_evaluate_replace_the_runs(pack):
    preset, directory, card = pack
    if preset != "convnet-digits":
        pytest.skip("one preset suffices")
    other = zoo_evaluate("--weights", str(directory), "--dataset-arg", "test_fraction=0.2")
    assert other["loss"] != next(m["value"] for m in card["metrics"] if m["name"] == "loss")  # 360 other images
