"""Adversarial training against a nuisance label: the gradient-reversal layer, the DANN schedule, the
two-optimizer minimax step (adversary and main net move E_adversary in opposite directions), the
adversary heads and the noisy-image data."""
import dataclasses

import numpy as np
import pytest

TINY_CONVNET = dict(filters=(4, 8), dense=(16,), dropout=0.0)


def test_gradient_reversal_negates_and_scales_gradients():
    import tensorflow as tf

    from zoo.training.minimax import reverse_gradient

    x = tf.Variable([[1.0, -2.0, 3.0]])
    w = tf.constant([[0.5, 4.0, -1.0]])
    with tf.GradientTape() as tape:
        y = reverse_gradient(x, tf.constant(0.7))
        loss = tf.reduce_sum(y * w)
    np.testing.assert_array_equal(y.numpy(), x.numpy())  # identity forwards
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), -0.7 * w.numpy(), rtol=1e-6)


def test_dann_schedule():
    from zoo.training.minimax import dann_lambda

    assert float(dann_lambda(0.0)) == 0.0
    assert float(dann_lambda(0.5)) == pytest.approx(2 / (1 + np.exp(-5)) - 1)
    assert float(dann_lambda(1.0)) == pytest.approx(0.99991, abs=1e-5)


def _recipe(**step_params):
    from zoo.registry import TrainRecipe

    params = dict(nuisance="noise", num_classes=3, head="mlp", head_params={"hidden": [16]}, lam=10.0,
                  schedule="constant")
    params.update(step_params)
    return TrainRecipe(optimizer="adam", learning_rate=1e-3, epochs=1, batch_size=64, step="minimax",
                       step_params=params)


@pytest.fixture(scope="module")
def noisy_digits():
    from zoo.data import load_dataset

    return load_dataset("digits_noise")


def _trainer(name, recipe=None, **config):
    """The compiled minimax trainer model of preset ``name`` (its network is ``.network``)."""
    from zoo import load
    from zoo.api import resolve
    from zoo.training.steps import trainer_for

    return trainer_for(load(name, compile=False, **config), recipe or resolve(name)[1].train)


def _adversary_loss(trainer, x, y):
    _, hidden, _ = trainer.main_outputs(x, y, False)
    loss, _ = trainer.adversary_terms(hidden, np.asarray(y[trainer.nuisance], np.int32))
    return float(np.mean(loss))


def _split_variables(trainer):
    return trainer.main_variables, trainer.head_variables


@pytest.mark.parametrize("form", ["minimax", "reversal"])
def test_one_step_moves_adversary_and_main_net_in_opposite_directions(form, noisy_digits):
    """The heads descend E_adversary; the main net ascends it (E_primary − λ·E_adversary)."""
    import keras

    keras.utils.set_random_seed(0)
    model = _trainer("convnet-digits-noise-adversarial", _recipe(form=form), **TINY_CONVNET)
    x, labels, noise = noisy_digits.arrays("train")
    x, y = x[:128], {"label": labels[:128], "noise": noise[:128]}
    main, heads = _split_variables(model)
    main0, heads0 = [v.numpy() for v in main], [v.numpy() for v in heads]
    before = _adversary_loss(model, x, y)
    logs = model.train_step((x, y))
    assert {"loss", "adversary_loss", "adversary_accuracy", "lambda", "accuracy"} <= set(logs)
    main1, heads1 = [v.numpy() for v in main], [v.numpy() for v in heads]
    assert all(np.any(a != b) for a, b in zip(heads0, heads1))

    def loss_with(main_values, head_values):
        for v, value in zip(main + heads, main_values + head_values):
            v.assign(value)
        return _adversary_loss(model, x, y)

    if form == "minimax":  # heads first, then the main net against the updated heads
        assert loss_with(main0, heads1) < before
        assert loss_with(main1, heads1) > loss_with(main0, heads1)
    else:  # one backward pass: both moved from the same point
        assert loss_with(main0, heads1) < before
        assert loss_with(main1, heads0) > before


def test_las_minimax_step_with_several_heads_and_layers():
    """LAS: linear heads on two listener layers, re-initialised, plus the closed-form centroid head."""
    import keras

    from zoo.data import load_dataset
    from zoo.registry import TrainRecipe

    keras.utils.set_random_seed(0)
    data = load_dataset("tones", multi_train=12, multi_test=6)
    recipe = TrainRecipe(optimizer="adam", learning_rate=1e-2, epochs=1, batch_size=24, step="minimax", step_params=dict(
        nuisance="speaker", num_classes=6, head="linear", heads=2, layers=["listener0", "listener"],
        adversary_steps=2, reinit_every=2, main_objective="confusion", lam=1.0))
    tiny = dict(num_mels=16, listener_units=8, speller_units=16, embedding_dim=8, attention_dim=8, max_output_length=8)
    model = _trainer("las-tones-speaker-adversarial", recipe, **tiny)
    assert [h.layer for h in model.heads] == ["listener0", "listener0", "listener", "listener"]
    x, y = next(iter(data.pipeline("train", 24)))
    head0 = [v.numpy() for v in model.heads[0].trainable_variables]
    for _ in range(3):
        logs = model.train_step((x, y))
    assert all(np.isfinite(float(v)) for v in logs.values()) and "char_accuracy" in logs
    assert int(model.iterations.numpy()) == 3
    assert any(np.any(a != b.numpy()) for a, b in zip(head0, model.heads[0].trainable_variables))

    centroid = _trainer("las-tones-speaker-adversarial", **tiny)  # the preset's own head: centroid
    assert centroid.heads[0].trainable_variables == []
    logs = centroid.train_step((x, y))
    assert 0.0 <= float(logs["adversary_accuracy"]) <= 1.0 and np.isfinite(float(logs["adversary_loss"]))


