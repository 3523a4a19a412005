"""apgd, fab and autoattack: the attack contract (ε-ball, clip, eps 0, inputs untouched, targeted hits,
both norms, logit and probability models), clear errors, the exact pieces (checkpoint schedule, DLR,
FAB's hyperplane projection), the composition's guarantees and AutoAttack's masking warnings, and
``zoo robustness``. Tiny models on the embedded 8×8 digits and few steps keep the module quick.
"""
import json

import numpy as np
import pytest

from zoo import ConfigError, DataError, get_attack, list_attacks

N = 48


@pytest.fixture(scope="module")
def data(digits_split):
    x_train, y_train, x_test, y_test = digits_split
    return x_train, y_train, x_test[:N], y_test[:N]


@pytest.fixture(scope="module")
def models(attack_models):
    return {"convnet": attack_models["convnet"], "softmax": attack_models["sequential"], "twin": attack_models["twin"]}


def accuracy(model, x, y):
    return float(np.mean(np.asarray(model(x)).argmax(-1) == y))


def second_class(model, x):
    return np.argsort(-np.asarray(model(x)), axis=1)[:, 1]


VARIANTS = {
    "apgd-ce": ("apgd", dict(loss="ce", steps=10)),
    "apgd-t": ("apgd", dict(loss="dlr", steps=5, target_classes=2)),
    "fab": ("fab", dict(steps=10)),
    "fab-t": ("fab", dict(steps=5, target_classes=2)),
}


def test_attacks_are_registered():
    assert {"apgd", "fab", "autoattack"} <= set(list_attacks())


@pytest.mark.parametrize("norm,eps", [("inf", 0.15), ("l2", 1.0)])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_stays_in_ball_and_clip_and_leaves_input(models, data, variant, norm, eps):
    name, params = VARIANTS[variant]
    _, _, x, y = data
    clip = (0.0, 0.9)  # a box that binds: digits reach 1.0
    xs = np.clip(x, *clip)
    before = xs.copy()
    x_adv = get_attack(name, eps=eps, norm=norm, clip=clip, **params)(models["convnet"], xs, y)
    np.testing.assert_array_equal(xs, before)
    assert x_adv.shape == xs.shape and x_adv.dtype == np.float32 and np.all(np.isfinite(x_adv))
    assert x_adv.min() >= clip[0] and x_adv.max() <= clip[1]
    d = (x_adv.astype(np.float64) - xs).reshape(len(xs), -1)
    size = np.abs(d).max(1) if norm == "inf" else np.linalg.norm(d, axis=1)
    assert size.max() <= eps * (1 + 1e-5) + 1e-6
    assert accuracy(models["convnet"], x_adv, y) < accuracy(models["convnet"], xs, y) - 0.2


@pytest.mark.parametrize("name", ["apgd", "fab"])
def test_eps_zero_returns_the_input(models, data, name):
    _, _, x, y = data
    np.testing.assert_array_equal(get_attack(name, eps=0.0, steps=3)(models["softmax"], x[:16], y[:16]), x[:16])


def test_tensor_in_tensor_out(models, data):
    import tensorflow as tf

    _, _, x, y = data
    variable = tf.Variable(x[:8])
    x_adv = get_attack("apgd", eps=0.2, steps=3)(models["convnet"], variable, y[:8])
    assert tf.is_tensor(x_adv) and x_adv.shape == (8, 8, 8, 1)
    np.testing.assert_array_equal(variable.numpy(), x[:8])


@pytest.mark.parametrize("name,params,hit", [
    ("apgd", dict(loss="dlr", steps=20), 0.9), ("apgd", dict(loss="ce", steps=20, norm="l2", eps=2.0), 0.9),
    ("fab", dict(steps=20), 0.8), ("fab", dict(steps=20, norm="l2", eps=2.0), 0.8)])
def test_targeted_attacks_hit_the_target(models, data, name, params, hit):
    model = models["convnet"]
    _, _, x, y = data
    target = second_class(model, x)
    x_adv = get_attack(name, **{"eps": 0.3, **params})(model, x, y, target=target)
    assert np.mean(np.asarray(model(x_adv)).argmax(-1) == target) >= hit


