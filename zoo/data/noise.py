"""Images corrupted by one of three noise types — the nuisance of the seed's "robust to some
particular type of noise" — for adversarial training against a noise-type adversary.

Every image gets one noise type (drawn from a seed): ``0`` Gaussian (σ = 0.3), ``1`` salt-and-pepper
(15% of pixels), ``2`` stripes (random full rows and columns set bright, plus mild Gaussian noise).
``pipeline`` yields ``(x, {"label": y, "noise": n})`` batches; ``arrays(split)`` returns
``(x, y, noise)``.
"""
from __future__ import annotations

import numpy as np

from zoo.data import DataError

NOISE_TYPES = ("gaussian", "salt_pepper", "stripes")


def corrupt(x, noise, rng) -> np.ndarray:
    """Apply ``NOISE_TYPES[noise[i]]`` to image ``x[i]`` (float32 in [0, 1], shape (n, h, w, c))."""
    x = np.array(x, np.float32, copy=True)
    noise = np.asarray(noise)
    n, h, w = x.shape[:3]
    g = noise == 0
    x[g] += 0.3 * rng.standard_normal(x[g].shape).astype(np.float32)
    s = noise == 1
    flips = rng.random(x[s].shape) < 0.15
    x[s] = np.where(flips, (rng.random(x[s].shape) < 0.5).astype(np.float32), x[s])
    for i in np.flatnonzero(noise == 2):
        rows = rng.choice(h, size=max(1, h // 7), replace=False)
        cols = rng.choice(w, size=max(1, w // 7), replace=False)
        x[i, rows] = np.maximum(x[i, rows], 0.8)
        x[i, :, cols] = np.maximum(x[i, :, cols], 0.8)
        x[i] += 0.1 * rng.standard_normal(x[i].shape).astype(np.float32)
    return np.clip(x, 0.0, 1.0)


class NoisyImageDataset:
    """An image dataset whose every image carries one of three noise types (the nuisance label)."""

    def __init__(self, name, base, seed=0):
        self.name = name
        rng = np.random.default_rng(seed)
        self._splits = {}
        for split in ("train", "test"):
            x, y = base.arrays(split)
            noise = rng.integers(0, len(NOISE_TYPES), len(x)).astype(np.int32)
            self._splits[split] = (corrupt(x, noise, rng), y, noise)
        self.info = dict(base.info, source=f"noise({base.info['source']})", noise_types=list(NOISE_TYPES),
                         nuisance="noise", sizes={k: len(v[0]) for k, v in self._splits.items()})

    def arrays(self, split):
        """``(x, y, noise)``: noisy float32 images in [0, 1], int32 labels, int32 noise types."""
        if split not in self._splits:
            raise DataError(f"{self.name}: unknown split {split!r}; choose from {sorted(self._splits)}")
        return self._splits[split]

    def pipeline(self, split, batch_size, *, shuffle=None, seed=0):
        """``tf.data`` batches ``(x, {"label": y, "noise": n})``: cache, seeded shuffle, batch, prefetch."""
        import tensorflow as tf

        x, y, n = self.arrays(split)
        ds = tf.data.Dataset.from_tensor_slices((x, {"label": y, "noise": n})).cache()
        if shuffle if shuffle is not None else split == "train":
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def noisy(base_name):
    def factory(data_dir=None, seed=0, **params):
        from zoo.data import load_dataset

        return NoisyImageDataset(f"{base_name}_noise", load_dataset(base_name, data_dir=data_dir, seed=seed, **params), seed)

    factory.__doc__ = f"{base_name} corrupted by one of three noise types (zoo.data.noise)."
    return factory
