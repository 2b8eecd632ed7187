#!/usr/bin/env python3
"""Merges the ``summary.json`` of several Wav2Prompt runs into one table.

Each run gives a column (its ``system`` name, or ``--labels``); the
cascades of the first run (``--cascade first``, default: columns
"cascade (front end ASR)" and, when the run had a ``cascade_asr``,
"cascade (CTC ASR)"), of every run (``all``: "cascade (front end ASR,
<run>)", ...) or of none are added, and so are the majority baselines
and, for few-shot runs, the zero-shot scores measured before tuning
(``--before``). A ``ctc_asr.yaml`` run is a column too (its ASR row).
Example, after the ctc_asr, asr (with ``--cascade_asr``), asr_no_mse,
encoder_llm and few-shot runs::

    python recipes/Wav2Prompt/compare.py results/Wav2Prompt/asr/1234 \\
        results/Wav2Prompt/encoder_llm/1234 \\
        results/Wav2Prompt/asr_no_mse/1234 \\
        results/Wav2Prompt/few_shot_10/1234 \\
        results/Wav2Prompt/few_shot_50/1234 --output results/Wav2Prompt/table.md

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import sys

from audiollm_lobes import compare
from audiollm_lobes.atomic import write_text
from audiollm_lobes.reporting import results_table

#: The cascades of a run: summary key and column label (as in the run's
#: results.md, ``train.py``).
CASCADES = (
    ("cascade", "cascade (front end ASR)"),
    ("cascade_ctc", "cascade (CTC ASR)"),
)


def load_summary(path):
    """Reads a Wav2Prompt run's ``summary.json`` (file or run folder).

    Arguments
    ---------
    path : str or Path
        ``summary.json`` or a folder holding it.

    Returns
    -------
    dict
        The summary (``system``, ``test``, ``cascade``, ...).

    Example
    -------
    >>> import tempfile
    >>> from pathlib import Path
    >>> run = Path(tempfile.mkdtemp())
    >>> _ = (run / "summary.json").write_text('{"system": "w", "test": {}}')
    >>> load_summary(run)["system"]
    'w'
    """
    summary = compare.load_summary(path)
    if "system" not in summary:
        raise ValueError(
            f"{path}: field 'system' missing; expected a Wav2Prompt run summary"
        )
    return summary


def build_columns(summaries, labels=None, cascade="first", before=True):
    """Table columns ``(label, per-task summary)`` for several runs.

    Arguments
    ---------
    summaries : list of dict
        Run summaries, as from :func:`load_summary`.
    labels : list of str, optional
        Column names (default: each run's ``system``).
    cascade : str
        ``"first"``, ``"all"`` or ``"none"``: whose cascade to show.
    before : bool
        Show the before-tuning scores of runs that have them.

    Returns
    -------
    list of tuple
        ``(label, summary)`` columns.

    Example
    -------
    >>> runs = [{"system": "w2p", "test": {"slu": {"exact_match": 1.0}},
    ...          "cascade": {"slu": {"exact_match": 2.0}},
    ...          "cascade_ctc": {"slu": {"exact_match": 3.0}}},
    ...         {"system": "enc", "test": {}, "cascade": {}}]
    >>> [label for label, _ in build_columns(runs)]
    ['w2p', 'cascade (front end ASR)', 'cascade (CTC ASR)', 'enc']
    >>> [label for label, _ in build_columns(runs, cascade="all")]
    ... # doctest: +NORMALIZE_WHITESPACE
    ['w2p', 'cascade (front end ASR, w2p)', 'cascade (CTC ASR, w2p)', 'enc',
     'cascade (front end ASR, enc)']
    """
    if cascade not in ("first", "all", "none"):
        raise ValueError(
            f"cascade: expected first, all or none, got {cascade!r}"
        )
    labels = labels or [s["system"] for s in summaries]
    if len(labels) != len(summaries):
        raise ValueError(
            f"--labels: got {len(labels)} labels for {len(summaries)} runs"
        )
    columns = []
    for i, (label, summary) in enumerate(zip(labels, summaries)):
        if before and summary.get("before_tuning"):
            columns.append((f"{label} (before)", summary["before_tuning"]))
        columns.append((label, summary["test"]))
        show = cascade == "all" or (cascade == "first" and i == 0)
        for key, name in CASCADES if show else ():
            if summary.get(key) is not None:
                if cascade == "all":
                    name = f"{name[:-1]}, {label})"
                columns.append((name, summary[key]))
    return columns


def main(argv=None):
    """Prints (and optionally writes) the merged table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders or summary.json")
    parser.add_argument("--labels", nargs="*", default=None)
    parser.add_argument(
        "--cascade", choices=("first", "all", "none"), default="first"
    )
    parser.add_argument("--no-before", dest="before", action="store_false")
    parser.add_argument("--output", default=None, help="markdown file")
    args = parser.parse_args(argv)
    summaries = [load_summary(p) for p in args.runs]
    columns = build_columns(summaries, args.labels, args.cascade, args.before)
    baselines = {}
    for summary in summaries:
        baselines.update(summary.get("baselines") or {})
    table = results_table(columns, baselines or None)
    print(table)
    if args.output:
        write_text(args.output, table + "\n")
    return table


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"compare.py: {err}")
