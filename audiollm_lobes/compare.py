"""Side-by-side tables of several runs' test metrics.

Every recipe writes ``summary.json`` in its output folder (per-task test
metrics, trainable-parameter count, majority baselines, optional
``k_sweep``). This module puts several of them in one markdown table, one
column per system, so that methods trained under the same budget can be
compared at a glance::

    python -m audiollm_lobes.compare results/LiSTEN/dps/1234 \\
        results/LiSTEN/soft_prompt/1234 results/LiSTEN/lora/1234

A system given as an experiment folder (``results/LiSTEN/dps``) stands for
all its seed folders that hold a ``summary.json``: its cells are the mean
over seeds and their range, ``mean (min–max)``, and so are its ``k_eval``
sweep and its prompt-usage overlaps, printed as tables of their own::

    python -m audiollm_lobes.compare results/LiSTEN/dps \\
        results/LiSTEN/soft_prompt results/LiSTEN/lora

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import json
import sys
from pathlib import Path

from audiollm_lobes.atomic import write_text
from audiollm_lobes.reporting import format_value, results_table


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


def load_seeds(path):
    """The summaries of one system: a run folder (or its ``summary.json``),
    or an experiment folder whose seed folders hold one each.

    Arguments
    ---------
    path : str or Path
        ``results/<recipe>/<experiment>/<seed>`` or
        ``results/<recipe>/<experiment>``.

    Returns
    -------
    dict
        ``{seed folder name: summary}`` (one entry for a run folder).

    Example
    -------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for seed in ("1", "2"):
    ...     (d / seed).mkdir()
    ...     _ = (d / seed / "summary.json").write_text('{"test": {}}')
    >>> sorted(load_seeds(d)), list(load_seeds(d / "1"))
    (['1', '2'], ['1'])
    """
    path = Path(path)
    if path.is_file() or (path / "summary.json").is_file():
        return {path.name: load_summary(path)}
    seeds = (
        sorted(d for d in path.iterdir() if (d / "summary.json").is_file())
        if path.is_dir()
        else []
    )
    if not seeds:
        raise FileNotFoundError(
            f"no summary.json in {path} nor in its sub-folders; expected a "
            "run folder (results/<recipe>/<experiment>/<seed>) or an "
            "experiment folder holding finished seed folders"
        )
    return {d.name: load_summary(d) for d in seeds}


def _pool_metrics(tests):
    """``{task: {metric: [value per run], "n": count}}`` of several
    ``{task: {metric: value, "n": count}}``."""
    pooled = {}
    for test in tests:
        for task, values in test.items():
            entry = pooled.setdefault(task, {"n": values.get("n", "")})
            for metric, value in values.items():
                if metric != "n":
                    entry.setdefault(metric, []).append(value)
    return pooled


def pool_seeds(summaries):
    """One summary of several seeds of a system: every figure becomes the
    list of its values over the seeds (shown as mean and range by
    :func:`audiollm_lobes.reporting.format_value`).

    Arguments
    ---------
    summaries : list of dict
        Loaded ``summary.json`` of each seed.

    Returns
    -------
    dict
        ``test``, ``baselines``, ``trainable_parameters`` and, when the
        runs have them, ``k_sweep`` (``{k: pooled metrics}``, the k values
        every seed has) and ``group_overlap`` (``{group: [value per
        seed]}``).

    Example
    -------
    >>> a = {"test": {"asr": {"wer": 10.0, "n": 5}},
    ...      "trainable_parameters": 7, "k_sweep": {"1": {}, "2": {}}}
    >>> b = {"test": {"asr": {"wer": 14.0, "n": 5}},
    ...      "trainable_parameters": 7, "k_sweep": {"2": {}}}
    >>> pooled = pool_seeds([a, b])
    >>> pooled["test"], pooled["trainable_parameters"], list(
    ...     pooled["k_sweep"])
    ({'asr': {'n': 5, 'wer': [10.0, 14.0]}}, 7, ['2'])
    """
    pooled = {"test": _pool_metrics([s["test"] for s in summaries])}
    pooled["baselines"] = {}
    for summary in summaries:
        for task, value in (summary.get("baselines") or {}).items():
            pooled["baselines"].setdefault(task, value)
    counts = [s.get("trainable_parameters") for s in summaries]
    pooled["trainable_parameters"] = (
        counts[0] if all(c == counts[0] for c in counts) else counts
    )
    sweeps = [s.get("k_sweep") for s in summaries]
    if all(sweeps):
        ks = sorted(set.intersection(*(set(w) for w in sweeps)), key=int)
        pooled["k_sweep"] = {
            k: _pool_metrics([w[k] for w in sweeps]) for k in ks
        }
    overlaps = [(s.get("usage") or {}).get("group_overlap") for s in summaries]
    if all(overlaps):
        pooled["group_overlap"] = {
            group: [o.get(group) for o in overlaps] for group in overlaps[0]
        }
        for summary in summaries:
            pairs = summary["usage"].get("overlap") or {}
            for task, row in pairs.items():
                others = [v for other, v in row.items() if other != task]
                if others:
                    pooled["group_overlap"].setdefault(
                        f"{task} vs the other tasks", []
                    ).append(sum(others) / len(others))
    return pooled


def compare_table(summaries, labels, digits=2):
    """One markdown table of several systems' per-task test metrics.

    A column per system (:func:`audiollm_lobes.reporting.results_table`):
    a run's figures, or over seeds (:func:`pool_seeds`) the mean and
    range; the majority baselines the runs recorded, and each system's
    trainable-parameter count in a last row.

    Arguments
    ---------
    summaries : list of dict
        Loaded ``summary.json`` contents, or pooled ones.
    labels : list of str
        Column label of each system.
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
    >>> print(compare_table([a, pool_seeds([b, a])], ["dps", "lora"]))
    | task | metric | dps | lora | n | majority |
    |---|---|---:|---:|---:|---:|
    | asr | wer ↓ | 10.00 | 11.25 (10.00–12.50) | 5 | – |
    | trainable parameters | | 1,000 | 650.00 (300–1,000) | | |
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


