"""The speaker probe: how much speaker identity a model's hidden features still carry.

A probe on one pooling can be gamed: an encoder that subtracts its own time-mean leaves nothing in
mean-pooled features while every speaker cue stays in the frames. So the probe reads three poolings
of the per-utterance frames (LAS: the valid frames of ``encode()``):

* ``mean``: the time-mean of the frames;
* ``mean_std``: time-mean and standard deviation side by side (cues in the spread of the frames);
* ``frames``: every frame is one example; an utterance's speaker is the majority vote of its frames
  (ties go to the class with the larger summed log-probability).

The protocol is fixed and deterministic: fitted on the ``probe_train`` split (takes 5–14 of the
training speakers), scored on ``probe_test`` (takes 0–4 of the same speakers); chance is 1 / number
of those speakers. ``mean`` and ``mean_std`` use ``StandardScaler`` + multinomial
``LogisticRegression`` (the earlier figures' probe). ``frames`` puts 1,024 random Fourier features
of an RBF kernel (``RBFSampler``, seeded) between the scaler and the regression, because a linear
classifier on frames is exactly as blind as the mean: when every utterance's frames sum to zero,
the log-loss gradient at w = 0 vanishes, so by convexity w = 0 is its optimum and the probe learns
nothing, whatever speaker cue the frames hold (tests/test_las_loso.py shows both).
"""
from __future__ import annotations

import numpy as np

from zoo.errors import DataError

POOLINGS = ("mean", "mean_std", "frames")


def pool(frames, pooling: str):
    """``(features, owner)``: one row per utterance (``mean``, ``mean_std``) or per frame
    (``frames``); ``owner[i]`` is the utterance row ``i`` came from. ``frames`` is a list of
    ``(time, dim)`` arrays, one per utterance, each with at least one frame."""
    if pooling not in POOLINGS:
        raise DataError(f"unknown probe pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
    frames = [np.asarray(f, np.float64) for f in frames]
    if not frames:
        raise DataError("speaker probe: no utterances")
    dims = {f.shape[1:] for f in frames}
    if any(f.ndim != 2 or len(f) == 0 for f in frames) or len(dims) != 1:
        raise DataError(f"speaker probe: expected non-empty (time, dim) frames of one dim, got shapes "
                        f"{sorted({f.shape for f in frames})[:4]}")
    if pooling == "frames":
        owner = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
        return np.concatenate(frames), owner
    means = np.stack([f.mean(0) for f in frames])
    if pooling == "mean_std":
        means = np.concatenate([means, np.stack([f.std(0) for f in frames])], axis=1)
    return means, np.arange(len(frames))


def majority_vote(frame_log_probs, owner, n_utterances) -> np.ndarray:
    """Per utterance, the class index most of its frames predict; ties go to the larger summed
    log-probability. ``frame_log_probs`` is ``(frames, classes)``."""
    logp = np.asarray(frame_log_probs, np.float64)
    votes = np.zeros((n_utterances, logp.shape[1]))
    np.add.at(votes, (owner, logp.argmax(1)), 1.0)
    total = np.zeros_like(votes)
    np.add.at(total, owner, logp)
    return np.where(votes == votes.max(1, keepdims=True), total, -np.inf).argmax(1)


#: Random Fourier features of the ``frames`` probe's RBF kernel.
FRAME_FEATURES = 1024


def make_probe(pooling, dim, seed=0):
    """The unfitted scikit-learn classifier of a pooling (see the module docstring)."""
    from sklearn.kernel_approximation import RBFSampler
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [StandardScaler()]
    if pooling == "frames":  # gamma 1/dim: standardised frames are ~sqrt(2 dim) apart, kernel values ~e^-2
        steps.append(RBFSampler(gamma=1.0 / dim, n_components=FRAME_FEATURES, random_state=seed))
    return make_pipeline(*steps, LogisticRegression(max_iter=2000, random_state=seed))


def probe_accuracy(fit_frames, fit_speakers, score_frames, score_speakers, pooling="mean", seed=0) -> float:
    """Fit the probe on ``fit_frames`` (a list of ``(time, dim)`` arrays) and their speaker labels,
    and return its utterance accuracy on ``score_frames``."""
    fit_speakers, score_speakers = np.asarray(fit_speakers), np.asarray(score_speakers)
    if len(fit_frames) != len(fit_speakers) or len(score_frames) != len(score_speakers):
        raise DataError("speaker probe: one speaker label per utterance is needed")
    if len(np.unique(fit_speakers)) < 2:
        raise DataError("speaker probe: the fitting split needs at least two speakers")
    x_fit, owner = pool(fit_frames, pooling)
    x_score, score_owner = pool(score_frames, pooling)
    probe = make_probe(pooling, x_fit.shape[1], seed).fit(x_fit, fit_speakers[owner])
    if pooling == "frames":
        classes = probe.classes_[majority_vote(probe.predict_log_proba(x_score), score_owner, len(score_frames))]
    else:
        classes = probe.predict(x_score)
    return float(np.mean(classes == score_speakers))


def speaker_probes(model, dataset, poolings=POOLINGS, seed=0) -> dict:
    """``{pooling: accuracy}`` of the fixed probe on ``model.frame_encodings`` of the dataset's
    ``probe_train`` / ``probe_test`` splits (see the module docstring)."""
    x_fit, _, s_fit = dataset.arrays("probe_train")
    x_score, _, s_score = dataset.arrays("probe_test")
    fit_frames, score_frames = model.frame_encodings(x_fit), model.frame_encodings(x_score)
    return {p: probe_accuracy(fit_frames, s_fit, score_frames, s_score, p, seed) for p in poolings}
