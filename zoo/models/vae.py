"""The seed's variational autoencoder, with tensorflow-probability distributions inside Keras 3.

The encoder f gives (μ, Σ) as a diagonal-Gaussian posterior q(z|x) (a ``tfd.MultivariateNormalDiag``),
the prior is N(0, I), the KL term is ``tfd.kl_divergence`` — analytically the seed's
E^(f) = ½ Σ_k (μ_k² + σ_k² − ln σ_k² − 1) — z is sampled by reparameterisation (z = μ + σ ⊙ ε), and the
decoder g returns the likelihood p(x|z): Bernoulli for binarised pixels, or the seed's Normal with
identity covariance (E^(g) = ½ ‖x − g(z)‖² + const). ``train_step`` maximises the ELBO with a β weight
on the KL term. Only ``tfp.distributions`` is used (tfp's Keras layers are Keras 2).
"""
from __future__ import annotations

import math
from typing import Literal

import keras
import tensorflow as tf

from zoo.models.generative import (
    GenerativeTrainer,
    batch_noise,
    check_downsampling,
    check_images,
    conv_decoder,
    conv_encoder,
    normal_noise,
)
from zoo.validate import ImageShape, NonNegative, Seed, Size


class _Distributions:
    """``tfp.distributions``, imported at first use: importing tensorflow_probability loads all of
    it (about 2 s), which a DCGAN — whose module imports this one — never needs."""

    def __getattr__(self, name):
        import tensorflow_probability as tfp

        return getattr(tfp.distributions, name)


tfd = _Distributions()

LIKELIHOODS = ("bernoulli", "normal")
BINARIZE = ("dynamic", "threshold", "none")
#: The smallest posterior standard deviation (keeps ln σ² finite).
MIN_SCALE = 1e-4


