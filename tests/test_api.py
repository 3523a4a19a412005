"""The public API: load, list_models, ConvNet serialisation and bad input at the boundary."""
import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zoo
from zoo.data import DataError, as_images, as_labels, load_dataset
from zoo.data.sources import mnist_from_idx, read_idx


def test_public_contract_names():
    for name in ["load", "list_models", "hookimpl", "ModelSpec", "list_attacks", "get_attack",
                 "list_adversary_heads", "get_adversary_head", "list_augmentations", "get_augmentation"]:
        assert hasattr(zoo, name), name


def test_unknown_model_lists_close_matches():
    with pytest.raises(zoo.UnknownNameError, match=r"did you mean 'convnet-mnist'"):
        zoo.load("convnet-mnsit")
    with pytest.raises(zoo.UnknownNameError, match="unknown attack 'no-such-attack'"):
        zoo.get_attack("no-such-attack")


def test_unknown_override_names_valid_keys():
    with pytest.raises(zoo.ConfigError, match=r"override.*field 'filter': unknown field; did you mean 'filters'.*valid: .*filters"):
        zoo.load("convnet-digits", filter=(8,))


def test_list_models_fnmatch():
    assert zoo.list_models("convnet-*") == sorted(n for n in zoo.list_models() if n.startswith("convnet-"))
    assert "convnet" in zoo.list_models("conv*")
    assert zoo.list_models("nothing-matches-*") == []


def test_load_returns_compiled_model_and_none_overrides_are_dropped():
    model = zoo.load("convnet-digits", filters=None, dense=(16,))
    assert model.compiled and model.optimizer is not None
    assert model.filters == (32, 64) and model.dense_units == (16,)
    assert model(np.zeros((2, 8, 8, 1), "float32")).shape == (2, 10)


def test_wrong_input_shape_is_a_clear_error():
    model = zoo.load("convnet-digits")
    with pytest.raises(ValueError, match=r"expected a batch of images of shape \(batch, 8, 8, 1\)"):
        model(np.zeros((2, 28, 28, 1), "float32"))
    with pytest.raises(DataError, match=r"expected shape \(batch, 8, 8, 1\)"):
        as_images(np.zeros((2, 28, 28, 1)), (8, 8, 1))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.array([["a", "b"]]), "numeric"),
        (np.full((1, 8, 8, 1), np.nan), "NaN"),
        (np.full((1, 8, 8, 1), 2.0), r"\[0, 1\]"),
        (np.full((1, 8, 8, 1), 300), "0..255"),
        (np.zeros((8, 8)), "4-D"),
    ],
)
def test_non_numeric_or_out_of_range_images_are_refused(bad, message):
    with pytest.raises(DataError, match=message):
        as_images(bad)


def test_labels_are_validated():
    assert as_labels([0, 9], 10).dtype == np.int32
    for bad, message in [([0, 10], "0..9"), (["x"], "integer"), ([0.5], "whole"), ([[1]], "shape")]:
        with pytest.raises(DataError, match=message):
            as_labels(bad, 10)


def test_uint8_images_are_rescaled_and_single_images_batched():
    x = as_images(np.full((8, 8, 1), 255, np.uint8), (8, 8, 1))
    assert x.shape == (1, 8, 8, 1) and x.dtype == np.float32 and x.max() == 1.0


@settings(max_examples=15, deadline=None)
@given(
    filters=st.lists(st.integers(1, 8), min_size=1, max_size=2),
    dense=st.lists(st.integers(1, 16), max_size=2),
    output=st.sampled_from(["softmax", "logits"]),
    dropout=st.floats(0, 0.5),
)
def test_convnet_config_round_trips(filters, dense, output, dropout):
    from zoo.models.convnet import ConvNet

    model = ConvNet(input_shape=(8, 8, 1), num_classes=3, filters=filters, dense=dense, output=output, dropout=dropout)
    clone = ConvNet.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()


def test_convnet_saves_and_loads(tmp_path):
    import keras

    model = zoo.load("convnet-digits", filters=(4,), dense=(8,))
    x = np.random.default_rng(0).uniform(size=(6, 8, 8, 1)).astype("float32")
    model.fit(x, np.arange(6) % 10, epochs=1, verbose=0)  # so there is optimizer state to save too
    path = tmp_path / "convnet.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 1


def test_logits_match_softmax_outputs():
    import keras

    model = zoo.load("convnet-digits", filters=(4,), dense=(8,))
    x = np.random.default_rng(1).uniform(size=(4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(keras.ops.softmax(model.logits(x)), model(x), atol=1e-6)


def test_embedded_digits_split_is_fixed(digits):
    x, y = digits.arrays("train")
    assert digits.info["input_shape"] == (8, 8, 1) and digits.info["sizes"] == {"train": 1437, "test": 360}
    assert 0.0 <= x.min() and x.max() <= 1.0
    again = load_dataset("digits", seed=5).arrays("test")[1]
    np.testing.assert_array_equal(again, digits.arrays("test")[1])
    batch_x, batch_y = next(iter(digits.pipeline("train", 32, seed=1)))
    assert batch_x.shape == (32, 8, 8, 1) and batch_y.dtype.name == "int32"


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_directory_t10k_split(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (8010, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 8010))
    data = load_dataset("mnist", data_dir=tmp_path)
    assert data.info["sizes"] == {"train": 8000, "test": 10}
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x09\x01garbage"))
    with pytest.raises(DataError, match="bad magic"):
        mnist_from_idx("mnist", tmp_path)


def test_real_mnist_split(mnist_dir):
    data = load_dataset("mnist", data_dir=mnist_dir)
    assert data.info["sizes"] == {"train": 8000, "test": 2000}
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(data.arrays("test")[1], labels[8000:])


def test_tfds_code_path_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        data = load_dataset("fashion_mnist")
    assert data.info["source"] == "tfds:fashion_mnist" and data.info["input_shape"] == (28, 28, 1)
    assert data.info["sizes"]["train"] == 12


def test_unknown_dataset_lists_choices():
    with pytest.raises(zoo.UnknownNameError, match=r"did you mean 'mnist'"):
        load_dataset("minst")
