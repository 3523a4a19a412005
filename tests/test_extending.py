"""Extending the zoo from outside: an installed plugin distribution adds a model family from one
module (a ModelSpec without explicit defaults: its config is the class's signature) and a training
objective (a ``zoo_train_steps()`` kind), and a preset in another registry trains with both."""
import json
import textwrap

import pytest

import zoo
import zoo.plugins
from tests.wheels import build_wheel, pip_install_target

PLUGIN = textwrap.dedent('''
    """An outside plugin: a model family and an objective, through zoo's public contract only."""
    import dataclasses
    from typing import Annotated, Literal

    import zoo
    from zoo.validate import Range


    def _keras():
        import keras

        return keras


    def build_mlp(input_shape: tuple[int, int, int] = (8, 8, 1), num_classes: Annotated[int, Range(2)] = 10,
                  hidden: Annotated[int, Range(1)] = 16, activation: Literal["relu", "tanh"] = "relu"):
        """A tiny MLP classifier on flattened images; its signature is the family's config."""
        keras = _keras()
        model = keras.Sequential([keras.Input(tuple(input_shape)), keras.layers.Flatten(),
                                  keras.layers.Dense(hidden, activation=activation),
                                  keras.layers.Dense(num_classes, activation="softmax")])
        model.num_classes = num_classes
        return model


    @dataclasses.dataclass(frozen=True)
    class NoiseParams:
        sigma: Annotated[float, Range(0, 1)] = 0.1


    def build_noise_trainer(model, recipe, params):
        """Gaussian-noise training (the objective of randomised smoothing): E(x + N(0, sigma^2), y)."""
        keras = _keras()
        import tensorflow as tf

        class NoiseTrainer(keras.Model):
            def __init__(self, network, sigma):
                super().__init__()
                self.network, self.sigma = network, sigma
                self.loss_tracker = keras.metrics.Mean(name="loss")
                self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

            def call(self, x, training=False):
                return self.network(x, training=training)

            @property
            def metrics(self):
                return [self.loss_tracker, self.accuracy]

            def train_step(self, data):
                x, y = data[0], data[1]
                noisy = x + self.sigma * tf.random.normal(tf.shape(x))
                variables = self.network.trainable_variables
                with tf.GradientTape() as tape:
                    p = self.network(noisy, training=True)
                    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, p))
                self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
                self.loss_tracker.update_state(loss)
                self.accuracy.update_state(y, p)
                return {m.name: m.result() for m in self.metrics}

            def test_step(self, data):
                p = self.network(data[0], training=False)
                self.loss_tracker.update_state(keras.losses.sparse_categorical_crossentropy(data[1], p))
                self.accuracy.update_state(data[1], p)
                return {m.name: m.result() for m in self.metrics}

        trainer = NoiseTrainer(model, params.sigma)
        trainer.compile(optimizer=keras.optimizers.get({"class_name": recipe.optimizer,
                                                        "config": {"learning_rate": recipe.learning_rate}}))
        return trainer


    @zoo.hookimpl
    def zoo_models():
        return [zoo.ModelSpec("plugmlp", "zoo_plugfamily:build_mlp", description="an outside MLP family")]


    @zoo.hookimpl
    def zoo_train_steps():
        return {"gaussian-noise": zoo.TrainStep(build_noise_trainer, NoiseParams, "train on x + N(0, sigma^2)")}
''')

REGISTRY = textwrap.dedent('''
    presets:
      plugmlp-digits-noisy:
        architecture: plugmlp
        dataset: digits
        config: {hidden: 12}
        train: {optimizer: adam, learning_rate: 0.01, epochs: 2, batch_size: 64, step: gaussian-noise,
                step_params: {sigma: 0.2}}
        metadata: {description: an outside family trained with an outside objective}
''')


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    wheels = tmp_path_factory.mktemp("wheels")
    target = tmp_path_factory.mktemp("site")
    wheel = build_wheel(wheels, "zoo-plugfamily", "0.3.0", {"zoo_plugfamily.py": PLUGIN},
                        {"zoo": {"plugfamily": "zoo_plugfamily"}})
    pip_install_target([wheel], target)
    return target


@pytest.fixture
def extended(site, tmp_path, monkeypatch):
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    zoo.plugins.reset()
    yield registry
    zoo.plugins.reset()


