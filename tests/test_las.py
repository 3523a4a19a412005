"""The las family on tiny configs: features, listener shapes, decoding, traced signatures, the
transcribe/encode API, metrics and the ``zoo transcribe`` command."""
import json

import numpy as np
import pytest

from tests.conftest import TINY_LAS as TINY
from zoo.data.audio import write_wav


def waves(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [np.clip(0.3 * rng.standard_normal(n), -1, 1).astype(np.float32) for n in lengths]


def test_feature_and_encoder_shapes(las):
    from zoo.data.audio import pad_batch

    lengths = [800, 2000, 3333]
    x = pad_batch(waves(lengths))
    feats, mask = las.features(x)
    frames = [int(np.ceil(n / las.frame_step)) for n in lengths]
    assert feats.shape == (3, x.shape[1] // 128 + 1, 16)
    assert mask.numpy().sum(1).tolist() == frames
    assert np.all(feats.numpy()[0, frames[0]:] == 0)  # padding frames are zeroed
    valid = feats.numpy()[2, :frames[2]]
    np.testing.assert_allclose(valid.mean(0), 0, atol=1e-4)  # per-utterance normalisation
    h = las.encode(x)
    assert h.shape == (3, int(np.ceil(feats.shape[1] / 4)), 16)  # time ÷ 2 per pBLSTM layer, 2 × 8 units
    assert np.all(h.numpy()[0, int(np.ceil(frames[0] / 4)):] == 0)


def test_mfcc_features_shape():
    from zoo import load

    model = load("las", compile=False, **{**TINY, "features": "mfcc", "num_mfcc": 13})
    feats, _ = model.features(np.zeros((2, 1000), np.float32) + 0.1)
    assert feats.shape[-1] == 13 and np.all(np.isfinite(feats.numpy()))


def test_utterance_normalisation_keeps_the_spectral_shape():
    from zoo import load
    from zoo.data.audio import pad_batch

    x = pad_batch(waves([1500, 4000]))
    channel = load("las", compile=False, **TINY)
    utterance = load("las", compile=False, **TINY, feature_norm="utterance")
    (a, mask), (b, _) = channel.features(x), utterance.features(x)
    n = int(mask.numpy()[1].sum())
    np.testing.assert_allclose(a.numpy()[1, :n].mean(0), 0, atol=1e-4)  # every channel centred
    valid = b.numpy()[1, :n]
    assert abs(valid.mean()) < 1e-4 and abs(valid.std() - 1) < 1e-2  # one mean and scale ...
    assert np.abs(valid.mean(0)).max() > 0.1  # ... so channels keep their relative levels
    assert utterance.get_config()["feature_norm"] == "utterance"
    with pytest.raises(ValueError, match="feature_norm"):
        load("las", compile=False, **TINY, feature_norm="speaker")


def test_both_normalisations_are_two_streams_masked_alike():
    from zoo import load
    from zoo.data.audio import pad_batch

    x = pad_batch(waves([1500, 4000]))
    both = load("las", compile=False, **TINY, feature_norm="both", freq_masks=1, freq_mask_width=3)
    channel = load("las", compile=False, **TINY)
    utterance = load("las", compile=False, **TINY, feature_norm="utterance")
    (f, mask), (a, _), (b, _) = both.features(x), channel.features(x), utterance.features(x)
    d = channel.feature_dim
    assert both.feature_dim == f.shape[-1] == 2 * d
    np.testing.assert_allclose(f.numpy()[..., :d], a.numpy(), atol=1e-5)
    np.testing.assert_allclose(f.numpy()[..., d:], b.numpy(), atol=1e-5)
    n = int(mask.numpy()[1].sum())
    bands = 0
    for _ in range(5):
        zero = np.all(both._spec_augment(f, mask).numpy()[1, :n] == 0, axis=0)  # masked over all frames
        np.testing.assert_array_equal(zero[:d], zero[d:])  # the same band in both streams
        bands += zero[:d].sum()
    assert bands > 0
    assert both.encode(x).shape[-1] == both.encoder_dim


def test_spec_augment_masks_bands_and_spans_only_while_training():
    from zoo import load
    from zoo.data.audio import pad_batch

    las = load("las", compile=False, **TINY, freq_masks=2, freq_mask_width=3, time_masks=2, time_mask_width=4)
    x = pad_batch(waves([1500, 4000]))
    feats, mask = las.features(x)
    valid = mask.numpy().sum(1)
    f = feats.numpy()
    bands, spans = [], []
    for _ in range(10):
        out = las._spec_augment(feats, mask).numpy()
        for row, n in enumerate(valid):
            zeroed = (out[row, :n] == 0) & (f[row, :n] != 0)
            bands.append(zeroed.all(axis=0).sum())  # channels zero at every valid frame
            spans.append(zeroed.all(axis=1).sum())  # frames zero in every channel
            np.testing.assert_array_equal(out[row, :n][~zeroed], f[row, :n][~zeroed])
            assert np.all(out[row, n:] == 0)
    assert 0 < max(bands) <= 2 * 3 and 0 < max(spans) <= 2 * 4  # widths are drawn from 0..width
    np.testing.assert_array_equal(las.listen(x)[0], las.listen(x)[0])  # inference never masks
    assert not np.array_equal(las.listen(x, training=True)[0], las.listen(x)[0])
    plain = load("las", compile=False, **TINY)
    np.testing.assert_array_equal(plain._spec_augment(feats, mask), f)
    assert las.get_config()["freq_masks"] == 2


def test_vtlp_moves_a_tone_along_the_frequency_axis_only_while_training():
    """A pure tone's spectral peak lands at f·α with α in [1 − vtlp, 1 + vtlp]; inference is untouched."""
    import tensorflow as tf

    from zoo import load

    las = load("las", compile=False, **TINY, vtlp=0.2)
    bins = las.fft_length // 2 + 1
    power = tf.one_hot(tf.fill([64, 3], 40), bins)  # every frame of 64 rows: one peak at bin 40
    peaks = np.argmax(las._warp_frequencies(power).numpy(), axis=2)
    assert np.all(peaks == peaks[:, :1])  # one warp per utterance, the same in every frame
    assert peaks.min() >= np.floor(40 * 0.8) and peaks.max() <= np.ceil(40 * 1.2) and len(np.unique(peaks)) > 3
    x = np.sin(np.arange(4000, dtype=np.float32) * 0.3)[None] * 0.5
    np.testing.assert_array_equal(las.features(x)[0], load("las", compile=False, **TINY).features(x)[0])
    assert not np.array_equal(las.features(x, training=True)[0], las.features(x)[0])
    assert las.get_config()["vtlp"] == 0.2


def test_requantize_gives_a_fraction_of_rows_8_bit_samples_only_while_training():
    """Chosen rows land on the 8-bit grid (as FSDD's nicolas recordings: int16 multiples of 256) and
    the rest are untouched; features keep each row's valid length; inference is untouched."""
    from zoo import load

    las = load("las", compile=False, **TINY, requantize=0.5)
    x = np.zeros((200, 900), np.float32)
    x[:, :800] = 0.3 * np.sin(np.arange(800, dtype=np.float32) * 0.05) + 0.001  # a quiet tail rounds to 0
    y = las._requantize(x).numpy()
    on_grid = np.all(y * 128 == np.round(y * 128), axis=1)
    untouched = np.all(y == x, axis=1)
    assert np.all(on_grid ^ untouched) and 60 < on_grid.sum() < 140
    assert np.abs(y[on_grid] - x[on_grid]).max() <= 0.5 / 128 + 1e-7
    _, mask = las.features(x, training=True)
    np.testing.assert_array_equal(mask, las.features(x)[1])  # rounding the tail to 0 does not shorten a row
    np.testing.assert_array_equal(las.features(x)[0], load("las", compile=False, **TINY).features(x)[0])
    assert las.get_config()["requantize"] == 0.5
    np.testing.assert_array_equal(load("las", compile=False, **TINY, requantize=1.0)._requantize(x),
                                  np.round(x * 128) / 128)
    with pytest.raises(ValueError, match="requantize"):
        load("las", compile=False, **TINY, requantize=1.5)
    from zoo.models.las import LAS

    with pytest.raises(ValueError, match="requantize"):  # built directly, without load's validation
        LAS(**TINY, requantize=-0.1)


def test_speed_perturbation_changes_tempo_and_pitch_together_only_while_training():
    """Each row is resampled by one α in [1 − speed, 1 + speed]: its length becomes length / α and a
    tone's frequency ω·α; the zero padding stays zero, and inference is untouched."""
    from zoo import load

    las = load("las", compile=False, **TINY, speed=0.2)
    n, omega = 4000, 0.3
    x = np.zeros((32, 5000), np.float32)
    x[:, :n] = 0.5 * np.sin(np.arange(n, dtype=np.float32) * omega + 0.1)
    y = las._perturb_speed(x).numpy()
    lengths = las.waveform_lengths(y).numpy()
    alpha = n / lengths
    assert alpha.min() >= 0.8 - 1e-3 and alpha.max() <= 1.2 + 1e-3 and np.ptp(alpha) > 0.1
    for row, a, length in zip(y, alpha, lengths):
        assert not row[length:].any()
        spectrum = np.abs(np.fft.rfft(row[:length] * np.hanning(length)))
        peak = np.argmax(spectrum) * 2 * np.pi / length
        assert abs(peak - omega * a) < 0.01, (peak, omega * a)
    np.testing.assert_array_equal(las.features(x)[0], load("las", compile=False, **TINY).features(x)[0])
    assert las.get_config()["speed"] == 0.2
    with pytest.raises(ValueError, match="speed"):
        load("las", compile=False, **TINY, speed=1.0)


def test_beam_one_equals_greedy_and_wider_beams_score_at_least_as_well(las):
    import tensorflow as tf

    from zoo.data.audio import pad_batch

    x = pad_batch(waves([1200, 2600, 4000, 900], seed=3))
    memory, mask = las.listen(tf.constant(x))
    greedy = las.greedy_decode(memory, mask).numpy()
    beam1 = las.beam_decode(memory, mask, beam_width=1).numpy()
    np.testing.assert_array_equal(beam1, greedy)
    np.testing.assert_array_equal(las.decode_ids(x, beam_width=1).numpy(), greedy)

    def log_prob(ids):  # sequence log-probability under teacher forcing
        ids = tf.constant(ids, tf.int32)
        logits = las.spell(memory, mask, ids)
        logp = tf.gather(tf.nn.log_softmax(logits), ids, batch_dims=2)
        return tf.reduce_sum(logp * tf.cast(ids > 0, logp.dtype), 1).numpy()

    beam4 = las.beam_decode(memory, mask, beam_width=4).numpy()
    assert np.all(log_prob(beam4) >= log_prob(greedy) - 1e-4)


def test_scheduled_sampling_feeds_the_models_own_predictions(las):
    """With sampling probability 1 the speller feeds its own greedy output, so its logits equal
    teacher forcing on the greedy transcript, whatever the true tokens are."""
    import tensorflow as tf

    from zoo.data.audio import pad_batch

    x = pad_batch(waves([1500, 2500], seed=11))
    memory, mask = las.listen(tf.constant(x))
    greedy = las.greedy_decode(memory, mask, max_length=6)
    greedy = tf.pad(greedy, [[0, 0], [0, 6 - tf.shape(greedy)[1]]])
    unrelated = tf.fill(tf.shape(greedy), 5)
    sampled = las.spell(memory, mask, unrelated, sampling=1.0).numpy()
    forced = las.spell(memory, mask, greedy).numpy()
    # step 0 reads <sos>, step 1 the first greedy token (its argmax, even when that is <eos>)
    np.testing.assert_allclose(sampled[:, :2], forced[:, :2], atol=1e-5)
    teacher = las.spell(memory, mask, unrelated).numpy()
    assert np.abs(teacher[:, 1] - sampled[:, 1]).max() > 1e-4  # feeding the truth instead differs
    np.testing.assert_allclose(las.spell(memory, mask, unrelated, sampling=0.0).numpy(), teacher)


def test_no_retrace_for_new_lengths(las):
    texts = las.transcribe(waves([700, 1500]))
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    for n in (900, 2300, 5100, 7777):
        las.transcribe(waves([n, n // 2]))
        las.encode(waves([n]))
    assert las._traced["greedy"].experimental_get_tracing_count() == 1
    assert las._traced["encode"].experimental_get_tracing_count() == 1


def test_transcribe_accepts_lists_and_padded_batches(las):
    from zoo.data import DataError
    from zoo.data.audio import pad_batch

    batch = waves([1000, 3000, 2000], seed=5)
    as_list = las.transcribe(batch)
    assert las.transcribe(pad_batch(batch)) == as_list
    assert las.transcribe([batch[1]]) == [as_list[1]]
    assert las.transcribe(batch, batch_size=1) == as_list
    with pytest.raises(DataError, match=r"\[-1, 1\]"):
        las.transcribe([np.full(100, 3.0)])


def test_train_steps_do_not_retrace_for_new_lengths():
    """Keras fit over length-bucketed batches: the step is traced for (None, None) shapes, never per length."""
    import keras

    from zoo import load
    from zoo.data import load_dataset

    data = load_dataset("tones", multi_train=30, multi_test=10)
    model = load("las-tones", **TINY)
    traces, per_epoch = [], []
    original = model.train_step

    def counting(batch):
        traces.append(tuple(batch[0].shape))
        return original(batch)

    model.train_step = counting
    ds = data.pipeline("train", 16, seed=1).take(5)
    lengths = [tuple(x.shape) for x, _ in ds]
    assert len(set(lengths)) >= 4  # the batches really differ in length
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: per_epoch.append(len(traces)))
    history = model.fit(ds, epochs=3, verbose=0, callbacks=[record])
    assert all(shape == (None, None) for shape in traces)
    assert per_epoch[0] == per_epoch[-1] <= 2  # later epochs (other lengths, other order) trace nothing
    assert np.isfinite(history.history["loss"]).all() and history.history["loss"][-1] < history.history["loss"][0]


def test_get_config_round_trip(las):
    clone = type(las).from_config(las.get_config())
    assert clone.get_config() == las.get_config()
    clone.set_weights(las.get_weights())
    x = waves([1500, 800])
    assert clone.transcribe(x) == las.transcribe(x)


def test_error_rates():
    from zoo.models.las import edit_distance, error_rate

    assert edit_distance("kitten", "sitting") == 3
    assert error_rate(["one two", "three"], ["one two", "three"]) == 0.0
    assert error_rate(["one two"], ["one"], unit="word") == 0.5
    assert error_rate(["abc"], ["abd"]) == pytest.approx(1 / 3)


def test_speaker_probe_finds_speakers_in_features():
    """The fixed probe reads whatever encode() gives: on an untrained tiny LAS over tone "speakers"
    that differ in pitch and timbre it must reach twice chance (1/6)."""
    import keras

    from zoo import load
    from zoo.data import load_dataset
    from zoo.models.las import speaker_probe_accuracy

    data = load_dataset("tones", multi_train=0, multi_test=0)
    keras.utils.set_random_seed(1)
    model = load("las", compile=False, **TINY)
    assert speaker_probe_accuracy(model, data) > 2 / 6


def test_transcribe_cli(tmp_path, capsys, las):
    from zoo.cli import main
    from zoo.files import atomic_save_weights

    run = tmp_path / "run"
    run.mkdir()
    config = {k: v for k, v in las.get_config().items() if k not in ("name", "trainable", "dtype")}
    (run / "config.json").write_text(json.dumps(dict(name="las", architecture="las", config=config,
                                                     dataset="tones", seed=0)))
    atomic_save_weights(las, run / "model.weights.h5")
    x = waves([1600, 2400], seed=7)
    files = [str(write_wav(tmp_path / f"u{i}.wav", w)) for i, w in enumerate(x)]
    assert main(["transcribe", "las", "--weights", str(run), *files, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])["transcripts"]
    expected = las.transcribe([np.round(w * 32767) / 32767 for w in x])
    assert [r["file"] for r in result] == files and [r["text"] for r in result] == expected
    assert out[0] == f"{files[0]}\t{expected[0]}"

    (tmp_path / "empty.wav").write_bytes(b"")
    assert main(["transcribe", "las", "--weights", str(run), str(tmp_path / "empty.wav")]) == 2
    assert "empty file" in capsys.readouterr().err