def test_centroid_head_is_fitted_in_closed_form():
    import tensorflow as tf

    from zoo import get_adversary_head

    head = get_adversary_head("centroid", num_classes=4, layer="listener", momentum=0.5)
    head.build((None, None, 6))
    assert head.trainable_variables == []  # nothing for an encoder to fool: it is re-fitted from data
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2], np.int32)  # class 3 never appears
    centres = 5 * rng.standard_normal((4, 6))
    frames = centres[labels][:, None, :] + 0.1 * rng.standard_normal((9, 5, 6))
    mask = np.ones((9, 5), bool)
    mask[:, 3:] = False
    frames[:, 3:] += 100.0  # beyond the mask: must not count
    h, m = tf.constant(frames, tf.float32), tf.constant(mask)
    assert np.all(head(h, mask=m).numpy() <= -1e8)  # not fitted yet: every class absent
    head.fit_batch(h, mask=m, labels=tf.constant(labels))
    logits = head(h, mask=m).numpy()
    assert np.all(logits[:, 3] <= -1e8) and np.all(logits[:, :3] > -1e8)
    np.testing.assert_array_equal(np.argmax(logits, 1), labels)
    moved = frames + 3.0  # the running centroids follow the features
    head.fit_batch(tf.constant(moved, tf.float32), mask=m, labels=tf.constant(labels))
    np.testing.assert_array_equal(np.argmax(head(tf.constant(moved, tf.float32), mask=m).numpy(), 1), labels)


def test_lda_head_uses_the_within_class_covariance():
    """Classes that differ only along a direction of small variance inside correlated features:
    LDA (like the logistic-regression probe) finds them; the Euclidean centroid head barely does."""
    import tensorflow as tf

    from zoo import get_adversary_head

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 200).astype(np.int32)
    shared = 10.0 * rng.standard_normal(600)
    z = rng.standard_normal((600, 6))
    z[:, 0] = shared
    z[:, 1] = shared + 0.5 * labels + 0.1 * rng.standard_normal(600)  # the classes live in z1 − z0
    h = tf.constant(z, tf.float32)
    accuracies = {}
    for kind in ("lda", "centroid"):
        head = get_adversary_head(kind, num_classes=3, momentum=0.0, **({"shrinkage": 1e-3} if kind == "lda" else {}))
        head.build((None, 6))
        head.fit_batch(h, labels=tf.constant(labels))
        accuracies[kind] = np.mean(np.argmax(head(h).numpy(), 1) == labels)
    assert accuracies["lda"] > 0.9 and accuracies["centroid"] < 0.6


def test_adversary_head_pools_over_valid_frames():
    import tensorflow as tf

    from zoo import get_adversary_head, list_adversary_heads

    assert {"mlp", "linear", "centroid", "lda"} <= set(list_adversary_heads())
    head = get_adversary_head("linear", num_classes=3, layer="listener")
    head.build((None, None, 4))
    h = np.ones((2, 5, 4), np.float32)
    h[:, 2:] = 50.0
    mask = np.zeros((2, 5), bool)
    mask[:, :2] = True
    np.testing.assert_allclose(head.pooled(tf.constant(h), tf.constant(mask)).numpy(), 1.0)
    with pytest.raises(ValueError, match="hidden layers"):
        get_adversary_head("linear", num_classes=3, hidden=(8,))


def test_bad_minimax_params_are_refused():
    from zoo.errors import ConfigError

    name = "convnet-digits-noise-adversarial"
    with pytest.raises(ConfigError, match="field 'adversary_stpes': unknown field; did you mean 'adversary_steps'"):
        _trainer(name, _recipe(adversary_stpes=3), **TINY_CONVNET)
    with pytest.raises(ConfigError, match="confusion"):
        _trainer(name, _recipe(form="reversal", main_objective="confusion"), **TINY_CONVNET)
    with pytest.raises(ConfigError, match="no hidden layer 'conv1'; choose from features"):
        _trainer(name, _recipe(layers=["conv1"]), **TINY_CONVNET)
    with pytest.raises(ConfigError, match="ema_momentum"):
        _trainer(name, dataclasses.replace(_recipe(), ema_momentum=0.99), **TINY_CONVNET)
    with pytest.raises(ConfigError, match="field 'lam': must be >= 0"):
        _trainer(name, _recipe(lam=-1.0), **TINY_CONVNET)


def test_noisy_images_carry_three_noise_types(noisy_digits):
    x, y, noise = noisy_digits.arrays("test")
    assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0
    assert set(np.unique(noise)) == {0, 1, 2} and len(x) == len(y) == len(noise)
    batch_x, batch_y = next(iter(noisy_digits.pipeline("test", 32)))
    assert set(batch_y) == {"label", "noise"} and batch_x.shape[0] == 32


@pytest.mark.parametrize("schedule, ramped", [("constant", [0, 0, 0, 2, 2]), ("linear", [0, 0, 0, 0, 1]),
                                               ("dann", [0, 0, 0, 0, 2 * (2 / (1 + np.exp(-5)) - 1)])])
def test_ramp_start_holds_lambda_at_zero_then_runs_the_schedule(schedule, ramped):
    """Through the preset path (step_params → trainer): λ = 0 for ramp_start steps, then the schedule."""
    trainer = _trainer("convnet-digits-noise-adversarial",
                       _recipe(lam=2.0, schedule=schedule, ramp_steps=2, ramp_start=3), filters=[4], dense=[8])
    values = []
    for step in range(5):
        trainer.iterations.assign(step)
        values.append(float(trainer.current_lambda()))
    assert values == pytest.approx(ramped, abs=1e-6)
