"""Measuring trained models: test-split metrics of any family, and accuracy under an attack."""
from __future__ import annotations


def evaluate_model(spec, model, dataset, batch_size=256) -> dict:
    """Test-split metrics: the family's own ``evaluate`` or Keras's ``model.evaluate``.

    ``model`` is what ``fit`` trained (the network, or the trainer wrapping it), so an objective's
    own metrics (accuracy under attack, the adversary's loss) are reported too.
    """
    if spec.evaluate is not None:
        return {k: float(v) for k, v in spec.evaluate(getattr(model, "network", model), dataset).items()}
    results = model.evaluate(dataset.pipeline("test", batch_size), verbose=0, return_dict=True)
    if hasattr(model, "probe_metrics"):  # a trainer's measures of the network's features (a nuisance probe)
        results.update(model.probe_metrics(dataset))
    return {k: float(v) for k, v in results.items()}


#: Training images a nuisance probe is fitted on (the first ones; tools/repro_las.py's protocol).
PROBE_FIT = 2000


def nuisance_probe_accuracy(network, dataset, batch_size=512, seed=0) -> float:
    """Test accuracy of a fixed probe (``StandardScaler`` + ``LogisticRegression``) that reads
    ``network.features(x)`` and predicts the dataset's nuisance label (``arrays`` gives
    ``(x, y, nuisance)``), fitted on the first :data:`PROBE_FIT` training images. It is fitted
    afresh on the network's frozen features, so unlike a trained adversary head it measures the
    weights alone: chance level means the features carry no trace of the nuisance."""
    import numpy as np

    from zoo.models.speaker_probe import make_probe

    def features(x):
        return np.concatenate([np.asarray(network.features(x[i:i + batch_size], training=False)).reshape(
            len(x[i:i + batch_size]), -1) for i in range(0, len(x), batch_size)])

    x_fit, _, n_fit = dataset.arrays("train")
    x_score, _, n_score = dataset.arrays("test")
    fit = features(x_fit[:PROBE_FIT])
    probe = make_probe("mean", fit.shape[1], seed).fit(fit, n_fit[:PROBE_FIT])
    return float(probe.score(features(x_score), n_score))


def attack_report(model, attack, x, y, *, target=None, batch_size=500) -> tuple[dict, object]:
    """Run ``attack`` on ``(x, y)`` and measure it: ``(metrics, x_adv)``.

    Metrics: ``clean_accuracy``, ``adv_accuracy`` (accuracy under attack), ``success_rate``
    (untargeted: share of the correctly classified examples the attack fools; targeted: share
    classified as ``target``), mean and max L∞ and L2 perturbation norms, and ``images_per_s`` of
    the attack alone (after one warm-up call on a small batch, so tracing is not timed).
    """
    import time

    import numpy as np

    x = np.asarray(x, np.float32)
    y = np.asarray(y).astype(np.int64)
    if target is not None:
        target = np.broadcast_to(np.asarray(target).astype(np.int64), y.shape).copy()

    def predict(images):
        return np.concatenate([np.asarray(model(images[i:i + batch_size], training=False)).argmax(-1)
                               for i in range(0, len(images), batch_size)])

    attack(model, x[:2], y[:2], target=None if target is None else target[:2])  # trace outside the clock
    start = time.perf_counter()
    x_adv = np.concatenate([
        np.asarray(attack(model, x[i:i + batch_size], y[i:i + batch_size],
                          target=None if target is None else target[i:i + batch_size]))
        for i in range(0, len(x), batch_size)])
    seconds = time.perf_counter() - start
    clean, adv = predict(x) == y, predict(x_adv)
    if target is None:
        fooled = (adv != y)[clean]
        success = float(fooled.mean()) if fooled.size else 0.0
    else:
        success = float(np.mean(adv == target))
    delta = (x_adv - x).reshape(len(x), -1)
    linf, l2 = np.abs(delta).max(axis=1), np.linalg.norm(delta, axis=1)
    metrics = dict(n=len(x), clean_accuracy=float(clean.mean()), adv_accuracy=float(np.mean(adv == y)),
                   success_rate=success, mean_linf=float(linf.mean()), max_linf=float(linf.max()),
                   mean_l2=float(l2.mean()), max_l2=float(l2.max()), seconds=seconds,
                   images_per_s=len(x) / seconds)
    return metrics, x_adv
