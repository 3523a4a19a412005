"""The augmentation plugins: contracts (x, y) -> (x, y), the VAE's label-keeping filter, GAN labelling."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from zoo import ConfigError, DataError, UnknownNameError, get_augmentation, list_augmentations, load  # noqa: E402

TINY_VAE = dict(input_shape=(8, 8, 1), latent_dim=4, filters=(8,))


class FixedClassifier(keras.Model):
    """Gives every image class ``label`` with probability ``confidence`` (a known filter decision)."""

    def __init__(self, label, confidence=1.0, num_classes=10):
        super().__init__()
        rest = (1.0 - confidence) / (num_classes - 1)
        self.probs = tf.constant([confidence if k == label else rest for k in range(num_classes)])

    def call(self, x, training=False):
        return tf.tile(self.probs[None], [tf.shape(x)[0], 1])


@pytest.fixture(scope="module")
def batch(digits):
    x, y = digits.arrays("train")
    return x[:32], y[:32]


@pytest.fixture(scope="module")
def vae():
    keras.utils.set_random_seed(0)
    return load("vae", **TINY_VAE, compile=False)


def test_standard_plugins_are_listed():
    assert {"image", "adversarial", "vae", "gan"} <= set(list_augmentations())
    with pytest.raises(UnknownNameError, match="did you mean 'vae'"):
        get_augmentation("vea")
    with pytest.raises(ConfigError, match="unknown parameter"):
        get_augmentation("image", rotate=0.1)
    with pytest.raises(ConfigError, match="rotation"):
        get_augmentation("image", rotation=2)


def test_image_augmentation_keeps_shape_labels_and_range(batch):
    x, y = batch
    aug = get_augmentation("image", rotation=0.1, translation=0.15, zoom=0.1, seed=1)
    x2, y2 = aug(x, y)
    assert x2.shape == x.shape and np.array_equal(y2, y)
    assert 0.0 <= float(tf.reduce_min(x2)) and float(tf.reduce_max(x2)) <= 1.0
    assert float(tf.reduce_mean(tf.abs(x2 - x))) > 0.01  # it does transform
    both_x, both_y = get_augmentation("image", keep_originals=True)(x, y)
    assert both_x.shape[0] == 64 and np.array_equal(both_x[:32], x) and np.array_equal(both_y[32:], y)
    # inside a tf.data pipeline (graph mode)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).map(aug)
    xb, yb = next(iter(data))
    assert xb.shape == (8, 8, 8, 1) and yb.shape == (8,)


def test_bad_batches_are_refused(batch):
    x, y = batch
    aug = get_augmentation("image")
    with pytest.raises(DataError, match="floats"):
        aug((x * 255).astype("uint8"), y)
    with pytest.raises(DataError, match="labels"):
        aug(x, y[:5])
    with pytest.raises(DataError, match="shape"):
        aug(x[..., 0], y)


def test_adversarial_augmentation_appends_attacked_copies(batch):
    x, y = batch
    keras.utils.set_random_seed(0)
    classifier = load("convnet", input_shape=(8, 8, 1), num_classes=10, filters=(8,), dense=(16,))
    aug = get_augmentation("adversarial", model=classifier, attack="fgsm", attack_params={"eps": 0.1})
    x2, y2 = aug(x, y)
    assert x2.shape == (64, 8, 8, 1) and np.array_equal(y2, np.concatenate([y, y]))
    delta = np.abs(np.asarray(x2[32:]) - x)
    assert delta.max() <= 0.1 + 1e-6 and delta.max() > 0.05  # a real FGSM step, inside its eps-ball
    half = get_augmentation("adversarial", model=classifier, attack="fgsm", attack_params={"eps": 0.1},
                            fraction=0.25, keep_originals=False)
    assert half(x, y)[0].shape[0] == 8
    with pytest.raises(UnknownNameError):
        get_augmentation("adversarial", model=classifier, attack="nope")


def test_vae_filter_drops_examples_whose_label_changes(batch, vae):
    x, y = batch
    unfiltered = get_augmentation("vae", vae=vae, copies=2)
    x2, y2 = unfiltered(x, y)
    assert x2.shape == (96, 8, 8, 1) and np.array_equal(y2[32:], np.tile(y, 2))
    assert unfiltered.acceptance == 1.0
    # the second network says "3" for everything: only the generated copies of 3s keep their label
    keeps_threes = get_augmentation("vae", vae=vae, classifier=FixedClassifier(3), copies=2)
    x3, y3 = keeps_threes(x, y)
    n3 = int(np.sum(y == 3))
    assert 0 < n3 < 32
    assert x3.shape[0] == 32 + 2 * n3 and np.all(np.asarray(y3[32:]) == 3)
    assert keeps_threes.acceptance == pytest.approx(n3 / 32)
    # a confident-enough requirement drops even those
    strict = get_augmentation("vae", vae=vae, classifier=FixedClassifier(3, confidence=0.6), min_confidence=0.7)
    assert strict(x, y)[0].shape[0] == 32 and strict.acceptance == 0.0
    # graph mode (tf.data) works and the generated images are images
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).map(keeps_threes)
    xb, _ = next(iter(data))
    assert xb.shape[1:] == (8, 8, 1) and 0.0 <= float(tf.reduce_min(xb)) and float(tf.reduce_max(xb)) <= 1.0


def test_vae_variations_stay_near_their_originals(batch, vae):
    x, y = batch
    near = get_augmentation("vae", vae=vae, spread=0.0, keep_originals=False)(x, y)[0]
    reconstruction = vae(x)
    np.testing.assert_allclose(near, reconstruction, atol=1e-5)  # spread 0 decodes the posterior mean


def test_gan_augmentation_labels_and_filters_by_confidence(batch):
    x, y = batch
    keras.utils.set_random_seed(0)
    gan = load("dcgan", input_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,),
               compile=False)
    aug = get_augmentation("gan", generator=gan, classifier=FixedClassifier(7, confidence=0.95), ratio=0.5)
    x2, y2 = aug(x, y)
    assert x2.shape == (48, 8, 8, 1) and np.all(np.asarray(y2[32:]) == 7) and y2.dtype == y.dtype
    again = aug(x, y)[0]
    assert not np.allclose(again[32:], x2[32:])  # a fresh draw every call
    picky = get_augmentation("gan", generator=gan, classifier=FixedClassifier(7, confidence=0.95),
                             min_confidence=0.99)
    assert picky(x, y)[0].shape[0] == 32 and picky.acceptance == 0.0
    with pytest.raises(ConfigError, match="classifier"):
        get_augmentation("gan", generator=gan)
