"""Side-by-side tables of several runs' test metrics.

Every recipe writes ``summary.json`` in its output folder (per-task test
metrics, trainable-parameter count, majority baselines, optional
``k_sweep``). This module puts several of them in one markdown table, one
column per run, so that methods trained under the same budget can be
compared at a glance::

    python -m audiollm_lobes.compare results/LiSTEN/dps/1234 \\
        results/LiSTEN/soft_prompt/1234 results/LiSTEN/lora/1234

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import json
import sys
from pathlib import Path

from audiollm_lobes.atomic import write_text
from audiollm_lobes.reporting import results_table


def load_summary(run):
    """Reads ``summary.json`` of a run folder (or the file itself).

    Arguments
    ---------
    run : str or Path
        An output folder holding ``summary.json``, or its path.

    Returns
    -------
    dict
        The summary.

    Example
    -------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "summary.json").write_text('{"test": {}}')
    >>> load_summary(d)
    {'test': {}}
    """
    path = Path(run)
    if path.is_dir():
        path = path / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no summary.json at {path}; expected a recipe output folder"
        )
    summary = json.loads(path.read_text(encoding="utf-8"))
    if "test" not in summary:
        raise ValueError(f"{path} has no 'test' metrics")
    return summary


def compare_table(summaries, labels, digits=2):
    """One markdown table of several runs' per-task test metrics.

    A column per run (:func:`audiollm_lobes.reporting.results_table`),
    the majority baselines the runs recorded, and each run's
    trainable-parameter count in a last row.

    Arguments
    ---------
    summaries : list of dict
        Loaded ``summary.json`` contents.
    labels : list of str
        Column label of each run.
    digits : int
        Decimals shown.

    Returns
    -------
    str
        The markdown table.

    Example
    -------
    >>> a = {"test": {"asr": {"wer": 10.0, "n": 5}},
    ...      "trainable_parameters": 1000}
    >>> b = {"test": {"asr": {"wer": 12.5, "n": 5}},
    ...      "trainable_parameters": 300}
    >>> print(compare_table([a, b], ["dps", "lora"]))
    | task | metric | dps | lora | n | majority |
    |---|---|---:|---:|---:|---:|
    | asr | wer ↓ | 10.00 | 12.50 | 5 | – |
    | trainable parameters | | 1,000 | 300 | | |
    """
    if len(summaries) != len(labels):
        raise ValueError(f"{len(summaries)} summaries but {len(labels)} labels")
    baselines = {}
    for summary in summaries:
        for task, value in (summary.get("baselines") or {}).items():
            baselines.setdefault(task, value)
    return results_table(
        [(label, s["test"]) for label, s in zip(labels, summaries)],
        baselines,
        parameters=[s.get("trainable_parameters") for s in summaries],
        digits=digits,
    )


def main(argv=None):
    """Prints (or writes) the comparison of run folders.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(
        description="Compare the test metrics of several recipe runs."
    )
    parser.add_argument("runs", nargs="+", help="output folders")
    parser.add_argument(
        "--labels", nargs="+", help="column labels (default: experiment)"
    )
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    summaries = [load_summary(run) for run in args.runs]
    labels = args.labels or [
        s.get("experiment") or Path(run).resolve().parent.name
        for s, run in zip(summaries, args.runs)
    ]
    table = compare_table(summaries, labels)
    print(table)
    if args.out:
        write_text(args.out, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