def sweep_table(pooled, digits=2):
    """A system's ``k_eval`` sweep, a column per ``k`` (mean and range
    over its seeds).

    Example
    -------
    >>> pooled = pool_seeds([{"test": {}, "k_sweep": {
    ...     "1": {"asr": {"wer": 20.0, "n": 5}},
    ...     "16": {"asr": {"wer": 10.0, "n": 5}}}}])
    >>> print(sweep_table(pooled))
    | task | metric | k=1 | k=16 | n |
    |---|---|---:|---:|---:|
    | asr | wer ↓ | 20.00 | 10.00 | 5 |
    """
    return results_table(
        [(f"k={k}", test) for k, test in pooled["k_sweep"].items()],
        digits=digits,
    )


def overlap_table(pooled_by_label, digits=2):
    """Prompt-usage overlaps between task groups
    (:func:`audiollm_lobes.analysis.group_overlaps`) and of each task with
    the others, a column per system that recorded them.

    Example
    -------
    >>> print(overlap_table({"dps": {"group_overlap": {
    ...     "across_groups": [0.5, 0.7]}}}))
    | usage overlap | dps |
    |---|---:|
    | across_groups | 0.60 (0.50–0.70) |
    """
    columns = {
        label: pooled["group_overlap"]
        for label, pooled in pooled_by_label.items()
        if pooled.get("group_overlap")
    }
    groups = []
    for overlaps in columns.values():
        groups += [g for g in overlaps if g not in groups]
    lines = [
        "| usage overlap | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for group in groups:
        cells = [
            format_value(overlaps.get(group), digits)
            for overlaps in columns.values()
        ]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison(paths, labels=None, digits=2):
    """The whole comparison as markdown: the test table, which seeds each
    column pools, and the ``k_eval`` sweeps and usage overlaps of the
    systems that have them.

    Arguments
    ---------
    paths : list of str or Path
        Run folders or experiment folders (see :func:`load_seeds`).
    labels : list of str, optional
        Column labels (default: each system's experiment name).
    digits : int
        Decimals shown.

    Returns
    -------
    str
        The markdown text.
    """
    systems = [load_seeds(path) for path in paths]
    if labels is None:
        labels = []
        for path, seeds in zip(paths, systems):
            first = next(iter(seeds.values()))
            folder = Path(path).resolve()
            if folder.is_file():
                folder = folder.parent
            if (folder / "summary.json").is_file():  # a run folder
                folder = folder.parent
            labels.append(first.get("experiment") or folder.name)
    if len(labels) != len(systems):
        raise ValueError(f"{len(systems)} systems but {len(labels)} labels")
    pooled = [pool_seeds(list(seeds.values())) for seeds in systems]
    parts = [compare_table(pooled, labels, digits)]
    if any(len(seeds) > 1 for seeds in systems):
        parts.append(
            "Cells: mean (min–max) over seeds; "
            + "; ".join(
                f"{label}: seeds {', '.join(seeds)}"
                for label, seeds in zip(labels, systems)
            )
            + "."
        )
    for label, system in zip(labels, pooled):
        if system.get("k_sweep"):
            parts.append(f"k_eval sweep of {label} (same trained models):")
            parts.append(sweep_table(system, digits))
    by_label = dict(zip(labels, pooled))
    if any(p.get("group_overlap") for p in pooled):
        parts.append(
            "Prompt-usage overlap (histogram intersection, test set, "
            "k = k_eval):"
        )
        parts.append(overlap_table(by_label, digits))
    return "\n\n".join(parts)


def main(argv=None):
    """Prints (or writes) the comparison of run or experiment folders.

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
        description="Compare the test metrics of several recipe runs; an "
        "experiment folder stands for its seeds (mean and range)."
    )
    parser.add_argument(
        "runs", nargs="+", help="run folders or experiment folders"
    )
    parser.add_argument(
        "--labels", nargs="+", help="column labels (default: experiment)"
    )
    parser.add_argument("--out", help="also write the tables to this file")
    args = parser.parse_args(argv)
    text = comparison(args.runs, args.labels)
    print(text)
    if args.out:
        write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
