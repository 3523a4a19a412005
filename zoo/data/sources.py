"""Built-in dataset sources, registered through ``zoo_datasets()``."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from zoo.data import DataError, ImageDataset
from zoo.hookspecs import hookimpl

#: When only the MNIST test set is present (``t10k`` files), this many images train; the rest evaluate.
T10K_TRAIN_SIZE = 8000


def read_idx(path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a numpy array, checking its header."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, OSError, zlib.error) as exc:  # a truncated or damaged .gz; an unreadable file
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc}); the file is damaged or "
                        f"truncated — download it again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes for {ndim} dimensions); "
                        f"download the file again")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: header promises {dims} values, file holds {body.size}; the file is "
                        f"truncated or damaged — download it again")
    return body.reshape(dims)


def _find(data_dir: Path, stem: str) -> Path | None:
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (data_dir / candidate).exists():
            return data_dir / candidate
    return None


def mnist_from_idx(name, data_dir) -> ImageDataset:
    """MNIST-format IDX files in ``data_dir``; with only the ``t10k`` pair, split it 8,000/2,000."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{name}: data directory {data_dir} does not exist")
    files = {k: _find(data_dir, f"{k}-idx{3 if 'images' in k else 1}-ubyte")
             for k in ("train-images", "train-labels", "t10k-images", "t10k-labels")}
    if files["t10k-images"] is None or files["t10k-labels"] is None:
        raise DataError(f"{name}: no t10k-images-idx3-ubyte[.gz] / t10k-labels-idx1-ubyte[.gz] in {data_dir}")
    x_test, y_test = read_idx(files["t10k-images"]), read_idx(files["t10k-labels"])
    if len(x_test) != len(y_test):
        raise DataError(f"{name}: {len(x_test)} test images but {len(y_test)} labels in {data_dir}")
    if files["train-images"] and files["train-labels"]:
        train = (read_idx(files["train-images"])[..., None], read_idx(files["train-labels"]))
        test = (x_test[..., None], y_test)
        source = f"idx:{data_dir}"
    else:
        if len(x_test) <= T10K_TRAIN_SIZE:
            raise DataError(f"{name}: need more than {T10K_TRAIN_SIZE} t10k images to split, got {len(x_test)}")
        train = (x_test[:T10K_TRAIN_SIZE, ..., None], y_test[:T10K_TRAIN_SIZE])
        test = (x_test[T10K_TRAIN_SIZE:, ..., None], y_test[T10K_TRAIN_SIZE:])
        source = f"idx-t10k-split:{data_dir}"
    return ImageDataset(name, train, test, 10, source)


def from_tfds(name, tfds_name, num_classes, data_dir=None) -> ImageDataset:
    """A TFDS image dataset (downloads on a connected machine into ``data_dir`` or TFDS's default)."""
    import tensorflow_datasets as tfds

    try:
        splits = tfds.load(tfds_name, split=["train", "test"], as_supervised=True, data_dir=data_dir)
        # Batches of 4,096 rather than batch_size=-1, which aborts TF 2.21 on TFDS's mock data.
        train, test = (
            tuple(np.concatenate(parts) for parts in zip(*tfds.as_numpy(ds.batch(4096)))) for ds in splits
        )
    except Exception as exc:  # offline machines end here
        raise DataError(
            f"{name}: TFDS could not provide {tfds_name!r} ({type(exc).__name__}: {exc}). Without network, "
            f"pass --data-dir with MNIST IDX files, or use the embedded 'digits' dataset (the '-digits' presets)."
        ) from exc
    return ImageDataset(name, train, test, num_classes, f"tfds:{tfds_name}")


def _mnist_like(name, tfds_name, num_classes, idx_ok=True):
    def factory(data_dir=None, seed=0, source="auto"):
        if source not in ("auto", "idx", "tfds"):
            raise DataError(f"{name}: source must be 'auto', 'idx' or 'tfds', got {source!r}")
        if data_dir is not None and not Path(data_dir).is_dir():
            raise DataError(f"{name}: data directory {data_dir} does not exist")
        if idx_ok and data_dir is not None and source != "tfds" and _find(Path(data_dir), "t10k-images-idx3-ubyte"):
            return mnist_from_idx(name, data_dir)
        if source == "idx":
            raise DataError(f"{name}: no IDX files in {data_dir}")
        return from_tfds(name, tfds_name, num_classes, data_dir=data_dir)

    factory.__doc__ = f"{name}: IDX files in data_dir if present, else TFDS {tfds_name!r}."
    return factory


def digits(data_dir=None, seed=0, test_fraction=0.2):
    """The embedded default: scikit-learn's 8×8 handwritten digits (1,797 images, ships in the wheel),
    pixels scaled to [0, 1], split by a fixed stratified shuffle (the same for every seed)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, bunch.target, test_size=test_fraction, random_state=0, stratify=bunch.target
    )
    return ImageDataset("digits", (x_tr, y_tr), (x_te, y_te), 10, "sklearn:load_digits")


@hookimpl
def zoo_datasets():
    return {
        "mnist": _mnist_like("mnist", "mnist", 10),
        "fashion_mnist": _mnist_like("fashion_mnist", "fashion_mnist", 10),
        "cifar10": _mnist_like("cifar10", "cifar10", 10, idx_ok=False),
        "digits": digits,
        # Spoken digits for the las family (zoo/data/audio.py): FSDD, FSDD with a held-out speaker,
        # and the embedded generated tone "speech".
        **{name: _audio(name) for name in ("fsdd", "fsdd_heldout", "tones")},
        # Images with one of three noise types as a nuisance label (zoo/data/noise.py).
        "mnist_noise": _noisy("mnist"),
        "digits_noise": _noisy("digits"),
    }


def _noisy(base):
    from zoo.data.noise import noisy

    return noisy(base)


def _audio(name):
    def factory(data_dir=None, seed=0, **params):
        from zoo.data import audio
        from zoo.validate import check_call

        function = getattr(audio, name)
        # the lazy wrapper hides the real parameters
        check_call(function, params, f"dataset {name!r}", reserved=("data_dir", "seed"))
        return function(data_dir=data_dir, seed=seed, **params)

    factory.__doc__ = f"{name}: spoken digits (see zoo.data.audio.{name})."
    return factory
