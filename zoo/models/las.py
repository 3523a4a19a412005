"""Listen, Attend and Spell (Chan et al. 2016) on raw 8 kHz waveforms.

* features (inside the model, ``tf.signal``): log-mel filterbank (or MFCC), normalised per
  utterance over its valid frames;
* listener: pyramidal BiLSTM — every layer concatenates pairs of frames (time ÷ 2) and runs a
  bidirectional LSTM; ``encode()`` returns its last layer (the hidden layer adversary heads read);
* speller: an attention LSTM decoder over characters, s_i = LSTM(s_{i−1}, [y_{i−1}; c_{i−1}]),
  α_i = softmax⟨φ(s_i), ψ(h_u)⟩, c_i = Σ_u α_{i,u} h_u, ŷ_i = softmax(MLP([s_i; c_i])), trained
  with teacher forcing (optionally scheduled sampling) on the seed's E = −Σ_t ln ŷ_t,true;
* greedy and beam-search decoding run inside the graph (``tf.while_loop``).

Every traced function has a ``None`` time dimension, so a new utterance length never re-traces.
Waveforms are float samples in [−1, 1] at 8 kHz; in a zero-padded batch the trailing exact zeros
of each row are padding (the row's length is its last non-zero sample).
"""
from __future__ import annotations

from typing import Literal

import keras
import numpy as np
import tensorflow as tf

from zoo.data.audio import EOS, PAD, SOS, VOCABULARY, as_waveforms, ids_to_text, pad_batch, texts_to_ids
from zoo.validate import Count, Probability, Rate, Size

_WAVE_SPEC = tf.TensorSpec((None, None), tf.float32)
_TOKEN_SPEC = tf.TensorSpec((None, None), tf.int32)


