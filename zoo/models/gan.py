"""The seed's generative adversarial networks: DCGAN and the VAE-GAN of its conclusion.

GAN criterion (the seed): the discriminator D computes ŷ = D(x), y = 1 for real and 0 for fake images,
and minimises the cross-entropy H(y‖ŷ) = −y ln ŷ − (1 − y) ln(1 − ŷ); the generator G makes x̂ = G(z)
and *maximises* that cross-entropy on its fakes. Maximising −ln(1 − D(G(z))) literally (``"minimax"``)
gives G vanishing gradients while D wins, so the default is the non-saturating form, G minimises
−ln D(G(z)) (Goodfellow et al. 2014), which has the same fixed point.

VAE-GAN (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity metric"): "train
the VAE so it can fool a real-versus-fake discriminative adversary". The encoder minimises the VAE loss;
the decoder minimises the VAE's reconstruction term plus the GAN generator loss on its reconstructions
and on prior samples (and, optionally, Larsen's learned-similarity term: the squared error between
D's hidden features of x and of its reconstruction); the discriminator separates real images from both.
"""
from __future__ import annotations

from typing import Literal

import keras
import tensorflow as tf

from zoo.models.generative import (
    GenerativeTrainer,
    average_over_global_batch,
    batch_noise,
    check_downsampling,
    check_images,
    conv_decoder,
    conv_encoder,
    images_of,
    normal_noise,
)
from zoo.models.vae import VAE, tfd
from zoo.validate import ImageShape, NonNegative, Seed, Size

G_LOSSES = ("non_saturating", "minimax")


def _optimizer_like(optimizer, name, learning_rate=None, beta_1=None):
    """A fresh optimizer of ``optimizer``'s class and settings (the discriminator's)."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):  # mixed precision: D gets its own loss scale
        return keras.optimizers.LossScaleOptimizer(_optimizer_like(optimizer.inner_optimizer, name, learning_rate, beta_1))
    config = dict(optimizer.get_config(), name=name)
    if learning_rate is not None:
        config["learning_rate"] = float(learning_rate)
    if beta_1 is not None and "beta_1" in config:
        config["beta_1"] = float(beta_1)
    return type(optimizer).from_config(config)


def _set_beta_1(optimizer, beta_1):
    """DCGAN's Adam β1 = 0.5 (Radford et al. 2016); ignored by optimizers without momentum β1."""
    if beta_1 is not None and hasattr(optimizer, "beta_1"):
        optimizer.beta_1 = float(beta_1)


def discriminator_features(discriminator, x, training=False):
    """D's last hidden representation (everything before its output unit)."""
    h = x
    for layer in discriminator.layers[:-1]:
        h = layer(h, training=training)
    return tf.cast(h, tf.float32)


class _AdversarialTrainer(GenerativeTrainer):
    """Compile-time handling shared by DCGAN and VAE-GAN: a second optimizer for D, built in compile."""

    def compile_extras(self, d_learning_rate=None, beta_1=0.5, g_loss="non_saturating"):
        if g_loss not in G_LOSSES:
            raise ValueError(f"g_loss must be one of {G_LOSSES}, got {g_loss!r}")
        self.g_loss_kind = g_loss
        _set_beta_1(getattr(self.optimizer, "inner_optimizer", self.optimizer), beta_1)
        self.d_optimizer = _optimizer_like(self.optimizer, "d_optimizer", d_learning_rate, beta_1)
        return dict(d_learning_rate=d_learning_rate, beta_1=beta_1, g_loss=g_loss)

    def generator_adversarial_loss(self, fake_logits):
        """Per-example generator loss from D's logits on fakes."""
        if self.g_loss_kind == "minimax":
            return -tf.nn.softplus(fake_logits)  # −H(0‖D(G(z))) = ln(1 − D(G(z))): G maximises D's cross-entropy
        return tf.nn.softplus(-fake_logits)  # −ln D(G(z))



