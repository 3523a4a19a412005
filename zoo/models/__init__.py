"""The core model families; they register through ``zoo_models()`` like any plugin.

Builders import their module on first use, so ``zoo list`` does not pay for importing TensorFlow.
"""
from zoo.hookspecs import hookimpl
from zoo.spec import ModelSpec


def build_convnet(**config):
    from zoo.models.convnet import ConvNet

    return ConvNet(**config)


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
    ]
