"""What a run reports: results tables, majority baselines, summaries.

Every recipe ends the same way: per-task test metrics (from
:meth:`audiollm_lobes.metrics.TaskMetrics.summarize`, ``{task: {metric:
value, "n": count}}``) are written as ``<name>.json`` + ``<name>.md``, and a
``summary.json`` + ``results.md`` pair gathers the run's figures, with
sections each recipe adds (a k sweep, prompt usage, step times, a cascade
column). One table writer serves them all, and ``python -m
audiollm_lobes.compare`` puts several runs side by side with it. Every file
is written atomically (:mod:`audiollm_lobes.atomic`).

Authors
 * audiollm-lobes developers, 2026
"""

import json
import logging
import math
from pathlib import Path

from audiollm_lobes.atomic import write_json, write_text
from audiollm_lobes.data.manifest import load_manifest
from audiollm_lobes.metrics import (
    LOWER_IS_BETTER,
    TASK_METRICS,
    majority_baseline,
)

logger = logging.getLogger(__name__)

#: Metrics a majority baseline is meaningful for.
BASELINE_METRICS = ("accuracy", "exact_match")


def format_value(value, digits=2):
    """A table cell: ``–`` for a missing or NaN value, ``1,000`` for an
    int, a fixed number of decimals for a float, and for a list (one value
    per seed) its mean and range, ``mean (min–max)``.

    Arguments
    ---------
    value : float, int, list or None
        The value, or the values of several seeds.
    digits : int
        Decimals of a float.

    Returns
    -------
    str
        The cell text.

    Example
    -------
    >>> format_value(12.345), format_value(None), format_value(29264640)
    ('12.35', '–', '29,264,640')
    >>> format_value(float("nan"))
    '–'
    >>> format_value([40.0, 44.5, 39.0]), format_value([7.5])
    ('41.17 (39.00–44.50)', '7.50')
    """
    if isinstance(value, (list, tuple)):
        values = [
            v for v in value if v is not None and not math.isnan(float(v))
        ]
        if len(values) <= 1:
            return format_value(values[0] if values else None, digits)
        if all(v == values[0] for v in values):
            return format_value(values[0], digits)
        mean = sum(values) / len(values)
        return (
            f"{format_value(float(mean), digits)} "
            f"({format_value(min(values), digits)}"
            f"–{format_value(max(values), digits)})"
        )
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def metric_label(metric):
    """A metric's name with its direction (``↓`` lower is better).

    Example
    -------
    >>> metric_label("wer"), metric_label("bleu")
    ('wer ↓', 'bleu ↑')
    """
    return f"{metric} {'↓' if metric in LOWER_IS_BETTER else '↑'}"


def results_table(columns, baselines=None, parameters=None, digits=2):
    """One markdown table of per-task metrics, a column per system.

    Rows are ``(task, metric)`` in the order first seen over the columns;
    ``n`` is the first column's count for the task. A ``majority`` column
    (when ``baselines`` is given) shows a task's baseline on its first
    metric row (``{task: value}``) or per metric (``{task: {metric:
    value}}``); a last row gives each column's trainable-parameter count
    when ``parameters`` is given.

    Arguments
    ---------
    columns : list of tuple
        ``(label, summary)``, each summary ``{task: {metric: value, "n":
        count}}``; a column without a task shows ``–``.
    baselines : dict, optional
        Majority baselines (see :func:`majority_baselines`).
    parameters : list of int, optional
        Trainable parameters of each column.
    digits : int
        Decimals shown.

    Returns
    -------
    str
        The table (no trailing newline).

    Example
    -------
    >>> dps = {"asr": {"wer": 10.0, "n": 5}, "emotion": {"accuracy": 80.0,
    ...        "n": 4}}
    >>> lora = {"asr": {"wer": 12.5, "n": 5}}
    >>> print(results_table([("dps", dps), ("lora", lora)],
    ...                     baselines={"emotion": 25.0},
    ...                     parameters=[1000, 300]))
    | task | metric | dps | lora | n | majority |
    |---|---|---:|---:|---:|---:|
    | asr | wer ↓ | 10.00 | 12.50 | 5 | – |
    | emotion | accuracy ↑ | 80.00 | – | 4 | 25.00 |
    | trainable parameters | | 1,000 | 300 | | |
    """
    if parameters is not None and len(parameters) != len(columns):
        raise ValueError(
            f"{len(parameters)} parameter counts for {len(columns)} columns"
        )
    rows, counts = [], {}
    for _, summary in columns:
        for task, values in (summary or {}).items():
            counts.setdefault(task, values.get("n", ""))
            for metric in values:
                if metric != "n" and (task, metric) not in rows:
                    rows.append((task, metric))
    labels = [label for label, _ in columns]
    header = "| task | metric | " + " | ".join(labels) + " | n |"
    rule = "|---|---|" + "---:|" * (len(labels) + 1)
    if baselines is not None:
        header += " majority |"
        rule += "---:|"
    lines = [header, rule]
    first_metric = {}
    for task, metric in rows:
        first_metric.setdefault(task, metric)
        cells = [
            format_value((summary or {}).get(task, {}).get(metric), digits)
            for _, summary in columns
        ]
        row = f"| {task} | {metric_label(metric)} | " + " | ".join(cells)
        row += f" | {counts[task]} |"
        if baselines is not None:
            base = baselines.get(task)
            if isinstance(base, dict):
                base = base.get(metric)
            elif metric != first_metric[task]:
                base = None
            row += f" {format_value(base, digits)} |"
        lines.append(row)
    if parameters is not None:
        cells = " | ".join(format_value(p) for p in parameters)
        tail = " | |" if baselines is not None else " |"
        lines.append(f"| trainable parameters | | {cells} |{tail}")
    return "\n".join(lines)


