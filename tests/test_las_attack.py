"""The attack plugins against LAS through its sequence loss (``attack_loss``/``predict_labels``),
and the helpers of ``tools/attack_las.py``.

The model is a tiny untrained LAS: the protocol needs only a differentiable sequence loss and greedy
transcripts, and training even a tiny LAS costs more than this file's time budget (its first
``fit`` traces for ~11 s). Targets are transcripts the model gives other inputs, so they are
reachable. The trained-model figures (FSDD, ≥ 90% targeted success) come from the tool.
"""
import importlib.util
import sys

import numpy as np
import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def tool():
    tools = str(REPO / "tools")
    sys.path.insert(0, tools)  # as when run as a script: the tools import their shared timing module
    try:
        spec = importlib.util.spec_from_file_location("attack_las", REPO / "tools" / "attack_las.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(tools)
    return module


EPS = 0.05
LENGTHS = (1200, 1600, 2000)  # one padded width for every test: the attack's graphs trace once


@pytest.fixture(scope="module")
def pgd():
    from zoo import get_attack

    return get_attack("pgd", eps=EPS, steps=10, step_size=0.01, random_start=True, clip=(-1, 1))


def batch(seed, peak=None):
    from zoo.data.audio import pad_batch

    rng = np.random.default_rng(seed)
    rows = [np.clip(0.3 * rng.standard_normal(n), -1, 1).astype(np.float32) for n in LENGTHS]
    if peak is not None:  # samples at the edge of [-1, 1], where the clip binds
        for row in rows:
            row[::50] = peak
    return pad_batch(rows)


def texts(ids):
    from zoo.data.audio import ids_to_text

    return [ids_to_text(row) for row in np.asarray(ids)]


def test_targeted_pgd_stays_in_the_ball_and_moves_the_transcript_to_the_target(las, pgd):
    """The target of each utterance is the transcript the model gives another one: a reachable
    sequence even for an untrained LAS."""
    import keras

    from zoo.models.las import edit_distance

    keras.utils.set_random_seed(0)
    x = batch(seed=1, peak=0.999)
    untouched = x.copy()
    own = las.predict_labels(x).numpy()
    target = own[[1, 2, 0]]
    assert len(set(texts(own))) == 3
    x_adv = pgd(las, x, own, target=target)
    np.testing.assert_array_equal(x, untouched)  # the input is not modified
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert np.abs(x_adv - x).max() <= EPS + 1e-6
    assert x_adv.min() >= -1.0 and x_adv.max() == 1.0  # the clip binds: 0.999 + ε would leave [−1, 1]
    # the random start covers the padding too, so the shorter utterances come back longer
    # (a sample pinned at −ε that then takes five +ε/5 steps can land on exactly 0.0: "almost all")
    assert np.mean(x_adv[0, LENGTHS[0]:] != 0) > 0.9 and np.mean(x_adv[1, LENGTHS[1]:] != 0) > 0.9
    gain = las.attack_loss(x, target).numpy() - las.attack_loss(x_adv, target).numpy()  # Δ ln p(target | x)
    assert np.all(gain > 0.5), gain
    wanted = texts(target)
    before = [edit_distance(a, b) for a, b in zip(texts(own), wanted)]
    after = [edit_distance(a, b) for a, b in zip(las.transcribe(x_adv), wanted)]
    assert all(a < b for a, b in zip(after, before)), (before, after)


def test_untargeted_pgd_on_its_own_predictions(las, pgd):
    """y=None: the attack reads LAS's greedy transcripts (predict_labels) and moves away from them."""
    import keras

    keras.utils.set_random_seed(0)
    x = batch(seed=4)
    own = las.predict_labels(x).numpy()
    x_adv = pgd(las, x)
    assert np.abs(x_adv - x).max() <= EPS + 1e-6
    loss_gain = las.attack_loss(x_adv, own).numpy() - las.attack_loss(x, own).numpy()
    assert np.all(loss_gain > 0.5), loss_gain
    assert all(a != b for a, b in zip(las.transcribe(x_adv), texts(own)))


def test_choose_targets_is_seeded_and_never_the_reference(tool):
    from zoo.data.audio import DIGIT_WORDS

    refs = [DIGIT_WORDS[i % 10] for i in range(200)]
    targets = tool.choose_targets(refs, seed=0)
    assert targets == tool.choose_targets(refs, seed=0) != tool.choose_targets(refs, seed=1)
    assert all(t != r and t in DIGIT_WORDS for t, r in zip(targets, refs))
    assert {t for t, r in zip(targets, refs) if r == "three"} == set(DIGIT_WORDS) - {"three"}


def test_noise_on_the_padding_counts_in_the_snr(las, tool):
    """The tool's accounting, with a stand-in for the attack that does what PGD's random start does
    to a padded batch (noise on every sample, padding included): the shorter utterances come back
    longer, and the appended noise counts in their noise energy."""
    waves = [row[row != 0] for row in batch(seed=5)]
    assert [len(w) for w in waves] == list(LENGTHS)
    noise_everywhere = lambda model, x, y, target: np.clip(x + EPS * np.sign(np.sin(np.arange(x.shape[1]))), -1, 1)
    adversarial, snrs, snrs_own, appended, linf = tool.attack_once(
        las, noise_everywhere, waves, ["two", "six", "one"], ["one", "four", "nine"], batch_size=3, seed=0)
    assert linf == pytest.approx(EPS)
    assert [len(a) for a in adversarial] == [LENGTHS[-1]] * 3  # grown to the batch's width
    np.testing.assert_allclose(appended, [(LENGTHS[-1] - n) / n for n in LENGTHS])
    for wave, adv, snr in zip(waves, adversarial, snrs):
        noise = adv.astype(np.float64) - np.pad(wave, (0, len(adv) - len(wave)))
        np.testing.assert_allclose(snr, 10 * np.log10(np.sum(wave.astype(np.float64) ** 2) / np.sum(noise ** 2)),
                                   rtol=1e-6)
    assert snrs[0] < snrs[2] - 1.0  # the same noise level, but 2000 noisy samples on 1200 of speech
    assert snrs_own[0] > snrs[0] + 1.0 and snrs_own[2] == pytest.approx(snrs[2])
