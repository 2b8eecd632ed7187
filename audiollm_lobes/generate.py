"""``audiollm-generate``: a trained model answers on audio files.

One line per file::

    audiollm-generate --model results/LiSTEN/dps/1234 \\
        --audio a.wav b.flac --instruction "Transcribe the speech."

Every example of manifests, as JSON lines (``id``, ``task``, ``hyp``,
``ref``), with a progress bar::

    audiollm-generate --model exports/dps --manifest test/asr.json \\
        --data_root /data/toy --out answers.jsonl

``--model`` is a run folder or an export (:mod:`audiollm_lobes.export`);
see :class:`audiollm_lobes.inference.AudioLLM`.

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import json
import logging
import sys

from audiollm_lobes.atomic import write_text
from audiollm_lobes.inference import AudioLLM, write_answers


def parse_sources(values):
    """``["llm_source=/models/x", ...]`` -> ``{"llm_source": "/models/x"}``.

    Example
    -------
    >>> parse_sources(["llm_source=/m/lm"])
    {'llm_source': '/m/lm'}
    """
    out = {}
    for value in values or ():
        field, sep, path = value.partition("=")
        if not sep or not field or not path:
            raise SystemExit(f"--source {value!r}: expected field=path")
        out[field] = path
    return out


def build_parser():
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="audiollm-generate",
        description="Answer an instruction on audio files (one line per "
        "file), or on every example of manifests (JSON lines).",
    )
    parser.add_argument("--model", required=True, help="run folder or export")
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--audio", nargs="+", help="audio files (any format)")
    inputs.add_argument("--manifest", nargs="+", help="JSON manifests")
    parser.add_argument(
        "--instruction",
        help="e.g. 'Transcribe the speech.' (the audio goes at <audio>, "
        "or first)",
    )
    parser.add_argument(
        "--task", help="a task name (its first instruction if none given)"
    )
    parser.add_argument("--data_root", help="{data_root} of the manifests")
    parser.add_argument("--max_per_manifest", type=int)
    parser.add_argument("--out", help="JSON lines file (default: stdout)")
    parser.add_argument("--batch_size", type=int)
    parser.add_argument("--num_beams", type=int)
    parser.add_argument("--max_new_tokens", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--source",
        action="append",
        help="field=path: a backbone elsewhere than recorded "
        "(e.g. llm_source=/models/llama)",
    )
    parser.add_argument(
        "--noprogressbar", action="store_true", help="no progress bar"
    )
    return parser


def main(argv=None):
    """Runs the command (see the module docstring); returns 0.

    A model folder that cannot be loaded (missing or other backbones,
    no model) and bad inputs end the command with one message, no
    traceback.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.audio and not (args.instruction or args.task):
        raise SystemExit("--audio needs --instruction or --task")
    try:
        run(args)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"audiollm-generate: {err}") from None
    return 0


def run(args):
    """Loads the model and answers (see :func:`main`)."""
    model = AudioLLM.from_folder(
        args.model, device=args.device, sources=parse_sources(args.source)
    )
    options = {"num_beams": args.num_beams}
    options["max_new_tokens"] = args.max_new_tokens
    if args.audio:
        answers = model.generate(
            args.audio,
            instruction=args.instruction,
            task=args.task,
            batch_size=args.batch_size or 8,
            **options,
        )
        lines = [
            f"{path}\t{answer}" for path, answer in zip(args.audio, answers)
        ]
        text = "\n".join(lines) + "\n"
        if args.out:
            write_text(args.out, text)
        else:
            sys.stdout.write(text)
        return
    rows = model.generate_manifest(
        args.manifest,
        data_root=args.data_root,
        batch_size=args.batch_size,
        max_per_manifest=args.max_per_manifest,
        progress=False if args.noprogressbar else None,
        **options,
    )
    if args.out:
        write_answers(rows, args.out)
    else:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
