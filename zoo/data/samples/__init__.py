"""A few real examples shipped inside the package, so ``zoo demo`` can show the pretrained packs on
real data with no network and no dataset on disk.

* ``mnist.npz``: the first 100 images of the zoo's MNIST test split (t10k images 8000–8099), uint8
  ``images`` ``(100, 28, 28)`` and ``labels`` ``(100,)``;
* ``fsdd/{digit}_{speaker}_{take}.wav``: ten Free Spoken Digit Dataset test recordings (takes 0–4),
  digits 0–9 over the six speakers, the original files.

``ATTRIBUTION.md`` beside this file names their sources, authors and licenses (MNIST CC BY-SA 3.0,
FSDD CC BY-SA 4.0); ``python tools/make_samples.py`` regenerates them from ``../shared/data`` and
``--check`` verifies them.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from zoo.data import DataError, as_images, as_labels

SAMPLES_DIR = Path(__file__).resolve().parent
MNIST_FILE = "mnist.npz"
FSDD_DIR = "fsdd"
ATTRIBUTION_FILE = "ATTRIBUTION.md"
#: The MNIST samples are this many images of the ``mnist`` dataset's test split, from its start.
MNIST_COUNT = 100


def mnist_samples() -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: the bundled MNIST images as the ``mnist`` dataset gives them — float32
    ``(100, 28, 28, 1)`` in [0, 1] — and their int32 labels."""
    path = SAMPLES_DIR / MNIST_FILE
    try:
        with np.load(path, allow_pickle=False) as f:
            images, labels = f["images"], f["labels"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: the bundled MNIST samples cannot be read ({type(exc).__name__}: {exc}); "
                        f"reinstall zoo, or regenerate them with `python tools/make_samples.py`") from exc
    x = as_images(images[..., None], (28, 28, 1), name=f"{path} images")
    return x, as_labels(labels, 10, len(x), name=f"{path} labels")


def fsdd_samples() -> tuple[list[np.ndarray], list[str]]:
    """``(waveforms, transcripts)`` of the bundled FSDD recordings, sorted by file name: float32
    waveforms in [−1, 1] at 8 kHz read by :func:`zoo.data.audio.read_wav` (as the ``fsdd`` dataset
    reads them) and their digit words (``"seven"``)."""
    from zoo.data.audio import DIGIT_WORDS, fsdd_files, read_wav

    found, _ = fsdd_files(SAMPLES_DIR / FSDD_DIR)
    return [read_wav(path) for path, *_ in found], [DIGIT_WORDS[digit] for _, digit, _, _ in found]
