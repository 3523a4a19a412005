"""The core model families; they register through ``zoo_models()`` like any plugin.

Builders import their module on first use, so ``zoo list`` does not pay for importing TensorFlow.
"""
from zoo.hookspecs import hookimpl
from zoo.spec import ModelSpec


def build_convnet(**config):
    from zoo.models.convnet import ConvNet

    return ConvNet(**config)


def build_las(**config):
    from zoo.models.las import LAS

    return LAS(**config)


def evaluate_las(model, dataset, **options):
    from zoo.models.las import evaluate_las as evaluate

    return evaluate(model, dataset, **options)


def _generative(module, cls):
    """A lazy builder for a class of the generative families."""

    def build(**config):
        import importlib

        return getattr(importlib.import_module(f"zoo.models.{module}"), cls)(**config)

    build.__name__ = f"build_{cls}"
    return build


def _quality(function):
    """A lazy ``ModelSpec.evaluate`` from zoo.models.quality."""

    def evaluate(model, dataset, **options):
        from zoo.models import quality

        return getattr(quality, function)(model, dataset, **options)

    return evaluate


def _sample_grids(model, dataset, out_dir):
    from zoo.models.generative import sample_grid_callbacks

    return sample_grid_callbacks(model, dataset, out_dir)


def generative_specs():
    """Autoencoders, VAE, DCGAN and VAE-GAN (issue 4)."""
    image = dict(input_shape=(28, 28, 1))
    vae = dict(image, latent_dim=32, filters=(32, 64), likelihood="bernoulli", beta=1.0, binarize="dynamic", seed=0)
    return [
        ModelSpec("linear-ae", _generative("ae", "LinearAutoencoder"), dict(image, latent_dim=16, tied=False, seed=0),
                  "two-layer linear autoencoder x^ = U^T U (x - u0) + u0 (its optimum is PCA), MSE",
                  family="autoencoder", evaluate=_quality("evaluate_autoencoder"), callbacks=_sample_grids),
        ModelSpec("ae", _generative("ae", "ConvAutoencoder"), dict(image, latent_dim=32, filters=(32, 64)),
                  "deep convolutional autoencoder (nonlinear PCA), MSE",
                  family="autoencoder", evaluate=_quality("evaluate_autoencoder"), callbacks=_sample_grids),
        ModelSpec("vae", _generative("vae", "VAE"), vae,
                  "convolutional VAE with tfp distributions: Gaussian posterior, N(0,I) prior, Bernoulli/Normal decoder",
                  family="vae", evaluate=_quality("evaluate_vae"), callbacks=_sample_grids),
        ModelSpec("dcgan", _generative("gan", "DCGAN"),
                  dict(image, latent_dim=64, generator_filters=(64, 128), discriminator_filters=(64, 128), seed=0),
                  "DCGAN: transposed-conv generator, LeakyReLU conv discriminator, cross-entropy minimax",
                  family="gan", evaluate=_quality("evaluate_gan"), callbacks=_sample_grids),
        ModelSpec("vaegan", _generative("gan", "VAEGAN"),
                  dict(vae, discriminator_filters=(64, 128), gan_weight=1.0, feature_weight=0.0),
                  "VAE-GAN: a VAE whose decoder also fools a real/fake discriminator (Larsen et al. 2016)",
                  family="vaegan", evaluate=_quality("evaluate_vaegan"), callbacks=_sample_grids),
    ]


@hookimpl
def zoo_models():
    return [
        ModelSpec(
            "convnet", build_convnet,
            dict(input_shape=(28, 28, 1), num_classes=10, filters=(32, 64), kernel_size=3, pool=2,
                 dense=(128,), dropout=0.0, output="softmax"),
            "ConvNet classifier (conv/pool blocks, dense, softmax), trained with E = -ln y_true",
            family="classifier",
        ),
        ModelSpec(
            "las", build_las,
            dict(sample_rate=8000, frame_length=256, frame_step=128, fft_length=256, num_mels=40,
                 features="logmel", num_mfcc=13, listener_layers=2, listener_units=128, speller_units=256,
                 embedding_dim=32, attention_dim=128, max_output_length=40, beam_width=1,
                 scheduled_sampling=0.0, dropout=0.0, freq_masks=0, freq_mask_width=8, time_masks=0,
                 time_mask_width=10, feature_norm="channel"),
            "Listen, Attend and Spell: log-mel features, pyramidal BiLSTM listener, attention LSTM speller",
            family="las",
            evaluate=evaluate_las,
        ),
        *generative_specs(),
    ]
