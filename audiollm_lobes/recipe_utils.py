"""Glue shared by the recipes' ``train.py`` scripts.

Finding the hparams file, building the train/valid/test datasets from the
task manifests of a data folder (``toy://`` or a real one), majority
baselines, and the final summary written next to the logs.

Authors
 * audiollm-lobes developers, 2026
"""

import logging
from pathlib import Path

import torch
from speechbrain.dataio.sampler import (
    ReproducibleRandomSampler,
    ReproducibleWeightedRandomSampler,
)
from speechbrain.utils.distributed import run_on_main

from audiollm_lobes.brain import write_json_atomic
from audiollm_lobes.compare import sweep_table
from audiollm_lobes.data.pipeline import load_entries, make_dataset
from audiollm_lobes.data.templates import (
    AUDIO_INSTRUCTIONS,
    AUDIO_MARKER,
    fill,
)
from audiollm_lobes.metrics import TASK_METRICS, format_table, majority_baseline
from audiollm_lobes.toyworld.sources import resolve_source

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


def resolve_hparams_file(path, script_file):
    """Finds an hparams file relative to the CWD, then to the recipe folder.

    Arguments
    ---------
    path : str
        As given on the command line, e.g. ``hparams/dps.yaml``.
    script_file : str
        The recipe's ``train.py`` (``__file__``).

    Returns
    -------
    str
        An existing path.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(d, "hparams"))
    >>> open(os.path.join(d, "hparams", "x.yaml"), "w").close()
    >>> resolve_hparams_file("hparams/x.yaml", os.path.join(d, "train.py"))[-6:]
    'x.yaml'
    """
    tried = [Path(path), Path(script_file).resolve().parent / path]
    for candidate in tried:
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"hparams file {path!r} not found; tried: "
        + ", ".join(str(c.resolve()) for c in tried)
    )


def manifest_paths(data_root, split, tasks):
    """Manifest files of ``tasks`` for one split of a data folder.

    Arguments
    ---------
    data_root : str
        Folder holding ``manifests/<split>/<task>.json``.
    split : str
        ``train``, ``valid`` or ``test``.
    tasks : list of str
        Task names.

    Returns
    -------
    list of str
        One path per task.

    Example
    -------
    >>> manifest_paths("/d", "test", ["asr"])
    ['/d/manifests/test/asr.json']
    """
    return [
        str(Path(data_root) / "manifests" / split / f"{t}.json") for t in tasks
    ]


def check_instruction_overrides(overrides):
    """Validates ``instruction_overrides``: ``{task: instruction}``.

    Each instruction replaces the manifest instruction of every example of
    its task (all splits). It must hold exactly one ``<audio>`` marker and
    may use ``<field>`` placeholders, filled from each example's fields
    (e.g. ``<question>`` for spoken QA). A task mapped to None keeps its
    manifest instructions (``--instruction_overrides={asr: null}`` undoes
    a file's override from the command line).

    Arguments
    ---------
    overrides : dict or None
        The hparams value.

    Returns
    -------
    dict
        ``{task: instruction}`` (empty when ``overrides`` is None).

    Example
    -------
    >>> check_instruction_overrides({"asr": "Repeat the text: <audio>"})
    {'asr': 'Repeat the text: <audio>'}
    >>> check_instruction_overrides({"asr": None})
    {}
    >>> check_instruction_overrides({"asr": "Repeat:"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
     ...
    ValueError: instruction_overrides.asr: 'Repeat:' holds 0 <audio> ...
    """
    if not overrides:
        return {}
    if not isinstance(overrides, dict):
        raise ValueError(
            "instruction_overrides: expected a mapping {task: instruction}, "
            f"got {type(overrides).__name__}"
        )
    out = {}
    for task, instruction in overrides.items():
        if instruction is None:  # a file's override switched off
            continue
        if task not in AUDIO_INSTRUCTIONS:
            raise ValueError(
                f"instruction_overrides.{task}: unknown task, expected one "
                f"of {sorted(AUDIO_INSTRUCTIONS)}"
            )
        count = str(instruction).count(AUDIO_MARKER)
        if not isinstance(instruction, str) or count != 1:
            raise ValueError(
                f"instruction_overrides.{task}: {instruction!r} holds "
                f"{count} {AUDIO_MARKER} markers, expected exactly 1"
            )
        out[task] = instruction
    return out


