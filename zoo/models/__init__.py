"""The core model families; they register through ``zoo_models()`` like any plugin.

Each family is one module of ``zoo.models`` plus its presets in registry.yaml; its spec names the
class by import path, so ``zoo list`` does not pay for importing TensorFlow, and the config keys and
their defaults are the class's own keyword arguments.
"""
from zoo.hookspecs import hookimpl
from zoo.spec import ModelSpec


def evaluate_las(model, dataset, **options):
    from zoo.models.las import evaluate_las as evaluate

    return evaluate(model, dataset, **options)


def _quality(function):
    """A lazy ``ModelSpec.evaluate`` from zoo.models.quality."""

    def evaluate(model, dataset, **options):
        from zoo.models import quality

        return getattr(quality, function)(model, dataset, **options)

    return evaluate


def _sample_grids(model, dataset, out_dir):
    from zoo.models.generative import sample_grid_callbacks

    return sample_grid_callbacks(model, dataset, out_dir)


@hookimpl
def zoo_models():
    # builders as import paths, defaults from their signatures: `zoo list` imports no TensorFlow
    return [
        ModelSpec("convnet", "zoo.models.convnet:ConvNet",
                  description="ConvNet classifier (conv/pool blocks, dense, softmax), trained with E = -ln y_true",
                  family="classifier"),
        ModelSpec("las", "zoo.models.las:LAS",
                  description="Listen, Attend and Spell: log-mel features, pyramidal BiLSTM listener, "
                              "attention LSTM speller",
                  family="las", evaluate=evaluate_las),
        ModelSpec("linear-ae", "zoo.models.ae:LinearAutoencoder",
                  description="two-layer linear autoencoder x^ = U^T U (x - u0) + u0 (its optimum is PCA), MSE",
                  family="autoencoder", evaluate=_quality("evaluate_autoencoder"), callbacks=_sample_grids),
        ModelSpec("ae", "zoo.models.ae:ConvAutoencoder",
                  description="deep convolutional autoencoder (nonlinear PCA), MSE",
                  family="autoencoder", evaluate=_quality("evaluate_autoencoder"), callbacks=_sample_grids),
        ModelSpec("vae", "zoo.models.vae:VAE",
                  description="convolutional VAE with tfp distributions: Gaussian posterior, N(0,I) prior, "
                              "Bernoulli/Normal decoder",
                  family="vae", evaluate=_quality("evaluate_vae"), callbacks=_sample_grids),
        ModelSpec("dcgan", "zoo.models.gan:DCGAN",
                  description="DCGAN: transposed-conv generator, LeakyReLU conv discriminator, cross-entropy minimax",
                  family="gan", evaluate=_quality("evaluate_gan"), callbacks=_sample_grids),
        ModelSpec("vaegan", "zoo.models.gan:VAEGAN",
                  description="VAE-GAN: a VAE whose decoder also fools a real/fake discriminator (Larsen et al. 2016)",
                  family="vaegan", evaluate=_quality("evaluate_vaegan"), callbacks=_sample_grids),
    ]
