"""WAV reading (bad files get a clear error or a documented conversion), tone "speech", splits and
length-bucketed pipelines of the spoken-digit datasets."""
import struct
import warnings

import numpy as np
import pytest

from zoo.data import DataError
from zoo.data.audio import (EOS, SAMPLE_RATE, AudioClippingWarning, as_waveforms, ids_to_text, read_wav,
                            texts_to_ids, write_wav)


def sine(freq, seconds=0.25, rate=SAMPLE_RATE, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(x, rate=SAMPLE_RATE):
    spectrum = np.abs(np.fft.rfft(x))
    return np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)]


def test_16_bit_round_trip(tmp_path):
    x = sine(440)
    y = read_wav(write_wav(tmp_path / "a.wav", x))
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1 / 32767)


def test_empty_file_is_refused(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        read_wav(tmp_path / "empty.wav")


def test_wav_without_samples_is_refused(tmp_path):
    path = write_wav(tmp_path / "silent.wav", np.zeros(0, np.float32))
    with pytest.raises(DataError, match="no audio samples"):
        read_wav(path)


def test_not_a_wav_and_unsupported_encoding_are_refused(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"ID3 this is an mp3" + bytes(40))
    with pytest.raises(DataError, match="not a WAV"):
        read_wav(tmp_path / "x.wav")
    body = bytes(100)  # A-law (format tag 6)
    header = b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 6, 1, 8000, 8000, 1, 8) + b"data" + struct.pack("<I", len(body))
    (tmp_path / "alaw.wav").write_bytes(header + body)
    with pytest.raises(DataError, match="unsupported WAV encoding"):
        read_wav(tmp_path / "alaw.wav")
    with pytest.raises(DataError, match="cannot read"):
        read_wav(tmp_path / "missing.wav")


def test_clipped_recording_warns_or_is_refused(tmp_path):
    path = write_wav(tmp_path / "loud.wav", np.clip(4 * sine(300), -1, 1))
    with pytest.warns(AudioClippingWarning, match="clipped"):
        x = read_wav(path)
    assert np.abs(x).max() <= 1.0
    with pytest.raises(DataError, match="clipped"):
        read_wav(path, on_clipping="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_wav(path, on_clipping="ignore")
        read_wav(write_wav(tmp_path / "quiet.wav", sine(300)))  # an ordinary file: no warning


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = sine(300), sine(900, amplitude=0.2)
    x = read_wav(write_wav(tmp_path / "stereo.wav", np.stack([left, right], 1)))
    assert x.ndim == 1 and len(x) == len(left)
    np.testing.assert_allclose(x, (left + right) / 2, atol=2 / 32767)


def test_other_sample_rates_are_resampled_to_8khz(tmp_path):
    for rate in (16000, 44100):
        x = read_wav(write_wav(tmp_path / f"r{rate}.wav", sine(500, 0.5, rate), sample_rate=rate))
        assert abs(len(x) - 4000) <= 1
        assert abs(dominant_frequency(x) - 500) < 5


def test_float_wav_beyond_full_scale_is_clipped(tmp_path):
    x = np.array([0.0, 0.5, 1.5, -2.0] * 10, np.float32)
    body = x.tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 3, 1, 8000, 32000, 4, 32) + b"data" + struct.pack("<I", len(body))
    (tmp_path / "f.wav").write_bytes(header + body)
    y = read_wav(tmp_path / "f.wav", on_clipping="ignore")
    np.testing.assert_array_equal(y[:4], [0.0, 0.5, 1.0, -1.0])


@pytest.mark.parametrize("bad, message", [
    (np.zeros(10, np.float32), "one 1-D waveform"),
    ([np.array([0.0, 2.0])], r"\[-1, 1\]"),
    ([np.array([0.0, np.nan])], "NaN"),
    ([np.zeros((2, 2))], "1-D"),
    ([np.zeros(0)], "non-empty"),
    ([], "empty batch"),
    ([["a", "b"]], "numeric"),
])
def test_bad_waveforms_are_refused(bad, message):
    with pytest.raises(DataError, match=message):
        as_waveforms(bad)