def override_instructions(entries, overrides):
    """Replaces the instruction of every entry whose task is overridden.

    Arguments
    ---------
    entries : dict
        ``{id: entry}`` (changed in place).
    overrides : dict
        From ``check_instruction_overrides``.

    Example
    -------
    >>> entries = {"a": {"task": "spoken_qa", "question": "who?",
    ...                  "instruction": "<audio> Question: who?"}}
    >>> override_instructions(entries, {"spoken_qa": "<audio> Q: <question>"})
    >>> entries["a"]["instruction"]
    '<audio> Q: who?'
    """
    for ex_id, entry in entries.items():
        template = overrides.get(entry["task"])
        if template is None:
            continue
        fields = {
            k: v
            for k, v in entry.items()
            if isinstance(v, str) and f"<{k}>" in template
        }
        instruction = fill(template, **fields)
        if "<" in instruction.replace(AUDIO_MARKER, ""):
            raise ValueError(
                f"instruction_overrides.{entry['task']}: example {ex_id!r} "
                f"has no field for a placeholder of {template!r}"
            )
        entry["instruction"] = instruction


def build_datasets(hparams):
    """Builds the train/valid/test ``DynamicItemDataset`` of a recipe.

    Reads ``data_folder`` (``toy://...`` or a folder), ``tasks``,
    ``on_bad_example``, ``sample_rate``, and optionally per split:
    ``<split>_tasks``, ``<split>_manifest_split`` (read another split's
    manifests, e.g. few-shot examples from ``valid``),
    ``skip_<split>_per_task`` and ``max_<split>_per_task`` (the entries
    ``[skip, skip + max)`` of each manifest). The sets of two splits may
    not share an example id. ``instruction_overrides`` (``{task:
    instruction}``) replaces the manifests' instructions of those tasks
    (see ``check_instruction_overrides``). The tokenizer comes from
    ``hparams["llm"]``.
    Every manifest is validated before training starts.

    Arguments
    ---------
    hparams : dict
        Loaded hparams.

    Returns
    -------
    dict
        ``{split: dataset}``, plus ``"entries"``: ``{split: entries}``.

    Example
    -------
    >>> build_datasets  # doctest: +ELLIPSIS
    <function build_datasets at ...>
    """
    source = hparams["data_folder"]
    run_on_main(resolve_source, args=[source])
    data_root = resolve_source(source)
    overrides = check_instruction_overrides(
        hparams.get("instruction_overrides")
    )
    out = {"entries": {}}
    for split in SPLITS:
        tasks = hparams.get(f"{split}_tasks") or hparams["tasks"]
        source_split = hparams.get(f"{split}_manifest_split") or split
        entries = load_entries(
            manifest_paths(data_root, source_split, tasks),
            data_root,
            on_bad_example=hparams.get("on_bad_example", "error"),
            sample_rate=hparams.get("sample_rate", 16000),
            max_per_manifest=hparams.get(f"max_{split}_per_task"),
            skip_per_manifest=hparams.get(f"skip_{split}_per_task") or 0,
        )
        override_instructions(entries, overrides)
        for other, other_entries in out["entries"].items():
            shared = sorted(set(entries) & set(other_entries))
            if shared:
                raise ValueError(
                    f"the {split} and {other} sets share {len(shared)} "
                    f"examples (e.g. {shared[:3]}): check "
                    f"{split}_manifest_split / skip_{split}_per_task"
                )
        out["entries"][split] = entries
        out[split] = make_dataset(
            entries,
            hparams["llm"],
            sample_rate=hparams.get("sample_rate", 16000),
        )
        logger.info("%s: %d examples over %s", split, len(entries), tasks)
    return out