@pytest.mark.parametrize("name,params", [("apgd", dict(loss="dlr", target_classes=3)), ("fab", dict(target_classes=3))])
def test_probability_model_is_attacked_through_its_logits(models, data, name, params):
    """A softmax model gives exactly the attack of its logit twin (same random draws): DLR and FAB read logits."""
    import keras

    _, _, x, y = data
    results = []
    for model in (models["softmax"], models["twin"]):
        keras.utils.set_random_seed(3)
        results.append(get_attack(name, eps=0.1, steps=8, **params)(model, x, y))
    np.testing.assert_allclose(results[0], results[1], atol=1e-5)
    assert accuracy(models["softmax"], results[0], y) < accuracy(models["softmax"], x, y)


def test_apgd_beats_pgd_at_equal_steps_without_early_exit(models, data):
    model = models["convnet"]
    _, _, x, y = data
    apgd = get_attack("apgd", eps=0.08, steps=20, early_exit=False)
    pgd = get_attack("pgd", eps=0.08, steps=20, step_size=0.01)
    early = get_attack("apgd", eps=0.08, steps=20)
    assert accuracy(model, apgd(model, x, y), y) <= accuracy(model, pgd(model, x, y), y)
    # early exit changes no example's fate, only the work: the passes drop
    a = accuracy(model, early(model, x, y), y)
    assert abs(a - accuracy(model, apgd(model, x, y), y)) <= 3 / N
    assert early.passes < apgd.passes / 2


def test_checkpoint_schedule_is_the_papers():
    from zoo_plugins.attacks.apgd import checkpoints

    # 100 steps: first period 22, shrinking by 3 down to 6
    assert sorted(checkpoints(100).items()) == [(21, 22), (40, 19), (56, 16), (69, 13), (79, 10), (86, 7),
                                                (92, 6), (98, 6)]
    assert checkpoints(1) == {0: 1}


def test_dlr_is_scale_invariant_and_targeted_form():
    import tensorflow as tf

    from zoo_plugins.attacks.apgd import dlr_loss

    z = tf.constant([[3.0, 1.0, 0.5, -1.0], [0.0, 2.0, 1.0, 0.2]])
    y = tf.constant([0, 0])
    np.testing.assert_allclose(dlr_loss(z, y), dlr_loss(1000.0 * z, y), rtol=1e-5)
    np.testing.assert_allclose(dlr_loss(z, y), [-(3 - 1) / (3 - 0.5), -(0 - 2) / (2 - 0.2)], rtol=1e-6)
    t = tf.constant([2, 1])
    np.testing.assert_allclose(dlr_loss(z, y, t), [-(3 - 0.5) / (3 - (0.5 - 1) / 2), -(0 - 2) / (2 - (0.2 + 0) / 2)],
                               rtol=1e-6)


@pytest.mark.parametrize("norm", ["inf", "l2"])
def test_fab_projection_is_the_smallest_step_onto_the_hyperplane_in_the_box(norm):
    """Against scipy's optimum on random small problems (feasible ones must land on the hyperplane)."""
    import tensorflow as tf
    from scipy.optimize import linprog, minimize

    from zoo_plugins.attacks.fab import project_hyperplane

    rng = np.random.default_rng(0)
    n, checked = 5, 0
    for _ in range(40):
        t, w = rng.uniform(0, 1, n), rng.normal(size=n)
        w[rng.uniform(size=n) < 0.2] = 0.0
        b = w @ t + rng.normal() * 0.5
        d = project_hyperplane(tf.constant(t[None], tf.float32), tf.constant(w[None], tf.float32),
                               tf.constant([b], tf.float32), norm, 0.0, 1.0).numpy()[0].astype(np.float64)
        assert np.all(t + d >= -1e-6) and np.all(t + d <= 1 + 1e-6)
        bounds = [(-ti, 1 - ti) for ti in t]
        if norm == "inf":
            res = linprog(np.r_[np.zeros(n), 1.0], A_ub=np.r_[np.c_[np.eye(n), -np.ones(n)], np.c_[-np.eye(n), -np.ones(n)]],
                          b_ub=np.zeros(2 * n), A_eq=np.r_[w, 0.0][None], b_eq=[b - w @ t], bounds=bounds + [(0, None)])
            feasible, best, got = res.status == 0, res.fun if res.status == 0 else None, np.abs(d).max()
        else:
            res = minimize(lambda v: v @ v, np.zeros(n), method="SLSQP", bounds=bounds,
                           constraints=[{"type": "eq", "fun": lambda v: w @ v - (b - w @ t)}])
            feasible = res.success and abs(w @ res.x - (b - w @ t)) < 1e-6
            best, got = np.sqrt(res.fun), np.linalg.norm(d)
        if feasible:
            checked += 1
            assert abs(w @ (t + d) - b) < 1e-4
            assert got <= best + 1e-4
    assert checked >= 20
    # a zero-gradient coordinate at the box edge (0/0 in the L2 breakpoints) must not poison its row
    t, w = np.array([[0.0, 0.5, 1.0, 0.3]]), np.array([[0.0, 1.0, 0.0, -2.0]])
    d = project_hyperplane(tf.constant(t, tf.float32), tf.constant(w, tf.float32), tf.constant([w[0] @ t[0] + 0.2],
                           tf.float32), norm, 0.0, 1.0).numpy()
    assert np.all(np.isfinite(d)) and d[0, 0] == 0 and d[0, 2] == 0 and abs(w[0] @ (t[0] + d[0]) - (w[0] @ t[0] + 0.2)) < 1e-5


