"""One bad value for every option of every `zoo` command: exit status 2, exactly one line on stderr,
no traceback. The commands run in this process through ``zoo.cli.main`` (TensorFlow imported once);
the run directories they read hold tiny untrained models written here."""
import json

import pytest

from zoo.cli import main

CONVNET = dict(input_shape=[8, 8, 1], num_classes=10, filters=[4], dense=[8])
VAE = dict(input_shape=[8, 8, 1], latent_dim=2, filters=[4, 8])


def _run_dir(directory, name, architecture, config):
    from zoo import load
    from zoo.training.run import RUN_FILE, WEIGHTS_FILE

    model = load(name, compile=False, **config)
    directory.mkdir(parents=True)
    (directory / RUN_FILE).write_text(json.dumps(dict(name=name, architecture=architecture, config=config,
                                                      dataset="digits", seed=0)))
    model.save_weights(str(directory / WEIGHTS_FILE))
    return directory


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    import numpy as np

    from zoo.data.audio import write_wav

    root = tmp_path_factory.mktemp("sweep")
    (root / "file").write_text("not a directory")
    write_wav(root / "ok.wav", np.zeros(800))
    return dict(
        convnet=str(_run_dir(root / "convnet", "convnet-digits", "convnet", CONVNET)),
        vae=str(_run_dir(root / "vae", "vae-digits", "vae", VAE)),
        file=str(root / "file"), dir=str(root), wav=str(root / "ok.wav"), missing=str(root / "missing"),
    )


TRAIN = ["train", "convnet-digits", "--set", "filters=[4]", "--set", "dense=[8]"]
ATTACK = ["attack", "convnet-digits", "--weights", "{convnet}", "--n", "8"]
GENERATE = ["generate", "vae-digits", "--weights", "{vae}"]
EXPORT = ["export", "convnet-digits", "--weights", "{convnet}", "--out", "{dir}/models"]

