"""Adversarial-example training steps: the α-mix of Goodfellow's loss is exact, and a few epochs
of Madry's PGD training make a tiny digits ConvNet measurably more robust."""
import numpy as np
import pytest

from zoo import ConfigError, UnknownNameError, get_attack, load
from zoo.registry import TrainRecipe
from zoo.training.steps import trainer_for

TINY = dict(input_shape=(8, 8, 1), filters=(8, 16), dense=(32,), dropout=0.0)


@pytest.fixture(scope="module")
def digits_arrays():
    from zoo.data import load_dataset

    d = load_dataset("digits")
    return (*d.arrays("train"), *d.arrays("test"))


def recipe(step, **step_params):
    return TrainRecipe(optimizer="adam", learning_rate=0.01, step=step, step_params=step_params)


def trainer(step, output="softmax", **step_params):
    """The network (``.network``) wrapped in the compiled trainer model of ``step``."""
    return trainer_for(load("convnet", compile=False, output=output, **TINY), recipe(step, **step_params))


@pytest.mark.parametrize("output", ["softmax", "logits"])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_loss_mixes_clean_and_adversarial_by_alpha(digits_arrays, alpha, output):
    import keras

    x, y = digits_arrays[0][:32], digits_arrays[1][:32]
    keras.utils.set_random_seed(0)
    fitted = trainer("adversarial", output, attack="fgsm", eps=0.1, alpha=alpha)
    model = fitted.network
    loss, _ = fitted.objective(x, y, training=False)
    x_adv = get_attack("fgsm", eps=0.1)(model, x, y)  # deterministic, so the same examples as in the step
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=output == "logits", reduction=None)
    expected = np.mean(alpha * ce(y, model(x)).numpy() + (1 - alpha) * ce(y, model(x_adv)).numpy())
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert not np.allclose(ce(y, model(x)).numpy(), ce(y, model(x_adv)).numpy())  # the mix is not trivial


@pytest.mark.parametrize("output", ["softmax", "logits"])
def test_trades_loss_is_clean_cross_entropy_plus_beta_kl(digits_arrays, output):
    import keras

    x, y = digits_arrays[0][:32], digits_arrays[1][:32]
    keras.utils.set_random_seed(0)
    fitted = trainer("trades", output, attack="fgsm", eps=0.3, beta=2.0)
    model = fitted.network
    loss, outputs = fitted.objective(x, y, training=False)
    x_adv = get_attack("fgsm", eps=0.3)(model, x, y)
    to_probs = (lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
                ) if output == "logits" else (lambda p: p)
    p, q = to_probs(model(x).numpy().astype(np.float64)), to_probs(model(x_adv).numpy().astype(np.float64))
    kl = np.sum(p * (np.log(p) - np.log(q)), axis=-1)
    ce = -np.log(p[np.arange(len(y)), y])
    assert kl.mean() > 1e-3  # the attack moved the prediction, so the KL term is not trivial
    assert float(loss) == pytest.approx(np.mean(ce + 2.0 * kl), rel=1e-4)
    z = outputs["adv_logits"].numpy().astype(np.float64)
    np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(-1, keepdims=True), q, rtol=1e-4, atol=1e-6)
    fitted.fit(x, y, epochs=1, batch_size=16, verbose=0, validation_data=(x, y))  # train and test steps run


def test_warmup_scales_the_perturbation_with_the_optimizer_step(digits_arrays):
    import keras

    x, y = digits_arrays[0][:32], digits_arrays[1][:32]
    keras.utils.set_random_seed(0)
    pgd = dict(eps=0.3, steps=3, step_size=0.1, random_start=False)  # deterministic: the step's examples
    objective = trainer("madry", attack="pgd", warmup_steps=4, **pgd)
    model = objective.network
    x_adv = get_attack("pgd", **pgd)(model, x, y)
    ce = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    for iterations, scale in ((0, 0.25), (2, 0.75), (9, 1.0)):
        objective.optimizer.iterations.assign(iterations)
        loss, _ = objective.objective(x, y, training=True)
        assert float(loss) == pytest.approx(np.mean(ce(y, model(x + scale * (x_adv - x))).numpy()), rel=1e-5)
    loss, _ = objective.objective(x, y, training=False)  # evaluation always sees the full ε
    objective.optimizer.iterations.assign(0)
    assert float(loss) == pytest.approx(np.mean(ce(y, model(x_adv)).numpy()), rel=1e-5)


