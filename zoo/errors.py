"""Errors zoo raises at its boundaries; each message says what was wrong and what is valid."""


class ZooError(Exception):
    """Base class of zoo's errors."""


class UnknownNameError(ZooError, LookupError):
    """An unknown model, preset, attack, head, augmentation or dataset name."""

    def __str__(self):  # LookupError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(ZooError, ValueError):
    """An override, option or saved run that does not fit the model."""
