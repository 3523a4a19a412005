"""Leave-one-speaker-out LAS (issue 13): the held-out speaker as a dataset parameter, ``--dataset-arg``
on ``zoo train`` / ``zoo evaluate``.

FSDD-shaped recordings are generated (tone "digits" of six tone speakers saved under the six FSDD
speaker names), so everything but one real-data check runs on a fresh machine.
"""
import json
import re

import numpy as np
import pytest

from tests.conftest import TINY_LAS
from zoo.data import DataError, load_dataset
from zoo.data.audio import FSDD_SPEAKERS
from zoo.errors import ConfigError

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
    assert {"cer_single", "cer_multi", "speaker_probe_accuracy"} <= set(trained)

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
    ("speaker=[theo", "--dataset-arg 'speaker=\\[theo': the value is not valid YAML"),
    ("voice=theo", "no parameter 'voice'"),
])
def test_bad_dataset_arg_is_one_line_and_exit_2(fsdd_dir, capsys, arg, message):
    from zoo.cli import main

    assert main(["train", "las-fsdd", "--dataset", "fsdd_heldout", "--data-dir", str(fsdd_dir),
                 "--dataset-arg", arg]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(message, err), err