@keras.saving.register_keras_serializable(package="zoo")
class DCGAN(_AdversarialTrainer, keras.Model):
    """DCGAN (Radford et al. 2016): transposed-conv generator with batch norm, LeakyReLU conv discriminator.

    Args:
        input_shape: image shape, pixels in [0, 1] (the generator ends in a sigmoid).
        latent_dim: size of z ~ N(0, I).
        generator_filters: channels of the generator's blocks, listed from the image side.
        discriminator_filters: channels of the discriminator's strided conv blocks.
        seed: seed of the model's noise.

    Compile (``train.step_params`` of a preset): ``g_loss`` (``"non_saturating"`` | ``"minimax"``),
    ``d_learning_rate`` (default: the generator's), ``beta_1`` (Adam β1, default 0.5).
    ``call(x)`` is D(x), the probability that ``x`` is real; ``generate(n)`` draws images.
    """

    family = "gan"

    def __init__(self, input_shape: ImageShape = (28, 28, 1), latent_dim: Size = 64,
                 generator_filters: tuple[Size, ...] = (64, 128), discriminator_filters: tuple[Size, ...] = (64, 128),
                 seed: Seed = 0, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in input_shape)
        self.latent_dim = int(latent_dim)
        self.generator_filters = tuple(int(f) for f in generator_filters)
        self.discriminator_filters = tuple(int(f) for f in discriminator_filters)
        self.seed = int(seed)
        check_downsampling(self.image_shape, self.generator_filters, "DCGAN generator")
        check_downsampling(self.image_shape, self.discriminator_filters, "DCGAN discriminator")
        self.generator = conv_decoder(self.latent_dim, self.image_shape, self.generator_filters, name="generator",
                                      batch_norm=True, output_activation="sigmoid")
        self.discriminator = conv_encoder(self.image_shape, self.discriminator_filters, 1, name="discriminator",
                                          leaky=True)
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="noise")
        self.g_loss_kind = "non_saturating"
        self.trackers = {k: keras.metrics.Mean(name=k) for k in ("d_loss", "g_loss", "d_real", "d_fake")}
        self.build((None, *self.image_shape))

    def build(self, input_shape):
        check_images(keras.KerasTensor(input_shape), self.image_shape, "DCGAN")
        super().build(input_shape)

    def call(self, x, training=False):
        """D(x): the probability that each image is real."""
        check_images(x, self.image_shape, "DCGAN")
        return tf.sigmoid(self.discriminator(x, training=training))

    def generate(self, n, seed=None):
        """``n`` images G(z), z ~ N(0, I); an integer ``seed`` makes them reproducible."""
        return self.generator(normal_noise((int(n), self.latent_dim), seed, self.seed_generator), training=False)

    def noise(self, batch):
        return batch_noise("normal", (batch, self.latent_dim), self.seed_generator)

    # -- the two objectives (per example, shape (batch,)) ---------------------------------------
    def discriminator_objective(self, x, z, training=True):
        """D's cross-entropy: real images labelled 1, G(z) labelled 0."""
        real_logits = tf.cast(self.discriminator(x, training=training)[:, 0], tf.float32)  # float32 losses under mixed precision
        fake_logits = tf.cast(self.discriminator(self.generator(z, training=training), training=training)[:, 0], tf.float32)
        return dict(d_loss=tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits),
                    d_real=tf.sigmoid(real_logits), d_fake=tf.sigmoid(fake_logits))

    def generator_objective(self, z, training=True):
        fake_logits = tf.cast(self.discriminator(self.generator(z, training=training), training=training)[:, 0], tf.float32)
        return dict(g_loss=self.generator_adversarial_loss(fake_logits))

    def train_step(self, data):
        x = images_of(data)
        batch = tf.shape(x)[0]
        d_vars, g_vars = self.discriminator.trainable_variables, self.generator.trainable_variables
        with tf.GradientTape() as tape:
            d_terms = self.discriminator_objective(x, self.noise(batch))
            d_loss = self.d_optimizer.scale_loss(average_over_global_batch(d_terms["d_loss"]))  # mixed precision
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, d_vars), d_vars))
        with tf.GradientTape() as tape:
            g_terms = self.generator_objective(self.noise(batch))
            g_loss = self.optimizer.scale_loss(average_over_global_batch(g_terms["g_loss"]))
        self.optimizer.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars))
        return self._report({**d_terms, **g_terms})

    def test_step(self, data):
        x = images_of(data)
        z = self.noise(tf.shape(x)[0])
        return self._report({**self.discriminator_objective(x, z, False), **self.generator_objective(z, False)})

    def optimizers_and_variables(self):
        return [(self.optimizer, self.generator.trainable_variables),
                (self.d_optimizer, self.discriminator.trainable_variables)]

    def get_config(self):
        config = super().get_config()
        config.update(input_shape=list(self.image_shape), latent_dim=self.latent_dim,
                      generator_filters=list(self.generator_filters),
                      discriminator_filters=list(self.discriminator_filters), seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="zoo")