def test_augmentation_plugin_transforms_training_batches_before_the_attack(digits_arrays):
    import keras

    x, y = digits_arrays[0][:32], digits_arrays[1][:32]
    keras.utils.set_random_seed(0)
    pgd = dict(eps=0.3, steps=3, step_size=0.1, random_start=False)
    flip = dict(name="image", rotation=0.0, translation=0.0, zoom=0.0, flip="horizontal")
    fitted = trainer("madry", attack="pgd", augmentation=flip, **pgd)
    model = fitted.network
    _, outputs = fitted.objective(x, y, training=True)
    seen = outputs["x"].numpy()
    flipped = np.all(seen == x[:, :, ::-1], axis=(1, 2, 3))
    assert flipped.any() and not flipped.all()  # a random horizontal flip per image
    assert np.array_equal(outputs["y"], y)
    x_adv = get_attack("pgd", **pgd)(model, seen, y)  # the attack ran on the augmented images
    np.testing.assert_allclose(outputs["adv_logits"], model.logits(x_adv), rtol=1e-5, atol=1e-5)
    _, outputs = fitted.objective(x, y, training=False)
    assert np.array_equal(outputs["x"], x)  # evaluation batches are never augmented
    fitted.fit(x, y, epochs=1, batch_size=16, verbose=0)  # and the step runs under fit


def robustness(model, x, y, attack):
    return float(np.mean(np.asarray(model(attack(model, x, y))).argmax(-1) == y))


def test_madry_training_improves_robustness(digits_arrays):
    """Same tiny ConvNet, data and epochs: Madry PGD training beats plain training under PGD at
    ε = 0.1 by a wide margin, and its epoch logs report clean and adversarial accuracy."""
    import keras

    x_train, y_train, x_test, y_test = digits_arrays
    pgd = get_attack("pgd", eps=0.1, steps=10, step_size=0.025)
    trained = {}
    for step, params in [("supervised", {}),
                         ("madry", dict(attack="pgd", eps=0.1, steps=4, step_size=0.04, random_start=True))]:
        keras.utils.set_random_seed(0)
        fitted = trainer(step, **params)
        model = getattr(fitted, "network", fitted)  # supervised: the network is what fit trains
        history = fitted.fit(x_train, y_train, epochs=5, batch_size=64, verbose=0,
                            validation_data=(x_test[:100], y_test[:100]))
        trained[step] = model
    assert {"loss", "accuracy", "adv_accuracy", "val_accuracy", "val_adv_accuracy"} <= set(history.history)
    plain, madry = trained["supervised"], trained["madry"]
    assert min(float(np.mean(np.asarray(m(x_test)).argmax(-1) == y_test)) for m in trained.values()) > 0.8
    assert robustness(madry, x_test, y_test, pgd) > robustness(plain, x_test, y_test, pgd) + 0.2


@pytest.mark.parametrize("params,error,message", [
    (dict(attack="fgsm", alpha=1.5), ConfigError, r"field 'alpha': must be >= 0 and <= 1, got 1.5"),
    (dict(attack="fgsm", alpha="half"), ConfigError, "field 'alpha': expected a number"),
    (dict(attack="fgsm", attack_labels="guessed"), ConfigError, "field 'attack_labels': expected one of 'true', 'predicted'"),
    (dict(attack=["pgd"]), ConfigError, "field 'attack': expected a string"),
    (dict(attack="pgdd"), UnknownNameError, "pgd"),
    (dict(attack="pgd", epsilon=0.3), ConfigError, "unknown parameter.*epsilon"),
    (dict(attack="pgd", aplha=0.3), ConfigError, "did you mean 'alpha'"),
    (dict(attack="fgsm", warmup_steps=-1), ConfigError, "field 'warmup_steps': must be >= 0"),
    (dict(attack="fgsm", augmentation="image"), ConfigError, "field 'augmentation': expected a mapping"),
    (dict(attack="fgsm", augmentation=dict(name="image", shear=0.1)), ConfigError, "unknown parameter"),
])
def test_bad_step_params_are_refused(params, error, message):
    with pytest.raises(error, match=message):
        trainer("adversarial", **params)


@pytest.mark.parametrize("params,message", [
    (dict(beta=-1.0), "field 'beta': must be >= 0"),
    (dict(beta="six"), "field 'beta': expected a number"),
    (dict(alpha=0.5), "unknown parameter.*alpha.*own fields: .*beta"),
])
def test_bad_trades_params_are_refused(params, message):
    with pytest.raises(ConfigError, match=message):
        trainer("trades", **params)


@pytest.mark.parametrize("step", ["own", "minimax"])
def test_a_kind_that_cannot_train_the_model_is_refused_before_training(step):
    params = dict(nuisance="noise", num_classes=3) if step == "minimax" else {}
    if step == "minimax":  # an autoencoder has no classifier features for a head to read
        model = load("ae", compile=False, input_shape=(8, 8, 1), latent_dim=2, filters=(4,))
    else:
        model = load("convnet", compile=False, **TINY)
    with pytest.raises(ConfigError, match=f"train step '{step}' cannot train"):
        trainer_for(model, recipe(step, **params))


def zoo_registry():
    from zoo.registry import load_registry

    return load_registry()


def test_presets_compile_with_their_steps():
    for name, kind in [("convnet-mnist-fgsm-trained", "fgsm"), ("convnet-mnist-pgd-trained", "pgd"),
                       ("convnet-digits-pgd-trained", "pgd")]:
        model = load(name, filters=(4,), dense=(8,))
        fitted = trainer_for(model, zoo_registry()[name].train)
        assert fitted.network is model and fitted.attack.name == kind