@pytest.mark.parametrize("name,params,message", [
    ("apgd", dict(loss="hinge"), "loss must be one of ce, dlr"),
    ("apgd", dict(steps=0), "steps must be an integer >= 1"),
    ("apgd", dict(norm="l1"), "norm must be one of inf, l2"),
    ("apgd", dict(target_classes=0), "target_classes must be an integer >= 1"),
    ("apgd", dict(rho=1.5), "rho must be"),
    ("apgd", dict(eps=-0.1), "eps must be >= 0"),
    ("apgd", dict(restart=2), "unknown parameter"),
    ("fab", dict(beta=0.0), "beta must be > 0"),
    ("fab", dict(eta=0.5), "eta must be >= 1"),
    ("fab", dict(eps=float("nan")), "eps must be finite"),
    ("autoattack", dict(version="extreme"), "version must be one of standard, plus"),
    ("autoattack", dict(attacks=["apgd-ce", "pgd"]), "unknown stage 'pgd'"),
    ("autoattack", dict(attacks=[]), "non-empty list"),
    ("square", dict(schedule="linear"), "schedule must be one of rescaled, fixed"),
])
def test_bad_parameters_are_refused(name, params, message):
    with pytest.raises(ConfigError, match=message):
        get_attack(name, **params)


def test_bad_calls_are_refused(models, data):
    import keras

    _, _, x, y = data
    model = models["convnet"]
    with pytest.raises(DataError, match="clip range"):
        get_attack("apgd", eps=0.1)(model, x * 2.0, y)
    with pytest.raises(DataError, match="class ids in 0..9"):
        get_attack("fab", eps=0.1)(model, x, y + 10)
    with pytest.raises(ConfigError, match="target_classes=12 but the model has only 9"):
        get_attack("apgd", loss="dlr", target_classes=12, steps=2)(model, x, y)
    with pytest.raises(ConfigError, match="untargeted"):
        get_attack("autoattack")(model, x, y, target=y)
    two = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    two.output_kind = "logits"
    with pytest.raises(ConfigError, match="DLR loss needs at least 3 classes"):
        get_attack("apgd", loss="dlr", steps=2)(two, x, y % 2)


# -- the composition --------------------------------------------------------------------------
def test_composition_is_never_weaker_than_its_strongest_member(models, data):
    """With deterministic members, a point the composition leaves robust is robust to each member alone."""
    model = models["convnet"]
    _, _, x, y = data
    members = [("fgsm", get_attack("fgsm", eps=0.08)), ("bim", get_attack("bim", eps=0.08, steps=5, step_size=0.02)),
               ("mim", get_attack("mim", eps=0.08, steps=5))]
    report, x_adv = get_attack("autoattack", eps=0.08, attacks=members).evaluate(model, x, y)
    robust = np.asarray(model(x_adv)).argmax(-1) == y
    for label, attack in members:
        alone = np.asarray(model(attack(model, x, y))).argmax(-1) == y
        assert not np.any(robust & ~alone), label
    assert report["robust_accuracy"] == pytest.approx(robust.mean())
    assert report["robust_accuracy"] <= min(s["robust_accuracy"] for s in report["stages"])
    # bookkeeping: every point is clean-wrong, broken by exactly one stage, or robust
    counts = report["broken_by"]
    assert sum(counts.values()) + round(report["robust_accuracy"] * N) == N
    assert [b for b in report["point_broken_by"] if b not in (None, "clean")].count("bim") == counts["bim"]


