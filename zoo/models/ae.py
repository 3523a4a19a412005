"""The seed's autoencoders, trained on E = 1/n Σ_i ‖x_i − g(f(x_i))‖².

* :class:`LinearAutoencoder`, the two-layer linear autoencoder z = U (x − u₀), x̂ = Uᵀ z + u₀ (tied)
  or x̂ = V z + u₀ (untied). The seed shows its optimum is PCA: the decoder spans the top-q principal
  subspace of the data covariance and the error is the sum of the discarded eigenvalues.
* :class:`ConvAutoencoder`, a deep convolutional autoencoder: "a sort of nonlinear principal components".
"""
from __future__ import annotations

import keras
import tensorflow as tf

from zoo.models.generative import (
    GenerativeTrainer,
    check_downsampling,
    check_images,
    conv_decoder,
    conv_encoder,
)
from zoo.validate import ImageShape, Seed, Size


class _AutoencoderTrainer(GenerativeTrainer):
    """The MSE train step shared by both autoencoders (``encode``/``decode`` come from the subclass)."""

    family = "autoencoder"

    def _init_trackers(self):
        self.trackers = {k: keras.metrics.Mean(name=k) for k in ("loss", "mse")}

    def call(self, x, training=False):
        """The reconstruction x̂ = g(f(x))."""
        return self.decode(self.encode(x, training=training), training=training)

    def objective(self, x, training=False):
        """Per example: ``loss`` = ‖x − x̂‖² (the seed's E before averaging) and ``mse`` per pixel."""
        x = tf.convert_to_tensor(x, tf.float32)
        squared = tf.square(x - tf.cast(self(x, training=training), tf.float32))  # float16 under mixed precision
        loss = tf.reduce_sum(tf.reshape(squared, (tf.shape(x)[0], -1)), axis=-1)
        return dict(loss=loss, mse=loss / float(self.pixels))

    @property
    def pixels(self):
        h, w, c = self.image_shape
        return h * w * c


@keras.saving.register_keras_serializable(package="zoo")
class LinearAutoencoder(_AutoencoderTrainer, keras.Model):
    """The seed's two-layer linear autoencoder.

    Args:
        input_shape: image shape; images are flattened to x ∈ R^p.
        latent_dim: q < p.
        tied: decode with the encoder's transpose (x̂ = Uᵀ U (x − u₀) + u₀) instead of a separate V.
        seed: initialisation seed.
    """

    def __init__(self, input_shape: ImageShape = (28, 28, 1), latent_dim: Size = 16, tied: bool = False,
                 seed: Seed = 0, **kwargs):
        # float32 even under a mixed_float16 policy: a linear map gains nothing from float16, and
        # settling on the PCA subspace needs float32 precision
        super().__init__(**{"dtype": "float32", **kwargs})
        self.image_shape = tuple(int(d) for d in input_shape)
        self.latent_dim = int(latent_dim)
        self.tied = bool(tied)
        self.seed = int(seed)
        if not 0 < self.latent_dim < self.pixels:
            raise ValueError(f"latent_dim must be in 1..{self.pixels - 1} for {self.image_shape} images, "
                             f"got {latent_dim!r}")
        self._init_trackers()
        self.build((None, *self.image_shape))

    def build(self, input_shape):
        check_images(keras.KerasTensor(input_shape), self.image_shape, "LinearAutoencoder")
        p, q = self.pixels, self.latent_dim
        # Orthonormal start: U Uᵀ = I already, so training only has to rotate the subspace.
        init = keras.initializers.Orthogonal(seed=self.seed)
        self.encoder_kernel = self.add_weight(shape=(p, q), initializer=init, name="encoder_kernel")  # Uᵀ
        self.decoder_kernel = None if self.tied else self.add_weight(
            shape=(q, p), initializer=keras.initializers.Orthogonal(seed=self.seed + 1), name="decoder_kernel")
        self.offset = self.add_weight(shape=(p,), initializer="zeros", name="offset")  # u₀
        super().build(input_shape)

    def decoder_matrix(self):
        """The (q, p) matrix whose rows span the decoder's subspace (U for tied weights, else V)."""
        return tf.transpose(self.encoder_kernel) if self.tied else self.decoder_kernel

    def encode(self, x, training=False):
        """z = U (x − u₀)."""
        check_images(x, self.image_shape, "LinearAutoencoder")
        x = tf.reshape(tf.convert_to_tensor(x, tf.float32), (-1, self.pixels))
        return tf.matmul(x - self.offset, self.encoder_kernel)

    def decode(self, z, training=False):
        """x̂ = Uᵀ z + u₀ (or V z + u₀), reshaped to images."""
        flat = tf.matmul(z, self.decoder_matrix()) + self.offset
        return tf.reshape(flat, (-1, *self.image_shape))

    def get_config(self):
        config = super().get_config()
        config.update(input_shape=list(self.image_shape), latent_dim=self.latent_dim, tied=self.tied,
                      seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="zoo")
