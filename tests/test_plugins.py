"""The plugin system with real distributions installed through entry points."""
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

import zoo
import zoo.plugins
from zoo.plugins import get_plugin_manager
from tests.wheels import build_wheel, pip_install_target

GOOD = textwrap.dedent('''
    """A third-party plugin using only zoo's public contract."""
    import zoo


    def build_tinynet(hidden=8, num_classes=3):
        import keras

        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(hidden, activation="relu"),
                                 keras.layers.Dense(num_classes, activation="softmax")])


    class UniformNoise:
        """Adds uniform noise in the eps-ball (a real, if weak, attack)."""

        def __init__(self, eps=0.1, seed=0):
            self.eps, self.seed = eps, seed

        def __call__(self, model, x, y=None, *, target=None):
            import numpy as np

            noise = np.random.default_rng(self.seed).uniform(-self.eps, self.eps, np.shape(x))
            return np.clip(np.asarray(x) + noise, 0, 1).astype("float32")


    @zoo.hookimpl
    def zoo_models():
        return [zoo.ModelSpec("tinynet", build_tinynet, {"hidden": 8, "num_classes": 3}, "a tiny MLP")]


    @zoo.hookimpl
    def zoo_attacks():
        return {"uniform-noise": UniformNoise}
''')

BROKEN = 'raise ImportError("this plugin is broken on purpose")\n'

MISSPELT = textwrap.dedent('''
    import zoo


    @zoo.hookimpl
    def zoo_model():  # should be zoo_models
        return []
''')


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory):
    """A --target directory holding three real plugin distributions."""
    wheels_dir = tmp_path_factory.mktemp("wheels")
    target = tmp_path_factory.mktemp("site")
    wheels = [
        build_wheel(wheels_dir, "zoo-tinynet", "1.2.3", {"zoo_tinynet.py": GOOD}, {"zoo": {"tinynet": "zoo_tinynet"}}),
        build_wheel(wheels_dir, "zoo-broken", "0.0.1", {"zoo_broken.py": BROKEN}, {"zoo": {"broken": "zoo_broken"}}),
        build_wheel(wheels_dir, "zoo-misspelt", "0.1", {"zoo_misspelt.py": MISSPELT}, {"zoo": {"misspelt": "zoo_misspelt"}}),
    ]
    pip_install_target(wheels, target)
    return target


@pytest.fixture
def with_plugins(plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_site))
    zoo.plugins.reset()
    return plugin_site


def run_zoo(args, site=None, **env):
    environ = dict(os.environ, **env)
    if site is not None:
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=environ)


def test_third_party_plugin_adds_model_and_attack(with_plugins, capsys):
    assert "tinynet" in zoo.list_models()
    assert zoo.list_models("tiny*") == ["tinynet"]
    assert "uniform-noise" in zoo.list_attacks()
    model = zoo.load("tinynet", compile=False, hidden=5)
    assert model.layers[0].units == 5
    attack = zoo.get_attack("uniform-noise", eps=0.05)
    import numpy as np

    x = np.full((2, 4), 0.5, "float32")
    assert np.abs(attack(model, x) - x).max() <= 0.05 + 1e-6
    info = get_plugin_manager().provider("models", "tinynet")
    assert (info.distribution, info.version) == ("zoo-tinynet", "1.2.3")


def test_broken_and_misspelt_plugins_are_reported_not_fatal(with_plugins, capsys):
    pm = get_plugin_manager()
    errors = "\n".join(pm.errors)
    assert "zoo-broken" in errors and "this plugin is broken on purpose" in errors
    assert "zoo-misspelt" in errors and "unknown hook 'zoo_model'" in errors and "did you mean 'zoo_models'" in errors
    names = {p.name for p in pm.plugins()}
    assert "tinynet" in names and "broken" not in names and "misspelt" not in names
    assert "zoo-broken" in capsys.readouterr().err


