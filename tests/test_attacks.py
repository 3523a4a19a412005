"""Attack plugins: the ε-ball and clip contract, eps=0, untouched inputs, targeted hits, accuracy
drops, probability and logit models alike, clear errors, and ``zoo attack``.

One tiny ConvNet (logits) and one plain ``keras.Sequential`` (softmax, no ``.logits``) are trained
once per module on the embedded 8×8 digits; hypothesis draws few examples because every new attack
object traces a new graph.
"""
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo import ConfigError, DataError, get_attack, list_attacks

ALL = ["gradient", "fgsm", "bim", "pgd", "mim", "cw", "deepfool", "square"]
# (attack, norm) pairs each attack supports
NORMS = [("gradient", "inf"), ("gradient", "l2"), ("fgsm", "inf"), ("fgsm", "l2"), ("bim", "inf"), ("bim", "l2"),
         ("pgd", "inf"), ("pgd", "l2"), ("mim", "inf"), ("mim", "l2"), ("cw", "l2"), ("deepfool", "inf"),
         ("deepfool", "l2"), ("square", "inf")]
FEW = settings(max_examples=2, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
N = 64  # attacked examples per call


def fast_params(name, **params):
    """Small iteration counts so each call is quick; strong enough for the strength tests."""
    defaults = dict(gradient=dict(steps=10), bim=dict(steps=10), pgd=dict(steps=10), mim=dict(steps=10),
                    cw=dict(steps=60, step_size=0.1, binary_search_steps=3, initial_const=1.0),
                    deepfool=dict(steps=10), square=dict(steps=300), fgsm={})
    return {**defaults[name], **params}


@pytest.fixture(scope="module")
def data(digits_split):
    x_train, y_train, x_test, y_test = digits_split
    return x_train, y_train, x_test[:N], y_test[:N]


@pytest.fixture(scope="module")
def models(attack_models):
    return {"convnet": attack_models["convnet"], "sequential": attack_models["sequential"]}


def accuracy(model, x, y):
    return float(np.mean(np.asarray(model(x)).argmax(-1) == y))


def norms(x_adv, x):
    delta = (np.asarray(x_adv, np.float64) - x).reshape(len(x), -1)
    return np.abs(delta).max(axis=1), np.linalg.norm(delta, axis=1)


def test_every_attack_is_registered():
    assert set(ALL) <= set(list_attacks())


@pytest.mark.parametrize("name,norm", NORMS)
def test_result_stays_in_ball_and_clip(models, data, name, norm):
    _, _, x, y = data

    @FEW
    @given(eps=st.sampled_from([0.05, 0.15, 0.4] if norm == "inf" else [0.3, 1.0, 2.5]),
           shrink=st.booleans(), targeted=st.booleans(), model_name=st.sampled_from(sorted(models)))
    def check(eps, shrink, targeted, model_name):
        model = models[model_name]
        # A narrower clip box (inputs rescaled into it) must be respected as well as [0, 1].
        clip = (0.2, 0.8) if shrink else (0.0, 1.0)
        xs = (0.2 + 0.6 * x if shrink else x)[:16]
        before = xs.copy()
        params = dict(eps=eps, norm=norm, clip=clip)
        if name in ("bim", "pgd", "mim") and not targeted:
            params.update(random_start=True, restarts=2, early_exit=shrink)
        attack = get_attack(name, **fast_params(name, **params))
        target = (y[:16] + 3) % 10 if targeted else None
        x_adv = attack(model, xs, y[:16], target=target)
        assert isinstance(x_adv, np.ndarray) and x_adv.shape == xs.shape and x_adv.dtype == xs.dtype
        np.testing.assert_array_equal(xs, before)  # the caller's array is untouched
        assert np.all(np.isfinite(x_adv))
        assert x_adv.min() >= clip[0] and x_adv.max() <= clip[1]
        linf, l2 = norms(x_adv, xs)
        assert (linf if norm == "inf" else l2).max() <= eps * (1 + 1e-5) + 1e-6

    check()


@pytest.mark.parametrize("name", ALL)
def test_eps_zero_returns_the_input(models, data, name):
    _, _, x, y = data
    norm = "l2" if name == "cw" else "inf"
    x_adv = get_attack(name, **fast_params(name, eps=0.0, norm=norm))(models["sequential"], x[:16], y[:16])
    np.testing.assert_array_equal(x_adv, x[:16])


def test_tensor_input_gives_tensor_and_is_unchanged(models, data):
    import tensorflow as tf

    _, _, x, y = data
    variable = tf.Variable(x[:8])
    x_adv = get_attack("pgd", eps=0.2, steps=3)(models["convnet"], variable, y[:8])
    assert tf.is_tensor(x_adv) and x_adv.shape == (8, 8, 8, 1)
    np.testing.assert_array_equal(variable.numpy(), x[:8])


STRONG = {"gradient": dict(eps=0.3, steps=20, step_size=20.0), "fgsm": dict(eps=0.3),
          "bim": dict(eps=0.3, steps=20, step_size=0.03), "pgd": dict(eps=0.3, steps=20, step_size=0.03),
          "mim": dict(eps=0.3, steps=20, step_size=0.03), "cw": {}, "deepfool": dict(steps=30), "square": dict(eps=0.3, steps=500)}


# Hit rate on a random other class each attack must reach at ε = 0.3 (L∞) on the 8×8 digits;
# FGSM is a single linearised step, so only "far above chance (~0)" is asked of it.
TARGET_HIT = dict(gradient=0.6, fgsm=0.3, bim=0.9, pgd=0.9, mim=0.9, cw=0.9, deepfool=0.95, square=0.7)


@pytest.mark.parametrize("model_name", ["convnet", "sequential"])
@pytest.mark.parametrize("name", ALL)
def test_attack_lowers_accuracy_and_hits_targets(models, data, name, model_name):
    model = models[model_name]
    _, _, x, y = data
    attack = get_attack(name, **fast_params(name, **STRONG[name]))
    clean = accuracy(model, x, y)
    assert clean > 0.8
    adv = accuracy(model, attack(model, x, y), y)
    # The seed's raw-gradient step is weak by design (tiny gradients where ŷ ≈ 1); the rest must crush it.
    assert adv < clean - 0.3 if name == "gradient" else adv < 0.25 * clean
    target = (y + np.random.default_rng(1).integers(1, 10, len(y))) % 10
    hit = float(np.mean(np.asarray(model(attack(model, x, y, target=target))).argmax(-1) == target))
    assert hit >= TARGET_HIT[name]


def test_seed_targeted_objective_is_available_and_weaker(models, data):
    """``targeted_loss="seed"`` ascends the lecture's ln ŷ_target − ln ŷ_true (a logit gap that
    ignores third classes); the default ln ŷ_target reaches the target more often."""
    model = models["convnet"]
    _, _, x, y = data
    target = (y + np.random.default_rng(2).integers(1, 10, len(y))) % 10
    hits = {}
    for form in ("seed", "target"):
        x_adv = get_attack("bim", eps=0.2, steps=20, step_size=0.03, targeted_loss=form)(model, x, y, target=target)
        hits[form] = float(np.mean(np.asarray(model(x_adv)).argmax(-1) == target))
    assert 0.2 < hits["seed"] < hits["target"]


def test_pgd_l2_targeted_hits_the_target(models, data):
    _, _, x, y = data
    target = (y + 5) % 10
    x_adv = get_attack("pgd", eps=2.5, norm="l2", steps=20, step_size=0.3)(models["convnet"], x, y, target=target)
    assert np.mean(np.asarray(models["convnet"](x_adv)).argmax(-1) == target) >= 0.9


def test_early_exit_fools_exactly_the_same_examples(models, data):
    """Without a random start the iterates agree until an example is fooled, so stopping it early
    must not change which examples the attack fools."""
    model = models["convnet"]
    _, _, x, y = data
    full = get_attack("bim", eps=0.1, steps=10, step_size=0.02)(model, x, y)
    early = get_attack("bim", eps=0.1, steps=10, step_size=0.02, early_exit=True)(model, x, y)
    fooled_full = np.asarray(model(full)).argmax(-1) != y
    fooled_early = np.asarray(model(early)).argmax(-1) != y
    assert 0 < fooled_full.sum() < len(y)  # neither trivial nor hopeless at this ε
    np.testing.assert_array_equal(fooled_full, fooled_early)


def test_y_none_attacks_the_models_own_predictions(models, data):
    model = models["sequential"]
    _, _, x, _ = data
    attack = get_attack("bim", eps=0.1, steps=5, step_size=0.02)
    predicted = np.asarray(model(x)).argmax(-1)
    np.testing.assert_allclose(attack(model, x), attack(model, x, predicted), atol=1e-6)


def test_probability_and_logit_models_give_the_same_attack(models, data):
    """A softmax model is attacked through its exact logits, not ln(clip(p)): it must give the same
    FGSM as its logit twin even when it is so confident that ŷ rounds to 1 (where clipping the
    probabilities, as early Foolbox did, leaves no gradient)."""
    import keras

    _, _, x, y = data
    probs = models["sequential"]
    conv, dense = probs.layers[0], probs.layers[-1]
    confident = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                                  keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    logits = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                               keras.layers.Flatten(), keras.layers.Dense(10)])
    for model in (confident, logits):
        model.layers[0].set_weights(conv.get_weights())
        kernel, bias = dense.get_weights()
        model.layers[-1].set_weights([kernel * 8.0, bias * 8.0])  # sharpen: most top probabilities near 1
    logits.output_kind = "logits"
    assert np.mean(np.asarray(confident(x)).max(-1) > 1 - 1e-6) > 0.3
    fgsm = get_attack("fgsm", eps=0.2)
    a, b = fgsm(confident, x, y), fgsm(logits, x, y)
    assert np.mean(np.all(np.isclose(a, b, atol=1e-6), axis=(1, 2, 3))) > 0.9
    assert accuracy(confident, a, y) < 0.5


