"""zoo: a Keras 3 model zoo for adversarial examples, adversarial training, autoencoders, VAEs and
GANs, extended through pluggy plugins.

    >>> from zoo import load
    >>> model = load("convnet-digits")
"""
from zoo.api import (
    get_adversary_head,
    get_attack,
    get_augmentation,
    list_adversary_heads,
    list_attacks,
    list_augmentations,
    list_models,
    load,
)
from zoo.errors import ConfigError, DataError, PluginError, RegistryError, UnknownNameError, WeightsError, ZooError
from zoo.hookspecs import hookimpl
from zoo.spec import ModelSpec, TrainStep

__version__ = "0.1.0"
__all__ = [
    "ConfigError", "DataError", "ModelSpec", "PluginError", "RegistryError", "TrainStep", "UnknownNameError",
    "WeightsError", "ZooError", "get_adversary_head", "get_attack",
    "get_augmentation", "hookimpl", "list_adversary_heads", "list_attacks", "list_augmentations",
    "list_models", "load",
]
