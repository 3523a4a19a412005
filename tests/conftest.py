"""Shared fixtures. TensorFlow is imported once per test process; keep models tiny."""
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ZOO_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: reproductions and benchmarks, kept out of the default run")


@pytest.fixture(scope="session")
def shared_data():
    """``../shared/data`` (read-only); tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist_dir(shared_data):
    path = shared_data / "mnist"
    if not (path / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("MNIST IDX files not found in shared data")
    return path


@pytest.fixture(scope="session")
def digits():
    """The embedded default dataset (scikit-learn's 8x8 digits)."""
    from zoo.data import load_dataset

    return load_dataset("digits")


TINY_LAS = dict(num_mels=16, listener_layers=2, listener_units=8, speller_units=16, embedding_dim=8,
                attention_dim=8, max_output_length=8)


@pytest.fixture(scope="module")
def las():
    """A tiny untrained LAS (``TINY_LAS``)."""
    import keras

    from zoo import load

    keras.utils.set_random_seed(1)
    return load("las", compile=False, **TINY_LAS)


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch):
    """Each test sees freshly loaded plugins and the real environment flags only."""
    import zoo.plugins

    monkeypatch.delenv("ZOO_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("ZOO_BLOCKED_PLUGINS", raising=False)
    monkeypatch.delenv("ZOO_REGISTRY", raising=False)
    zoo.plugins.reset()
    yield
    zoo.plugins.reset()


@pytest.fixture(scope="session")
def digits_split():
    """The embedded digits: ``(x_train, y_train, x_test, y_test)``."""
    from zoo.data import load_dataset

    d = load_dataset("digits")
    return (*d.arrays("train"), *d.arrays("test"))


@pytest.fixture(scope="session")
def attack_models(digits_split):
    """Trained once for every attack test: ``convnet`` (a zoo ConvNet with logit outputs),
    ``sequential`` (a plain Keras softmax model without ``.logits``) and ``twin`` (its logit twin,
    same weights, ``output_kind = "logits"``)."""
    import keras

    from zoo import load

    x_train, y_train = digits_split[:2]
    keras.utils.set_random_seed(0)
    convnet = load("convnet", input_shape=(8, 8, 1), filters=(8, 16), dense=(32,), output="logits", compile=False)
    convnet.compile(optimizer=keras.optimizers.Adam(0.01),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    sequential = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax")])
    sequential.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    for model in (convnet, sequential):
        model.fit(x_train, y_train, epochs=8, batch_size=64, verbose=0)
    twin = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(10)])
    for a, b in zip(twin.layers, sequential.layers):
        a.set_weights(b.get_weights())
    twin.output_kind = "logits"
    return {"convnet": convnet, "sequential": sequential, "twin": twin}