def test_logit_model_without_output_kind_is_refused(models, data):
    import keras

    _, _, x, y = data
    plain = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(ConfigError, match="not class probabilities.*output_kind"):
        get_attack("fgsm", eps=0.1)(plain, x, y)


def test_model_with_only_attack_loss(data):
    """Any differentiable objective: a model exposing only ``attack_loss`` (like LAS) is attacked
    through it; attacks that read class scores say so."""
    import keras
    import tensorflow as tf

    _, _, x, y = data

    class Regressor(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, inputs):
            return self.dense(keras.ops.reshape(inputs, (-1, 64)))

        def attack_loss(self, inputs, labels, training=False):
            return tf.square(self(inputs)[:, 0] - tf.cast(labels, tf.float32))

    model = Regressor()
    model(x)
    before = model.attack_loss(x, y).numpy()
    x_adv = get_attack("pgd", eps=0.1, steps=5, step_size=0.05)(model, x, y)
    assert np.mean(model.attack_loss(x_adv, y).numpy()) > np.mean(before)
    with pytest.raises(ConfigError, match="class scores"):
        get_attack("cw")(model, x, y)
    with pytest.raises(ConfigError, match="pass y"):
        get_attack("pgd")(model, x)


def test_runs_inside_a_tf_function(models, data):
    import tensorflow as tf

    _, _, x, y = data
    attack = get_attack("bim", eps=0.2, steps=2, step_size=0.1)
    x_adv = tf.function(lambda a, b: attack(models["convnet"], a, b))(tf.constant(x), tf.constant(y))
    assert np.abs(x_adv.numpy() - x).max() <= 0.2 + 1e-6