def train_loader_kwargs(hparams, train_set):
    """Train dataloader options, with a fixed number of steps per epoch.

    With ``steps_per_epoch`` in the hparams, each epoch draws
    ``steps_per_epoch * batch_size`` examples (a reproducible random
    sampler that cycles through shuffled passes of the data), so step
    budgets do not depend on the size of the data set. With
    ``task_sampling_weights`` (``{task: weight}``), examples are drawn with
    replacement so that each task makes up ``weight / sum(weights)`` of
    the draws whatever its size (see ``example_weights``).

    Arguments
    ---------
    hparams : dict
        Loaded hparams (``train_dataloader_opts``, optional
        ``steps_per_epoch``, ``seed``).
    train_set : torch.utils.data.Dataset
        The training set.

    Returns
    -------
    dict
        Keyword arguments for ``Brain.fit(train_loader_kwargs=...)``.

    Example
    -------
    >>> opts = train_loader_kwargs(
    ...     {"train_dataloader_opts": {"batch_size": 4, "shuffle": True},
    ...      "steps_per_epoch": 3}, list(range(5)))
    >>> len(opts["sampler"]), "shuffle" in opts
    (12, False)
    """
    opts = dict(hparams["train_dataloader_opts"])
    steps = hparams.get("steps_per_epoch")
    task_weights = hparams.get("task_sampling_weights")
    if task_weights:
        opts.pop("shuffle", None)
        n_samples = (
            int(steps) * int(opts["batch_size"]) if steps else len(train_set)
        )
        opts["sampler"] = ReproducibleWeightedRandomSampler(
            example_weights(train_set, task_weights),
            num_samples=n_samples,
            replacement=True,
            seed=int(hparams.get("seed", 0)),
        )
    elif steps:
        opts.pop("shuffle", None)
        opts["sampler"] = ReproducibleRandomSampler(
            train_set,
            seed=int(hparams.get("seed", 0)),
            num_samples=int(steps) * int(opts["batch_size"]),
        )
    return opts


def example_weights(train_set, task_weights):
    """Per-example sampling weights giving each task its share of draws.

    Arguments
    ---------
    train_set : DynamicItemDataset
        The training set (its entries have a ``task``).
    task_weights : dict
        ``{task: weight >= 0}``; every task of the set must be listed.

    Returns
    -------
    list of float
        ``weight[task] / n_examples[task]`` for each example, in order.

    Example
    -------
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> data = DynamicItemDataset({"a": {"task": "asr"}, "b": {"task": "asr"},
    ...                            "c": {"task": "emotion"}})
    >>> example_weights(data, {"asr": 3, "emotion": 1})
    [1.5, 1.5, 1.0]
    """
    tasks = [train_set.data[i]["task"] for i in train_set.data_ids]
    counts = {}
    for task in tasks:
        counts[task] = counts.get(task, 0) + 1
    missing = sorted(set(counts) - set(task_weights))
    if missing:
        raise ValueError(
            f"task_sampling_weights: no weight for the training tasks "
            f"{missing}; expected one for each of {sorted(counts)}"
        )
    bad = {t: w for t, w in task_weights.items() if float(w) < 0}
    if bad or not any(float(task_weights[t]) > 0 for t in counts):
        raise ValueError(
            f"task_sampling_weights: expected weights >= 0, not all zero, "
            f"got {dict(task_weights)}"
        )
    return [float(task_weights[t]) / counts[t] for t in tasks]


def task_baselines(datasets):
    """Majority-class accuracy per classification/QA task of the test set.

    Arguments
    ---------
    datasets : dict
        As returned by ``build_datasets``.

    Returns
    -------
    dict
        ``{task: majority accuracy}`` for tasks scored by accuracy.

    Example
    -------
    >>> e = {"a": {"task": "emotion", "target": "sad"}}
    >>> task_baselines({"entries": {"train": e, "test": e}})
    {'emotion': 100.0}
    """
    by_task = {}
    for split in ("train", "test"):
        for entry in datasets["entries"][split].values():
            by_task.setdefault(entry["task"], {}).setdefault(split, []).append(
                entry["target"]
            )
    out = {}
    for task, splits in by_task.items():
        if TASK_METRICS.get(task) != "accuracy":
            continue
        if "train" in splits and "test" in splits:
            out[task] = majority_baseline(splits["train"], splits["test"])
    return out