def test_cli_list_and_plugins_with_installed_distributions(plugin_site):
    listed = run_zoo(["list"], plugin_site)
    assert listed.returncode == 0, listed.stderr
    assert "tinynet" in listed.stdout and "convnet-mnist" in listed.stdout
    assert "zoo-broken" in listed.stderr
    shown = run_zoo(["plugins", "--json"], plugin_site)
    assert "zoo-tinynet 1.2.3  hooks: zoo_attacks, zoo_models" in shown.stdout
    assert shown.returncode == 1  # `zoo plugins` is the place that fails loudly on broken plugins
    import json

    report = json.loads(shown.stdout.strip().splitlines()[-1])
    assert any("zoo-misspelt" in e for e in report["errors"])


def test_disable_autoload_keeps_only_builtins(with_plugins, monkeypatch):
    monkeypatch.setenv("ZOO_DISABLE_PLUGIN_AUTOLOAD", "1")
    zoo.plugins.reset()
    pm = get_plugin_manager()
    assert {p.distribution for p in pm.plugins()} == {"zoo"}
    assert pm.errors == [] and "tinynet" not in zoo.list_models()


def test_blocked_plugins_by_entry_point_or_distribution(with_plugins, monkeypatch):
    monkeypatch.setenv("ZOO_BLOCKED_PLUGINS", "zoo-broken, misspelt")
    zoo.plugins.reset()
    pm = get_plugin_manager()
    assert pm.errors == []
    assert "tinynet" in zoo.list_models()
    monkeypatch.setenv("ZOO_BLOCKED_PLUGINS", "tinynet")
    zoo.plugins.reset()
    assert "tinynet" not in zoo.list_models()


class _Dup:
    @staticmethod
    @zoo.hookimpl
    def zoo_models():
        return [zoo.ModelSpec("convnet", lambda **c: None, {}, "an impostor")]


def test_duplicate_names_name_both_plugins_and_the_builtin_wins():
    pm = get_plugin_manager()
    assert pm.register(_Dup, "impostor", "zoo-impostor", "9")
    models = pm.models()  # no exception: only the conflicting entry is skipped
    assert models["convnet"].description != "an impostor" and "vae" in models
    assert any("'impostor'" in e and "zoo-impostor" in e and "'convnet'" in e and "'zoo.models'" in e
               for e in pm.errors)


def test_failing_hook_is_reported_and_skipped(capsys):
    class Failing:
        @staticmethod
        @zoo.hookimpl
        def zoo_attacks():
            raise RuntimeError("boom")

    class WrongType:
        @staticmethod
        @zoo.hookimpl
        def zoo_models():
            return ["not a spec"]

    pm = get_plugin_manager()
    pm.register(Failing, "failing", "zoo-failing", "1")
    pm.register(WrongType, "wrongtype", "zoo-wrongtype", "1")
    pm.attacks()
    assert "convnet" in pm.models()
    err = capsys.readouterr().err
    assert "zoo-failing" in err and "boom" in err
    assert "zoo-wrongtype" in err and "ModelSpec" in err


def test_hook_signature_mismatch_is_refused():
    class BadArgs:
        @staticmethod
        @zoo.hookimpl
        def zoo_models(config):
            return []

    pm = get_plugin_manager()
    assert not pm.register(BadArgs, "badargs", "zoo-badargs", "1")
    assert any("zoo-badargs" in e for e in pm.errors)


def test_every_hook_has_a_docstring():  # docs/plugins.md explaining each is tests/test_docs.py's
    from zoo import hookspecs

    for name in zoo.plugins.HOOK_NAMES:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"hook {name} has no docstring"


# -- hostile plugins: none of them may take zoo down ------------------------------------------------
EXIT_AT_IMPORT = 'import sys\nsys.exit(3)\n'

PARSE_ARGS_AT_IMPORT = textwrap.dedent('''
    import argparse

    parser = argparse.ArgumentParser(prog="greedy")
    parser.add_argument("--only-mine")
    parser.parse_args()  # reads zoo's own command line and exits 2 on it
''')

INTERRUPT_IN_HOOK = textwrap.dedent('''
    import sys

    import zoo


    @zoo.hookimpl
    def zoo_attacks():
        raise KeyboardInterrupt


    @zoo.hookimpl
    def zoo_models():
        print("about to exit", file=sys.stderr)
        sys.exit(1)
''')

