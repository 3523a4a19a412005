"""ModelSpec: what a plugin's ``zoo_models()`` hook returns for each architecture."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """An architecture the zoo can build.

    Args:
        name: architecture name used by ``load`` and by presets (``"convnet"``).
        build: ``build(**config) -> keras.Model``.
        defaults: every config key ``build`` accepts, with its default value.
        description: one line shown by ``zoo list`` and ``zoo info``.
        family: ``"classifier"``, ``"autoencoder"``, ``"vae"``, ``"gan"``, ``"las"``, ...; selects
            the evaluation and export behaviour.
        evaluate: optional ``evaluate(model, dataset, **options) -> dict`` replacing the default
            ``model.evaluate`` on the test split.
        callbacks: optional ``callbacks(model, dataset, out_dir) -> list[keras.callbacks.Callback]``
            added to training (e.g. sample grids for generative models).
    """

    name: str
    build: Callable[..., Any]
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""
    family: str = "classifier"
    evaluate: Callable[..., dict] | None = None
    callbacks: Callable[..., list] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"ModelSpec.name must be a non-empty string, got {self.name!r}")
        if not callable(self.build):
            raise TypeError(f"ModelSpec {self.name!r}: build must be callable")
        object.__setattr__(self, "defaults", dict(self.defaults))
