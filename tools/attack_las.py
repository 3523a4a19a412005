#!/usr/bin/env python
"""Targeted PGD against a trained LAS on the FSDD single-digit test utterances; writes
``benchmarks/las_attack.json``.

    nice -n 5 python tools/attack_las.py --weights runs/las/las-fsdd

Every one of the 300 single-digit test utterances (takes 0–4) gets a random OTHER digit word as its
target (seeded). PGD (L∞ on the waveform, uniform random start, sign steps, ``clip=(-1, 1)``)
ascends ln ŷ(target | x) through LAS's sequence loss ``attack_loss``; an utterance counts as a
success when the model's greedy transcript of the adversarial waveform is exactly the target word.
The sweep runs the given ε values from the weakest up and reports the weakest that reaches the
``--goal`` success rate.

Padding. LAS reads the trailing exact zeros of a padded row as padding, and a perturbation there
(the random start puts noise on every sample; the gradient reaches the zeros under the last frame)
makes the utterance longer. We attack utterances in batches sorted by length, so the padding is
small, and treat the whole perturbed row as the adversarial waveform: the noise appended to an
utterance is part of the attack and counts in its noise energy. So, per utterance,

    SNR = 10·log10(Σ x² / Σ δ²),  δ = x_adv − x over the padded row (x zero-extended),

and success is judged by re-transcribing each adversarial waveform on its own (trailing exact zeros
trimmed, exactly as a WAV file would hold it), not by the attack's batch. The success after a
16-bit PCM round trip (``write_wav`` / ``read_wav``) is reported as well.

The CPU is shared with other jobs: every figure records wall time and process CPU time (user + sys).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from timing import Timer

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "fsdd"
BENCHMARK = REPO / "benchmarks" / "las_attack.json"


def choose_targets(refs, seed):
    """A uniformly random digit word other than each reference (seeded)."""
    import numpy as np

    from zoo.data.audio import DIGIT_WORDS

    rng = np.random.default_rng(seed)
    index = {w: i for i, w in enumerate(DIGIT_WORDS)}
    return [DIGIT_WORDS[(index[r] + int(rng.integers(1, 10))) % 10] for r in refs]


def length_batches(waves, batch_size):
    """Index batches of utterances sorted by length (little padding per batch)."""
    import numpy as np

    order = np.argsort([len(w) for w in waves], kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def snr_db(clean, delta):
    import numpy as np

    return float(10 * np.log10(np.sum(np.square(clean, dtype=np.float64)) / np.sum(np.square(delta, dtype=np.float64))))


def pcm16_round_trip(waves, directory):
    """The waveforms as a 16-bit WAV file would return them (write_wav, then read_wav)."""
    from zoo.data.audio import read_wav, write_wav

    out = []
    for i, w in enumerate(waves):
        path = write_wav(Path(directory) / f"{i}.wav", w)
        out.append(read_wav(path, on_clipping="ignore"))
    return out


def targeted_pgd(eps, steps, step_size, early_exit):
    """The attack of the sweep: L∞ PGD with a uniform random start, samples kept in [−1, 1]."""
    from zoo import get_attack

    return get_attack("pgd", eps=eps, steps=steps, step_size=step_size, random_start=True, clip=(-1.0, 1.0),
                      early_exit=early_exit)


def attack_once(model, attack, waves, targets, refs, *, batch_size, seed):
    """``attack`` on every utterance (length-sorted padded batches) towards its target word.

    Returns per utterance the adversarial waveform (the perturbed padded row without its trailing
    exact zeros, i.e. what LAS reads), its SNR in dB, its SNR counting only the noise on the
    utterance's own samples (for comparison), the fraction of samples it gained from the padding,
    and the largest |δ| over all rows.
    """
    import numpy as np
    import tensorflow as tf

    from zoo.data.audio import pad_batch

    tf.random.set_seed(seed)  # the random starts
    adversarial, linf = [None] * len(waves), 0.0
    snrs, snrs_own, appended = np.zeros(len(waves)), np.zeros(len(waves)), np.zeros(len(waves))
    for idx in length_batches(waves, batch_size):
        x = pad_batch([waves[i] for i in idx])
        y, target = model.tokenize([refs[i] for i in idx]), model.tokenize([targets[i] for i in idx])
        x_adv = attack(model, x, y, target=target)
        if not (np.all(np.isfinite(x_adv)) and x_adv.min() >= -1.0 and x_adv.max() <= 1.0):
            raise RuntimeError("the attack left [-1, 1] or produced non-finite samples")
        linf = max(linf, float(np.abs(x_adv - x).max()))
        for row, i in enumerate(idx):
            nonzero = np.flatnonzero(x_adv[row])
            adv = x_adv[row, : nonzero[-1] + 1 if nonzero.size else 0]  # what LAS reads as the utterance
            n = max(len(adv), len(waves[i]))
            adversarial[i] = adv
            delta = np.pad(adv, (0, n - len(adv))) - np.pad(waves[i], (0, n - len(waves[i])))
            snrs[i], snrs_own[i] = snr_db(waves[i], delta), snr_db(waves[i], delta[: len(waves[i])])
            appended[i] = max(0, len(adv) - len(waves[i])) / len(waves[i])
    return adversarial, snrs, snrs_own, appended, linf


def run(args) -> dict:
    import numpy as np

    from zoo import load
    from zoo.data import load_dataset
    from zoo.models.las import error_rate

    model = load("las-fsdd", weights=str(args.weights))
    waves, refs, speakers = load_dataset("fsdd", data_dir=str(args.data_dir)).arrays("test_single")
    if args.limit:
        waves, refs, speakers = waves[: args.limit], refs[: args.limit], speakers[: args.limit]
    targets = choose_targets(refs, args.seed)
    with Timer() as t:
        clean_hyps = model.transcribe(waves)
    clean = dict(cer=error_rate(refs, clean_hyps, "char"), wer=error_rate(refs, clean_hyps, "word"),
                 wall_seconds=round(t.wall, 2), cpu_seconds=round(t.cpu, 2))
    print(f"clean: CER {clean['cer']:.2%} WER {clean['wer']:.2%} ({len(waves)} utterances)", flush=True)
    padding = []
    for idx in length_batches(waves, args.batch_size):
        lengths = np.array([len(waves[i]) for i in idx])
        padding.append((lengths.max() - lengths).sum() / lengths.sum())
    rows = []
    for eps in sorted(args.eps):
        step_size = args.step_ratio * eps
        with Timer() as t:
            pgd = targeted_pgd(eps, args.steps, step_size, early_exit=not args.all_steps)
            adversarial, snrs, snrs_own, appended, linf = attack_once(model, pgd, waves, targets, refs,
                                                            batch_size=args.batch_size, seed=args.seed)
        hyps = model.transcribe(adversarial)
        with tempfile.TemporaryDirectory() as tmp:
            pcm_hyps = model.transcribe(pcm16_round_trip(adversarial, tmp))
        success = np.array([h == tg for h, tg in zip(hyps, targets)])
        row = dict(
            eps=eps, steps=args.steps, step_size=step_size, random_start=True, norm="inf",
            early_exit=not args.all_steps,
            success_rate=float(success.mean()),
            success_rate_pcm16=float(np.mean([h == tg for h, tg in zip(pcm_hyps, targets)])),
            untouched_rate=float(np.mean([h == c for h, c in zip(hyps, clean_hyps)])),
            other_rate=float(np.mean([h not in (tg, c) for h, tg, c in zip(hyps, targets, clean_hyps)])),
            snr_db_mean=float(snrs.mean()), snr_db_median=float(np.median(snrs)),
            snr_db_min=float(snrs.min()), snr_db_max=float(snrs.max()),
            snr_db_median_success=float(np.median(snrs[success])) if success.any() else None,
            snr_db_mean_own_samples_only=float(snrs_own.mean()),
            snr_db_median_own_samples_only=float(np.median(snrs_own)),
            linf_measured=linf, appended_fraction_mean=float(appended.mean()),
            wall_seconds=round(t.wall, 1), cpu_seconds=round(t.cpu, 1),
            utterances_per_second=round(len(waves) / t.wall, 2),
            failures=[dict(ref=r, clean=c, target=tg, got=h, speaker=int(s), snr_db=round(float(q), 1))
                      for r, c, tg, h, s, q, ok in zip(refs, clean_hyps, targets, hyps, speakers, snrs, success)
                      if not ok][:20],
        )
        rows.append(row)
        print(f"eps {eps:g}: success {row['success_rate']:.1%} (16-bit {row['success_rate_pcm16']:.1%}), "
              f"untouched {row['untouched_rate']:.1%}, SNR mean {row['snr_db_mean']:.1f} / median "
              f"{row['snr_db_median']:.1f} dB, {row['wall_seconds']} s wall / {row['cpu_seconds']} CPU-s, "
              f"{row['utterances_per_second']} utt/s", flush=True)
    chosen = next((r["eps"] for r in rows if r["success_rate"] >= args.goal), None)
    return dict(
        command="nice -n 5 python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        weights=str(args.weights), utterances=len(waves), seed=args.seed, batch_size=args.batch_size,
        attack="pgd (targeted, L_inf on the waveform, uniform random start, clip [-1, 1], targeted_loss=target)",
        padding="length-sorted batches; noise on the padding is part of the adversarial waveform and counts in the SNR",
        padding_fraction_mean=float(np.mean(padding)),
        clean=clean, clean_transcript_is_target=int(sum(h == tg for h, tg in zip(clean_hyps, targets))),
        goal=args.goal, chosen_eps=chosen, sweep=rows,
        timing_note="wall/cpu_seconds of a sweep row: the attack on all utterances (not the re-transcription)",
        cpu_note=f"shared 2-core CPU, other jobs running; load average at the end {os.getloadavg()[0]:.1f}",
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=REPO / "runs" / "las" / "las-fsdd",
                        help="directory of a trained las-fsdd (config.json + model.weights.h5)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.001, 0.002, 0.004, 0.006],
                        help="L_inf radii on the waveform (samples in [-1, 1]) to sweep")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--step-ratio", type=float, default=0.1, help="step size as a fraction of eps")
    parser.add_argument("--all-steps", action="store_true",
                        help="run every step on every utterance (default: stop once its transcript is the target)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--goal", type=float, default=0.9, help="success rate the chosen eps must reach")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="attack only the first N utterances (exploration)")
    parser.add_argument("--out", type=Path, default=BENCHMARK)
    parser.add_argument("--no-write", action="store_true", help="print the result without writing --out")
    args = parser.parse_args(argv)
    with Timer() as t:
        result = run(args)
    result.update(total_wall_seconds=round(t.wall, 1), total_cpu_seconds=round(t.cpu, 1))
    print(json.dumps({k: v for k, v in result.items() if k != "sweep"}, indent=1))
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