IMPOSTOR = textwrap.dedent('''
    import zoo


    def build(hidden=4):
        import keras

        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(hidden, activation="softmax")])


    class Identity:
        def __call__(self, model, x, y=None, *, target=None):
            return x


    @zoo.hookimpl
    def zoo_models():
        return [zoo.ModelSpec("convnet", build, {"hidden": 4}, "an impostor convnet"),
                zoo.ModelSpec("impostor-net", build, {"hidden": 4}, "the impostor's own model")]


    @zoo.hookimpl
    def zoo_attacks():
        return {"pgd": Identity, "identity": Identity}
''')


def _shared(description):
    return textwrap.dedent(f'''
        import zoo


        def build(hidden=4):
            import keras

            return keras.Sequential([keras.Input((4,)), keras.layers.Dense(hidden)])


        @zoo.hookimpl
        def zoo_models():
            return [zoo.ModelSpec("shared-net", build, {{"hidden": 4}}, "{description}")]
    ''')


GARBAGE_DATASETS = textwrap.dedent('''
    import zoo


    def garbage(data_dir=None, seed=0):
        return 42


    def crashing(data_dir=None, seed=0):
        return {}["no such key"]


    @zoo.hookimpl
    def zoo_datasets():
        return {"garbage": garbage, "crashing": crashing}
''')

HOSTILE = {  # entry-point name -> (distribution, module source)
    "exiter": ("zoo-exiter", EXIT_AT_IMPORT),
    "greedy": ("zoo-greedy", PARSE_ARGS_AT_IMPORT),
    "interrupter": ("zoo-interrupter", INTERRUPT_IN_HOOK),
    "impostor": ("zoo-impostor", IMPOSTOR),
    "aaa_shared": ("zoo-shared-first", _shared("the first by entry-point name")),
    "zzz_shared": ("zoo-shared-second", _shared("the second by entry-point name")),
    "garbage": ("zoo-garbage", GARBAGE_DATASETS),
}


@pytest.fixture(scope="session")
def hostile_site(tmp_path_factory):
    """A --target directory holding the hostile distributions above and the good zoo-tinynet."""
    wheels_dir = tmp_path_factory.mktemp("hostile-wheels")
    target = tmp_path_factory.mktemp("hostile-site")
    wheels = [build_wheel(wheels_dir, "zoo-tinynet", "1.2.3", {"zoo_tinynet.py": GOOD}, {"zoo": {"tinynet": "zoo_tinynet"}})]
    for ep, (dist, source) in HOSTILE.items():
        module = f"zoo_hostile_{ep}"
        wheels.append(build_wheel(wheels_dir, dist, "0.1", {f"{module}.py": source}, {"zoo": {ep: module}}))
    pip_install_target(wheels, target)
    return target


@pytest.fixture
def with_hostile(hostile_site, monkeypatch):
    monkeypatch.syspath_prepend(str(hostile_site))
    # as under `zoo train ...`: a command line the greedy plugin's parse_args() refuses (bare `pytest`
    # would give it none, and it would not exit)
    monkeypatch.setattr("sys.argv", ["zoo", "train", "convnet-digits", "--epochs", "1"])
    zoo.plugins.reset()
    return hostile_site


def test_hostile_plugins_are_reported_by_distribution_and_zoo_keeps_working(with_hostile, capsys):
    pm = get_plugin_manager()
    models = zoo.list_models()
    assert {"convnet", "vae", "tinynet", "impostor-net", "shared-net"} <= set(models)
    assert pm.models()["convnet"].description != "an impostor convnet"
    assert zoo.load("convnet", compile=False, input_shape=(8, 8, 1), filters=[4], dense=[8]).count_params() > 0
    assert {"pgd", "identity", "uniform-noise"} <= set(zoo.list_attacks())
    assert type(zoo.get_attack("pgd")).__module__.startswith("zoo_plugins")  # the built-in pgd won
    assert pm.models()["shared-net"].description == "the first by entry-point name"
    errors = "\n".join(pm.errors)
    assert "zoo-exiter" in errors and "sys.exit(3)" in errors
    assert "zoo-greedy" in errors and "sys.exit(2)" in errors and "parse_args" in errors
    assert "zoo-interrupter" in errors and "KeyboardInterrupt" in errors and "about to exit" in errors
    assert "zoo-impostor" in errors and "'convnet'" in errors and "'pgd'" in errors
    assert "zoo-shared-second" in errors and "zoo-shared-first" in errors
    assert "usage: greedy" not in capsys.readouterr().err  # the failing parse_args's usage text is held back


