#!/usr/bin/env python
"""Regenerate the samples shipped in the package (``zoo/data/samples/``) from ``../shared/data``.

    python tools/make_samples.py              # write mnist.npz, fsdd/*.wav and ATTRIBUTION.md
    python tools/make_samples.py --check      # rebuild them in memory and compare with the files there

What is taken is fixed, so anyone with the data can check the shipped files:

* MNIST: images and labels 8000–8099 of ``t10k-{images-idx3,labels-idx1}-ubyte.gz``, the first 100 of
  the zoo's MNIST test split (the ``mnist`` dataset trains on t10k images 0–7999 when only the test
  files are present), unchanged uint8 in ``mnist.npz`` (zip members with fixed metadata, so the same
  data gives the same archive);
* FSDD: for digit d, take ``d % 5`` of speaker ``FSDD_SPEAKERS[d % 6]`` — ten test recordings (takes
  0–4) spread over the six speakers — copied byte for byte; each must read cleanly (no clipping).

``ATTRIBUTION.md`` names the sources, authors and licenses and lists every file taken with its
SHA-256. Nothing is half-written: each file is replaced atomically, and recordings no longer
chosen are removed only after the new ones are in place.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "zoo" / "data" / "samples"
MNIST_IMAGES, MNIST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def fsdd_choice() -> list[str]:
    """The recordings taken: digit d by speaker ``d % 6``, take ``d % 5``."""
    from zoo.data.audio import FSDD_SPEAKERS

    return [f"{d}_{FSDD_SPEAKERS[d % len(FSDD_SPEAKERS)]}_{d % 5}.wav" for d in range(10)]


def npz_bytes(arrays: dict) -> bytes:
    """An ``.npz`` archive of ``arrays`` with fixed member order, times and permissions."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(data_dir) -> dict[str, bytes]:
    """``relative path -> bytes`` of every sample file, from ``data_dir`` (``mnist/`` and ``fsdd/``)."""
    from zoo.data import DataError
    from zoo.data.audio import read_wav
    from zoo.data.samples import ATTRIBUTION_FILE, FSDD_DIR, MNIST_COUNT, MNIST_FILE
    from zoo.data.sources import T10K_TRAIN_SIZE, read_idx

    data_dir = Path(data_dir)
    mnist, recordings = data_dir / "mnist", data_dir / "fsdd" / "recordings"
    for path in (mnist / MNIST_IMAGES, mnist / MNIST_LABELS, recordings):
        if not path.exists():
            raise DataError(f"{path} not found: --data-dir must hold mnist/{MNIST_IMAGES}, mnist/{MNIST_LABELS} "
                            f"and fsdd/recordings/ (see ../shared/data/README.md)")
    images, labels = read_idx(mnist / MNIST_IMAGES), read_idx(mnist / MNIST_LABELS)
    taken = slice(T10K_TRAIN_SIZE, T10K_TRAIN_SIZE + MNIST_COUNT)
    if images.shape[1:] != (28, 28) or len(images) < taken.stop or len(labels) != len(images):
        raise DataError(f"{mnist}: expected the 10,000 MNIST t10k images and labels, got images {images.shape} "
                        f"and labels {labels.shape}")
    files = {MNIST_FILE: npz_bytes({"images": images[taken], "labels": labels[taken]})}
    sources = {}
    for name in fsdd_choice():
        source = recordings / name
        read_wav(source, on_clipping="error")  # a recording the demo reads must be clean and quiet
        files[f"{FSDD_DIR}/{name}"] = sources[name] = source.read_bytes()
    files[ATTRIBUTION_FILE] = attribution(
        images_sha=sha256((mnist / MNIST_IMAGES).read_bytes()), labels_sha=sha256((mnist / MNIST_LABELS).read_bytes()),
        taken=taken, labels=labels[taken], recordings={n: sha256(b) for n, b in sources.items()},
        npz_name=MNIST_FILE, fsdd_dir=FSDD_DIR).encode("utf-8")
    return files


