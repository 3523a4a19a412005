"""Every error zoo raises for something a user or a plugin did, in one module.

Each is a :class:`ZooError`; the CLI prints its message as one line and exits with status 2.
A message says what was wrong, where (file, preset, field, plugin) and how to recover where
there is a way.
"""


class ZooError(Exception):
    """Base class of zoo's errors."""


class UnknownNameError(ZooError, LookupError):
    """An unknown model, preset, attack, head, augmentation, dataset or train-step name."""

    def __str__(self):  # LookupError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(ZooError, ValueError):
    """An override, option, step parameter or saved run that does not fit the model."""


class RegistryError(ZooError, ValueError):
    """registry.yaml is malformed; the message names the file, the preset and the field."""


class DataError(ZooError, ValueError):
    """Data of the wrong shape, dtype or range, or a dataset that cannot be found."""


class PluginError(ZooError, RuntimeError):
    """A plugin conflict or misuse that zoo cannot resolve on its own; names the distribution."""


class WeightsError(ZooError, ValueError):
    """Weights that cannot be found, fetched, verified or unpacked: a pack, a run directory, an archive
    or a URL; names the location, and for a hash mismatch both hashes."""
