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
import math
import sys
from pathlib import Path

from audiollm_lobes.metrics import LOWER_IS_BETTER


def _fmt(value, digits=2):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _arrow(metric):
    return "↓" if metric in LOWER_IS_BETTER else "↑"


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

    Rows are (task, metric) in the order first seen; a ``baseline`` column
    shows the majority-class baseline where a run recorded one, and a last
    row gives each run's trainable-parameter count.

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
    | task | metric | dps | lora | baseline |
    |---|---|---:|---:|---:|
    | asr | wer ↓ | 10.00 | 12.50 | – |
    | trainable parameters | | 1,000 | 300 | |
    """
    if len(summaries) != len(labels):
        raise ValueError(f"{len(summaries)} summaries but {len(labels)} labels")
    rows = []
    for summary in summaries:
        for task, values in summary["test"].items():
            for metric in values:
                if metric != "n" and (task, metric) not in rows:
                    rows.append((task, metric))
    baselines = {}
    for summary in summaries:
        for task, value in (summary.get("baselines") or {}).items():
            baselines.setdefault(task, value)
    lines = [
        "| task | metric | " + " | ".join(labels) + " | baseline |",
        "|---|---|" + "---:|" * (len(labels) + 1),
    ]
    for task, metric in rows:
        cells = [
            _fmt(s["test"].get(task, {}).get(metric), digits) for s in summaries
        ]
        base = baselines.get(task)
        if isinstance(base, dict):
            base = base.get(metric)
        lines.append(
            f"| {task} | {metric} {_arrow(metric)} | "
            + " | ".join(cells)
            + f" | {_fmt(base, digits)} |"
        )
    params = [_fmt(s.get("trainable_parameters")) for s in summaries]
    lines.append("| trainable parameters | | " + " | ".join(params) + " | |")
    return "\n".join(lines)


def sweep_table(k_sweep, digits=2):
    """A ``k_eval`` sweep as one table: one column per k.

    Arguments
    ---------
    k_sweep : dict
        ``{k: {task: {metric: value, "n": count}}}`` (keys may be str, as
        read back from JSON).
    digits : int
        Decimals shown.

    Returns
    -------
    str
        The markdown table, columns in increasing k.

    Example
    -------
    >>> sweep = {"1": {"asr": {"wer": 30.0, "n": 4}},
    ...          "4": {"asr": {"wer": 20.0, "n": 4}}}
    >>> print(sweep_table(sweep))
    | task | metric | k=1 | k=4 |
    |---|---|---:|---:|
    | asr | wer ↓ | 30.00 | 20.00 |
    """
    ks = sorted(k_sweep, key=int)
    summaries = [{"test": k_sweep[k]} for k in ks]
    table = compare_table(summaries, [f"k={k}" for k in ks], digits)
    # no baseline column and no parameter row in a sweep
    lines = []
    for line in table.split("\n")[:-1]:
        lines.append(line.rsplit("|", 2)[0] + "|")
    return "\n".join(lines)


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
        tmp = Path(args.out).with_suffix(".tmp")
        tmp.write_text(table + "\n", encoding="utf-8")
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
