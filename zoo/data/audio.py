"""Spoken digits for the ``las`` family: WAV reading, the Free Spoken Digit Dataset, generated tone
"speech", a character vocabulary and length-bucketed ``tf.data`` pipelines.

Utterances are single digits and, so that attention matters, sequences of 2–4 digits of ONE speaker
concatenated with short random gaps ("three one four"), drawn deterministically from a seed.

* ``fsdd``: ``recordings/{digit}_{speaker}_{take}.wav`` (8 kHz mono 16-bit) from ``data_dir``, or TFDS
  ``spoken_digit`` on a connected machine. Standard split: takes 0–4 of every speaker and digit
  evaluate, takes 5–49 train.
* ``fsdd_heldout``: the same recordings, one speaker held out entirely (the factory parameter
  ``speaker``, any of the six, default ``yweweler``): it is the whole evaluation set and never seen
  in training — one fold of a leave-one-speaker-out evaluation (``tools/loso_sweep.py``).
* ``tones``: the embedded default — code-generated "digits" (two-note tone patterns) spoken by six
  "speakers" that differ in pitch, timbre, tempo and noise; needs nothing on disk.

Splits of every audio dataset: ``train``, ``test`` (single and multi-digit), ``test_single``,
``test_multi``, and the speaker-probe splits ``probe_train`` (single digits, takes 5–14) and
``probe_test`` (single digits, takes 0–4; for ``fsdd_heldout`` both from the training speakers).
``arrays(split)`` returns ``(waveforms, transcripts, speakers)``: lists of float32 arrays in
[−1, 1] at 8 kHz, strings, and int speaker ids.
"""
from __future__ import annotations

import re
import struct
import warnings
from math import gcd
from pathlib import Path

import numpy as np

from zoo.data import DataError

SAMPLE_RATE = 8000
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
FSDD_TAKES = 50
TEST_TAKES = range(0, 5)
PROBE_TRAIN_TAKES = range(5, 15)
#: A file counts as clipped when more than this fraction of its samples sit at full scale.
CLIPPED_FRACTION = 0.01
#: Header sample rates outside this range are refused: telephone speech is 8 kHz, studio audio tops
#: out at 384 kHz, and a forged rate (4 GHz) would make the resampler's filter allocate hundreds of GiB.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000
#: Longest recording ``read_wav`` decodes by default (10 minutes; an utterance is seconds long).
MAX_SECONDS = 600.0

# -- character vocabulary ------------------------------------------------------------------------
PAD, SOS, EOS = 0, 1, 2
CHARACTERS = " abcdefghijklmnopqrstuvwxyz'"
VOCABULARY = ("<pad>", "<sos>", "<eos>") + tuple(CHARACTERS)
_CHAR_TO_ID = {c: i + 3 for i, c in enumerate(CHARACTERS)}


def text_to_ids(text: str) -> list[int]:
    """Character ids of ``text`` followed by ``<eos>`` (lower-cased; unknown characters refused)."""
    text = " ".join(str(text).lower().split())
    bad = sorted({c for c in text if c not in _CHAR_TO_ID})
    if bad:
        raise DataError(f"transcript {text!r} has characters outside the vocabulary: {bad}")
    return [_CHAR_TO_ID[c] for c in text] + [EOS]