@keras.saving.register_keras_serializable(package="zoo")
class LAS(keras.Model):
    """Listen, Attend and Spell.

    Args:
        sample_rate: input sample rate in Hz (FSDD: 8,000).
        frame_length, frame_step, fft_length: STFT framing in samples.
        num_mels: mel filterbank channels; features: ``"logmel"`` or ``"mfcc"`` (``num_mfcc`` kept).
        listener_layers, listener_units: pBLSTM depth (time ÷ 2 per layer) and LSTM units per direction.
        speller_units, embedding_dim, attention_dim: decoder sizes.
        max_output_length: characters the decoders emit at most (including ``<eos>``).
        beam_width: beam used by ``transcribe`` (1 = greedy).
        scheduled_sampling: probability of feeding the model's own previous prediction instead of the
            true character while training (0 = pure teacher forcing).
        feature_norm: per-utterance feature normalisation: ``"channel"`` (mean and variance of every
            channel: removes a speaker's or microphone's fixed spectral colouring), ``"utterance"``
            (one mean and variance over all channels: keeps the spectral shape), or ``"both"`` (the
            two side by side as two feature streams of ``num_mels`` channels each).
        dropout: dropout on the listener outputs and the speller's output layer while training.
        freq_masks, freq_mask_width, time_masks, time_mask_width: SpecAugment (Park et al. 2019)
            while training — that many bands of up to ``freq_mask_width`` feature channels and spans
            of up to ``time_mask_width`` frames (within each utterance) set to the normalised mean, 0.
        vtlp: vocal tract length perturbation (Jaitly & Hinton 2013) while training — each utterance's
            frequency axis is stretched by a factor drawn uniformly from [1 − vtlp, 1 + vtlp], as if
            spoken by a longer or shorter vocal tract; 0 turns it off.
        speed: speed perturbation (Ko et al. 2015) while training — each utterance resampled to play
            at a rate drawn uniformly from [1 − speed, 1 + speed] (tempo and pitch change together);
            0 turns it off.
        requantize: bit-depth augmentation while training — this fraction of the utterances is
            re-quantised to 8 bits (x → round(128·x) / 128), the channel one FSDD speaker was recorded
            through (quantisation noise, and digital silence where the signal is quiet), so that a
            model does not mistake the recording chain for the speaker's voice; 0 turns it off.
    """

    family = "las"

    def __init__(self, sample_rate: Size = 8000, frame_length: Size = 256, frame_step: Size = 128,
                 fft_length: Size = 256, num_mels: Size = 40, features: Literal["logmel", "mfcc"] = "logmel",
                 num_mfcc: Size = 13, listener_layers: Size = 2, listener_units: Size = 128, speller_units: Size = 256,
                 embedding_dim: Size = 32, attention_dim: Size = 128, max_output_length: Size = 40,
                 beam_width: Size = 1, scheduled_sampling: Rate = 0.0, dropout: Rate = 0.0, freq_masks: Count = 0,
                 freq_mask_width: Size = 8, time_masks: Count = 0, time_mask_width: Size = 10,
                 feature_norm: Literal["channel", "utterance", "both"] = "channel", vtlp: Rate = 0.0,
                 speed: Rate = 0.0, requantize: Probability = 0.0, **kwargs):
        super().__init__(**kwargs)
        if feature_norm not in ("channel", "utterance", "both"):
            raise ValueError(f"feature_norm must be 'channel', 'utterance' or 'both', got {feature_norm!r}")
        self.feature_norm = feature_norm
        if features not in ("logmel", "mfcc"):
            raise ValueError(f"features must be 'logmel' or 'mfcc', got {features!r}")
        if listener_layers < 1 or beam_width < 1 or max_output_length < 1:
            raise ValueError("listener_layers, beam_width and max_output_length must be positive")
        if not 0.0 <= scheduled_sampling <= 1.0:
            raise ValueError(f"scheduled_sampling is a probability, got {scheduled_sampling}")
        self.sample_rate = int(sample_rate)
        self.frame_length, self.frame_step, self.fft_length = int(frame_length), int(frame_step), int(fft_length)
        self.num_mels, self.features_kind, self.num_mfcc = int(num_mels), features, int(num_mfcc)
        self.listener_layers, self.listener_units = int(listener_layers), int(listener_units)
        self.speller_units, self.embedding_dim, self.attention_dim = int(speller_units), int(embedding_dim), int(attention_dim)
        self.max_output_length, self.beam_width = int(max_output_length), int(beam_width)
        self.scheduled_sampling, self.dropout_rate = float(scheduled_sampling), float(dropout)
        if min(freq_masks, freq_mask_width, time_masks, time_mask_width) < 0:
            raise ValueError("SpecAugment mask counts and widths must be >= 0")
        self.freq_masks, self.freq_mask_width = int(freq_masks), int(freq_mask_width)
        self.time_masks, self.time_mask_width = int(time_masks), int(time_mask_width)
        self.vtlp = float(vtlp)
        if not 0.0 <= speed < 1.0:
            raise ValueError(f"speed must be in [0, 1), got {speed}")
        self.speed = float(speed)
        if not 0.0 <= requantize <= 1.0:
            raise ValueError(f"requantize is a probability, got {requantize}")
        self.requantize = float(requantize)
        self.vocab_size = len(VOCABULARY)
        self.stream_dim = self.num_mfcc if features == "mfcc" else self.num_mels  # channels per stream
        self.feature_dim = self.stream_dim * (2 if feature_norm == "both" else 1)
        self.mel_matrix = tf.constant(tf.signal.linear_to_mel_weight_matrix(
            self.num_mels, self.fft_length // 2 + 1, self.sample_rate, 20.0, self.sample_rate / 2.0))

        self.listener = [
            keras.layers.Bidirectional(keras.layers.LSTM(self.listener_units, return_sequences=True), name=f"pblstm{i}")
            for i in range(self.listener_layers)
        ]
        self.listener_dropout = keras.layers.Dropout(self.dropout_rate)
        self.embedding = keras.layers.Embedding(self.vocab_size, self.embedding_dim, name="embedding")
        self.speller_cell = keras.layers.LSTMCell(self.speller_units, name="speller")
        self.query = keras.layers.Dense(self.attention_dim, name="attention_query")  # φ
        self.key = keras.layers.Dense(self.attention_dim, name="attention_key")  # ψ
        self.output_hidden = keras.layers.Dense(self.speller_units, activation="tanh", name="output_hidden")
        self.output_dropout = keras.layers.Dropout(self.dropout_rate)
        self.output_logits = keras.layers.Dense(self.vocab_size, name="output_logits")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="char_accuracy")
        self._build_layers()
        self._traced = {}

    # -- building ----------------------------------------------------------------------------
    @property
    def encoder_dim(self):
        return 2 * self.listener_units

    @property
    def hidden_layers(self):
        """The layers adversary heads may read: ``listener`` (= ``encode()``, the default), each
        pyramid layer ``listener0``, ... and the normalised ``features``."""
        return ("listener", *(f"listener{i}" for i in range(self.listener_layers)), "features")

    def hidden_shapes(self, layers):
        """``{layer: (batch, time, width)}`` of the hidden layers named."""
        return {name: (None, None, self.feature_dim if name == "features" else self.encoder_dim) for name in layers}

    def _build_layers(self):
        width = self.feature_dim
        for layer in self.listener:
            layer.build((None, None, 2 * width))
            width = self.encoder_dim
        self.embedding.build((None,))
        self.speller_cell.build((None, self.embedding_dim + self.encoder_dim))
        self.query.build((None, self.speller_units))
        self.key.build((None, None, self.encoder_dim))
        self.output_hidden.build((None, self.speller_units + self.encoder_dim))
        self.output_logits.build((None, self.speller_units))
        self.built = True

    def build(self, input_shape=None):
        self.built = True

    # -- features and listener ---------------------------------------------------------------
    def waveform_lengths(self, waveforms):
        """Samples per row of a zero-padded batch: the index after the last non-zero sample."""
        positions = tf.range(1, tf.shape(waveforms)[1] + 1)[None, :]
        return tf.reduce_max(tf.where(tf.not_equal(waveforms, 0.0), positions, 0), axis=1)

    def features(self, waveforms, training=False):
        """``(features (batch, frames, feature_dim), mask (batch, frames))`` of a padded batch
        (``training``: with the speed and vocal tract length perturbations, if any)."""
        waveforms = tf.convert_to_tensor(waveforms, tf.float32)
        if training and self.speed > 0:
            waveforms = self._perturb_speed(waveforms)
        lengths = self.waveform_lengths(waveforms)
        if training and self.requantize > 0:  # after the lengths: quiet tails that round to 0 stay valid
            waveforms = self._requantize(waveforms)
        # pad so that even a very short batch has one full frame
        waveforms = tf.pad(waveforms, [[0, 0], [0, self.frame_length]])
        stft = tf.signal.stft(waveforms, self.frame_length, self.frame_step, self.fft_length, pad_end=False)
        power = tf.math.square(tf.abs(stft))
        if training and self.vtlp > 0:
            power = self._warp_frequencies(power)
        feats = tf.math.log(tf.matmul(power, self.mel_matrix) + 1e-6)
        if self.features_kind == "mfcc":
            feats = tf.signal.mfccs_from_log_mel_spectrograms(feats)[..., : self.num_mfcc]
        frames = tf.maximum(1, (lengths + self.frame_step - 1) // self.frame_step)
        mask = tf.sequence_mask(frames, tf.shape(feats)[1])
        # per-utterance mean and variance normalisation over the valid frames: per channel, or one
        # mean and variance for all channels, which keeps the spectral shape a one-word utterance's
        # own per-channel mean would largely subtract (or both, as two streams)
        m = tf.cast(mask, feats.dtype)[..., None]

        def normalised(axes):
            count = tf.reduce_sum(tf.broadcast_to(m, tf.shape(feats)), axis=axes, keepdims=True)
            mean = tf.reduce_sum(feats * m, axis=axes, keepdims=True) / count
            var = tf.reduce_sum(tf.square(feats - mean) * m, axis=axes, keepdims=True) / count
            return (feats - mean) * tf.math.rsqrt(var + 1e-3) * m

        streams = {"channel": [[1]], "utterance": [[1, 2]], "both": [[1], [1, 2]]}[self.feature_norm]
        return tf.concat([normalised(axes) for axes in streams], axis=-1), mask

    def _perturb_speed(self, waveforms):
        """Each row played at rate α ~ U[1 ± speed]: output sample j is the input at j·α (linear
        interpolation), zero beyond the row's new length ⌊length / α⌋."""
        width = tf.shape(waveforms)[1]
        lengths = tf.cast(self.waveform_lengths(waveforms), tf.float32)[:, None]
        alpha = tf.random.uniform([tf.shape(waveforms)[0], 1], 1.0 - self.speed, 1.0 + self.speed)
        out_width = tf.cast(tf.math.ceil(tf.cast(width, tf.float32) / (1.0 - self.speed)), tf.int32)
        source = tf.cast(tf.range(out_width), tf.float32)[None, :] * alpha
        below = tf.minimum(tf.cast(tf.floor(source), tf.int32), width - 1)
        above = tf.minimum(below + 1, width - 1)
        frac = source - tf.cast(below, tf.float32)
        low = tf.gather(waveforms, below, axis=1, batch_dims=1)
        high = tf.gather(waveforms, above, axis=1, batch_dims=1)
        inside = source <= lengths - 1.0
        return tf.where(inside, low + frac * (high - low), 0.0)

    def _requantize(self, waveforms):
        """A fraction ``requantize`` of the rows re-quantised to 8 bits (step 1/128)."""
        chosen = tf.random.uniform([tf.shape(waveforms)[0], 1]) < self.requantize
        return tf.where(chosen, tf.round(waveforms * 128.0) / 128.0, waveforms)

    def _warp_frequencies(self, power):
        """Each row's spectrum read at f / α (linear interpolation, held at the top bin), α ~ U[1 ± vtlp]."""
        bins = tf.shape(power)[2]
        alpha = tf.random.uniform([tf.shape(power)[0], 1], 1.0 - self.vtlp, 1.0 + self.vtlp)
        source = tf.minimum(tf.cast(tf.range(bins), tf.float32)[None, :] / alpha, tf.cast(bins - 1, tf.float32))
        below = tf.minimum(tf.cast(tf.floor(source), tf.int32), bins - 2)
        frac = (source - tf.cast(below, tf.float32))[:, None, :]
        low = tf.gather(power, below, axis=2, batch_dims=1)
        high = tf.gather(power, below + 1, axis=2, batch_dims=1)
        return low + frac * (high - low)

    def listen(self, waveforms, training=False, return_all=False):
        """Listener outputs ``(h (batch, time, encoder_dim), mask)``; ``return_all``: every layer."""
        h, mask = self.features(waveforms, training=training)
        if training:
            h = self._spec_augment(h, mask)
        layers = {"features": (h, mask)}
        for i, layer in enumerate(self.listener):
            h, mask = _stack_pairs(h, mask)
            h = layer(h, mask=mask, training=training)
            h = h * tf.cast(mask, h.dtype)[..., None]
            layers[f"listener{i}"] = (h, mask)
        h = self.listener_dropout(h, training=training)
        layers["listener"] = (h, mask)
        return layers if return_all else (h, mask)

    def _spec_augment(self, feats, mask):
        """Zero random frequency bands and time spans of each utterance (no-op without masks)."""
        batch, frames = tf.shape(feats)[0], tf.shape(feats)[1]
        valid = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1, keepdims=True)
        keep = tf.ones_like(feats)
        for count, width, along_time in ((self.freq_masks, self.freq_mask_width, False),
                                         (self.time_masks, self.time_mask_width, True)):
            limit = valid if along_time else tf.fill([batch, 1], self.stream_dim)
            positions = tf.range(frames if along_time else self.stream_dim)[None, :]
            for _ in range(count):
                w = tf.minimum(tf.random.uniform([batch, 1], 0, width + 1, tf.int32), limit)
                start = tf.cast(tf.random.uniform([batch, 1]) * tf.cast(limit - w + 1, tf.float32), tf.int32)
                band = tf.cast((positions >= start) & (positions < start + w), feats.dtype)
                if not along_time:  # the same band in every feature stream
                    band = tf.tile(band, [1, self.feature_dim // self.stream_dim])
                keep *= 1.0 - (band[:, :, None] if along_time else band[:, None, :])
        return feats * keep

    # -- speller -----------------------------------------------------------------------------
    def _attend(self, state_h, keys, memory, mask):
        scores = tf.einsum("ba,bta->bt", self.query(state_h), keys)
        scores = tf.where(mask, scores, tf.constant(-1e9, scores.dtype))
        weights = tf.nn.softmax(scores, axis=-1)
        return tf.einsum("bt,btd->bd", weights, memory)

    def _speller_step(self, token, states, context, keys, memory, mask, training):
        inputs = tf.concat([self.embedding(token), context], axis=-1)
        output, states = self.speller_cell(inputs, states, training=training)
        context = self._attend(output, keys, memory, mask)
        hidden = self.output_dropout(self.output_hidden(tf.concat([output, context], -1)), training=training)
        return self.output_logits(hidden), states, context

    def _initial(self, memory):
        batch = tf.shape(memory)[0]
        zeros = tf.zeros((batch, self.speller_units), memory.dtype)
        return [zeros, zeros], tf.zeros((batch, self.encoder_dim), memory.dtype), tf.fill([batch], SOS)

    def spell(self, memory, mask, tokens, training=False, sampling=0.0):
        """Teacher-forced logits ``(batch, length, vocab)`` for target ``tokens`` (ending in ``<eos>``).

        With ``sampling > 0`` each step feeds, per example, the model's previous greedy prediction
        instead of the true character with that probability (scheduled sampling).
        """
        keys = self.key(memory)
        states, context, token = self._initial(memory)
        length = tf.shape(tokens)[1]
        logits_ta = tf.TensorArray(memory.dtype, size=length)

        def body(t, token, h, c, context, logits_ta):
            logits, (h, c), context = self._speller_step(token, [h, c], context, keys, memory, mask, training)
            truth = tokens[:, t]
            if sampling > 0.0:
                own = tf.cast(tf.argmax(tf.stop_gradient(logits), -1), tf.int32)
                use_own = tf.random.uniform(tf.shape(truth)) < sampling
                truth = tf.where(use_own, own, truth)
            return t + 1, truth, h, c, context, logits_ta.write(t, logits)

        _, _, _, _, _, logits_ta = tf.while_loop(
            lambda t, *_: t < length, body, (0, token, states[0], states[1], context, logits_ta))
        return tf.transpose(logits_ta.stack(), [1, 0, 2])

    def greedy_decode(self, memory, mask, max_length=None):
        """Greedy token ids ``(batch, length)``: characters, ``<eos>``, then ``<pad>``."""
        max_length = max_length or self.max_output_length
        keys = self.key(memory)
        states, context, token = self._initial(memory)
        batch = tf.shape(memory)[0]
        out_ta = tf.TensorArray(tf.int32, size=max_length)
        finished = tf.zeros([batch], tf.bool)

        def body(t, token, h, c, context, finished, out_ta):
            logits, (h, c), context = self._speller_step(token, [h, c], context, keys, memory, mask, False)
            token = tf.cast(tf.argmax(logits, -1), tf.int32)
            token = tf.where(finished, PAD, token)
            return t + 1, token, h, c, context, finished | tf.equal(token, EOS), out_ta.write(t, token)

        t, _, _, _, _, _, out_ta = tf.while_loop(
            lambda t, *a: tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(a[4]))),
            body, (0, token, states[0], states[1], context, finished, out_ta))
        return tf.transpose(out_ta.stack()[:t], [1, 0])

    def beam_decode(self, memory, mask, beam_width=None, max_length=None):
        """Beam-search token ids ``(batch, length)`` (the best beam; beam 1 is greedy decoding)."""
        k = beam_width or self.beam_width
        max_length = max_length or self.max_output_length
        batch = tf.shape(memory)[0]
        tile = lambda x: tf.repeat(x, k, axis=0)  # (batch, ...) -> (batch * k, ...), beams adjacent
        memory, mask = tile(memory), tile(mask)
        keys = self.key(memory)
        states, context, token = self._initial(memory)
        # only beam 0 is live at the start, so the first expansion is not k copies of one beam
        scores = tf.tile(tf.concat([[0.0], tf.fill([k - 1], -1e9)], 0), [batch])
        finished = tf.zeros([batch * k], tf.bool)
        history = tf.zeros([batch * k, 0], tf.int32)
        v = self.vocab_size
        pad_only = tf.one_hot(PAD, v, on_value=0.0, off_value=-1e9)

        def body(t, token, h, c, context, scores, finished, history):
            logits, (h, c), context = self._speller_step(token, [h, c], context, keys, memory, mask, False)
            logp = tf.nn.log_softmax(logits, -1)
            logp = tf.where(finished[:, None], pad_only[None, :], logp)  # a finished beam only pads
            total = tf.reshape(scores[:, None] + logp, [batch, k * v])
            top_scores, top = tf.math.top_k(total, k)
            parent = tf.reshape(top // v + tf.range(batch)[:, None] * k, [-1])
            token = tf.reshape(top % v, [-1])
            gather = lambda x: tf.gather(x, parent)
            h, c, context, finished, history = map(gather, (h, c, context, finished, history))
            history = tf.concat([history, token[:, None]], 1)
            return (t + 1, token, h, c, context, tf.reshape(top_scores, [-1]),
                    finished | tf.equal(token, EOS), history)

        *_, history = tf.while_loop(
            lambda t, *a: tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(a[5]))),
            body, (0, token, states[0], states[1], context, scores, finished, history),
            shape_invariants=(tf.TensorShape([]), token.shape, tf.TensorShape([None, self.speller_units]),
                              tf.TensorShape([None, self.speller_units]), tf.TensorShape([None, self.encoder_dim]),
                              scores.shape, finished.shape, tf.TensorShape([None, None])))
        return history[::k]  # top_k sorts beams, so beam 0 of every utterance is its best

    # -- Keras model API -----------------------------------------------------------------------
    def call(self, waveforms, training=False):
        """Greedy token ids of a zero-padded batch (use :meth:`transcribe` for text)."""
        memory, mask = self.listen(waveforms, training=training)
        return self.greedy_decode(memory, mask)

    def sequence_loss(self, waveforms, tokens, training=False, sampling=0.0):
        """Per-utterance E = −Σ_t ln ŷ_t,true over the non-pad target characters, and the logits."""
        tokens = tf.convert_to_tensor(tokens, tf.int32)
        memory, mask = self.listen(waveforms, training=training)
        return self._loss_from_memory(memory, mask, tokens, training, sampling)

    def _loss_from_memory(self, memory, mask, tokens, training, sampling=0.0):
        logits = self.spell(memory, mask, tokens, training=training, sampling=sampling)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tokens, logits=logits)
        weights = tf.cast(tf.not_equal(tokens, PAD), ce.dtype)
        return tf.reduce_sum(ce * weights, axis=1), logits

    def adversarial_outputs(self, x, y, layers, training=False):
        """For the minimax step: per-utterance primary loss and ``{layer: (hidden, mask)}``.

        ``layers`` name listener layers: ``"listener"`` (= ``encode()``), ``"listener0"``, ...,
        ``"features"``.
        """
        tokens = _tokens(y)
        found = self.listen(x, training=training, return_all=True)
        unknown = [name for name in layers if name not in found]
        if unknown:
            raise ValueError(f"LAS has no hidden layer {unknown}; choose from {sorted(found)}")
        memory, mask = found["listener"]
        per_example, logits = self._loss_from_memory(memory, mask, tokens, training,
                                                     self.scheduled_sampling if training else 0.0)
        self._update_char_accuracy(tokens, logits)
        return per_example, {name: found[name] for name in layers}

    def compute_objective(self, x, y, training=True):
        """The per-batch objective: (loss scaled by the global batch, per-utterance losses)."""
        tokens = _tokens(y)
        per_example, logits = self.sequence_loss(x, tokens, training=training,
                                                 sampling=self.scheduled_sampling if training else 0.0)
        self._update_char_accuracy(tokens, logits)
        return tf.nn.compute_average_loss(per_example), per_example

    def _update_char_accuracy(self, tokens, logits):
        weights = tf.cast(tf.not_equal(tokens, PAD), tf.float32)
        correct = tf.cast(tf.equal(tf.cast(tf.argmax(logits, -1), tf.int32), tokens), tf.float32)
        self.accuracy_tracker.update_state(correct, sample_weight=weights)

    def train_step(self, data):
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            loss, per_example = self.compute_objective(x, y, training=True)
            loss = self.optimizer.scale_loss(loss)  # mixed precision: the LossScaleOptimizer's scale
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.loss_tracker.update_state(per_example)
        return {"loss": self.loss_tracker.result(), "char_accuracy": self.accuracy_tracker.result()}

    def test_step(self, data):
        x, y = data[0], data[1]
        _, per_example = self.compute_objective(x, y, training=False)
        self.loss_tracker.update_state(per_example)
        return {"loss": self.loss_tracker.result(), "char_accuracy": self.accuracy_tracker.result()}

    def compile(self, optimizer="adam", clipnorm=None, **kwargs):
        """Keras ``compile``; ``clipnorm`` (a step_param) clips each gradient's norm, as LSTMs like."""
        optimizer = keras.optimizers.get(optimizer)
        if clipnorm is not None:
            optimizer.clipnorm = float(clipnorm)
        kwargs.setdefault("jit_compile", False)  # XLA would recompile for every utterance length
        super().compile(optimizer=optimizer, **kwargs)

    # -- user API (traced once, None time dimension) -------------------------------------------
    def _fn(self, key, fn, signature):
        if key not in self._traced:
            self._traced[key] = tf.function(fn, input_signature=signature, reduce_retracing=True)
        return self._traced[key]

    def _as_batch(self, waveforms):
        if isinstance(waveforms, tf.Tensor):
            if waveforms.shape.rank != 2:
                raise ValueError(f"expected a (batch, samples) tensor of waveforms, got shape {waveforms.shape}")
            return tf.cast(waveforms, tf.float32)
        return tf.constant(pad_batch(as_waveforms(waveforms)))

    def transcribe(self, waveforms, beam_width=None, batch_size=64) -> list[str]:
        """Transcripts of waveforms (a list of 1-D float arrays in [−1, 1] at 8 kHz, or a padded batch)."""
        k = int(beam_width or self.beam_width)
        if isinstance(waveforms, tf.Tensor) or (isinstance(waveforms, np.ndarray) and waveforms.ndim == 2):
            waves = as_waveforms(np.asarray(waveforms))
            # keep padded rows as given: trailing zeros are padding in both forms
        else:
            waves = as_waveforms(waveforms)
        out = [None] * len(waves)
        order = np.argsort([len(w) for w in waves])  # similar lengths together: little padding
        for start in range(0, len(waves), batch_size):
            idx = order[start:start + batch_size]
            ids = self.decode_ids(pad_batch([waves[i] for i in idx]), beam_width=k).numpy()
            for i, row in zip(idx, ids):
                out[i] = ids_to_text(row)
        return out

    def decode_ids(self, waveforms, beam_width=None):
        """Token ids of the best transcript per row of a padded batch (greedy when the beam is 1)."""
        k = int(beam_width or self.beam_width)
        x = self._as_batch(waveforms)
        if k == 1:
            fn = self._fn("greedy", lambda w: self.greedy_decode(*self.listen(w)), [_WAVE_SPEC])
        else:
            fn = self._fn(("beam", k), lambda w: self.beam_decode(*self.listen(w), beam_width=k), [_WAVE_SPEC])
        return fn(x)

    def encode(self, waveforms):
        """Listener outputs ``(batch, time, encoder_dim)``, zero beyond each utterance's frames."""
        fn = self._fn("encode", lambda w: self.listen(w)[0], [_WAVE_SPEC])
        return fn(self._as_batch(waveforms))

    def pooled_encoding(self, waveforms, batch_size=64) -> np.ndarray:
        """Mean over each utterance's valid frames of :meth:`encode` (one row per utterance)."""
        waves = as_waveforms(waveforms)
        fn = self._fn("pooled", lambda w: _masked_mean(*self.listen(w)), [_WAVE_SPEC])
        out = np.zeros((len(waves), self.encoder_dim), np.float32)
        order = np.argsort([len(w) for w in waves])
        for start in range(0, len(waves), batch_size):
            idx = order[start:start + batch_size]
            out[idx] = fn(tf.constant(pad_batch([waves[i] for i in idx]))).numpy()
        return out

    def frame_encodings(self, waveforms, batch_size=64) -> list[np.ndarray]:
        """Each utterance's valid frames of :meth:`encode`, ``(frames, encoder_dim)`` float32 arrays
        in input order — what the ``mean_std`` and ``frames`` speaker probes read."""
        waves = as_waveforms(waveforms)

        def frames(w):
            h, mask = self.listen(w)
            return h, tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)

        fn = self._fn("frames", frames, [_WAVE_SPEC])
        out = [None] * len(waves)
        order = np.argsort([len(w) for w in waves])
        for start in range(0, len(waves), batch_size):
            idx = order[start:start + batch_size]
            h, counts = fn(tf.constant(pad_batch([waves[i] for i in idx])))
            for row, (i, n) in enumerate(zip(idx, counts.numpy())):
                out[i] = h[row, :n].numpy()
        return out

    def tokenize(self, texts) -> np.ndarray:
        """Label ids ``(batch, length)`` of transcripts: characters, ``<eos>``, zero padding."""
        return texts_to_ids(texts)

    # -- attack protocol ----------------------------------------------------------------------
    def attack_loss(self, x, y, training=False):
        """E(x, y) = −Σ_t ln ŷ_t,y_t per utterance; ``y`` are padded token ids (see :meth:`tokenize`)."""
        fn = self._fn("attack_loss", lambda w, t: self.sequence_loss(w, t, training=False)[0], [_WAVE_SPEC, _TOKEN_SPEC])
        return fn(tf.cast(x, tf.float32), tf.cast(y, tf.int32))

    def predict_labels(self, x):
        """The model's own greedy transcripts as padded token ids (the attack's ``y=None`` labels)."""
        return self.decode_ids(x, beam_width=1)

    def get_config(self):
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate, frame_length=self.frame_length, frame_step=self.frame_step,
            fft_length=self.fft_length, num_mels=self.num_mels, features=self.features_kind, num_mfcc=self.num_mfcc,
            listener_layers=self.listener_layers, listener_units=self.listener_units,
            speller_units=self.speller_units, embedding_dim=self.embedding_dim, attention_dim=self.attention_dim,
            max_output_length=self.max_output_length, beam_width=self.beam_width,
            scheduled_sampling=self.scheduled_sampling, dropout=self.dropout_rate,
            freq_masks=self.freq_masks, freq_mask_width=self.freq_mask_width, time_masks=self.time_masks,
            time_mask_width=self.time_mask_width, feature_norm=self.feature_norm, vtlp=self.vtlp, speed=self.speed,
            requantize=self.requantize,
        )
        return config


