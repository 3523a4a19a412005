"""zoo transcribe NAME --weights DIR FILE.wav ...: transcripts of WAV files by a trained LAS model."""
from zoo.cli import print_json


def add_parser(sub):
    p = sub.add_parser("transcribe", help="transcribe WAV files with a LAS model trained with `zoo train --out DIR`")
    p.add_argument("name", help="a las preset or architecture (e.g. las-fsdd)")
    p.add_argument("files", nargs="+", metavar="FILE.wav",
                   help="PCM or float WAV; stereo is averaged to mono, other sample rates are resampled")
    p.add_argument("--weights", required=True, help="directory written by `zoo train --out`")
    p.add_argument("--beam-width", type=int, help="beam search width (default: the model's, 1 = greedy)")
    p.add_argument("--json", action="store_true", help="print the transcripts as JSON on the last line")
    p.set_defaults(run=run)


def run(args):
    from zoo.api import load
    from zoo.data.audio import read_wav
    from zoo.errors import ConfigError

    if args.beam_width is not None and args.beam_width < 1:
        raise ConfigError(f"--beam-width must be at least 1, got {args.beam_width}")
    waveforms = [read_wav(f) for f in args.files]  # bad files fail here, before the model is built
    model = load(args.name, weights=args.weights)
    if not hasattr(model, "transcribe"):
        raise ConfigError(f"{args.name!r} is not a speech model (no transcribe); use a las preset")
    texts = model.transcribe(waveforms, beam_width=args.beam_width)
    for path, text in zip(args.files, texts):
        print(f"{path}\t{text}")
    if args.json:
        print_json({"transcripts": [{"file": f, "text": t} for f, t in zip(args.files, texts)]})
    return 0