class VAEGAN(_AdversarialTrainer, keras.Model):
    """A :class:`~zoo.models.vae.VAE` whose decoder must also fool a real/fake discriminator.

    Args (beyond the VAE's ``input_shape``, ``latent_dim``, ``filters``, ``likelihood``, ``beta``,
    ``binarize``, ``seed``):
        discriminator_filters: channels of the discriminator's strided conv blocks.
        gan_weight: γ, weight of the generator's adversarial loss in the decoder's objective.
        feature_weight: weight of Larsen's learned-similarity term ½‖D_l(x) − D_l(x̃)‖² (0 disables it).

    Compile: as :class:`DCGAN`. Methods: ``encode``, ``decode``, ``sample``/``generate``; ``call(x)``
    reconstructs.
    """

    family = "vaegan"

    def __init__(self, input_shape: ImageShape = (28, 28, 1), latent_dim: Size = 32, filters: tuple[Size, ...] = (32, 64),
                 likelihood: Literal["bernoulli", "normal"] = "bernoulli", beta: NonNegative = 1.0,
                 binarize: Literal["dynamic", "threshold", "none"] = "dynamic",
                 discriminator_filters: tuple[Size, ...] = (64, 128), gan_weight: NonNegative = 1.0,
                 feature_weight: NonNegative = 0.0, seed: Seed = 0, **kwargs):
        super().__init__(**kwargs)
        self.vae = VAE(input_shape, latent_dim, filters, likelihood, beta, binarize, seed, name="vae")
        self.image_shape = self.vae.image_shape
        self.latent_dim = self.vae.latent_dim
        self.discriminator_filters = tuple(int(f) for f in discriminator_filters)
        check_downsampling(self.image_shape, self.discriminator_filters, "VAE-GAN discriminator")
        if float(gan_weight) < 0 or float(feature_weight) < 0:
            raise ValueError(f"gan_weight and feature_weight must be >= 0, got {gan_weight!r}, {feature_weight!r}")
        self.gan_weight = float(gan_weight)
        self.feature_weight = float(feature_weight)
        self.discriminator = conv_encoder(self.image_shape, self.discriminator_filters, 1, name="discriminator",
                                          leaky=True)
        self.g_loss_kind = "non_saturating"
        self.trackers = {k: keras.metrics.Mean(name=k) for k in
                         ("loss", "reconstruction", "kl", "elbo", "d_loss", "g_loss", "d_real", "d_fake")}
        self.build((None, *self.image_shape))

    def build(self, input_shape):
        check_images(keras.KerasTensor(input_shape), self.image_shape, "VAE-GAN")
        super().build(input_shape)

    def encode(self, x, training=False):
        return self.vae.encode(x, training=training)

    def decode(self, z, training=False):
        return self.vae.decode(z, training=training)

    def sample(self, n, seed=None):
        return self.vae.sample(n, seed=seed)

    generate = sample

    def call(self, x, training=False):
        return self.vae(x, training=training)

    def discriminate(self, x):
        """D(x): the probability that each image is real."""
        return tf.sigmoid(self.discriminator(x, training=False))[:, 0]

    def objective(self, x, training=True, eps=None, z_prior=None):
        """Per-example terms: the VAE's, D's cross-entropy, the decoder's adversarial loss and the
        feature term, plus ``encoder_loss`` and ``decoder_loss`` (what each part minimises)."""
        vae = self.vae
        target = vae.targets(x, training)
        posterior = vae.encode(target, training=training)
        if eps is None:
            eps = batch_noise("normal", tf.shape(posterior.mean()), vae.seed_generator)
        if z_prior is None:
            z_prior = batch_noise("normal", tf.shape(posterior.mean()), vae.seed_generator)
        z = posterior.mean() + posterior.stddev() * eps
        likelihood = vae.decode(z, training=training)
        reconstruction = -likelihood.log_prob(target)
        kl = tfd.kl_divergence(posterior, vae.prior)
        x_rec = likelihood.mean()
        x_prior = vae.decode(z_prior, training=training).mean()
        # D sees grey-level images on both sides: real x and the decoder's mean images.
        real_logits = tf.cast(self.discriminator(x, training=training)[:, 0], tf.float32)
        rec_logits = tf.cast(self.discriminator(x_rec, training=training)[:, 0], tf.float32)
        prior_logits = tf.cast(self.discriminator(x_prior, training=training)[:, 0], tf.float32)
        d_loss = tf.nn.softplus(-real_logits) + 0.5 * (tf.nn.softplus(rec_logits) + tf.nn.softplus(prior_logits))
        g_loss = 0.5 * (self.generator_adversarial_loss(rec_logits) + self.generator_adversarial_loss(prior_logits))
        terms = dict(reconstruction=reconstruction, kl=kl, elbo=-(reconstruction + kl),
                     loss=reconstruction + vae.beta * kl, d_loss=d_loss, g_loss=g_loss,
                     d_real=tf.sigmoid(real_logits), d_fake=tf.sigmoid(prior_logits))
        feature = tf.zeros_like(reconstruction)
        if self.feature_weight:
            diff = discriminator_features(self.discriminator, x, training) - \
                discriminator_features(self.discriminator, x_rec, training)
            feature = 0.5 * tf.reduce_sum(tf.square(diff), axis=-1)
        terms["encoder_loss"] = terms["loss"] + self.feature_weight * feature
        terms["decoder_loss"] = reconstruction + self.feature_weight * feature + self.gan_weight * g_loss
        return terms

    def train_step(self, data):
        x = images_of(data)
        enc, dec = self.vae.encoder.trainable_variables, self.vae.decoder.trainable_variables
        disc = self.discriminator.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            terms = self.objective(x, training=True)
            losses = {k: average_over_global_batch(terms[k]) for k in ("encoder_loss", "decoder_loss", "d_loss")}
            # mixed precision: each optimizer's loss scale on the losses it differentiates
            losses = {k: (self.d_optimizer if k == "d_loss" else self.optimizer).scale_loss(v) for k, v in losses.items()}
        grads = tape.gradient(losses["encoder_loss"], enc) + tape.gradient(losses["decoder_loss"], dec)
        d_grads = tape.gradient(losses["d_loss"], disc)
        del tape
        self.optimizer.apply_gradients(zip(grads, enc + dec))
        self.d_optimizer.apply_gradients(zip(d_grads, disc))
        return self._report(terms)

    def test_step(self, data):
        return self._report(self.objective(images_of(data), training=False))

    def importance_weighted_bound(self, x, k=100):
        return self.vae.importance_weighted_bound(x, k)

    def optimizers_and_variables(self):
        return [(self.optimizer, self.vae.encoder.trainable_variables + self.vae.decoder.trainable_variables),
                (self.d_optimizer, self.discriminator.trainable_variables)]

    def get_config(self):
        config = super().get_config()
        vae = self.vae.get_config()
        config.update({k: vae[k] for k in ("input_shape", "latent_dim", "filters", "likelihood", "beta",
                                           "binarize", "seed")})
        config.update(discriminator_filters=list(self.discriminator_filters), gan_weight=self.gan_weight,
                      feature_weight=self.feature_weight)
        return config