def _tokens(y):
    tokens = y["tokens"] if isinstance(y, dict) else y
    return tf.cast(tokens, tf.int32)


def _stack_pairs(h, mask):
    """Concatenate frames 2i and 2i+1 (pBLSTM time reduction); a pair is valid if its first frame is."""
    time = tf.shape(h)[1]
    pad = time % 2
    h = tf.pad(h, [[0, 0], [0, pad], [0, 0]])
    mask = tf.pad(mask, [[0, 0], [0, pad]])
    h = tf.reshape(h, [tf.shape(h)[0], (time + pad) // 2, 2 * h.shape[-1]])
    return h, mask[:, ::2]


def _masked_mean(h, mask):
    m = tf.cast(mask, h.dtype)[..., None]
    return tf.reduce_sum(h * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)


# -- metrics ---------------------------------------------------------------------------------------
def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def error_rate(references, hypotheses, unit="char") -> float:
    """Corpus CER (``unit="char"``) or WER (``"word"``): total edits / total reference units."""
    split = (lambda s: list(s)) if unit == "char" else (lambda s: s.split())
    edits = sum(edit_distance(split(r), split(h)) for r, h in zip(references, hypotheses))
    return edits / max(1, sum(len(split(r)) for r in references))


def speaker_probe_accuracy(model, dataset, seed=0) -> float:
    """The fixed speaker probe on mean-pooled ``encode()`` outputs (see
    :mod:`zoo.models.speaker_probe`: fitted on takes 5–14, scored on takes 0–4)."""
    from zoo.models.speaker_probe import speaker_probes

    return speaker_probes(model, dataset, poolings=("mean",), seed=seed)["mean"]


#: evaluate_las's key for each probe pooling (``speaker_probe_accuracy`` is the mean pooling's,
#: the name benchmarks have always used).
PROBE_KEYS = {"mean": "speaker_probe_accuracy", "mean_std": "speaker_probe_mean_std",
              "frames": "speaker_probe_frames"}


def evaluate_las(model, dataset, probe=True) -> dict:
    """CER and WER on the test split (single- and multi-digit utterances) and the speaker probe on
    all three poolings of ``encode()`` (:data:`PROBE_KEYS`)."""
    out = {}
    refs_all, hyps_all = [], []
    for kind in ("single", "multi"):
        waves, refs, _ = dataset.arrays(f"test_{kind}")
        if not waves:
            continue
        hyps = model.transcribe(waves)
        refs_all += refs
        hyps_all += hyps
        out[f"cer_{kind}"] = error_rate(refs, hyps, "char")
        out[f"wer_{kind}"] = error_rate(refs, hyps, "word")
    out["cer"] = error_rate(refs_all, hyps_all, "char")
    out["wer"] = error_rate(refs_all, hyps_all, "word")
    if probe:
        from zoo.models.speaker_probe import speaker_probes

        out.update({PROBE_KEYS[k]: v for k, v in speaker_probes(model, dataset).items()})
    return out


def demo_step(out, seed=0) -> dict:
    """The speech part of ``zoo demo``: train ``las-tones`` (a tiny LAS on the embedded tone "speech")
    into ``out/las-tones``, write one multi-digit test utterance as ``example.wav`` and the reference →
    transcript pairs of a few test utterances to ``transcripts.txt``.

    Returns the test CER/WER, the speaker-probe accuracy (chance 1/6) and ``seconds``.
    """
    import time
    from pathlib import Path

    from zoo.data import load_dataset
    from zoo.data.audio import write_wav
    from zoo.training.fit import train

    start = time.perf_counter()
    run_dir = Path(out) / "las-tones"
    print("== Listen, Attend and Spell on generated tone speech (las-tones) ==", flush=True)
    result = train("las-tones", seed=seed, out=run_dir, verbose=2)
    waves, refs, _ = load_dataset("tones", seed=seed).arrays("test_multi")
    hyps = result.model.transcribe(waves[:10])
    write_wav(run_dir / "example.wav", waves[0])
    lines = [f"{r!r:>32} -> {h!r}" for r, h in zip(refs[:10], hyps)]
    (run_dir / "transcripts.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:3]))
    m = result.metrics
    return dict(las_tones_cer=m["cer"], las_tones_wer=m["wer"], las_tones_speaker_probe=m["speaker_probe_accuracy"],
                las_tones_seconds=round(time.perf_counter() - start, 1))