def test_cli_with_hostile_plugins_lists_and_fails_only_zoo_plugins(hostile_site):
    listed = run_zoo(["list", "--json"], hostile_site)
    assert listed.returncode == 0, listed.stderr
    names = {m["name"] for m in json.loads(listed.stdout.strip().splitlines()[-1])["models"]}
    assert {"convnet-digits", "tinynet", "impostor-net", "shared-net"} <= names
    info = run_zoo(["info", "convnet", "--json"], hostile_site)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout.strip().splitlines()[-1])["plugin"]["distribution"] == "zoo"
    shown = run_zoo(["plugins", "--json"], hostile_site)
    assert shown.returncode == 1
    report = json.loads(shown.stdout.strip().splitlines()[-1])
    failed = " ".join(report["errors"])
    for dist in ("zoo-exiter", "zoo-greedy", "zoo-interrupter", "zoo-impostor", "zoo-shared-second"):
        assert dist in failed, dist
    assert "Traceback" not in shown.stderr


def test_plugins_command_calls_every_hook(with_hostile, capsys):
    """A plugin that fails only when its hook is called (no other command called it) is still listed."""
    from zoo.cli import main

    assert main(["plugins"]) == 1
    err = capsys.readouterr().err
    assert "zoo-garbage" not in err  # its hook works; its factories are bad, which only loading shows
    assert "hook zoo_attacks() failed: raised KeyboardInterrupt" in err


def _run_dir(tmp_path, name="convnet-digits"):
    """A trained-model directory like `zoo train --out` leaves (untrained weights: fast)."""
    from zoo.training.run import RUN_FILE, WEIGHTS_FILE

    config = dict(input_shape=[8, 8, 1], num_classes=10, filters=[4], dense=[8])
    model = zoo.load(name, compile=False, **config)
    directory = tmp_path / "run"
    directory.mkdir()
    (directory / RUN_FILE).write_text(json.dumps(dict(name=name, architecture="convnet", config=config,
                                                      dataset="digits", seed=0)))
    model.save_weights(str(directory / WEIGHTS_FILE))
    return directory


def test_zoo_attack_with_an_outside_attack_reports_its_metrics(with_plugins, tmp_path, capsys):
    from zoo.cli import main

    run = _run_dir(tmp_path)
    assert main(["attack", "convnet-digits", "--weights", str(run), "--attack", "uniform-noise", "--eps", "0.05",
                 "--n", "20", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["attack"] == "uniform-noise" and metrics["n"] == 20 and metrics["param_eps"] == 0.05
    assert metrics["max_linf"] <= 0.05 + 1e-6


def test_zoo_attack_on_a_las_model_is_a_clean_error(capsys):
    from zoo.cli import main

    assert main(["attack", "las-tones", "--weights", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "las model" in err and "Traceback" not in err


@pytest.mark.parametrize("dataset, message", [
    ("garbage", r"dataset 'garbage' \(plugin 'garbage' from distribution zoo-garbage 0.1\): its factory returned a int"),
    ("crashing", r"dataset 'crashing' \(plugin 'garbage' from distribution zoo-garbage 0.1\) failed to load: KeyError"),
])
def test_a_dataset_factory_returning_garbage_is_a_clear_error(with_hostile, dataset, message, capsys):
    from zoo.cli import main

    assert main(["train", "convnet", "--dataset", dataset, "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert re.search(message, err[-1]), err[-1]