# -- errors -----------------------------------------------------------------------------------
bad_numbers = st.one_of(st.floats(max_value=-1e-3, allow_nan=False), st.just(float("nan")), st.just("0.3"),
                        st.just(True), st.just(None), st.just([0.3]))


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(["fgsm", "bim", "pgd", "mim", "square", "gradient"]), eps=bad_numbers)
def test_bad_eps_is_refused(name, eps):
    with pytest.raises(ConfigError, match=f"{name}: eps"):
        get_attack(name, eps=eps)


@pytest.mark.parametrize("name,params,message", [
    ("pgd", dict(epsilon=0.3), "unknown parameter.*epsilon.*valid: .*eps"),
    ("pgd", dict(norm="l1"), "norm must be one of"),
    ("pgd", dict(steps=0), "steps must be an integer >= 1"),
    ("pgd", dict(steps=2.5), "steps must be an integer"),
    ("pgd", dict(random_start=False, restarts=3), "restarts=3 needs random_start"),
    ("pgd", dict(clip=(1.0, 0.0)), "low < high"),
    ("pgd", dict(clip=(0, 0.5, 1)), "clip must be a pair"),
    ("pgd", dict(eps=math.inf), "eps must be finite"),
    ("pgd", dict(early_exit="yes"), "early_exit must be true or false"),
    ("pgd", dict(targeted_loss="margin"), "targeted_loss must be"),
    ("fgsm", dict(steps=3), "exactly one step"),
    ("cw", dict(norm="inf"), "norm must be one of l2"),
    ("cw", dict(random_start=True), "random_start"),
    ("deepfool", dict(early_exit=False), "early_exit must be true"),
    ("square", dict(norm="l2"), "norm must be one of inf"),
    ("square", dict(p_init=1.5), "p_init must be"),
])
def test_bad_parameters_are_refused(name, params, message):
    with pytest.raises(ConfigError, match=message):
        get_attack(name, **params)


