"""How good are generated images? A classifier Fréchet distance and the classifier's confidence.

The Fréchet Inception Distance (Heusel et al. 2017) compares the Gaussians fitted to a network's
features of real and of generated images: ‖μ_r − μ_g‖² + tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½). Inception
weights cannot be downloaded here and do not fit 8×8 digits anyway, so the features are the penultimate
layer (``ConvNet.features``) of a zoo ConvNet trained on the same dataset — the "classifier Fréchet
distance" (lower is better; real held-out images score near 0). The classifier's mean top-class
probability on the samples says whether they look like *some* digit.

The classifier is reproducible: ``quality_classifier(dataset)`` trains a fixed ConvNet recipe with a
fixed seed on the dataset's train split and caches it under ``$ZOO_CACHE_DIR`` (default
``~/.cache/zoo``) keyed by a hash of the training data and the recipe; ``$ZOO_QUALITY_CLASSIFIER``
(a ``zoo train convnet-... --out DIR`` directory) uses a classifier of your own instead.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

#: The classifier recipe (part of the cache key: changing it retrains).
CLASSIFIER_RECIPE = dict(filters=(32, 64), dense=(128,), dropout=0.25, learning_rate=1e-3, batch_size=64,
                         epochs=6, seed=0)
#: How many generated images are compared with the test split (MNIST's held-out 2,000).
DEFAULT_SAMPLES = 2000


def cache_dir() -> Path:
    return Path(os.environ.get("ZOO_CACHE_DIR") or Path.home() / ".cache" / "zoo")


def _train_classifier(x, y, input_shape, num_classes):
    import keras

    from zoo.models.convnet import ConvNet

    r = CLASSIFIER_RECIPE
    keras.utils.set_random_seed(r["seed"])
    model = ConvNet(input_shape=input_shape, num_classes=num_classes, filters=r["filters"], dense=r["dense"],
                    dropout=r["dropout"])
    model.compile(optimizer=keras.optimizers.Adam(r["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=r["batch_size"], epochs=r["epochs"], shuffle=True, verbose=0)
    return model


def quality_classifier(dataset):
    """The ConvNet whose features define the distance for ``dataset`` (trained once, then cached)."""
    import keras

    from zoo.files import atomic_write_text

    own = os.environ.get("ZOO_QUALITY_CLASSIFIER")
    if own:
        from zoo.api import load, read_run

        return load(read_run(own)["name"], weights=own, compile=False)
    x, y = dataset.arrays("train")
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    digest.update(json.dumps(CLASSIFIER_RECIPE, sort_keys=True).encode())
    path = cache_dir() / "quality-classifier" / f"{dataset.name}-{digest.hexdigest()[:16]}.keras"
    if path.exists():
        import zoo.models.convnet  # noqa: F401  (registers ConvNet for deserialisation)

        return keras.saving.load_model(path, compile=False)
    print(f"training the quality classifier for {dataset.name} (once; cached in {path})", flush=True)
    model = _train_classifier(x, y, dataset.info["input_shape"], dataset.info["num_classes"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)
    atomic_write_text(path.with_suffix(".json"), json.dumps(dict(recipe=CLASSIFIER_RECIPE, dataset=dataset.name,
                                                                 source=dataset.info.get("source")), indent=2))
    return model


def features_and_confidence(classifier, images, batch_size=500):
    """Penultimate-layer features and top-class probabilities of ``images``."""
    import tensorflow as tf

    feats, conf = [], []
    for start in range(0, len(images), batch_size):
        batch = tf.convert_to_tensor(images[start:start + batch_size], tf.float32)
        feats.append(np.asarray(classifier.features(batch), np.float64))
        conf.append(np.asarray(classifier(batch, training=False)).max(axis=1))
    return np.concatenate(feats), np.concatenate(conf)


def frechet_distance(features_a, features_b) -> float:
    """‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½) between Gaussians fitted to two feature sets."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (n, d) feature matrices of the same d, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * _trace_sqrt_product(cov_a, cov_b))


def _trace_sqrt_product(cov_a, cov_b) -> float:
    """tr((Σ_a Σ_b)^½) without ``scipy.linalg.sqrtm`` of the non-symmetric product, which warns
    (``LinAlgWarning``: singular matrix) whenever features are rank-deficient, as ReLU features of a
    few samples are. Σ_a Σ_b has the eigenvalues of the symmetric PSD S Σ_b S with S = Σ_a^½, so the
    trace is the sum of their square roots (round-off negatives clipped to 0)."""
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    inner = root_a @ cov_b @ root_a
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))