def write_summary(summary, hparams, n_trainable):
    """Writes ``summary.json`` and ``results.md`` in the output folder.

    Arguments
    ---------
    summary : dict
        ``{"test": per-task metrics, optional "k_sweep", "usage"}``.
    hparams : dict
        Loaded hparams (``output_folder``, ``baselines``).
    n_trainable : int
        Number of trainable parameters.

    Example
    -------
    >>> write_summary  # doctest: +ELLIPSIS
    <function write_summary at ...>
    """
    out_dir = Path(hparams["output_folder"])
    summary = dict(summary)
    summary["experiment"] = hparams.get("experiment")
    summary["trainable_parameters"] = int(n_trainable)
    summary["baselines"] = hparams.get("baselines")
    write_json_atomic(summary, out_dir / "summary.json")
    lines = [
        f"trainable parameters: {n_trainable:,}",
        "",
        format_table(summary["test"], hparams.get("baselines")),
    ]
    if summary.get("k_sweep"):
        lines += ["", "k_eval sweep (same trained model):", ""]
        lines += [sweep_table(summary["k_sweep"])]
    usage = summary.get("usage") or {}
    if usage.get("per_task"):
        lines += ["", "prompt usage on the test set (k = k_eval):", ""]
        lines += [
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
    text = "\n".join(lines) + "\n"
    tmp = out_dir / "results.md.tmp"
    tmp.write_text(text)
    tmp.replace(out_dir / "results.md")
    logger.info("results:\n%s", text)


def check_shapes(declared, loaded):
    """Checks the shapes an hparams file declares against loaded backbones.

    Paper-scale hparams state the widths of the published models so that
    the trainable lobes can be sized (and tested) without weights; this
    stops a run early, naming the field, when the backbones given on the
    command line are of another size.

    Arguments
    ---------
    declared : dict
        ``{name: int}`` from the hparams file.
    loaded : dict
        ``{name: int}`` read off the loaded backbones.

    Returns
    -------
    dict
        ``declared``, unchanged.

    Example
    -------
    >>> check_shapes({"llm_dim": 8}, {"llm_dim": 8})
    {'llm_dim': 8}
    >>> check_shapes({"llm_dim": 8}, {"llm_dim": 16})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: hparams declare llm_dim=8 but the loaded backbones have 16...
    """
    for name, value in declared.items():
        if name in loaded and int(loaded[name]) != int(value):
            raise ValueError(
                f"hparams declare {name}={value} but the loaded backbones "
                f"have {loaded[name]}; override --{name}={loaded[name]} "
                "(or pick the matching checkpoint)"
            )
    return declared


def resolve_precision(precision, device="cpu"):
    """Resolves ``precision: auto`` to SpeechBrain's ``bf16`` or ``fp32``.

    ``auto`` gives ``bf16`` autocast where the hardware runs bfloat16
    matrix products natively (CPUs whose oneDNN supports bf16, e.g.
    AVX-512 BF16 / AMX; CUDA GPUs with bf16), where it is much faster than
    fp32 (1.4x per LiSTEN training step on this project's machine,
    ``benchmarks/precision_step.py``), and ``fp32`` elsewhere, where
    emulated bf16 would be slower. Any other value is returned unchanged.

    Arguments
    ---------
    precision : str
        ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    device : str
        The run's device (``"cpu"``, ``"cuda:0"``, ...).

    Returns
    -------
    str
        The precision SpeechBrain is given.

    Example
    -------
    >>> resolve_precision("fp32")
    'fp32'
    >>> resolve_precision("auto") in ("bf16", "fp32")
    True
    """
    if precision != "auto":
        return precision
    if str(device).startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def load_recipe_hparams(argv, script_file):
    """Parses a recipe's command line, loads its hparams, makes its folder.

    The common start of every ``train.py``: ``sb.parse_arguments``, the
    hparams file found relative to the CWD or the recipe folder, DDP
    initialisation, HyperPyYAML loading with the overrides, and
    ``sb.create_experiment_directory``.

    Arguments
    ---------
    argv : list of str
        Command-line arguments (``sys.argv[1:]``).
    script_file : str
        The recipe's ``train.py`` (``__file__``).

    Returns
    -------
    tuple
        ``(hparams, run_opts)``.

    Example
    -------
    >>> load_recipe_hparams  # doctest: +ELLIPSIS
    <function load_recipe_hparams at ...>
    """
    import speechbrain as sb
    from hyperpyyaml import load_hyperpyyaml

    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    hparams_file = resolve_hparams_file(hparams_file, script_file)
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    # SpeechBrain reads run options missing from the command line from the
    # hparams; "auto" precisions are resolved for this machine first.
    overridden = getattr(run_opts, "overridden_args", ())
    device = run_opts.get("device") if "device" in overridden else None
    device = device or hparams.get("device") or "cpu"
    for key in ("precision", "eval_precision"):
        if key in hparams and key not in overridden:
            hparams[key] = resolve_precision(hparams[key], device)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    return hparams, run_opts