@pytest.mark.parametrize("name, params", [
    ("pgd", dict(eps=0.2, steps=7, restarts=2)), ("mim", dict(decay=0.5, steps=4)), ("fgsm", dict(random_start=True)),
    ("gradient", dict(step_size=3.0)), ("bim", {}), ("cw", dict(steps=5)), ("deepfool", {}), ("square", dict(steps=9)),
    ("apgd", dict(loss="dlr")), ("fab", {}), ("autoattack", dict(version="plus")),
])
def test_params_rebuild_the_attack(name, params):
    """A report's or a pack card's parameters are the constructor's: JSON of them builds the same attack."""
    attack = get_attack(name, **params)
    listed = json.loads(json.dumps(attack.params()))
    assert {k: listed[k] for k in params} == json.loads(json.dumps(params))
    assert get_attack(name, **listed).params() == attack.params()


def test_unknown_attack_lists_close_matches():
    from zoo import UnknownNameError

    with pytest.raises(UnknownNameError, match="pgd"):
        get_attack("pdg")


def test_bad_inputs_are_refused(models, data):
    _, _, x, y = data
    model, attack = models["convnet"], get_attack("fgsm", eps=0.1)
    cases = [
        ((x * 255).astype(np.uint8), y, None, "floating-point"),
        (x * 2.0, y, None, r"clip range \[0.0, 1.0\]"),
        (np.where(x > 0.5, np.nan, x), y, None, "NaN"),
        (x[:0], y[:0], None, "empty batch"),
        (x[0, 0, 0], y[:1], None, "must be a batch"),
        (x, y[:-1], None, "y has 63 entries for a batch of 64"),
        (x, y + 10, None, r"class ids in 0..9"),
        (x, y + 0.5, None, "integer labels"),
        (x, y, y[:3], "target has 3 entries"),
        (x, y, np.full(len(y), -1), r"target must be class ids"),
    ]
    for images, labels, target, message in cases:
        with pytest.raises(DataError, match=message):
            attack(model, images, labels, target=target)


def test_restarts_and_early_exit_need_labels(data):
    """Early exit must know when an example is fooled: a loss-only model without labels is refused."""
    import keras

    _, _, x, y = data

    class LossOnly(keras.Model):
        def call(self, inputs):
            return inputs

        def attack_loss(self, inputs, labels, training=False):
            return keras.ops.sum(inputs, axis=(1, 2, 3))

    with pytest.raises(ConfigError, match="early_exit needs the model's labels"):
        get_attack("pgd", early_exit=True)(LossOnly(), x, y)


