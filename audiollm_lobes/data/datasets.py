"""The train/valid/test datasets of a recipe, from its hparams.

:func:`build_datasets` reads the task manifests of a data folder (a real
one, or ``toy://<profile>`` for the built-in toy world), validates every
manifest before training starts (all problems reported together, see
:mod:`audiollm_lobes.data.manifest`), applies instruction overrides, and
builds one ``DynamicItemDataset`` per split.

Authors
 * audiollm-lobes developers, 2026
"""

import hashlib
import logging
from pathlib import Path

from speechbrain.utils.distributed import run_on_main

from audiollm_lobes.data.manifest import DEFAULT_MAX_AUDIO_SECONDS
from audiollm_lobes.data.pipeline import load_entries, make_dataset
from audiollm_lobes.data.tasks import task_definitions
from audiollm_lobes.data.templates import (
    AUDIO_MARKER,
    KNOWN_TASKS,
    fill,
)
from audiollm_lobes.paths import cache_home
from audiollm_lobes.reporting import majority_baselines
from audiollm_lobes.toyworld.sources import resolve_source

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


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


def check_instruction_overrides(overrides, known_tasks=KNOWN_TASKS):
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
    known_tasks : iterable of str
        Task names that may be overridden (built-in and declared tasks,
        see :func:`audiollm_lobes.data.tasks.task_definitions`).

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
        if task not in known_tasks:
            raise ValueError(
                f"instruction_overrides.{task}: unknown task, expected one "
                f"of {sorted(known_tasks)} (declare new tasks under "
                "task_definitions)"
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


def check_task_names(hparams, tasks_table):
    """Checks that every task a recipe trains or tests on is known.

    Arguments
    ---------
    hparams : dict
        Reads ``tasks`` and ``<split>_tasks``.
    tasks_table : dict
        From :func:`audiollm_lobes.data.tasks.task_definitions`.

    Raises
    ------
    ValueError
        Naming the hparams key and the unknown task.

    Example
    -------
    >>> from audiollm_lobes.data.tasks import task_definitions
    >>> check_task_names({"tasks": ["asr", "bird"]}, task_definitions())
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
     ...
    ValueError: tasks: unknown task 'bird'; declare it under ...
    """
    for key in ("tasks",) + tuple(f"{split}_tasks" for split in SPLITS):
        for task in hparams.get(key) or ():
            if task not in tasks_table:
                raise ValueError(
                    f"{key}: unknown task {task!r}; declare it under "
                    "task_definitions (name: {metric: ..., instructions: "
                    f"[...]}}) or use one of {sorted(tasks_table)}"
                )


def audio_check_store(data_folder):
    """Where the audio checks of a data folder are kept between runs.

    Manifest validation decodes every clip (non-finite samples, silence);
    the measures of readable clips are kept under
    ``$AUDIOLLM_LOBES_HOME/audio_checks/`` (one file per data folder,
    keyed by each audio file's size and modification time), so that the
    next run over a large corpus decodes only new or changed files.

    Arguments
    ---------
    data_folder : str
        The hparams' ``data_folder`` (``toy://...`` or a folder).

    Returns
    -------
    pathlib.Path
        The JSON file.

    Example
    -------
    >>> audio_check_store("/data/prepared").name.endswith(".json")
    True
    >>> audio_check_store("/a") != audio_check_store("/b")
    True
    """
    key = hashlib.sha1(str(data_folder).encode("utf-8")).hexdigest()[:16]
    return cache_home() / "audio_checks" / f"{key}.json"


def validation_options(hparams, tasks_table):
    """The manifest-validation options of a recipe's hparams.

    Arguments
    ---------
    hparams : dict
        Reads ``max_audio_seconds`` (default
        :data:`~audiollm_lobes.data.manifest.DEFAULT_MAX_AUDIO_SECONDS`;
        null: no limit).
    tasks_table : dict
        The known tasks.

    Returns
    -------
    dict
        Keyword arguments of ``load_entries``.

    Example
    -------
    >>> from audiollm_lobes.data.tasks import task_definitions
    >>> options = validation_options({}, task_definitions())
    >>> "asr" in options["known_tasks"]
    True
    """
    return {
        "known_tasks": tuple(tasks_table),
        "audio_check_store": (
            audio_check_store(hparams["data_folder"])
            if hparams.get("data_folder")
            else None
        ),
        "max_audio_seconds": hparams.get(
            "max_audio_seconds", DEFAULT_MAX_AUDIO_SECONDS
        ),
    }


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
    (see ``check_instruction_overrides``). ``task_definitions`` declares
    new tasks (``audiollm_lobes.data.tasks.task_definitions``);
    ``max_audio_seconds`` is the longest audio an example may have. The
    tokenizer and the prompt format come from ``hparams["llm"]``
    (``prompt_format``, if the hparams give it, must be the LLM's).
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
    >>> from audiollm_lobes.llm import CausalLM
    >>> from audiollm_lobes.toyworld.sources import resolve_source
    >>> llm = CausalLM(resolve_source("toy://tiny/lm"))  # doctest: +SKIP
    >>> datasets = build_datasets({"data_folder": "toy://tiny",
    ...     "tasks": ["asr", "emotion"], "llm": llm})  # doctest: +SKIP
    >>> sorted(datasets)  # doctest: +SKIP
    ['entries', 'test', 'train', 'valid']
    """
    source = hparams["data_folder"]
    run_on_main(resolve_source, args=[source])
    data_root = resolve_source(source)
    tasks_table = task_definitions(hparams.get("task_definitions"))
    check_task_names(hparams, tasks_table)
    overrides = check_instruction_overrides(
        hparams.get("instruction_overrides"), tasks_table
    )
    validation = validation_options(hparams, tasks_table)
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
            **validation,
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
            prompt_format=hparams.get("prompt_format"),
        )
        logger.info("%s: %d examples over %s", split, len(entries), tasks)
    return out


def recipe_baselines(hparams, datasets):
    """Majority baselines of a recipe's test set.

    :func:`audiollm_lobes.reporting.majority_baselines` over the data
    folder's train manifests, with the run's task table (declared tasks
    included).

    Arguments
    ---------
    hparams : dict
        Loaded hparams (``data_folder``, optional ``task_definitions``).
    datasets : dict
        From :func:`build_datasets`.

    Returns
    -------
    dict
        ``{task: percent}``.

    Example
    -------
    >>> datasets = build_datasets(hparams)  # doctest: +SKIP
    >>> recipe_baselines(hparams, datasets)  # doctest: +SKIP
    {'emotion': 25.0, 'speaker_verification': 50.0, 'spoken_qa': 7.0}
    """
    return majority_baselines(
        resolve_source(hparams["data_folder"]),
        datasets["entries"]["test"],
        tasks=task_definitions(hparams.get("task_definitions")),
    )