def test_vocabulary_round_trip():
    ids = texts_to_ids(["three one", "nine"])
    assert ids.shape == (2, 10) and ids[1, 4] == EOS and ids[1, 5:].sum() == 0
    assert [ids_to_text(r) for r in ids] == ["three one", "nine"]
    with pytest.raises(DataError, match="outside the vocabulary"):
        texts_to_ids(["3 1"])


@pytest.fixture(scope="module")
def tones():
    from zoo.data import load_dataset

    return load_dataset("tones", seed=0)


def test_tones_splits(tones):
    words = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
    waves, texts, speakers = tones.arrays("test_multi")
    assert len(waves) == 120 and set(speakers) <= set(range(6))
    assert all(2 <= len(t.split()) <= 4 and set(t.split()) <= words for t in texts)
    singles = tones.arrays("test_single")
    assert all(t in words for t in singles[1]) and len(set(singles[2])) == 6
    assert len(tones.arrays("probe_train")[0]) == 6 * 10 * 10 and len(tones.arrays("probe_test")[0]) == 6 * 10 * 5
    again = __import__("zoo.data", fromlist=["load_dataset"]).load_dataset("tones", seed=0)
    assert again.arrays("train")[1] == tones.arrays("train")[1]  # deterministic from the seed
    np.testing.assert_array_equal(again.arrays("train")[0][-1], tones.arrays("train")[0][-1])
    with pytest.raises(DataError, match="unknown split"):
        tones.arrays("validation")


def test_pipeline_buckets_have_variable_lengths(tones):
    lengths, token_lengths = set(), set()
    for x, y in tones.pipeline("train", 16).take(30):
        assert x.dtype.name == "float32" and y["tokens"].dtype.name == "int32"
        assert x.shape[0] == y["tokens"].shape[0] == y["speaker"].shape[0]
        assert np.all(np.max(y["tokens"].numpy(), axis=1) > 0)
        lengths.add(x.shape[1])
        token_lengths.add(y["tokens"].shape[1])
    assert len(lengths) > 3 and len(token_lengths) > 1


def test_fsdd_file_reads_as_8khz_mono(shared_data):
    path = shared_data / "fsdd" / "recordings" / "3_theo_0.wav"
    if not path.exists():
        pytest.skip("FSDD recordings not found")
    x = read_wav(path)
    assert x.dtype == np.float32 and x.ndim == 1 and 0.1 * SAMPLE_RATE < len(x) < 2.5 * SAMPLE_RATE
    assert 0.01 < np.abs(x).max() <= 1.0


def wav_header(body_bytes, rate, channels=1, bits=16, tag=1):
    block = channels * bits // 8
    header = b"RIFF" + struct.pack("<I", 36 + body_bytes) + b"WAVE"
    return header + b"fmt " + struct.pack("<IHHIIHH", 16, tag, channels, rate, min(rate * block, 2**32 - 1), block, bits) + \
        b"data" + struct.pack("<I", body_bytes)


@pytest.mark.parametrize("rate", [4_000_000_000, 384_001, 999, 1])
def test_absurd_header_sample_rates_are_refused_before_decoding(tmp_path, rate):
    """A forged 4 GHz rate once made the resampler try to allocate 640 GiB; now the header is refused."""
    body = np.zeros(400, "<i2").tobytes()
    (tmp_path / "forged.wav").write_bytes(wav_header(len(body), rate) + body)
    with pytest.raises(DataError, match=f"{rate:,} Hz.*1,000-384,000 Hz"):
        read_wav(tmp_path / "forged.wav")


def test_the_bounds_of_the_sample_rate_are_read(tmp_path):
    for rate in (1_000, 384_000):
        x = read_wav(write_wav(tmp_path / f"r{rate}.wav", sine(300, 0.1, rate), sample_rate=rate))
        assert abs(len(x) - 800) <= 1


def test_recordings_longer_than_max_seconds_are_refused(tmp_path):
    path = write_wav(tmp_path / "long.wav", np.zeros(8000 * 3, np.float32) + 0.1)
    with pytest.raises(DataError, match="3 s of audio, more than the 2 s"):
        read_wav(path, max_seconds=2)
    assert len(read_wav(path, max_seconds=None)) == 8000 * 3
    assert len(read_wav(path)) == 8000 * 3  # the default (10 minutes) reads ordinary files