def image_quality(images, reference, classifier) -> dict:
    """``{"fid": classifier Fréchet distance to reference, "confidence": mean top-class probability}``."""
    real, _ = features_and_confidence(classifier, reference)
    fake, conf = features_and_confidence(classifier, np.clip(np.asarray(images, np.float32), 0.0, 1.0))
    return dict(fid=frechet_distance(real, fake), confidence=float(conf.mean()))


def noise_baseline(dataset, n, seed=0):
    """The pixel-noise baseline: every pixel drawn independently from the training images' values at
    that position (right per-pixel statistics, no structure)."""
    x, _ = dataset.arrays("train")
    rng = np.random.default_rng(seed)
    flat = x.reshape(len(x), -1)
    rows = rng.integers(0, len(flat), size=(n, flat.shape[1]))
    return flat[rows, np.arange(flat.shape[1])].reshape(n, *x.shape[1:])


def generative_quality(model, dataset, n=DEFAULT_SAMPLES, seed=0, classifier=None) -> dict:
    """Classifier Fréchet distance and confidence of ``n`` samples of ``model`` against the test split."""
    from zoo.models.generative import sample_images

    classifier = classifier or quality_classifier(dataset)
    x_test, _ = dataset.arrays("test")
    images = _in_batches(lambda k, s: sample_images(model, k, seed=s), n, seed)
    return image_quality(images, x_test, classifier)


def _in_batches(draw, n, seed, batch=500):
    return np.concatenate([draw(min(batch, n - start), seed + start) for start in range(0, n, batch)])


# -- ModelSpec.evaluate of each generative family ------------------------------------------------
def _batched_mean(fn, x, batch_size):
    """Mean over the examples of ``x`` of each per-example tensor in the dict ``fn(batch)`` returns."""
    totals = {}
    for start in range(0, len(x), batch_size):
        for key, values in fn(x[start:start + batch_size]).items():
            totals[key] = totals.get(key, 0.0) + float(np.sum(np.asarray(values, np.float64)))
    return {key: total / len(x) for key, total in totals.items()}


def evaluate_autoencoder(model, dataset, batch_size=500) -> dict:
    """The seed's E = 1/n Σ ‖x − g(f(x))‖² on the test split (``loss``) and the per-pixel ``mse``."""
    x, _ = dataset.arrays("test")
    return _batched_mean(model.objective, x, batch_size)


def evaluate_vae(model, dataset, iwae_samples=100, batch_size=500, iwae_batch=25, fid_samples=DEFAULT_SAMPLES,
                 classifier=None) -> dict:
    """Test-split ``nll_elbo`` (the negative ELBO, one posterior sample, nats per image), its
    ``reconstruction`` and ``kl`` terms, ``nll_iwae`` (the importance-weighted bound with
    ``iwae_samples`` samples; 0 skips it), and the samples' ``fid`` and ``confidence``."""
    import tensorflow as tf

    x, _ = dataset.arrays("test")
    terms = _batched_mean(lambda b: model.objective(tf.constant(b), training=False), x, batch_size)
    metrics = dict(nll_elbo=-terms["elbo"], reconstruction=terms["reconstruction"], kl=terms["kl"])
    if iwae_samples:
        bound = _batched_mean(lambda b: dict(iw=model.importance_weighted_bound(tf.constant(b), iwae_samples)),
                              x, iwae_batch)
        metrics["nll_iwae"] = -bound["iw"]
    if fid_samples:
        metrics.update(generative_quality(model, dataset, fid_samples, classifier=classifier))
    return metrics


def evaluate_gan(model, dataset, batch_size=500, fid_samples=DEFAULT_SAMPLES, classifier=None) -> dict:
    """The samples' ``fid`` and ``confidence``, and D's mean output on real test images / on fakes."""
    x, _ = dataset.arrays("test")
    fakes = _in_batches(lambda k, s: np.asarray(model.generate(k, seed=s)), len(x), 10_000)
    metrics = dict(d_real=float(np.mean(model.predict(x, batch_size=batch_size, verbose=0))),
                   d_fake=float(np.mean(model.predict(fakes, batch_size=batch_size, verbose=0))))
    if fid_samples:
        metrics.update(generative_quality(model, dataset, fid_samples, classifier=classifier))
    return metrics


def evaluate_vaegan(model, dataset, classifier=None, **options) -> dict:
    """The VAE metrics of the VAE-GAN (its likelihood bound and sample quality) and D's outputs."""
    metrics = evaluate_vae(model, dataset, classifier=classifier, **options)
    x, _ = dataset.arrays("test")
    metrics["d_real"] = float(np.mean(np.asarray(model.discriminate(x))))
    return metrics
