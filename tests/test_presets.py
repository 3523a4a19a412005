"""Every registered preset builds, compiles with its recipe (its objective's trainer too) and
round-trips ``get_config`` — so a new preset is covered the moment it is registered. Every family's
export signatures are traced and compared with the Keras model in tests/test_export.py."""
import pytest

from zoo import list_models
from zoo.api import resolve
from zoo.registry import load_registry

PRESETS = sorted(load_registry())


@pytest.mark.parametrize("name", PRESETS)
def test_preset_builds_compiles_and_round_trips_its_config(name):
    import keras

    from zoo import load
    from zoo.training.steps import trainer_for

    spec, preset = resolve(name)
    model = load(name)
    assert model.optimizer is not None  # compiled for its plain loss, ready for fit/evaluate
    fitted = trainer_for(load(name, compile=False), preset.train)
    assert isinstance(fitted, keras.Model) and fitted.optimizer is not None
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert set(spec.config_defaults()) <= set(config)  # every config key of the family is serialised


def test_every_architecture_has_a_preset_and_every_preset_an_architecture():
    from zoo.plugins import get_plugin_manager

    architectures = {p.architecture for p in load_registry().values()}
    assert set(get_plugin_manager().models()) == architectures
    assert architectures <= set(list_models())