def test_standard_autoattack_breaks_the_tiny_model_and_reports_each_stage(models, data):
    model = models["convnet"]
    _, _, x, y = data
    aa = get_attack("autoattack", eps=0.1, steps=5, square_queries=30)
    report, x_adv = aa.evaluate(model, x, y)
    assert [s["name"] for s in report["stages"]] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert report["robust_accuracy"] < report["clean_accuracy"]
    assert report["robust_accuracy"] == pytest.approx(accuracy(model, x_adv, y))
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-6
    assert report["forward_backward_per_image"] > 0 and report["warnings"] == []
    np.testing.assert_array_equal(aa(model, x[:4], y[:4]).shape, x[:4].shape)


class _Wrapped:
    """A stand-in model around the tiny ConvNet (logit outputs) that changes what attacks see."""

    def __init__(self, inner, fn):
        self.inner, self.fn, self.output_kind = inner, fn, "logits"

    def __call__(self, x, training=False):
        return self.fn(self.inner, x)


def test_masked_gradients_are_caught(models, data):
    """Logits × 10⁴: softmax saturates and cross-entropy gradients vanish, so PGD-CE reports high
    robust accuracy; AutoAttack's DLR stages break the model anyway and the report warns."""
    model = models["convnet"]
    _, _, x, y = data
    masked = _Wrapped(model, lambda m, v: m(v) * 1e4)
    pgd = get_attack("pgd", eps=0.3, steps=10, step_size=0.05)
    assert accuracy(masked, pgd(masked, x, y), y) >= 0.5
    report, _ = get_attack("autoattack", eps=0.3, steps=10, square_queries=50).evaluate(masked, x, y)
    assert report["robust_accuracy"] <= 0.01
    assert any("zero cross-entropy gradient" in w for w in report["warnings"])


def test_square_beating_white_box_and_probability_outputs_warn(models, data):
    import tensorflow as tf

    model = models["convnet"]
    _, _, x, y = data
    # quantised input behind stop_gradient: no gradient at all, but a black-box search still works
    shattered = _Wrapped(model, lambda m, v: m(tf.stop_gradient(tf.round(v * 4.0) / 4.0)))
    report, _ = get_attack("autoattack", eps=0.3, steps=5, square_queries=200).evaluate(shattered, x, y)
    assert report["broken_by"]["square"] > 0.1 * N
    assert any("Square (black-box) broke" in w for w in report["warnings"])
    assert any("zero cross-entropy gradient" in w for w in report["warnings"])
    # probabilities computed by hand: neither Keras's logits nor a Softmax op to recover them from
    opaque = _Wrapped(model, lambda m, v: tf.exp(m(v) - tf.reduce_logsumexp(m(v), axis=1, keepdims=True)))
    del opaque.output_kind
    report, _ = get_attack("autoattack", eps=0.05, attacks=["apgd-ce"], steps=3).evaluate(opaque, x[:8], y[:8])
    assert any("logits could not be recovered" in w for w in report["warnings"])


def test_randomised_model_warns(models, data):
    import tensorflow as tf

    model = models["convnet"]
    _, _, x, y = data
    noisy = _Wrapped(model, lambda m, v: m(v) + tf.random.normal([tf.shape(v)[0], 10]))
    report, _ = get_attack("autoattack", eps=0.05, attacks=["apgd-ce"], steps=3).evaluate(noisy, x[:8], y[:8])
    assert any("randomised" in w for w in report["warnings"])


# -- zoo robustness -------------------------------------------------------------------------------
def test_zoo_robustness_cli(tmp_path, capsys):
    from zoo.cli import main
    from zoo.training.fit import train

    run = tmp_path / "digits"
    train("convnet-digits", epochs=1, overrides=dict(filters=[8], dense=[16]), out=run, verbose=0)
    code = main(["robustness", "convnet-digits", "--weights", str(run), "--eps", "0.3", "--n", "30", "--json"])
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    for key in ("clean_accuracy", "robust_accuracy", "eps", "norm", "n", "version", "stages", "broken_by", "warnings"):
        assert key in report
    assert report["n"] == 30 and report["eps"] == 0.3 and report["norm"] == "inf" and report["version"] == "standard"
    assert report["robust_accuracy"] <= report["clean_accuracy"]
    assert report["model_info"]["autoattack_acc"] == pytest.approx(100 * report["robust_accuracy"], abs=0.01)
    assert "apgd-ce" in captured.err and "points" in captured.err  # the progress bars
    assert "after apgd-ce" in captured.out
    assert main(["robustness", "convnet-digits", "--weights", str(run), "--eps", "-1"]) == 2
    assert "eps must be >= 0" in capsys.readouterr().err
