"""The data layer: named datasets from ``zoo_datasets()`` hooks, as validated arrays and ``tf.data``
pipelines. Built-in sources (``zoo.data.sources``): TFDS for connected machines, MNIST IDX files
(``data_dir``) and an embedded default (scikit-learn's ``load_digits``) that needs nothing else.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from zoo.errors import ConfigError, DataError, ZooError  # noqa: F401  (DataError re-exported)
from zoo.validate import check_call


class Dataset(Protocol):
    """What a ``zoo_datasets()`` factory returns."""

    name: str
    info: dict

    def arrays(self, split: str): ...

    def pipeline(self, split: str, batch_size: int, *, shuffle: bool | None = None, seed: int = 0): ...


def as_images(x, input_shape=None, *, name="images") -> np.ndarray:
    """Validate a batch of images and return it as float32 in [0, 1].

    Accepts uint8 (0–255, rescaled) or floats already in [0, 1]; a single image of
    ``input_shape`` is given a batch axis. Anything else is refused with a clear :class:`DataError`.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(f"{name}: expected numeric pixel values, got dtype {arr.dtype}")
    if input_shape is not None:
        input_shape = tuple(input_shape)
        if arr.shape == input_shape:
            arr = arr[None]
        if arr.ndim == len(input_shape) and input_shape[-1] == 1 and arr.shape[1:] == input_shape[:-1]:
            arr = arr[..., None]  # (batch, h, w) grey images
        if arr.shape[1:] != input_shape:
            raise DataError(f"{name}: expected shape (batch, {', '.join(map(str, input_shape))}), got {arr.shape}")
    elif arr.ndim != 4:
        raise DataError(f"{name}: expected a 4-D batch (batch, height, width, channels), got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(f"{name}: integer pixels must be in 0..255, got {arr.min()}..{arr.max()}")
        return arr.astype(np.float32) / 255.0
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: contains NaN or infinite values")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise DataError(f"{name}: float pixels must be in [0, 1], got {arr.min():.3g}..{arr.max():.3g}")
    return arr


def as_labels(y, num_classes, n=None, *, name="labels") -> np.ndarray:
    """Validate integer class labels in ``[0, num_classes)``."""
    arr = np.asarray(y)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{name}: expected integer class labels, got dtype {arr.dtype}")
    if arr.ndim != 1 or (n is not None and len(arr) != n):
        raise DataError(f"{name}: expected shape ({n if n is not None else 'batch'},), got {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(arr == np.round(arr)):
        raise DataError(f"{name}: labels must be whole numbers")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise DataError(f"{name}: labels must be in 0..{num_classes - 1}, got {arr.min()}..{arr.max()}")
    return arr.astype(np.int32)


class ImageDataset:
    """Labelled images held in memory, split into ``train`` and ``test``."""

    def __init__(self, name, train, test, num_classes, source, class_names=None):
        self.name = name
        self.num_classes = int(num_classes)
        self._splits = {}
        for split, (x, y) in (("train", train), ("test", test)):
            x = as_images(x, name=f"{name}/{split} images")
            self._splits[split] = (x, as_labels(y, self.num_classes, len(x), name=f"{name}/{split} labels"))
        shapes = {s: v[0].shape[1:] for s, v in self._splits.items()}
        if shapes["train"] != shapes["test"]:
            raise DataError(f"{name}: train and test images differ in shape: {shapes}")
        self.info = dict(
            input_shape=tuple(int(d) for d in shapes["train"]),
            num_classes=self.num_classes,
            source=source,
            class_names=list(class_names) if class_names else [str(i) for i in range(self.num_classes)],
            sizes={s: len(v[0]) for s, v in self._splits.items()},
        )

    def arrays(self, split):
        """``(x, y)`` numpy arrays of a split: float32 images in [0, 1], int32 labels."""
        if split not in self._splits:
            raise DataError(f"{self.name}: unknown split {split!r}; choose from {sorted(self._splits)}")
        return self._splits[split]

    def subset(self, split, n, seed=0):
        """The first ``n`` examples of a seeded permutation of ``split`` (a low-data regime)."""
        x, y = self.arrays(split)
        idx = np.random.default_rng(seed).permutation(len(x))[:n]
        return x[idx], y[idx]

    def pipeline(self, split, batch_size, *, shuffle=None, seed=0, drop_remainder=False):
        """A ``tf.data`` pipeline of ``(x, y)`` batches: cache, seeded shuffle, batch, prefetch."""
        import tensorflow as tf

        x, y = self.arrays(split)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
        if shuffle if shuffle is not None else split == "train":
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def list_datasets() -> list[str]:
    from zoo.plugins import get_plugin_manager

    return sorted(get_plugin_manager().datasets())


def load_dataset(name, data_dir=None, seed=0, **params):
    """Build the dataset ``name`` from its ``zoo_datasets()`` factory; ``params`` (``--dataset-arg``)
    a factory does not take are refused with the ones it does take."""
    from zoo.plugins import get_plugin_manager

    factories = get_plugin_manager().datasets()
    if name not in factories:
        from zoo.api import unknown

        raise unknown("dataset", name, factories)
    factory = factories[name]
    check_call(factory, params, f"dataset {name!r}", reserved=("data_dir", "seed"))
    try:
        dataset = factory(data_dir=data_dir, seed=seed, **params)
    except ZooError:
        raise
    except (Exception, SystemExit) as exc:  # a plugin's bug: name it, not a traceback (Ctrl-C still interrupts)
        raise DataError(f"dataset {name!r} ({_provider(name)}) failed to load: {type(exc).__name__}: "
                        f"{' '.join(str(exc).split())}") from exc
    missing = [attr for attr in ("arrays", "pipeline") if not callable(getattr(dataset, attr, None))]
    info = getattr(dataset, "info", None)
    if missing or not isinstance(info, dict):
        what = f"no callable {' or '.join(missing)}" if missing else f"info is {type(info).__name__}, not a dict"
        raise DataError(f"dataset {name!r} ({_provider(name)}): its factory returned a {type(dataset).__name__} "
                        f"({what}); a zoo_datasets() factory must return a Dataset with info, arrays(split) "
                        f"and pipeline(split, batch_size, ...)")
    return dataset


def _provider(name) -> str:
    """``plugin 'x' from distribution d v`` for the dataset ``name``."""
    from zoo.plugins import get_plugin_manager

    try:
        info = get_plugin_manager().provider("datasets", name)
    except Exception:
        return "plugin unknown"
    return f"plugin {info.name!r} from distribution {info.distribution} {info.version}"


def dataset_params(params) -> dict:
    """``--dataset-arg`` values as a plain dict; ``data_dir`` and ``seed`` have their own options."""
    params = dict(params or {})
    reserved = sorted({"data_dir", "seed"} & set(params))
    if reserved:
        raise ConfigError(f"dataset parameter(s) {', '.join(reserved)} are set by --data-dir / --seed, "
                          f"not by --dataset-arg")
    return params