class ConvAutoencoder(_AutoencoderTrainer, keras.Model):
    """Deep convolutional autoencoder: strided convs down to a q-dimensional code, transposed convs up,
    sigmoid pixels in [0, 1].

    Args:
        input_shape: image shape; height and width divisible by ``2**len(filters)``.
        latent_dim: q, the size of z = f(x).
        filters: channels of the encoder's conv blocks (the decoder mirrors them).
    """

    def __init__(self, input_shape: ImageShape = (28, 28, 1), latent_dim: Size = 32, filters: tuple[Size, ...] = (32, 64),
                 **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in input_shape)
        self.latent_dim = int(latent_dim)
        self.filters = tuple(int(f) for f in filters)
        check_downsampling(self.image_shape, self.filters, "ConvAutoencoder")
        self.encoder = conv_encoder(self.image_shape, self.filters, self.latent_dim, name="encoder")
        self.decoder = conv_decoder(self.latent_dim, self.image_shape, self.filters, name="decoder",
                                    output_activation="sigmoid")
        self._init_trackers()
        self.build((None, *self.image_shape))

    def build(self, input_shape):
        check_images(keras.KerasTensor(input_shape), self.image_shape, "ConvAutoencoder")
        super().build(input_shape)

    def encode(self, x, training=False):
        """z = f(x)."""
        check_images(x, self.image_shape, "ConvAutoencoder")
        return self.encoder(x, training=training)

    def decode(self, z, training=False):
        """x̂ = g(z)."""
        return self.decoder(z, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(input_shape=list(self.image_shape), latent_dim=self.latent_dim, filters=list(self.filters))
        return config


def pca_comparison(model, x_train, x_test=None, top=8) -> dict:
    """How close a :class:`LinearAutoencoder` is to PCA fitted to the same training images.

    Returns the reconstruction MSE (per pixel) of the autoencoder and of the optimal rank-q PCA
    projection on ``x_train`` (and ``x_test``), their ratio, and the angle in degrees between each of
    the ``top`` principal directions and the decoder's subspace (0 when it lies inside it).
    """
    import numpy as np

    flat = np.asarray(x_train, np.float64).reshape(len(x_train), -1)
    mean = flat.mean(0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    q = model.latent_dim
    top = min(int(top), q)
    principal = vt[:q]

    def pca_mse(x):
        centred = np.asarray(x, np.float64).reshape(len(x), -1) - mean
        return float(np.mean((centred - centred @ principal.T @ principal) ** 2))

    def ae_mse(x):
        x = np.asarray(x, np.float32)
        return float(np.mean((np.asarray(model(x), np.float64) - x) ** 2))

    basis, _ = np.linalg.qr(np.asarray(model.decoder_matrix(), np.float64).T)  # (p, q), orthonormal columns
    cosines = np.clip(np.linalg.norm(basis.T @ vt[:top].T, axis=0), 0.0, 1.0)
    angles = np.degrees(np.arccos(cosines))
    result = dict(q=q, train_mse_ae=ae_mse(x_train), train_mse_pca=pca_mse(x_train),
                  principal_angles_deg=[round(float(a), 3) for a in angles], max_angle_deg=float(angles.max()))
    result["train_mse_ratio"] = result["train_mse_ae"] / result["train_mse_pca"]
    if x_test is not None:
        result.update(test_mse_ae=ae_mse(x_test), test_mse_pca=pca_mse(x_test))
    return result
