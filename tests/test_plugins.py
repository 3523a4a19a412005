"""The plugin system with real distributions installed through entry points."""
import os
import subprocess
import sys
import textwrap

import pytest

import zoo
import zoo.plugins
from zoo.plugins import PluginError, get_plugin_manager
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


def test_duplicate_names_name_both_plugins():
    pm = get_plugin_manager()
    assert pm.register(_Dup, "impostor", "zoo-impostor", "9")
    with pytest.raises(PluginError, match=r"'zoo.models'.*'impostor'.*zoo-impostor"):
        pm.models()


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


def test_every_hook_is_documented_and_in_the_readme():
    from pathlib import Path

    from zoo import hookspecs

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name in zoo.plugins.HOOK_NAMES:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"hook {name} has no docstring"
        assert name in readme, f"hook {name} is not explained in README.md"