SWEEP = {
    # command: {id: argv}
    "list": {"unknown-option": ["list", "--colour"]},
    "info": {"name": ["info", "convnet-mnsit"], "unknown-option": ["info", "convnet", "--all"]},
    "plugins": {"argument": ["plugins", "extra"]},
    "train": {
        "name": ["train", "convnet-digitz"],
        "epochs-text": TRAIN + ["--epochs", "abc"],
        "epochs-zero": TRAIN + ["--epochs", "0"],
        "epochs-negative": TRAIN + ["--epochs", "-3"],
        "batch-size": TRAIN + ["--batch-size", "0"],
        "data-dir": ["train", "convnet-mnist", "--data-dir", "{missing}"],
        "dataset": ["train", "convnet", "--dataset", "mnistt"],
        "set-unknown-key": TRAIN + ["--set", "filterz=[8]"],
        "set-no-equals": TRAIN + ["--set", "filters"],
        "set-unbalanced": TRAIN + ["--set", "filters=[8"],
        "set-duplicate-key": TRAIN + ["--set", "dense={{a: 1, a: 2}}"],
        "seed-negative": TRAIN + ["--seed", "-1"],
        "seed-too-big": TRAIN + ["--seed", str(2**32)],
        "out-file": TRAIN + ["--out", "{file}"],
        "out-under-file": TRAIN + ["--out", "{file}/run"],
        "strategy": TRAIN + ["--strategy", "tpu"],
        "cpu-replicas": TRAIN + ["--cpu-replicas", "0"],
        "flag-with-value": TRAIN + ["--mixed-precision=yes"],
        "jit-with-cpu-replicas": TRAIN + ["--jit-compile", "--cpu-replicas", "2"],
        "dataset-arg-unknown": TRAIN + ["--dataset-arg", "speaker=theo"],
        "dataset-arg-reserved": TRAIN + ["--dataset-arg", "seed=3"],
        "set-filters-text": TRAIN + ["--set", "filters=abc"],
        "set-dropout-range": TRAIN + ["--set", "dropout=1.5"],
        "set-input-shape-int": TRAIN + ["--set", "input_shape=8"],
    },
    "evaluate": {
        "name": ["evaluate", "nope", "--weights", "{convnet}"],
        "weights": ["evaluate", "convnet-digits", "--weights", "{missing}"],
        "weights-other-model": ["evaluate", "vae-digits", "--weights", "{convnet}"],
        "data-dir": ["evaluate", "convnet-mnist", "--weights", "{convnet}", "--data-dir", "{missing}"],
        "dataset": ["evaluate", "convnet-digits", "--weights", "{convnet}", "--dataset", "digitz"],
        "dataset-arg": ["evaluate", "convnet-digits", "--weights", "{convnet}", "--dataset-arg", "speaker=theo"],
    },
    "attack": {
        "name": ["attack", "nope", "--weights", "{convnet}"],
        "not-a-classifier": ["attack", "vae-digits", "--weights", "{vae}"],
        "weights": ["attack", "convnet-digits", "--weights", "{missing}"],
        "attack": ATTACK + ["--attack", "pgdd"],
        "eps-negative": ATTACK + ["--eps", "-0.1"],
        "eps-nan": ATTACK + ["--eps", "nan"],
        "eps-text": ATTACK + ["--eps", "big"],
        "steps": ATTACK + ["--steps", "-1"],
        "step-size": ATTACK + ["--step-size", "-1"],
        "target-range": ATTACK + ["--target", "10"],
        "target-text": ATTACK + ["--target", "cat"],
        "set-unknown": ATTACK + ["--set", "restartz=2"],
        "set-unbalanced": ATTACK + ["--set", "restarts=[2"],
        "n": ATTACK + ["--n", "0"],
        "batch-size": ATTACK + ["--batch-size", "-5"],
        "data-dir": ["attack", "convnet-mnist", "--weights", "{convnet}", "--data-dir", "{missing}"],
        "seed": ATTACK + ["--seed", "-1"],
        "png-dir": ATTACK + ["--png", "{dir}"],
        "png-under-file": ATTACK + ["--png", "{file}/x.png"],
    },
    "generate": {
        "name": ["generate", "nope", "--weights", "{vae}"],
        "weights": ["generate", "vae-digits", "--weights", "{missing}"],
        "not-generative": ["generate", "convnet-digits", "--weights", "{convnet}"],
        "n-zero": GENERATE + ["-n", "0"],
        "n-huge": GENERATE + ["-n", "1000000"],
        "n-text": GENERATE + ["-n", "many"],
        "png-dir": GENERATE + ["--png", "{dir}"],
        "seed": GENERATE + ["--seed", "-2"],
    },
    "transcribe": {
        "name": ["transcribe", "nope", "{wav}", "--weights", "{convnet}"],
        "file-missing": ["transcribe", "las-tones", "{missing}.wav", "--weights", "{convnet}"],
        "file-not-wav": ["transcribe", "las-tones", "{file}", "--weights", "{convnet}"],
        "weights": ["transcribe", "las-tones", "{wav}", "--weights", "{missing}"],
        "not-speech": ["transcribe", "convnet-digits", "{wav}", "--weights", "{convnet}"],
        "beam-width": ["transcribe", "las-tones", "{wav}", "--weights", "{convnet}", "--beam-width", "0"],
    },
    "export": {
        "name": ["export", "nope", "--weights", "{convnet}", "--out", "{dir}/models"],
        "weights": ["export", "convnet-digits", "--weights", "{missing}", "--out", "{dir}/models"],
        "out-file": ["export", "convnet-digits", "--weights", "{convnet}", "--out", "{file}"],
        "version-zero": EXPORT + ["--version", "0"],
        "version-int64": EXPORT + ["--version", str(2**63)],
        "version-text": EXPORT + ["--version", "latest"],
        "model-name": EXPORT + ["--model-name", "../escape"],
        "base-path": EXPORT + ["--base-path", "/models\nconfig {{"],
    },
    "demo": {"out-file": ["demo", "--out", "{file}"], "unknown-option": ["demo", "--fast"]},
    "robustness": {
        "name": ["robustness", "nope", "--weights", "{convnet}"],
        "weights": ["robustness", "convnet-digits", "--weights", "{missing}"],
        "not-a-classifier": ["robustness", "vae-digits", "--weights", "{vae}"],
        "norm": ["robustness", "convnet-digits", "--weights", "{convnet}", "--norm", "l1"],
        "eps": ["robustness", "convnet-digits", "--weights", "{convnet}", "--eps", "-1"],
        "n": ["robustness", "convnet-digits", "--weights", "{convnet}", "--n", "0"],
        "version": ["robustness", "convnet-digits", "--weights", "{convnet}", "--version", "fast"],
        "batch-size": ["robustness", "convnet-digits", "--weights", "{convnet}", "--batch-size", "0"],
        "data-dir": ["robustness", "convnet-digits", "--weights", "{convnet}", "--data-dir", "{missing}"],
        "seed": ["robustness", "convnet-digits", "--weights", "{convnet}", "--seed", "-1"],
    },
    "pack": {
        "run-dir": ["pack", "{missing}", "--out", "{dir}/packs"],
        "out-file": ["pack", "{convnet}", "--out", "{file}"],
        "version": ["pack", "{convnet}", "--out", "{dir}/packs", "--version", "one"],
        "previous": ["pack", "{convnet}", "--out", "{dir}/packs", "--previous", "{missing}"],
        "data-dir": ["pack", "{convnet}", "--out", "{dir}/packs", "--data-dir", "{missing}"],
        "attack": ["pack", "{convnet}", "--out", "{dir}/packs", "--attack", "pgdd"],
        "attack-set": ["pack", "{convnet}", "--out", "{dir}/packs", "--attack", "pgd", "--attack-set", "eps=[1"],
        "attack-n": ["pack", "{convnet}", "--out", "{dir}/packs", "--attack-n", "0"],
        "license": ["pack", "{convnet}", "--out", "{dir}/packs", "--license", ""],
        "citation": ["pack", "{convnet}", "--out", "{dir}/packs", "--citation", ""],
        "intended-use": ["pack", "{convnet}", "--out", "{dir}/packs", "--intended-use", ""],
        "limitations": ["pack", "{convnet}", "--out", "{dir}/packs", "--limitations", ""],
        "wheel-dist-name": ["pack", "{convnet}", "--out", "{dir}/packs", "--wheel", "--dist-name", "no spaces!"],
    },
}
CASES = [pytest.param(command, argv, id=f"{command}-{case}")
         for command, cases in SWEEP.items() for case, argv in cases.items()]


def test_the_sweep_covers_every_command_and_option():
    from zoo.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps no public map
    assert set(SWEEP) == set(commands)
    for name, sub in commands.items():
        swept = " ".join(" ".join(argv) for argv in SWEEP[name].values())
        for action in sub._actions:
            options = [o for o in action.option_strings if o not in ("-h", "--help", "--json")]
            if options:
                assert any(o in swept for o in options), f"zoo {name} {options[0]} has no bad value in the sweep"


@pytest.mark.parametrize("command, argv", CASES)
def test_one_bad_value_exits_2_with_one_line(command, argv, paths, capsys):
    argv = [a.format(**paths) for a in argv]
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    out, err = capsys.readouterr()
    assert status == 2, (status, err[-2000:])
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(f"zoo {command}: error: "), err
