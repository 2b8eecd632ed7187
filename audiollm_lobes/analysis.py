"""Prompt-usage statistics and plots (LiSTEN's interpretability analysis).

Given how often each task selected each prompt of a pool, reports per task
the usage distribution, its entropy and the effective number of prompts,
the number of distinct prompts used, and the pairwise overlap between
tasks (histogram intersection: the share of selections two tasks have in
common, 1 = identical usage, 0 = disjoint). A heatmap shows tasks against
prompt indices sorted by their frequency for the first task, like the
paper's token-usage figure.

Authors
 * audiollm-lobes developers, 2026
"""

import math
from pathlib import Path

import numpy as np

from audiollm_lobes.atomic import replacing, write_json

#: Task groups used to summarise overlaps.
SPEECH_CONTENT_TASKS = (
    "asr",
    "translate_fr",
    "translate_zh",
    "spoken_qa",
    "spoken_query_qa",
    "slu",
)
SOUND_PARALINGUISTIC_TASKS = (
    "emotion",
    "speaker_verification",
    "sound_event",
    "captioning",
)


def usage_distribution(counts):
    """Normalises selection counts into a distribution.

    Arguments
    ---------
    counts : array-like
        ``(pool_size,)`` selection counts.

    Returns
    -------
    numpy.ndarray
        Frequencies summing to 1 (all zeros if nothing was selected).

    Example
    -------
    >>> usage_distribution([1, 3, 0]).tolist()
    [0.25, 0.75, 0.0]
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def entropy_bits(dist):
    """Shannon entropy of a distribution, in bits.

    Arguments
    ---------
    dist : array-like
        Probabilities summing to 1.

    Returns
    -------
    float
        ``-sum p log2 p``.

    Example
    -------
    >>> entropy_bits([0.5, 0.5, 0.0])
    1.0
    """
    p = np.asarray(dist, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def overlap(dist_a, dist_b):
    """Histogram intersection of two usage distributions.

    Arguments
    ---------
    dist_a, dist_b : array-like
        Usage distributions over the same pool.

    Returns
    -------
    float
        ``sum_i min(a_i, b_i)`` in ``[0, 1]``.

    Example
    -------
    >>> overlap([0.5, 0.5, 0.0], [0.0, 0.5, 0.5])
    0.5
    """
    a = np.asarray(dist_a, dtype=np.float64)
    b = np.asarray(dist_b, dtype=np.float64)
    return float(np.minimum(a, b).sum())


def usage_statistics(counts_by_task):
    """Per-task usage statistics and pairwise overlaps.

    Arguments
    ---------
    counts_by_task : dict
        ``{task: (pool_size,) counts}``.

    Returns
    -------
    dict
        ``{"per_task": {task: {...}}, "overlap": {a: {b: value}},
        "group_overlap": {...}}``. Per task: ``selections``,
        ``distinct``, ``entropy_bits``, ``effective_prompts`` (2**entropy),
        ``top`` (the five most used prompt indices).

    Example
    -------
    >>> s = usage_statistics({"asr": [2, 2, 0], "emotion": [0, 0, 4]})
    >>> s["per_task"]["asr"]["distinct"], s["overlap"]["asr"]["emotion"]
    (2, 0.0)
    """
    dists = {t: usage_distribution(c) for t, c in counts_by_task.items()}
    per_task = {}
    for task, counts in counts_by_task.items():
        counts = np.asarray(counts)
        ent = entropy_bits(dists[task])
        per_task[task] = {
            "selections": int(counts.sum()),
            "distinct": int((counts > 0).sum()),
            "entropy_bits": ent,
            "effective_prompts": float(2**ent),
            "top": [int(i) for i in np.argsort(-counts, kind="stable")[:5]],
        }
    tasks = list(dists)
    pair = {a: {b: overlap(dists[a], dists[b]) for b in tasks} for a in tasks}
    return {
        "per_task": per_task,
        "overlap": pair,
        "group_overlap": group_overlaps(pair),
    }


def group_overlaps(pair):
    """Mean overlap within and across the speech-content and sound groups.

    Arguments
    ---------
    pair : dict
        ``{a: {b: overlap}}``.

    Returns
    -------
    dict
        ``within_speech_content``, ``within_sound_paralinguistic`` and
        ``across_groups`` means (None when a group has too few tasks).

    Example
    -------
    >>> p = {"asr": {"asr": 1, "emotion": 0.2}, "emotion": {"asr": 0.2,
    ...      "emotion": 1}}
    >>> group_overlaps(p)["across_groups"]
    0.2
    """
    speech = [t for t in pair if t in SPEECH_CONTENT_TASKS]
    sound = [t for t in pair if t in SOUND_PARALINGUISTIC_TASKS]

    def mean_of(pairs):
        values = [pair[a][b] for a, b in pairs]
        return float(np.mean(values)) if values else None

    def within(group):
        return [(a, b) for i, a in enumerate(group) for b in group[i + 1 :]]

    return {
        "within_speech_content": mean_of(within(speech)),
        "within_sound_paralinguistic": mean_of(within(sound)),
        "across_groups": mean_of([(a, b) for a in speech for b in sound]),
    }


def plot_usage_heatmap(counts_by_task, path, sort_by=None):
    """Saves a task x prompt-index heatmap of usage frequencies (PNG).

    Arguments
    ---------
    counts_by_task : dict
        ``{task: (pool_size,) counts}``.
    path : str or Path
        Output PNG.
    sort_by : str, optional
        Task whose frequencies order the x axis (default: the first task,
        ``asr`` when present).

    Returns
    -------
    pathlib.Path
        The PNG written.

    Example
    -------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "u.png"
    >>> counts = {"asr": [3, 1, 0], "emotion": [0, 1, 3]}
    >>> plot_usage_heatmap(counts, out).exists()
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(counts_by_task)
    if sort_by is None:
        sort_by = "asr" if "asr" in counts_by_task else tasks[0]
    dists = np.stack([usage_distribution(counts_by_task[t]) for t in tasks])
    order = np.argsort(-dists[tasks.index(sort_by)], kind="stable")
    dists = dists[:, order]
    width = max(6.0, min(18.0, 0.12 * dists.shape[1] + 3))
    fig, ax = plt.subplots(figsize=(width, 0.5 * len(tasks) + 1.5))
    image = ax.imshow(dists, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(tasks)))
    ax.set_yticklabels(tasks)
    ax.set_xlabel(f"prompt index (sorted by {sort_by} frequency)")
    step = max(1, int(math.ceil(len(order) / 20)))
    ax.set_xticks(range(0, len(order), step))
    ax.set_xticklabels([str(int(i)) for i in order[::step]], fontsize=7)
    ax.set_title("Prompt usage per task (test set)")
    fig.colorbar(image, ax=ax, label="selection frequency")
    fig.tight_layout()
    path = Path(path)
    with replacing(path) as tmp:  # savefig picks the format by suffix
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def write_usage_report(pool, out_dir, name="prompt_usage"):
    """Writes the usage statistics and heatmap of a recording prompt pool.

    Arguments
    ---------
    pool : audiollm_lobes.prompt_pool.PromptPool
        A pool whose ``records`` hold ``(task, indices)`` pairs (see
        ``PromptPool.start_recording``).
    out_dir : str or Path
        Output folder: ``<name>.json`` (statistics and raw counts) and
        ``<name>.png`` (heatmap) are written there.
    name : str
        File stem.

    Returns
    -------
    dict
        The statistics (``usage_statistics``) plus ``counts``.

    Example
    -------
    >>> import tempfile, torch
    >>> from audiollm_lobes.prompt_pool import PromptPool
    >>> pool = PromptPool(4, pool_size=6, k=2).eval()
    >>> pool.start_recording()
    >>> _ = pool(torch.randn(3, 2, 4), text=torch.randn(3, 1, 4))
    >>> pool.record(["asr", "asr", "emotion"])
    >>> stats = write_usage_report(pool, tempfile.mkdtemp())
    >>> stats["per_task"]["asr"]["selections"]
    4
    """
    tags = []
    for tag, _ in pool.records:
        if tag not in tags:
            tags.append(tag)
    counts = {t: pool.usage_counts(t).tolist() for t in tags}
    stats = usage_statistics(counts) if counts else {}
    stats["counts"] = counts
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if counts:
        plot_usage_heatmap(counts, out_dir / f"{name}.png")
    write_json(out_dir / f"{name}.json", stats)
    return stats


def usage_lines(usage):
    """Markdown of prompt-usage statistics: a table per task, the overlaps.

    Arguments
    ---------
    usage : dict
        From :func:`write_usage_report` (``per_task``, ``group_overlap``).

    Returns
    -------
    list of str
        Markdown lines.

    Example
    -------
    >>> usage = usage_statistics({"asr": [3, 1, 0], "emotion": [0, 1, 3]})
    >>> print("\\n".join(usage_lines(usage)[:3]))
    | task | selections | distinct prompts | entropy (bits) |
    |---|---:|---:|---:|
    | asr | 4 | 2 | 0.81 |
    """
    lines = [
        "| task | selections | distinct prompts | entropy (bits) |",
        "|---|---:|---:|---:|",
    ]
    for task, st in usage["per_task"].items():
        lines.append(
            f"| {task} | {st['selections']} | {st['distinct']} | "
            f"{st['entropy_bits']:.2f} |"
        )
    groups = usage.get("group_overlap") or {}
    lines += [""] + [
        f"- mean overlap {name.replace('_', ' ')}: "
        + ("–" if value is None else f"{value:.3f}")
        for name, value in groups.items()
    ]
    return lines