def test_an_outside_family_and_objective_train_a_preset(extended, tmp_path, capsys):
    from zoo.cli import main

    assert "gaussian-noise" in zoo.plugins.get_plugin_manager().train_steps()
    spec = zoo.plugins.get_plugin_manager().models()["plugmlp"]
    assert spec.defaults is None and spec.config_defaults() == dict(
        input_shape=(8, 8, 1), num_classes=10, hidden=16, activation="relu")
    out = tmp_path / "run"
    assert main(["train", "plugmlp-digits-noisy", "--out", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["accuracy"] > 0.5  # two epochs of the embedded digits, through the outside objective
    record = json.loads((out / "config.json").read_text())
    assert record["recipe"]["step"] == "gaussian-noise" and record["recipe"]["step_params"] == {"sigma": 0.2}
    assert record["config"]["hidden"] == 12


def test_plugins_lists_the_kinds_by_the_hook_that_gives_them(extended, capsys):
    from zoo.cli import main

    main(["plugins", "--json"])
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["plugins"]}
    assert "zoo_train_steps" in plugins["zoo.training.kinds"]["hooks"]  # the built-in kinds
    assert plugins["zoo.training.kinds"]["distribution"] == "zoo"
    assert "zoo_train_steps" in plugins["plugfamily"]["hooks"]
    assert plugins["plugfamily"]["distribution"] == "zoo-plugfamily"


@pytest.mark.parametrize("argv, field", [
    (["--set", "hidden=0"], "field 'hidden': must be >= 1"),
    (["--set", "activation=gelu"], "field 'activation': expected one of 'relu', 'tanh'"),
    (["--set", "hiden=3"], "field 'hiden': unknown field; did you mean 'hidden'"),
])
def test_the_outside_familys_overrides_are_checked_by_its_signature(extended, tmp_path, capsys, argv, field):
    from zoo.cli import main

    assert main(["train", "plugmlp-digits-noisy", "--epochs", "1", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err


def test_the_outside_objectives_step_params_are_checked(extended, tmp_path, capsys):
    from zoo.cli import main

    extended.write_text(REGISTRY.replace("sigma: 0.2", "sigma: 2.0"))
    assert main(["train", "plugmlp-digits-noisy", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "preset 'plugmlp-digits-noisy': train.step_params: field 'sigma': must be >= 0 and <= 1" in err


def test_a_family_that_names_its_own_signatures_exports_through_them(tmp_path):
    """zoo.protocols.Exportable: export asks the model for its signatures before any family switch."""
    import keras
    import tensorflow as tf

    from zoo.export import export_model, signature_names
    from zoo.protocols import Exportable

    class Doubler(keras.Model):
        def __init__(self):
            super().__init__()
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

        def call(self, x):
            return 2.0 * self.scale * x

        def export_signatures(self):
            @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32, name="x")])
            def doubled(x):
                return {"y": self(x)}

            return {"serving_default": doubled, "doubled": doubled}

    model = Doubler()
    assert isinstance(model, Exportable)
    path = export_model(model, tmp_path / "models", "doubler")
    assert signature_names(path) == ["doubled", "serving_default"]
    loaded = tf.saved_model.load(str(path))
    out = loaded.signatures["doubled"](x=tf.constant([[1.0, 2.0, 3.0]]))
    assert out["y"].numpy().tolist() == [[2.0, 4.0, 6.0]]


class _Broken:
    """An in-process plugin whose builders misbehave: one raises, one returns None, one has numpy defaults."""

    @staticmethod
    def explode(hidden=4):
        raise RuntimeError("out of coffee")

    @staticmethod
    def nothing(hidden=4):
        return None

    @staticmethod
    def mlp(hidden=4, num_classes=10, input_shape=(8, 8, 1)):
        import keras

        model = keras.Sequential([keras.Input(tuple(input_shape)), keras.layers.Flatten(),
                                  keras.layers.Dense(int(hidden), activation="relu"),
                                  keras.layers.Dense(int(num_classes), activation="softmax")])
        model.num_classes = int(num_classes)
        return model

    @staticmethod
    def plain(hidden=4):
        """A Keras classifier with no zoo attributes at all (no num_classes, no logits)."""
        import keras

        return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                 keras.layers.Dense(int(hidden), activation="relu"),
                                 keras.layers.Dense(10, activation="softmax")])

    @zoo.hookimpl
    def zoo_models(self):
        import numpy as np

        return [zoo.ModelSpec("explodes", self.explode), zoo.ModelSpec("returns-none", self.nothing),
                zoo.ModelSpec("plain-keras", self.plain),
                zoo.ModelSpec("numpy-defaults", self.mlp,
                              defaults={"hidden": np.int64(4), "num_classes": np.int32(10), "input_shape": (8, 8, 1)})]


@pytest.fixture
def broken_plugin():
    zoo.plugins.reset()
    assert zoo.plugins.get_plugin_manager().register(_Broken(), "brokenbuild", "zoo-brokenbuild", "0.9")
    yield
    zoo.plugins.reset()


@pytest.mark.parametrize("name, problem", [("explodes", "failed to build: RuntimeError: out of coffee"),
                                           ("returns-none", "build returned NoneType, not a keras.Model")])
def test_a_plugin_build_that_fails_names_the_distribution(broken_plugin, capsys, name, problem):
    from zoo.cli import main

    assert main(["train", name, "--dataset", "digits", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and problem in err and "distribution zoo-brokenbuild 0.9" in err, err


def test_numpy_values_in_plugin_defaults_are_written_as_json(broken_plugin, tmp_path, capsys):
    from zoo.cli import main

    out = tmp_path / "run"
    assert main(["train", "numpy-defaults", "--dataset", "digits", "--epochs", "1", "--out", str(out), "--json"]) == 0
    record = json.loads((out / "config.json").read_text())
    assert record["config"] == {"hidden": 4, "num_classes": 10, "input_shape": [8, 8, 1]}
    json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_plain_keras_classifier_from_a_plugin_trains_with_the_supervised_kind(broken_plugin, capsys):
    from zoo.cli import main

    assert zoo.load("plain-keras").optimizer is not None  # "auto" -> supervised: compiled, ready for fit
    assert main(["train", "plain-keras", "--dataset", "digits", "--epochs", "8", "--set", "hidden=32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"] > 0.6
