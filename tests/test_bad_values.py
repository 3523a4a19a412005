"""One bad value for every field a user writes — each architecture's config keys (`--set`), every
train-step kind's step_params, every registry.yaml field — ends in exit status 2 and one line on
stderr naming the field, before anything is trained."""
import dataclasses
import typing

import pytest
import yaml

from zoo.api import resolve
from zoo.plugins import get_plugin_manager
from zoo.validate import signature_annotations

#: one preset per family, all on embedded data
FAMILY_PRESETS = ["convnet-digits", "ae-digits", "ae-linear-digits", "vae-digits", "dcgan-digits", "vaegan-digits",
                  "las-tones"]


def bad_value(annotation):
    """A YAML value of the wrong kind for ``annotation``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return bad_value(args[0])
    if origin is typing.Literal:
        return "nonsense"
    if annotation is bool:
        return "maybe"
    if annotation is str:
        return "[1, 2]"
    return "abc"  # numbers, lists, mappings


def run(argv, capsys):
    from zoo.cli import main

    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def cases_for_config():
    out = []
    for name in FAMILY_PRESETS:
        spec, _ = resolve(name)
        for key, annotation in sorted(signature_annotations(spec.builder).items()):
            if key in spec.config_defaults():
                out.append((name, key, bad_value(annotation)))
    return out


@pytest.mark.parametrize("preset, key, value", cases_for_config())
def test_every_config_key_refuses_a_bad_value(preset, key, value, capsys):
    code, err = run(["train", preset, "--epochs", "1", "--set", f"{key}={value}"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and f"field {key!r}" in err, err
    assert "Traceback" not in err


def registry_with(tmp_path, preset: dict) -> str:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"presets": {"p": preset}}))
    return str(path)


BASE = dict(architecture="convnet", dataset="digits", config=dict(input_shape=[8, 8, 1], filters=[4], dense=[8]),
            train=dict(optimizer="adam", learning_rate=0.01, epochs=1, batch_size=64))


def step_cases():
    kinds = get_plugin_manager().train_steps()
    out = []
    for kind in ("adversarial", "madry", "trades", "minimax"):
        params = kinds[kind].params
        hints = typing.get_type_hints(params, include_extras=True)
        required = dict(nuisance="noise", num_classes=3) if kind == "minimax" else {}
        for field in dataclasses.fields(params):
            if field.name == "attack_params":
                continue
            out.append((kind, field.name, {**required, field.name: yaml.safe_load(bad_value(hints[field.name]))}))
    return out


@pytest.mark.parametrize("kind, field, step_params", step_cases())
def test_every_step_param_refuses_a_bad_value(kind, field, step_params, tmp_path, monkeypatch, capsys):
    dataset = "digits_noise" if kind == "minimax" else "digits"
    preset = dict(BASE, dataset=dataset, train=dict(BASE["train"], step=kind, step_params=step_params))
    monkeypatch.setenv("ZOO_REGISTRY", registry_with(tmp_path, preset))
    code, err = run(["train", "p"], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"field {field!r}" in err and "preset 'p': train.step_params" in err, err


REGISTRY_CASES = [
    ("architecture", dict(BASE, architecture=7), "architecture"),
    ("dataset", dict(BASE, dataset=["digits"]), "dataset"),
    ("config", dict(BASE, config="big"), "config"),
    ("config.filters", dict(BASE, config=dict(BASE["config"], filters="wide")), "filters"),
    ("train", dict(BASE, train="fast"), "train"),
    ("optimizer", dict(BASE, train=dict(BASE["train"], optimizer="adamm")), "optimizer"),
    ("learning_rate", dict(BASE, train=dict(BASE["train"], learning_rate=float("inf"))), "train.learning_rate"),
    ("epochs", dict(BASE, train=dict(BASE["train"], epochs=0)), "train.epochs"),
    ("batch_size", dict(BASE, train=dict(BASE["train"], batch_size=2.5)), "train.batch_size"),
    ("step", dict(BASE, train=dict(BASE["train"], step="madri")), "madri"),
    ("step_params", dict(BASE, train=dict(BASE["train"], step_params=[1])), "train.step_params"),
    ("lr_schedule", dict(BASE, train=dict(BASE["train"], lr_schedule="step")), "train.lr_schedule"),
    ("ema_momentum", dict(BASE, train=dict(BASE["train"], ema_momentum=1.0)), "train.ema_momentum"),
    ("metadata", dict(BASE, metadata="about"), "metadata"),
    ("metadata.description", dict(BASE, metadata=dict(description=[1])), "metadata.description"),
    ("metadata.citation", dict(BASE, metadata=dict(citation=3)), "metadata.citation"),
    ("metadata.metrics", dict(BASE, metadata=dict(metrics="accuracy")), "metadata.metrics"),
    ("metadata.notes", dict(BASE, metadata=dict(notes={"a": 1})), "metadata.notes"),
    ("unknown field", dict(BASE, colour="blue"), "colour"),
]


@pytest.mark.parametrize("field, preset, named", REGISTRY_CASES, ids=[c[0] for c in REGISTRY_CASES])
def test_every_registry_field_refuses_a_bad_value(field, preset, named, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_REGISTRY", registry_with(tmp_path, preset))
    code, err = run(["train", "p"], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert named in err and "Traceback" not in err, err