def attribution(*, images_sha, labels_sha, taken, labels, recordings, npz_name, fsdd_dir) -> str:
    counts = ", ".join(f"{d}: {c}" for d, c in enumerate(np.bincount(labels, minlength=10)))
    rows = "\n".join(f"| `{fsdd_dir}/{name}` | `recordings/{name}` | `{digest}` |" for name, digest in recordings.items())
    return f"""# Bundled samples: sources, authors and licenses

These files ship inside the `zoo` package so that `zoo demo` can show the pretrained packs on real
data with no network and no dataset on disk. They are copies of a few examples of two public datasets,
not modified in any way; `python tools/make_samples.py` regenerates them from `../shared/data` and
`python tools/make_samples.py --check` verifies them. Their licenses are the datasets' own.

## MNIST — `{npz_name}`

* **Source**: Y. LeCun, C. Cortes and C. J. C. Burges, *The MNIST database of handwritten digits*,
  http://yann.lecun.com/exdb/mnist/ — the test-set files `{MNIST_IMAGES}` (SHA-256 `{images_sha}`) and
  `{MNIST_LABELS}` (SHA-256 `{labels_sha}`).
* **License**: Creative Commons Attribution-ShareAlike 3.0 (CC BY-SA 3.0),
  https://creativecommons.org/licenses/by-sa/3.0/
* **Taken**: images and labels {taken.start}–{taken.stop - 1} of the 10,000 t10k images, the first
  {taken.stop - taken.start} of the zoo's MNIST test split (the `mnist` dataset trains on t10k images 0–{taken.start - 1}
  and evaluates on {taken.start}–9999 when only the test files are present). Stored unchanged as uint8:
  `images` ({taken.stop - taken.start}, 28, 28) and `labels` ({taken.stop - taken.start},). Images per digit: {counts}.

## Free Spoken Digit Dataset (FSDD) — `{fsdd_dir}/*.wav`

* **Source**: Z. Jackson (Jakobovski) et al., *Free Spoken Digit Dataset*,
  https://github.com/Jakobovski/free-spoken-digit-dataset (commit 26eb9aa),
  DOI 10.5281/zenodo.1342401 — mono 16-bit 8 kHz WAV recordings `{{digit}}_{{speaker}}_{{take}}.wav`.
* **License**: Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0),
  https://creativecommons.org/licenses/by-sa/4.0/
* **Taken**: ten recordings of the dataset's test set (takes 0–4): digit d spoken by speaker
  number d mod 6 of george, jackson, lucas, nicolas, theo, yweweler, take d mod 5. The files are the
  originals, byte for byte:

| file | FSDD file | SHA-256 |
| --- | --- | --- |
{rows}
"""


def write(files: dict[str, bytes], out) -> list[Path]:
    """Put ``files`` under ``out``, each atomically; then remove recordings no longer taken."""
    from zoo.data.samples import FSDD_DIR
    from zoo.files import atomic_write_bytes

    out = Path(out)
    written = []
    for relative, data in sorted(files.items()):
        atomic_write_bytes(out / relative, data)
        written.append(out / relative)
    for stale in sorted((out / FSDD_DIR).glob("*.wav")):
        if f"{FSDD_DIR}/{stale.name}" not in files:
            stale.unlink()
    return written


def differences(files: dict[str, bytes], out) -> list[str]:
    """How the sample files in ``out`` differ from ``files`` (``[]``: they are the same). The ``.npz``
    is compared by its arrays, as another zlib may compress the same arrays to other bytes."""
    from zoo.data.samples import FSDD_DIR

    out = Path(out)
    problems = []
    for relative, data in sorted(files.items()):
        path = out / relative
        if not path.is_file():
            problems.append(f"{relative}: missing")
        elif relative.endswith(".npz"):
            with np.load(io.BytesIO(data)) as want, np.load(path, allow_pickle=False) as have:
                if sorted(want.files) != sorted(have.files) or any(
                        want[k].dtype != have[k].dtype or not np.array_equal(want[k], have[k]) for k in want.files):
                    problems.append(f"{relative}: its arrays differ from the data's")
        elif path.read_bytes() != data:
            problems.append(f"{relative}: differs")
    extra = sorted(f"{FSDD_DIR}/{p.name}" for p in (out / FSDD_DIR).glob("*.wav") if f"{FSDD_DIR}/{p.name}" not in files)
    problems += [f"{relative}: not one of the chosen recordings" for relative in extra]
    return problems


def main(argv=None) -> int:
    from zoo.errors import ZooError

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="data root holding mnist/ and fsdd/ (default ../shared/data)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the samples folder (default zoo/data/samples)")
    parser.add_argument("--check", action="store_true", help="compare with the files in --out instead of writing")
    args = parser.parse_args(argv)
    try:
        files = build(args.data_dir)
    except ZooError as exc:
        print(f"make_samples: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = differences(files, args.out)
        for problem in problems:
            print(f"make_samples: {problem}", file=sys.stderr)
        print(f"{args.out}: {'differs from the data' if problems else 'matches the data'} ({len(files)} files)")
        return 1 if problems else 0
    for path in write(files, args.out):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