def test_chunked_own_labels_of_different_lengths_are_padded(data):
    """y=None with batch_size: each chunk's own token sequences (as LAS's transcripts) may differ in
    width; they are zero-padded to one batch, as the sequence loss reads them."""
    import keras
    import tensorflow as tf

    _, _, x, _ = data
    x = x[:6]

    class Sequences(keras.Model):
        def call(self, inputs):
            return inputs

        def predict_labels(self, inputs):  # a chunk's width depends on its brightest image
            width = 2 + tf.cast(tf.reduce_max(inputs) * 3, tf.int32)
            return tf.ones([tf.shape(inputs)[0], width], tf.int32)

        def attack_loss(self, inputs, labels, training=False):
            return keras.ops.sum(inputs, axis=(1, 2, 3)) * tf.cast(tf.shape(labels)[1], inputs.dtype)

    x = x * np.linspace(0.2, 1.0, len(x))[:, None, None, None].astype(x.dtype)
    widths = {int(Sequences().predict_labels(x[i:i + 2]).shape[1]) for i in range(0, 6, 2)}
    assert len(widths) > 1
    out = get_attack("pgd", eps=0.1, steps=2, batch_size=2)(Sequences(), x)
    assert out.shape == x.shape


# -- zoo attack -------------------------------------------------------------------------------
def test_zoo_attack_cli(tmp_path, capsys):
    from zoo.cli import main
    from zoo.training.fit import train

    run = tmp_path / "digits"
    train("convnet-digits", epochs=1, overrides=dict(filters=[8], dense=[16]), out=run, verbose=0)
    png = tmp_path / "panel.png"
    code = main(["attack", "convnet-digits", "--weights", str(run), "--attack", "pgd", "--eps", "0.3",
                 "--steps", "10", "--step-size", "0.05", "--target", "random", "--set", "restarts=2",
                 "--n", "40", "--png", str(png), "--json"])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    metrics = json.loads(out[-1])
    assert metrics["n"] == 40 and metrics["targeted"] is True and metrics["param_restarts"] == 2
    assert metrics["max_linf"] <= 0.3 + 1e-6 and metrics["images_per_s"] > 0
    assert metrics["adv_accuracy"] < metrics["clean_accuracy"]
    assert 0.0 <= metrics["success_rate"] <= 1.0
    from PIL import Image

    with Image.open(png) as image:
        assert image.width > 3 * 8 and image.height > 8 * 8  # 3 columns, 8 rows of examples

    assert main(["attack", "convnet-digits", "--weights", str(run), "--attack", "pgd", "--set", "eps=-1"]) == 2
    assert "eps must be >= 0" in capsys.readouterr().err
    assert main(["attack", "convnet-digits", "--weights", str(run), "--target", "12"]) == 2
    assert "class id in 0..9" in capsys.readouterr().err


def test_zoo_attack_reads_a_nuisance_dataset(capsys):
    """A noise-adversarial model's dataset gives (x, y, noise type): zoo attack takes x and y."""
    from zoo.cli import main
    from zoo.packs.shipped import shipped_packs

    pack = shipped_packs().get("convnet-digits-noise-adversarial")
    if pack is None:
        pytest.skip("this checkout ships no convnet-digits-noise-adversarial pack")
    assert main(["attack", "--weights", str(pack), "--steps", "2", "--eps", "0.1", "--n", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n"] == 20


def test_attacking_many_models_does_not_warn_of_retracing(data, caplog):
    """Compiled functions are per model by design: TensorFlow's "excessive retracing" warning about
    them would only be noise (the demo attacks three models in one process)."""
    import keras

    _, _, x, y = data
    attack = get_attack("pgd", eps=0.1, steps=2, step_size=0.05, early_exit=True)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for seed in range(7):
            keras.utils.set_random_seed(seed)
            model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                      keras.layers.Dense(10, activation="softmax")])
            attack(model, x[:4], y[:4])
            attack(model, x[:3], y[:3])
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