@keras.saving.register_keras_serializable(package="zoo")
class VAE(GenerativeTrainer, keras.Model):
    """Convolutional VAE.

    Args:
        input_shape: ``(height, width, channels)``, pixels in [0, 1]; height and width divisible by
            ``2**len(filters)``.
        latent_dim: q, the size of z.
        filters: channels of the encoder's strided conv blocks (the decoder mirrors them).
        likelihood: ``"bernoulli"`` (binarised pixels, nats) or ``"normal"`` (the seed's MSE form,
            mean g(z), identity covariance).
        beta: weight of the KL term in the training loss (β-VAE; 1 is the ELBO).
        binarize: Bernoulli targets during training: ``"dynamic"`` (each step samples x_b ~ Bernoulli(x),
            the usual regulariser), ``"threshold"`` (x > 0.5) or ``"none"``. Evaluation always
            thresholds at 0.5 for the Bernoulli likelihood.
        seed: seed of the model's noise (reparameterisation, dynamic binarisation).
    """

    family = "vae"

    def __init__(self, input_shape: ImageShape = (28, 28, 1), latent_dim: Size = 32, filters: tuple[Size, ...] = (32, 64),
                 likelihood: Literal["bernoulli", "normal"] = "bernoulli", beta: NonNegative = 1.0,
                 binarize: Literal["dynamic", "threshold", "none"] = "dynamic", seed: Seed = 0, **kwargs):
        super().__init__(**kwargs)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if binarize not in BINARIZE:
            raise ValueError(f"binarize must be one of {BINARIZE}, got {binarize!r}")
        if int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be positive, got {latent_dim!r}")
        if float(beta) < 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        self.image_shape = tuple(int(d) for d in input_shape)
        self.latent_dim = int(latent_dim)
        self.filters = tuple(int(f) for f in filters)
        self.likelihood = likelihood
        self.beta = float(beta)
        self.binarize = binarize
        self.seed = int(seed)
        check_downsampling(self.image_shape, self.filters, "VAE")
        self.encoder = conv_encoder(self.image_shape, self.filters, 2 * self.latent_dim, name="encoder")
        self.decoder = conv_decoder(self.latent_dim, self.image_shape, self.filters, name="decoder")
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="noise")
        self.trackers = {k: keras.metrics.Mean(name=k) for k in ("loss", "reconstruction", "kl", "elbo")}
        self.build((None, *self.image_shape))

    def build(self, input_shape):
        check_images(keras.KerasTensor(input_shape), self.image_shape, "VAE")
        super().build(input_shape)

    # -- the distributions ---------------------------------------------------------------------
    @property
    def prior(self):
        """p(z) = N(0, I)."""
        return tfd.MultivariateNormalDiag(loc=tf.zeros(self.latent_dim), scale_diag=tf.ones(self.latent_dim))

    def encode(self, x, training=False):
        """q(z|x): a diagonal Gaussian ``tfd.MultivariateNormalDiag`` with batch shape ``(batch,)``."""
        check_images(x, self.image_shape, "VAE")
        # distributions in float32 even under mixed precision (float16 log-densities lose too much)
        params = tf.cast(self.encoder(x, training=training), tf.float32)
        loc, raw_scale = tf.split(params, 2, axis=-1)
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.nn.softplus(raw_scale) + MIN_SCALE)

    def decode(self, z, training=False):
        """p(x|z): independent Bernoulli or unit-variance Normal pixels, event shape = one image."""
        out = tf.cast(self.decoder(z, training=training), tf.float32)
        if self.likelihood == "bernoulli":
            pixels = tfd.Bernoulli(logits=out, dtype=tf.float32)
        else:
            pixels = tfd.Normal(loc=tf.sigmoid(out), scale=1.0)
        return tfd.Independent(pixels, reinterpreted_batch_ndims=3)

    def sample(self, n, seed=None):
        """``n`` images x̂ = E[x | z], z ~ N(0, I); an integer ``seed`` makes them reproducible."""
        z = normal_noise((int(n), self.latent_dim), seed, self.seed_generator)
        return self.decode(z).mean()

    def call(self, x, training=False):
        """The reconstruction E[x | z = μ(x)]."""
        return self.decode(self.encode(x, training=training).mean(), training=training).mean()

    # -- the objective -------------------------------------------------------------------------
    def targets(self, x, training=False):
        """The pixels the likelihood scores: binarised for Bernoulli (dynamically while training)."""
        if self.likelihood != "bernoulli" or self.binarize == "none":
            return x
        if training and self.binarize == "dynamic":
            return tf.cast(batch_noise("uniform", tf.shape(x), self.seed_generator) < x, x.dtype)
        return tf.cast(x > 0.5, x.dtype)

    def objective(self, x, training=False, eps=None):
        """Per-example terms of the negative ELBO (one posterior sample), all shape ``(batch,)``.

        ``eps`` (batch, latent_dim) fixes the reparameterisation noise (a custom loop or a test can pass
        it); by default it is drawn from the model's seed generator.
        """
        target = self.targets(x, training)
        posterior = self.encode(target, training=training)
        if eps is None:
            eps = batch_noise("normal", tf.shape(posterior.mean()), self.seed_generator)
        z = posterior.mean() + posterior.stddev() * eps  # reparameterised: gradients reach μ and σ
        reconstruction = -self.decode(z, training=training).log_prob(target)
        kl = tfd.kl_divergence(posterior, self.prior)
        return dict(loss=reconstruction + self.beta * kl, reconstruction=reconstruction, kl=kl,
                    elbo=-(reconstruction + kl))

    def importance_weighted_bound(self, x, k=100):
        """log p(x) ≥ log (1/k) Σ_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x) (Burda et al. 2016), per example."""
        target = self.targets(x, training=False)
        posterior = self.encode(target)
        mean, std = posterior.mean(), posterior.stddev()
        z = mean + std * keras.random.normal((int(k), *mean.shape), seed=self.seed_generator)  # (k, batch, latent)
        flat = tf.reshape(z, (-1, self.latent_dim))
        repeated = tf.reshape(tf.repeat(target[None], int(k), axis=0), (-1, *self.image_shape))
        log_lik = tf.reshape(self.decode(flat).log_prob(repeated), (int(k), -1))
        log_w = log_lik + self.prior.log_prob(z) - posterior.log_prob(z)
        return tf.reduce_logsumexp(log_w, axis=0) - math.log(int(k))

    def get_config(self):
        config = super().get_config()
        config.update(input_shape=list(self.image_shape), latent_dim=self.latent_dim, filters=list(self.filters),
                      likelihood=self.likelihood, beta=self.beta, binarize=self.binarize, seed=self.seed)
        return config


def kl_closed_form(mu, sigma):
    """The seed's E^(f) = ½ Σ_k (μ_k² + σ_k² − ln σ_k² − 1), per example (for tests and readers)."""
    return 0.5 * tf.reduce_sum(mu ** 2 + sigma ** 2 - tf.math.log(sigma ** 2) - 1.0, axis=-1)
