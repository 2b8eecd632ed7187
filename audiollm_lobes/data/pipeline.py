"""SpeechBrain data pipelines for audio-LLM training and evaluation.

``make_dataset`` merges the manifests of several tasks (multitask batches
are the norm), validates them up front (all problems reported together,
``docs/design.md``, "Engineering rules"), and adds dynamic items:

- ``sig``: the waveform (``wav`` and, for pairs, ``wav2`` joined by a short
  silence),
- ``before_ids`` / ``after_ids``: BOS + prompt text before the audio
  marker, prompt text after it (per-sample instructions),
- ``answer_ids``: the answer tokens followed by EOS.

Authors
 * audiollm-lobes developers, 2026
"""

import logging

import speechbrain as sb
import torch

from audiollm_lobes.data.audio import read_example_audio
from audiollm_lobes.data.manifest import check_manifests
from audiollm_lobes.data.templates import (
    AUDIO_MARKER,
    format_target,
    split_prompt,
)

logger = logging.getLogger(__name__)

OUTPUT_KEYS = [
    "id",
    "task",
    "target",
    "sig",
    "before_ids",
    "after_ids",
    "answer_ids",
    "audio_key",
]


def load_entries(
    manifest_paths,
    data_root,
    on_bad_example="error",
    sample_rate=16000,
    max_per_manifest=None,
    known_tasks=None,
    skip_per_manifest=0,
):
    """Validates and merges manifests into one ``{id: entry}`` dict.

    Arguments
    ---------
    manifest_paths : list of str
        SpeechBrain JSON manifests.
    data_root : str
        Value of ``{data_root}`` in the manifests.
    on_bad_example : str
        ``"error"`` (stop with one report of every problem) or ``"skip"``.
    sample_rate : int
        Expected sample rate.
    max_per_manifest : int, optional
        Keep only the first N entries of each manifest (few-shot, debug),
        counted after ``skip_per_manifest``.
    known_tasks : iterable of str, optional
        Accepted task names (default: every task of the templates).
    skip_per_manifest : int
        Drop the first N entries of each manifest (e.g. to keep a few-shot
        validation set apart from few-shot training examples read from
        the same manifest).

    Returns
    -------
    dict
        Merged entries.

    Example
    -------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> import numpy as np, soundfile as sf
    >>> root = Path(tempfile.mkdtemp())
    >>> sf.write(root / "a.wav", np.sin(np.arange(8000) / 9.0), 16000)
    >>> manifest = {"a": {"wav": "{data_root}/a.wav", "duration": 0.5,
    ...     "task": "asr", "instruction": "<audio> Transcribe it.",
    ...     "target": "hello"}}
    >>> _ = (root / "asr.json").write_text(json.dumps(manifest))
    >>> entries = load_entries([str(root / "asr.json")], str(root))
    >>> entries["a"]["target"], entries["a"]["wav2"]
    ('hello', '')
    """
    kwargs = {
        "sample_rate": sample_rate,
        "replacements": {"data_root": data_root},
    }
    if known_tasks is not None:
        kwargs["known_tasks"] = tuple(known_tasks)
    per_file = check_manifests(
        list(manifest_paths), on_bad_example=on_bad_example, **kwargs
    )
    merged = {}
    for path, entries in per_file.items():
        items = list(entries.items())
        if skip_per_manifest:
            if int(skip_per_manifest) >= len(items):
                raise ValueError(
                    f"{path}: skip_per_manifest={skip_per_manifest} leaves "
                    f"none of its {len(items)} entries"
                )
            items = items[int(skip_per_manifest) :]
        if max_per_manifest is not None:
            if len(items) < int(max_per_manifest):
                logger.info(
                    "%s: %d entries (after skipping %d), fewer than the %d "
                    "asked for",
                    path,
                    len(items),
                    int(skip_per_manifest),
                    int(max_per_manifest),
                )
            items = items[: int(max_per_manifest)]
        for ex_id, entry in items:
            if ex_id in merged:
                raise ValueError(
                    f"example id {ex_id!r} appears in two manifests "
                    f"(second: {path}); ids must be unique"
                )
            entry = dict(entry)
            entry.setdefault("wav2", "")
            merged[ex_id] = entry
    return merged


def make_dataset(entries, llm, sample_rate=16000, gap_seconds=0.3):
    """Builds a ``DynamicItemDataset`` with audio and prompt pipelines.

    Arguments
    ---------
    entries : dict
        ``{id: entry}`` as returned by ``load_entries``.
    llm : audiollm_lobes.llm.CausalLM
        Gives the tokenizer (``encode``) and BOS/EOS ids.
    sample_rate : int
        Audio sample rate.
    gap_seconds : float
        Silence between ``wav`` and ``wav2`` of a pair.

    Returns
    -------
    speechbrain.dataio.dataset.DynamicItemDataset
        With output keys ``OUTPUT_KEYS``.

    Example
    -------
    >>> from audiollm_lobes.llm import CausalLM
    >>> from audiollm_lobes.toyworld.sources import resolve_source
    >>> llm = CausalLM(resolve_source("toy://tiny/lm"))  # doctest: +SKIP
    >>> entries = load_entries(["data/manifests/test/asr.json"], "data")
    ... # doctest: +SKIP
    >>> example = make_dataset(entries, llm)[0]  # doctest: +SKIP
    >>> sorted(example)[:4]  # doctest: +SKIP
    ['after_ids', 'answer_ids', 'audio_key', 'before_ids']
    """
    dataset = sb.dataio.dataset.DynamicItemDataset(entries)

    @sb.utils.data_pipeline.takes("wav", "wav2")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav, wav2):
        return read_example_audio(
            {"wav": wav, "wav2": wav2 or None},
            sample_rate=sample_rate,
            gap_seconds=gap_seconds,
        )

    @sb.utils.data_pipeline.takes("instruction", "target")
    @sb.utils.data_pipeline.provides("before_ids", "after_ids", "answer_ids")
    def text_pipeline(instruction, target):
        before, after = split_prompt(instruction, AUDIO_MARKER)
        ids = llm.encode([before, after, format_target(target)])
        yield torch.LongTensor([llm.bos_id] + ids[0])
        yield torch.LongTensor(ids[1])
        yield torch.LongTensor(ids[2] + [llm.eos_id])

    @sb.utils.data_pipeline.takes("wav", "wav2")
    @sb.utils.data_pipeline.provides("audio_key")
    def audio_key_pipeline(wav, wav2):
        return f"{wav}|{wav2}"

    dataset.add_dynamic_item(audio_pipeline)
    dataset.add_dynamic_item(audio_key_pipeline)
    dataset.add_dynamic_item(text_pipeline)
    dataset.set_output_keys(OUTPUT_KEYS)
    return dataset
