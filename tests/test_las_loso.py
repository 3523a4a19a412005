"""Leave-one-speaker-out LAS (issue 13): the held-out speaker as a dataset parameter, ``--dataset-arg``
on ``zoo train`` / ``zoo evaluate``, the three speaker-probe poolings, and the sweep tool's resume.

FSDD-shaped recordings are generated (tone "digits" of six tone speakers saved under the six FSDD
speaker names), so everything but one real-data check runs on a fresh machine.
"""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_LAS
from zoo.data import DataError, load_dataset
from zoo.data.audio import FSDD_SPEAKERS
from zoo.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tools")]
import loso_sweep  # noqa: E402

TAKES = 8
SMALL = dict(multi_train=8, multi_test=4)
TINY_SET = [x for k, v in TINY_LAS.items() for x in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def fsdd_dir(tmp_path_factory):
    """``recordings/{digit}_{speaker}_{take}.wav``: 6 speakers x 10 digits x 8 takes of tone speech."""
    from zoo.data.audio import tone_digit, write_wav

    root = tmp_path_factory.mktemp("fsdd")
    (root / "recordings").mkdir()
    rng = np.random.default_rng(0)
    for s, name in enumerate(FSDD_SPEAKERS):
        for digit in range(10):
            for take in range(TAKES):
                write_wav(root / "recordings" / f"{digit}_{name}_{take}.wav", tone_digit(digit, s, rng))
    return root


# -- the dataset parameter ------------------------------------------------------------------------
def test_every_fsdd_speaker_can_be_held_out(fsdd_dir):
    for index, speaker in enumerate(FSDD_SPEAKERS):
        data = load_dataset("fsdd_heldout", data_dir=fsdd_dir, speaker=speaker, **SMALL)
        assert data.info["heldout_speaker"] == speaker and data.info["speakers"] == list(FSDD_SPEAKERS)
        test = data.arrays("test")
        assert set(test[2]) == {index} and len(data.arrays("test_single")[0]) == 10 * TAKES
        others = set(range(6)) - {index}
        for split in ("train", "probe_train", "probe_test"):
            assert set(data.arrays(split)[2]) == others, split
        assert len(data.arrays("train")[0]) == 5 * 10 * TAKES + SMALL["multi_train"]
        assert len(data.arrays("test_multi")[0]) == SMALL["multi_test"]


def test_heldout_speaker_on_the_real_recordings(shared_data):
    fsdd = shared_data / "fsdd"
    if not (fsdd / "recordings").is_dir():
        pytest.skip("FSDD recordings not found")
    data = load_dataset("fsdd_heldout", data_dir=fsdd, speaker="theo", multi_train=0, multi_test=10)
    theo = data.info["speakers"].index("theo")
    assert data.info["speakers"] == list(FSDD_SPEAKERS)
    waves, texts, speakers = data.arrays("test_single")
    assert len(waves) == 10 * 50 and set(speakers) == {theo}  # every take of every digit
    assert theo not in set(data.arrays("train")[2]) and len(data.arrays("train")[0]) == 5 * 10 * 50
    assert len(set(data.arrays("probe_test")[2])) == 5


def test_unknown_speaker_or_parameter_is_refused(fsdd_dir):
    with pytest.raises(DataError, match="unknown speaker 'bob'.*george, jackson, lucas, nicolas, theo, yweweler"):
        load_dataset("fsdd_heldout", data_dir=fsdd_dir, speaker="bob")
    with pytest.raises(DataError, match="unknown speaker 3"):
        load_dataset("fsdd_heldout", data_dir=fsdd_dir, speaker=3)
    with pytest.raises(ConfigError, match="no parameter 'speakr'.*speaker, multi_train, multi_test"):
        load_dataset("fsdd_heldout", data_dir=fsdd_dir, speakr="theo")
    with pytest.raises(DataError, match="multi_train must be a whole number"):
        load_dataset("fsdd_heldout", data_dir=fsdd_dir, speaker="theo", multi_train="many")
    with pytest.raises(ConfigError, match="'digits' takes no parameter 'speaker'"):
        load_dataset("digits", speaker="theo")


# -- the CLI option --------------------------------------------------------------------------------
CLI_COMMON = ["--dataset", "fsdd_heldout", "--dataset-arg", "multi_train=8", "--dataset-arg", "multi_test=4",
              *TINY_SET, "--epochs", "1"]


@pytest.fixture(scope="module")
def theo_run(fsdd_dir, tmp_path_factory):
    """``zoo train las-fsdd --dataset fsdd_heldout --dataset-arg speaker=theo ... --out DIR --json``
    (tiny, one epoch): the run directory and its printed metrics."""
    import contextlib
    import io

    from zoo.cli import main

    out = tmp_path_factory.mktemp("runs") / "theo"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main(["train", "las-fsdd", *CLI_COMMON, "--data-dir", str(fsdd_dir),
                       "--dataset-arg", "speaker=theo", "--out", str(out), "--json"])
    assert status == 0
    return out, json.loads(stdout.getvalue().strip().splitlines()[-1])


def test_dataset_arg_is_recorded_and_reused_by_evaluate(fsdd_dir, theo_run, capsys):
    from zoo.cli import main

    out, trained = theo_run
    run = json.loads((out / "config.json").read_text())
    assert run["dataset"] == "fsdd_heldout"
    assert run["dataset_args"] == {"multi_train": 8, "multi_test": 4, "speaker": "theo"}
    assert {"cer_single", "cer_multi", "speaker_probe_accuracy", "speaker_probe_mean_std",
            "speaker_probe_frames"} <= set(trained)

    # evaluate reads the run's dataset_args: the same held-out speaker, the same figures
    assert main(["evaluate", "las-fsdd", "--weights", str(out), "--data-dir", str(fsdd_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == pytest.approx(trained, abs=1e-6)

    # another speaker cannot resume this run: it would silently mix two folds
    assert main(["train", "las-fsdd", *CLI_COMMON, "--data-dir", str(fsdd_dir), "--dataset-arg", "speaker=george",
                 "--out", str(out)]) == 2
    assert "already holds a different run" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["dataset_args"]["speaker"] == "theo"


@pytest.mark.parametrize("arg, message", [
    ("speaker=bob", "unknown speaker 'bob' in .*; choose one of george"),
    ("speaker", "--dataset-arg expects key=value"),
    ("speaker=[theo", "--dataset-arg speaker: not valid YAML"),
    ("voice=theo", "no parameter 'voice'"),
    ("seed=3", "set by --data-dir / --seed"),
])
def test_bad_dataset_arg_is_one_line_and_exit_2(fsdd_dir, capsys, arg, message):
    from zoo.cli import main

    assert main(["train", "las-fsdd", "--dataset", "fsdd_heldout", "--data-dir", str(fsdd_dir),
                 "--dataset-arg", arg]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(message, err), err


# -- the probes ------------------------------------------------------------------------------------
DIRECTIONS = np.linalg.qr(np.random.default_rng(42).standard_normal((8, 8)))[0][:4]
SIGNS = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2.0


def encoder(kind, per_speaker, seed):
    """Frames of 4 synthetic speakers, (time, 8) per utterance, from a known kind of 'encoder'."""
    rng = np.random.default_rng(seed)
    frames, speakers = [], []
    for s in range(4):
        for _ in range(per_speaker):
            t = int(rng.integers(6, 13))
            x = 0.3 * rng.standard_normal((t, 8))
            if kind == "offset":  # the speaker shifts every frame: any pooling sees it
                x += DIRECTIONS[s]
            elif kind == "spike":  # one loud speaker frame, time-mean subtracted: the mean hides it
                x[0] += (t - 1) * DIRECTIONS[s]
                x -= x.mean(0)
            elif kind == "signs":  # ±pattern of equal spread per channel, time-mean subtracted
                x[:, :4] += rng.choice([-1, 1], (t, 1)) * SIGNS[s]
                x -= x.mean(0)
            frames.append(x)
            speakers.append(s)
    return frames, speakers


@pytest.mark.parametrize("kind, expected", [
    ("offset", dict(mean=1.0, mean_std=1.0, frames=1.0)),
    ("spike", dict(mean=None, mean_std=1.0, frames=1.0)),   # None: chance level (1/4)
    ("signs", dict(mean=None, mean_std=None, frames=1.0)),
    ("none", dict(mean=None, mean_std=None, frames=None)),
])
def test_each_pooling_finds_what_it_should(kind, expected):
    """Known answers: a time-mean-subtracted encoder hides the speaker from the mean, not from the
    spread or the frames; a sign pattern of equal spread hides it from both pooled vectors."""
    from zoo.models.speaker_probe import POOLINGS, probe_accuracy

    fit, score = encoder(kind, 30, 0), encoder(kind, 15, 1)
    for pooling in POOLINGS:
        accuracy = probe_accuracy(*fit, *score, pooling=pooling)
        if expected[pooling] is None:
            assert accuracy < 0.4, (pooling, accuracy)  # chance 0.25, 60 scored utterances
        else:
            assert accuracy >= 0.95 * expected[pooling], (pooling, accuracy)


def test_a_linear_frame_classifier_would_be_blind_to_mean_subtraction():
    """Why the frames probe has random Fourier features: on frames that sum to zero per utterance,
    logistic regression on the raw frames learns nothing (its optimum is w = 0)."""
    from sklearn.linear_model import LogisticRegression

    from zoo.models.speaker_probe import pool

    frames, speakers = encoder("spike", 40, 0)
    x, owner = pool(frames, "frames")
    linear = LogisticRegression(max_iter=2000).fit(x, np.asarray(speakers)[owner])
    assert np.abs(linear.coef_).max() < 1e-3


def test_majority_vote_and_its_tie_break():
    from zoo.models.speaker_probe import majority_vote

    logp = np.log(np.array([[0.6, 0.3, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1],   # utterance 0: 2 votes for 0
                            [0.9, 0.05, 0.05], [0.1, 0.8, 0.1]]))                # utterance 1: 1-1, 0 is surer
    assert majority_vote(logp, np.array([0, 0, 0, 1, 1]), 2).tolist() == [0, 0]
    logp[3] = np.log([0.45, 0.45, 0.1])
    assert majority_vote(logp, np.array([0, 0, 0, 1, 1]), 2).tolist() == [0, 1]


def test_pooling_shapes_and_bad_input():
    from zoo.models.speaker_probe import pool

    frames = [np.ones((3, 4)), np.zeros((5, 4))]
    assert pool(frames, "mean")[0].shape == (2, 4) and pool(frames, "mean_std")[0].shape == (2, 8)
    x, owner = pool(frames, "frames")
    assert x.shape == (8, 4) and owner.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    with pytest.raises(DataError, match="unknown probe pooling 'max'"):
        pool(frames, "max")
    with pytest.raises(DataError, match="non-empty"):
        pool([np.ones((3, 4)), np.ones((0, 4))], "mean")


def test_probes_on_a_tiny_las(fsdd_dir, theo_run):
    """On the tiny LAS trained with theo held out, each pooling finds the five training (tone)
    speakers well above chance (1/5); the figures are the ones ``zoo train`` reported, and the mean
    pooling is the historical probe on ``pooled_encoding``."""
    from zoo import load
    from zoo.models.las import speaker_probe_accuracy
    from zoo.models.speaker_probe import speaker_probes

    out, trained = theo_run
    model = load("las-fsdd", weights=out, compile=False)
    data = load_dataset("fsdd_heldout", data_dir=fsdd_dir, speaker="theo", **SMALL)
    waves = data.arrays("probe_test")[0][:7]
    np.testing.assert_allclose(np.stack([f.mean(0) for f in model.frame_encodings(waves)]),
                               model.pooled_encoding(waves), atol=1e-6)
    probes = speaker_probes(model, data)
    assert set(probes) == {"mean", "mean_std", "frames"}
    assert all(p > 2 / 5 for p in probes.values()), probes
    assert probes == pytest.approx({"mean": trained["speaker_probe_accuracy"],
                                    "mean_std": trained["speaker_probe_mean_std"],
                                    "frames": trained["speaker_probe_frames"]}, abs=1e-6)
    assert speaker_probe_accuracy(model, data) == pytest.approx(probes["mean"], abs=1e-6)


# -- the sweep ---------------------------------------------------------------------------------------
def sweep_args(fsdd_dir, out, *extra):
    return ["las-fsdd", "--data-dir", str(fsdd_dir), "--out", str(out), "--benchmark", str(out / "loso.json"),
            "--dataset-arg", "multi_train=8", "--dataset-arg", "multi_test=4", *TINY_SET, *extra]


def test_sweep_resumes_a_half_finished_sweep(fsdd_dir, theo_run, tmp_path, capsys):
    """george finished earlier: its record is kept and nothing is retrained. theo's run directory
    holds a trained epoch but no fold record (the sweep died during its evaluation): the fold
    resumes from that checkpoint, so it is evaluated without a single epoch trained again."""
    import shutil

    out = tmp_path / "sweep"
    settings = loso_sweep.fold_settings("las-fsdd", epochs=1, seed=0, overrides=TINY_LAS, dataset_args=SMALL,
                                        data_dir=fsdd_dir)
    key = loso_sweep.variant_name("las-fsdd", TINY_LAS)
    assert key == "las-fsdd " + " ".join(f"{k}={v}" for k, v in TINY_LAS.items())
    variant = out / loso_sweep.variant_dir(key)
    assert variant.name == key.replace(" ", "+")
    george = dict(settings=settings, speaker="george", metrics=dict(cer=0.25, cer_single=0.2, cer_multi=0.3),
                  probe_chance=0.2, epochs_trained=1, resumed_from_epoch=0, final_train_loss=1.0, cpu_seconds=10.0,
                  wall_seconds=5.0, threads=2, load_average_before=[0, 0, 0], run_dir="elsewhere")
    (variant / "george").mkdir(parents=True)
    (variant / "george" / "fold.json").write_text(json.dumps(george))
    theo = variant / "theo"
    shutil.copytree(theo_run[0], theo)
    checkpoint = (theo / "checkpoint" / "state.json").read_bytes()
    (theo / loso_sweep.LEDGER_FILE).write_text(json.dumps({"epoch_cpu_seconds": {"1": 12.5}}))  # epoch 1's CPU

    assert loso_sweep.main(sweep_args(fsdd_dir, out, "--epochs", "1", "--folds", "george,theo")) == 0
    printed = capsys.readouterr().out
    assert "fold george: finished earlier" in printed and "fold george: training" not in printed
    assert sorted(p.name for p in (variant / "george").iterdir()) == ["fold.json"]
    record = json.loads((theo / "fold.json").read_text())
    assert record["resumed_from_epoch"] == 1 and record["epochs_trained"] == 1 and record["cpu_seconds"] > 0
    assert record["cpu_seconds_all_attempts"] == pytest.approx(record["cpu_seconds"] + 12.5, abs=0.11)
    assert (theo / "checkpoint" / "state.json").read_bytes() == checkpoint  # no epoch trained again
    assert record["metrics"] == pytest.approx(theo_run[1], abs=1e-4)
    assert {"cer", "cer_single", "cer_multi", "speaker_probe_frames"} <= set(record["metrics"])

    entry = json.loads((out / "loso.json").read_text())["runs"][key]
    assert entry["folds_done"] == 2 and not entry["complete"]
    assert entry["folds_missing"] == ["jackson", "lucas", "nicolas", "yweweler"]
    assert entry["mean"]["cer"] == pytest.approx((0.25 + record["metrics"]["cer"]) / 2, abs=1e-4)
    assert entry["spread"]["cer"]["std"] == pytest.approx(abs(0.25 - record["metrics"]["cer"]) / 2, abs=1e-4)
    assert entry["spread"]["cer_single"]["min"] == min(0.2, record["metrics"]["cer_single"])
    assert entry["folds"]["george"]["cpu_seconds"] == 10.0 and entry["cpu_seconds"] > 10.0
    assert entry["cpu_seconds_all_attempts"] is None  # george's record does not say

    # a finished sweep reruns as a no-op: no process is started
    assert loso_sweep.main(sweep_args(fsdd_dir, out, "--epochs", "1", "--folds", "george,theo")) == 0
    assert "training" not in capsys.readouterr().out
    # other settings are another sweep: george's record does not count for it
    assert loso_sweep.finished(variant / "george", {**settings, "epochs": 3}) is None


def test_step_params_make_a_variant_of_the_recipe(fsdd_dir):
    """--step-param overrides the preset's train step parameters for every fold (recorded in the
    fold's settings and the benchmark key); without it, settings are as before the option existed."""
    from zoo.cli import parse_set

    step = parse_set(["lam=0.5", "head_params={pool: mean_std}"], "--step-param")
    recipe = loso_sweep.recipe_with("las-fsdd-speaker-adversarial", step)
    assert recipe["step_params"]["lam"] == 0.5 and recipe["step_params"]["head_params"] == {"pool": "mean_std"}
    assert recipe["step_params"]["nuisance"] == "speaker" and recipe["epochs"] == 24  # the rest as the preset's
    assert loso_sweep.recipe_with("las-fsdd", {}) is None
    kwargs = dict(epochs=None, seed=0, overrides={}, dataset_args={}, data_dir=fsdd_dir)
    assert "step_params" not in loso_sweep.fold_settings("las-fsdd", **kwargs)
    assert loso_sweep.fold_settings("las-fsdd", step_params=step, **kwargs)["step_params"] == step
    assert loso_sweep.variant_name("las-fsdd-speaker-adversarial", {"vtlp": 0.1}, step) == (
        'las-fsdd-speaker-adversarial vtlp=0.1 lam=0.5 head_params={"pool": "mean_std"}')
    assert loso_sweep.variant_dir(loso_sweep.variant_name("las-fsdd-speaker-adversarial", {"vtlp": 0.1}, step)) == (
        "las-fsdd-speaker-adversarial+vtlp=0.1+lam=0.5+head_params=__pool__+_mean_std__")
    assert loso_sweep.variant_dir("las-fsdd") == "las-fsdd"
    assert loso_sweep.variant_name("las-fsdd", {}, None, seed=1) == "las-fsdd seed=1"  # a repeat is its own row


def test_cpu_ledger_keeps_each_epochs_cpu_across_attempts(tmp_path):
    ledger = loso_sweep.cpu_ledger(tmp_path, loso_sweep.cpu_seconds() - 5.0)  # 5 s of set-up before epoch 1
    ledger.on_epoch_end(0)
    ledger.on_epoch_end(1)
    epochs = loso_sweep.read_ledger(tmp_path)
    assert set(epochs) == {"1", "2"} and epochs["1"] >= 5.0 and 0 <= epochs["2"] < 5.0
    again = loso_sweep.cpu_ledger(tmp_path, loso_sweep.cpu_seconds())  # a resumed attempt: epoch 2 redone
    again.on_epoch_end(1)
    assert loso_sweep.read_ledger(tmp_path)["1"] == epochs["1"]


def test_sweep_refuses_bad_folds_and_options(fsdd_dir, tmp_path, capsys):
    assert loso_sweep.main(sweep_args(fsdd_dir, tmp_path, "--folds", "bob")) == 2
    assert "unknown fold(s) bob; the speakers are george" in capsys.readouterr().err
    assert loso_sweep.main(sweep_args(fsdd_dir, tmp_path, "--dataset-arg", "speaker=theo")) == 2
    assert "choose folds with --folds" in capsys.readouterr().err
    assert loso_sweep.main(sweep_args(fsdd_dir, tmp_path, "--jobs", "0")) == 2
    assert loso_sweep.main(sweep_args(fsdd_dir, tmp_path, "--threads", "0")) == 2
    assert loso_sweep.main(["convnet-digits", "--data-dir", str(fsdd_dir), "--out", str(tmp_path)]) == 2
    assert "is a classifier model" in capsys.readouterr().err
    assert not any(tmp_path.glob("las-fsdd*"))


def test_sweep_continues_from_the_benchmark_on_a_fresh_checkout(fsdd_dir, tmp_path, capsys):
    """Run directories are gone (a fresh clone) but the benchmark holds george's row for these
    settings: the fold is not trained again and its row stays in the entry; other settings do not
    count it."""
    out = tmp_path / "sweep"
    settings = loso_sweep.fold_settings("las-fsdd", epochs=1, seed=0, overrides=TINY_LAS, dataset_args=SMALL,
                                        data_dir=fsdd_dir)
    key = loso_sweep.variant_name("las-fsdd", TINY_LAS)
    row = dict(metrics=dict(cer=0.25), probe_chance=0.2, cpu_seconds=10.0, cpu_seconds_all_attempts=None,
               wall_seconds=5.0, epochs_trained=1, resumed_from_epoch=0, final_train_loss=1.0, threads=2,
               load_average_before=[0, 0, 0], run_dir="gone")
    out.mkdir()
    (out / "loso.json").write_text(json.dumps({"runs": {key: {"settings": settings, "folds": {"george": row}}}}))
    assert loso_sweep.main(sweep_args(fsdd_dir, out, "--epochs", "1", "--folds", "george")) == 0
    assert "training" not in capsys.readouterr().out and not any(out.glob("las-fsdd*"))
    entry = json.loads((out / "loso.json").read_text())["runs"][key]
    assert entry["folds"]["george"] == row and entry["folds_done"] == 1 and entry["mean"]["cer"] == 0.25
    assert loso_sweep.recorded(out / "loso.json", key, {**settings, "epochs": 3}) == {}
    assert loso_sweep.recorded(out / "missing.json", key, settings) == {}