def texts_to_ids(texts) -> np.ndarray:
    """A zero-padded int32 batch ``(batch, length)`` of :func:`text_to_ids` (the LAS label format)."""
    rows = [text_to_ids(t) for t in texts]
    out = np.zeros((len(rows), max((len(r) for r in rows), default=1)), np.int32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def ids_to_text(ids) -> str:
    """The text of one row of ids, up to the first ``<eos>``; ``<pad>``/``<sos>`` are skipped."""
    chars = []
    for i in np.asarray(ids).tolist():
        if i == EOS:
            break
        if i > EOS:
            chars.append(VOCABULARY[i])
    return "".join(chars)


# -- WAV files -----------------------------------------------------------------------------------
class AudioClippingWarning(UserWarning):
    """A WAV file whose samples pile up at full scale (the waveform is kept as it is)."""


def read_wav(path, sample_rate: int = SAMPLE_RATE, *, on_clipping: str = "warn",
             max_seconds: float | None = MAX_SECONDS) -> np.ndarray:
    """Read a PCM (8/16/24/32-bit) or IEEE-float WAV file as float32 mono in [−1, 1] at ``sample_rate``.

    Documented conversions: several channels are averaged to mono; another sample rate is resampled
    to ``sample_rate`` with a polyphase filter (``scipy.signal.resample_poly``); float samples beyond
    [−1, 1] are clipped to it. A clipped recording (more than 1% of samples at full scale) is kept
    with an :class:`AudioClippingWarning` (``on_clipping="warn"``), refused (``"error"``) or accepted
    silently (``"ignore"``). A file that is missing, not a WAV, truncated, in another encoding,
    empty or holding NaN raises :class:`DataError` naming the file, and so does a header sample rate
    outside 1–384 kHz or a recording longer than ``max_seconds`` (``None``: no limit) — both are
    checked before anything is decoded or resampled.
    """
    if on_clipping not in ("warn", "error", "ignore"):
        raise ValueError(f"on_clipping must be 'warn', 'error' or 'ignore', got {on_clipping!r}")
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the WAV file: {exc.strerror or exc}") from exc
    if len(data) == 0:
        raise DataError(f"{path}: empty file (0 bytes), not a WAV recording")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DataError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    fmt, samples = None, None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise DataError(f"{path}: truncated 'fmt ' chunk")
            tag, channels, rate, _, block, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag opens the GUID
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            samples = body
            if len(body) < size:
                warnings.warn(f"{path}: data chunk is truncated ({len(body)} of {size} bytes); reading what is there",
                              stacklevel=2)
        pos += 8 + size + (size & 1)  # chunks are word-aligned
    if fmt is None:
        raise DataError(f"{path}: WAV file without a 'fmt ' chunk")
    if samples is None:
        raise DataError(f"{path}: WAV file without a 'data' chunk")
    tag, channels, rate, bits = fmt
    if channels < 1 or rate < 1:
        raise DataError(f"{path}: invalid header ({channels} channels, {rate} Hz)")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise DataError(f"{path}: the header claims a sample rate of {rate:,} Hz; zoo reads "
                        f"{MIN_SAMPLE_RATE:,}-{MAX_SAMPLE_RATE:,} Hz (is the header damaged?)")
    width = bits // 8
    if width and max_seconds is not None:
        seconds = len(samples) // (width * channels) / rate
        if seconds > max_seconds:
            raise DataError(f"{path}: {seconds:,.0f} s of audio, more than the {max_seconds:,.0f} s read_wav "
                            f"decodes (split the recording, or pass max_seconds=None)")
    if tag == 1 and bits in (8, 16, 24, 32):
        raw = np.frombuffer(samples[: len(samples) // width * width], np.uint8)
        if bits == 8:  # unsigned
            x = (raw.astype(np.float32) - 128.0) / 128.0
            full = (raw == 0) | (raw == 255)
        elif bits == 24:
            b = raw.reshape(-1, 3).astype(np.int32)
            ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16))
            ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
            x = ints.astype(np.float32) / float(1 << 23)
            full = (ints <= -(1 << 23) + 1) | (ints >= (1 << 23) - 1)
        else:
            ints = raw.view(np.int16 if bits == 16 else np.int32)
            scale = float(1 << (bits - 1))
            x = (ints.astype(np.float64) / scale).astype(np.float32)
            full = (ints <= -scale + 1) | (ints >= scale - 1)
    elif tag == 3 and bits in (32, 64):
        x = np.frombuffer(samples[: len(samples) // width * width], np.float32 if bits == 32 else np.float64)
        if not np.all(np.isfinite(x)):
            raise DataError(f"{path}: float WAV holds NaN or infinite samples")
        full = np.abs(x) >= 1.0
        x = np.clip(x, -1.0, 1.0).astype(np.float32)
    else:
        raise DataError(f"{path}: unsupported WAV encoding (format tag {tag}, {bits} bits); "
                        f"use PCM 8/16/24/32-bit or IEEE float 32/64-bit")
    frames = len(x) // channels
    if frames == 0:
        raise DataError(f"{path}: the WAV file holds no audio samples (empty recording)")
    x = x[: frames * channels].reshape(frames, channels)
    full = full[: frames * channels].reshape(frames, channels).any(axis=1)
    if channels > 1:
        x = x.mean(axis=1)  # documented conversion: mono = mean of the channels
    else:
        x = x[:, 0]
    clipped = float(full.mean())
    if clipped > CLIPPED_FRACTION and on_clipping != "ignore":
        message = (f"{path}: {clipped:.1%} of the samples are at full scale (clipped recording); "
                   f"transcripts of clipped audio are less reliable")
        if on_clipping == "error":
            raise DataError(message)
        warnings.warn(message, AudioClippingWarning, stacklevel=2)
    if rate != sample_rate:
        x = resample(x, rate, sample_rate)
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(x, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling from ``rate_in`` to ``rate_out`` Hz, kept in [−1, 1]."""
    from scipy.signal import resample_poly

    g = gcd(int(rate_in), int(rate_out))
    y = resample_poly(np.asarray(x, np.float64), rate_out // g, rate_in // g)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def write_wav(path, waveform, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a mono float waveform in [−1, 1] (or a ``(frames, channels)`` array) as 16-bit PCM."""
    x = np.asarray(waveform, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise DataError(f"write_wav: expected (frames,) or (frames, channels), got shape {x.shape}")
    ints = np.round(np.clip(x, -1.0, 1.0) * 32767).astype("<i2")
    body = ints.tobytes()
    channels = x.shape[1]
    header = b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * 2 * channels, 2 * channels, 16)
    header += b"data" + struct.pack("<I", len(body))
    path = Path(path)
    path.write_bytes(header + body)
    return path


def as_waveforms(waveforms, *, name="waveforms") -> list[np.ndarray]:
    """Validate a list of 1-D float arrays (or a zero-padded 2-D batch) of samples in [−1, 1]."""
    if isinstance(waveforms, np.ndarray) and waveforms.ndim == 2:
        rows = list(waveforms)
    elif isinstance(waveforms, np.ndarray) and waveforms.ndim == 1 and waveforms.dtype != object:
        raise DataError(f"{name}: got one 1-D waveform; pass a list of waveforms ([x]) or a 2-D batch")
    else:
        try:
            rows = list(waveforms)
        except TypeError:
            raise DataError(f"{name}: expected a list of 1-D waveforms or a 2-D batch, got {type(waveforms).__name__}")
    if not rows:
        raise DataError(f"{name}: empty batch")
    out = []
    for i, w in enumerate(rows):
        arr = np.asarray(w)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            raise DataError(f"{name}[{i}]: expected numeric samples, got dtype {arr.dtype}")
        if arr.ndim != 1 or arr.size == 0:
            raise DataError(f"{name}[{i}]: expected a non-empty 1-D waveform, got shape {arr.shape}")
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{name}[{i}]: contains NaN or infinite samples")
        if np.abs(arr).max() > 1.0 + 1e-6:
            raise DataError(f"{name}[{i}]: samples must be floats in [-1, 1] at {SAMPLE_RATE} Hz, "
                            f"got {arr.min():.3g}..{arr.max():.3g} (divide int16 audio by 32768)")
        out.append(arr)
    return out


def pad_batch(waveforms) -> np.ndarray:
    """A zero-padded float32 ``(batch, max_length)`` array of a list of waveforms."""
    out = np.zeros((len(waveforms), max(len(w) for w in waveforms)), np.float32)
    for i, w in enumerate(waveforms):
        out[i, :len(w)] = w
    return out


# -- utterances ----------------------------------------------------------------------------------
class AudioDataset:
    """Spoken-digit utterances held in memory, with named splits (see the module docstring).

    Args:
        name: dataset name.
        singles: list of ``(waveform, digit, speaker_id, take)``.
        speakers: speaker names (index = speaker id).
        test_speakers / train_speakers: which speaker ids each split uses (``None``: all).
        multi_train / multi_test: how many 2–4-digit utterances to generate per split.
        seed: seeds the concatenations (digits, takes, gaps).
    """

    def __init__(self, name, singles, speakers, source, *, seed=0, multi_train=2700, multi_test=300,
                 heldout_speaker=None, gap_seconds=(0.05, 0.2)):
        self.name = name
        self.speakers = list(speakers)
        self.seed = int(seed)
        heldout = None if heldout_speaker is None else self.speakers.index(heldout_speaker)
        train_sp = [s for s in range(len(self.speakers)) if s != heldout]

        def pick(speakers, takes=None):
            return [u for u in singles if u[2] in speakers and (takes is None or u[3] in takes)]

        test_takes = set(TEST_TAKES)
        train_takes = {t for t in range(max(u[3] for u in singles) + 1)} - test_takes
        if heldout is None:
            train_singles, test_singles = pick(train_sp, train_takes), pick(train_sp, test_takes)
        else:
            train_singles, test_singles = pick(train_sp), pick([heldout])
        if not train_singles or not test_singles:
            raise DataError(f"{name}: a split is empty ({len(train_singles)} train, {len(test_singles)} test recordings)")
        rng = np.random.default_rng(self.seed)
        self._splits = {
            "train": self._utterances(train_singles, multi_train, rng, gap_seconds),
            "test_single": self._utterances(test_singles, 0, rng, gap_seconds),
            "test_multi": self._utterances(test_singles, multi_test, rng, gap_seconds, singles_too=False),
            "probe_train": self._utterances(pick(train_sp, set(PROBE_TRAIN_TAKES)), 0, rng, gap_seconds),
            "probe_test": self._utterances(pick(train_sp, test_takes), 0, rng, gap_seconds),
        }
        self._splits["test"] = tuple(a + b for a, b in zip(self._splits["test_single"], self._splits["test_multi"]))
        self.info = dict(
            sample_rate=SAMPLE_RATE,
            speakers=self.speakers,
            num_speakers=len(self.speakers),
            heldout_speaker=heldout_speaker,
            vocabulary=list(VOCABULARY),
            source=source,
            sizes={k: len(v[0]) for k, v in self._splits.items()},
            nuisance="speaker",
        )

    @staticmethod
    def _utterances(singles, n_multi, rng, gaps, singles_too=True):
        waves, texts, speakers = [], [], []
        if singles_too:
            for w, d, s, _ in singles:
                waves.append(w)
                texts.append(DIGIT_WORDS[d])
                speakers.append(s)
        if n_multi:
            by_speaker = {}
            for u in singles:
                by_speaker.setdefault(u[2], []).append(u)
            ids = sorted(by_speaker)
            for _ in range(n_multi):
                pool = by_speaker[ids[rng.integers(len(ids))]]
                parts = [pool[rng.integers(len(pool))] for _ in range(rng.integers(2, 5))]
                pieces = []
                for j, (w, d, s, _) in enumerate(parts):
                    if j:
                        pieces.append(np.zeros(int(rng.uniform(*gaps) * SAMPLE_RATE), np.float32))
                    pieces.append(w)
                waves.append(np.concatenate(pieces))
                texts.append(" ".join(DIGIT_WORDS[p[1]] for p in parts))
                speakers.append(parts[0][2])
        return waves, texts, speakers

    def arrays(self, split):
        """``(waveforms, transcripts, speakers)`` of a split: lists of float32 arrays, strings, ints."""
        if split not in self._splits:
            raise DataError(f"{self.name}: unknown split {split!r}; choose from {sorted(self._splits)}")
        waves, texts, speakers = self._splits[split]
        return list(waves), list(texts), list(speakers)

    def pipeline(self, split, batch_size, *, shuffle=None, seed=0, bucket_seconds=(0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0)):
        """``tf.data`` batches ``(waveforms, {"tokens", "speaker"})`` grouped by length buckets.

        Waveforms are zero-padded ``(batch, samples)`` float32, tokens zero-padded
        ``(batch, characters + 1)`` int32 ending in ``<eos>``; both dimensions vary between batches
        (the LAS step is traced once with ``None`` dimensions).
        """
        import tensorflow as tf

        if batch_size < 1:
            raise DataError(f"batch_size must be positive, got {batch_size}")
        waves, texts, speakers = self.arrays(split)
        tokens = [text_to_ids(t) for t in texts]

        def generate():
            for w, t, s in zip(waves, tokens, speakers):
                yield w, np.asarray(t, np.int32), np.int32(s)

        ds = tf.data.Dataset.from_generator(generate, output_signature=(
            tf.TensorSpec((None,), tf.float32), tf.TensorSpec((None,), tf.int32), tf.TensorSpec((), tf.int32)))
        ds = ds.cache()
        if shuffle if shuffle is not None else split == "train":
            ds = ds.shuffle(len(waves), seed=seed, reshuffle_each_iteration=True)
        boundaries = [int(s * SAMPLE_RATE) for s in bucket_seconds]
        ds = ds.bucket_by_sequence_length(
            lambda w, t, s: tf.shape(w)[0], boundaries, [batch_size] * (len(boundaries) + 1),
            padded_shapes=([None], [None], []), padding_values=(0.0, PAD, 0))
        # Every bucket yields ceil(its utterances / batch) batches whatever the order, so the count is
        # known: progress bars get a total and Keras need not run out of data to find the epoch's end.
        buckets = np.searchsorted(boundaries, [len(w) for w in waves], side="right")
        batches = int(sum(-(-count // batch_size) for count in np.bincount(buckets)))
        ds = ds.map(lambda w, t, s: (w, {"tokens": t, "speaker": s}))
        return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)


# -- sources -------------------------------------------------------------------------------------
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def fsdd_files(directory) -> tuple[list, list[str]]:
    """``(files, speakers)`` of a folder of ``{digit}_{speaker}_{take}.wav`` (or its parent), from the
    names alone: ``files`` are ``(path, digit, speaker, take)``, ``speakers`` the sorted names."""
    directory = Path(directory)
    if (directory / "recordings").is_dir():
        directory = directory / "recordings"
    if not directory.is_dir():
        raise DataError(f"fsdd: {directory} is not a directory of FSDD recordings")
    found = [(p, int(m.group(1)), m.group(2), int(m.group(3)))
             for p in sorted(directory.iterdir()) if (m := _FSDD_NAME.match(p.name))]
    if not found:
        raise DataError(f"fsdd: no {{digit}}_{{speaker}}_{{take}}.wav files in {directory}")
    return found, sorted({f[2] for f in found})


def read_fsdd_recordings(directory) -> tuple[list, list[str]]:
    """``(singles, speakers)`` from a folder of ``{digit}_{speaker}_{take}.wav`` (or its parent)."""
    found, speakers = fsdd_files(directory)
    return [(read_wav(p), d, speakers.index(s), t) for p, d, s, t in found], speakers


def read_fsdd_tfds(data_dir=None):
    """``(singles, speakers)`` from TFDS ``spoken_digit`` (connected machines). TFDS carries no
    speaker or take fields, so both are parsed from each example's file name."""
    import tensorflow_datasets as tfds

    try:
        ds = tfds.load("spoken_digit", split="train", data_dir=data_dir)
    except Exception as exc:  # offline machines end here
        raise DataError(f"fsdd: no --data-dir with FSDD recordings and TFDS could not provide 'spoken_digit' "
                        f"({type(exc).__name__}: {exc}); use the embedded 'tones' dataset (the '-tones' presets)") from exc
    rows = []
    for ex in tfds.as_numpy(ds):
        m = _FSDD_NAME.match(Path(ex["audio/filename"].decode()).name)
        if m:
            rows.append((ex["audio"].astype(np.float32) / 32768.0, int(m.group(1)), m.group(2), int(m.group(3))))
    speakers = sorted({r[2] for r in rows})
    return [(w, d, speakers.index(s), t) for w, d, s, t in rows], speakers


def _check_speaker(speaker, speakers, source):
    if not isinstance(speaker, str) or speaker not in speakers:
        raise DataError(f"fsdd_heldout: unknown speaker {speaker!r} in {source}; "
                        f"choose one of {', '.join(speakers)} (e.g. --dataset-arg speaker={speakers[0]})")


def _check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise DataError(f"{name} must be a whole number >= 0, got {value!r}")
    return int(value)


def fsdd(data_dir=None, seed=0, heldout_speaker=None, multi_train=2700, multi_test=300):
    """FSDD from ``data_dir`` (recordings/ or its parent), else TFDS ``spoken_digit``; with
    ``heldout_speaker``, that speaker is the whole test set and absent from training."""
    multi_train, multi_test = _check_count("multi_train", multi_train), _check_count("multi_test", multi_test)
    if data_dir is not None:
        source = f"fsdd:{data_dir}"
        if heldout_speaker is not None:  # refuse a bad name before decoding 3,000 files
            _check_speaker(heldout_speaker, fsdd_files(data_dir)[1], source)
        singles, speakers = read_fsdd_recordings(data_dir)
    else:
        source = "tfds:spoken_digit"
        if heldout_speaker is not None:  # TFDS holds the same six speakers; check before downloading
            _check_speaker(heldout_speaker, list(FSDD_SPEAKERS), source)
        singles, speakers = read_fsdd_tfds()
    if heldout_speaker is not None:
        _check_speaker(heldout_speaker, speakers, source)
    name = "fsdd" if heldout_speaker is None else "fsdd_heldout"
    return AudioDataset(name, singles, speakers, source, seed=seed, multi_train=multi_train,
                        multi_test=multi_test, heldout_speaker=heldout_speaker)


def fsdd_heldout(data_dir=None, seed=0, speaker="yweweler", multi_train=2700, multi_test=300):
    """FSDD with ``speaker`` (one of :data:`FSDD_SPEAKERS`) held out: trained on the other five,
    evaluated on all of its takes (single digits and ``multi_test`` sequences of its own digits)."""
    return fsdd(data_dir, seed, heldout_speaker=speaker, multi_train=multi_train, multi_test=multi_test)


# Tone "speech": each digit is a fixed two-note pattern; speakers change pitch, timbre, tempo, noise.
_NOTES = (420.0, 590.0, 830.0, 1170.0, 1650.0, 2320.0)
_DIGIT_NOTES = ((0, 3), (1, 4), (2, 5), (3, 0), (4, 1), (5, 2), (0, 5), (5, 0), (1, 3), (4, 2))
_TONE_SPEAKERS = (  # (pitch factor, harmonic amplitudes, tempo, noise level)
    (0.90, (1.0, 0.5, 0.25), 1.00, 0.010),
    (1.10, (1.0, 0.0, 0.30), 0.85, 0.005),
    (0.95, (1.0, 0.7, 0.00), 1.15, 0.020),
    (1.05, (1.0, 0.2, 0.20), 0.95, 0.015),
    (1.00, (1.0, 0.0, 0.00), 1.10, 0.010),
    (0.92, (1.0, 0.4, 0.40), 0.90, 0.020),
)
TONE_SPEAKERS = ("low", "bright", "hollow", "soft", "pure", "rich")


def tone_digit(digit: int, speaker: int, rng) -> np.ndarray:
    """One generated "spoken digit": two notes with the speaker's pitch, timbre and tempo."""
    pitch, harmonics, tempo, noise = _TONE_SPEAKERS[speaker]
    pitch *= rng.uniform(0.98, 1.02)
    pieces = []
    for note in _DIGIT_NOTES[digit]:
        n = int(SAMPLE_RATE * 0.09 * tempo * rng.uniform(0.9, 1.1))
        t = np.arange(n) / SAMPLE_RATE
        f = _NOTES[note] * pitch
        wave = sum(a * np.sin(2 * np.pi * f * (k + 1) * t + rng.uniform(0, 2 * np.pi))
                   for k, a in enumerate(harmonics) if a and f * (k + 1) < SAMPLE_RATE / 2)
        envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms fades, no clicks
        pieces.append(wave * envelope)
    x = np.concatenate(pieces)
    x = 0.5 * x / np.abs(x).max() * rng.uniform(0.6, 1.0)
    x = x + noise * rng.standard_normal(len(x))
    return np.clip(x, -1, 1).astype(np.float32)


def tones(data_dir=None, seed=0, takes=20, multi_train=600, multi_test=120):
    """The embedded default: 6 tone "speakers" × 10 digits × ``takes`` generated recordings."""
    if takes <= max(TEST_TAKES) + 1:
        raise DataError(f"tones: need more than {max(TEST_TAKES) + 1} takes, got {takes}")
    rng = np.random.default_rng(12345)  # the recordings themselves are fixed; `seed` draws the sequences
    singles = [(tone_digit(d, s, rng), d, s, take)
               for s in range(len(TONE_SPEAKERS)) for d in range(10) for take in range(takes)]
    return AudioDataset("tones", singles, TONE_SPEAKERS, "generated:tones", seed=seed,
                        multi_train=multi_train, multi_test=multi_test)