def _json_safe(value):
    """Replaces NaN/inf floats by None, recursively."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(summary, path, baselines=None):
    """Writes per-task metrics as JSON and as a markdown table, atomically.

    Arguments
    ---------
    summary : dict
        ``{task: {metric: value, "n": count}}``.
    path : str or os.PathLike
        The JSON file; the table goes next to it with the suffix ``.md``.
    baselines : dict, optional
        Shown in the table and stored under ``"baselines"`` in the JSON.

    Returns
    -------
    tuple of str
        ``(json_path, markdown_path)``.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "results.json"
    >>> j, m = write_results({"asr": {"wer": 12.5, "n": 4}}, path)
    >>> json.loads(Path(j).read_text())["results"]["asr"]["wer"]
    12.5
    >>> print(Path(m).read_text().splitlines()[2])
    | asr | wer ↓ | 12.50 | 4 |
    """
    path = str(path)
    stem = path[:-5] if path.endswith(".json") else path
    md_path = stem + ".md"
    payload = {"results": _json_safe(summary)}
    if baselines:
        payload["baselines"] = _json_safe(baselines)
    write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    table = results_table([("value", summary)], baselines or None)
    write_text(md_path, table + "\n")
    return path, md_path


def majority_baselines(data_root, test_entries, split="train", tasks=None):
    """Majority-answer score of each test task scored by accuracy or
    exact match.

    The answer is the most frequent target of the task's manifest in
    ``split`` (read without loading audio, so a task that is only tested,
    zero-shot, still gets its baseline), scored on the test entries.

    Arguments
    ---------
    data_root : str or Path
        Folder with ``manifests/<split>/<task>.json``.
    test_entries : dict
        ``{id: entry}`` of the test set (``task``, ``target``).
    split : str
        The manifests the answer is taken from.
    tasks : dict, optional
        The task table (:func:`audiollm_lobes.data.tasks.task_definitions`
        of the run's ``task_definitions``), for the tasks' main metrics;
        default the built-in tasks.

    Returns
    -------
    dict
        ``{task: percent}`` for the test tasks scored by accuracy (answers
        compared normalised) or exact match whose manifest exists.

    Example
    -------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> train = {"a": {"task": "slu", "target": "x"},
    ...          "b": {"task": "slu", "target": "x"}}
    >>> _ = write_json(root / "manifests/train/slu.json", train)
    >>> test = {"c": {"task": "slu", "target": "x"},
    ...         "d": {"task": "slu", "target": "y"},
    ...         "e": {"task": "asr", "target": "hello"}}
    >>> majority_baselines(root, test)
    {'slu': 50.0}
    """
    refs = {}
    for entry in test_entries.values():
        refs.setdefault(entry["task"], []).append(entry["target"])
    out = {}
    for task, task_refs in refs.items():
        if tasks is not None:
            metric = tasks[task].metrics[0] if task in tasks else None
        else:
            metric = TASK_METRICS.get(task)
        if metric not in BASELINE_METRICS:
            continue
        path = Path(data_root) / "manifests" / split / f"{task}.json"
        if not path.is_file():
            continue
        train = load_manifest(path, {"data_root": str(data_root)})
        answers = [e["target"] for e in train.values() if "target" in e]
        if answers:
            out[task] = majority_baseline(
                answers, task_refs, normalize=metric == "accuracy"
            )
    return out


def summary_head(test, baselines=None, n_trainable=None):
    """The common head of ``results.md``: parameters and the test table.

    Arguments
    ---------
    test : dict
        Per-task test metrics.
    baselines : dict, optional
        Majority baselines.
    n_trainable : int, optional
        Trainable parameters.

    Returns
    -------
    list of str
        Markdown lines.

    Example
    -------
    >>> print("\\n".join(summary_head({"asr": {"wer": 5.0, "n": 2}},
    ...                              n_trainable=1200)))
    trainable parameters: 1,200
    <BLANKLINE>
    | task | metric | value | n |
    |---|---|---:|---:|
    | asr | wer ↓ | 5.00 | 2 |
    """
    lines = []
    if n_trainable is not None:
        lines += [f"trainable parameters: {int(n_trainable):,}", ""]
    lines.append(results_table([("value", test)], baselines or None))
    return lines


def write_summary(output_folder, summary, lines):
    """Writes ``summary.json`` and ``results.md`` of a run, atomically.

    Call it on the main process only (``run_on_main``).

    Arguments
    ---------
    output_folder : str or Path
        The run's folder.
    summary : dict
        Everything the run measured (JSON-serialisable; NaN becomes null).
    lines : list of str
        The markdown of ``results.md`` (e.g. :func:`summary_head` plus the
        recipe's own sections).

    Example
    -------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> write_summary(out, {"test": {}}, ["hello"])
    >>> sorted(p.name for p in out.iterdir())
    ['results.md', 'summary.json']
    """
    out_dir = Path(output_folder)
    write_json(out_dir / "summary.json", _json_safe(summary))
    text = "\n".join(lines) + "\n"
    write_text(out_dir / "results.md", text)
    logger.info("results:\n%s", text)
