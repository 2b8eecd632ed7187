"""SpeechBrain data pipelines for audio-LLM training and evaluation.

``make_dataset`` merges the manifests of several tasks (multitask batches
are the norm), validates them up front (all problems reported together,
``docs/design.md``, "Engineering rules"), and adds dynamic items:

- ``sig``: the waveform (``wav`` and, for pairs, ``wav2`` joined by a short
  silence),
- ``before_ids`` / ``after_ids``: BOS + prompt text before the audio
  marker, prompt text after it (per-sample instructions),
- ``answer_ids``: the answer tokens followed by EOS.

The prompt format is the LLM's (``CausalLM(prompt_format=...)``, YAML key
``prompt_format`` of the backbones fragments, see :func:`prompt_style`):
``plain`` wraps the instruction in ``USER: ...\nASSISTANT:`` and starts
with the tokenizer's BOS when it has one; ``chat_template`` renders it as
a user turn with the tokenizer's own chat template (which writes any BOS
itself) and ends the answer with the template's end-of-turn token.

Authors
 * audiollm-lobes developers, 2026
"""

import logging

import speechbrain as sb
import torch

from audiollm_lobes.data.audio import example_audio_key, read_example_audio
from audiollm_lobes.data.manifest import (
    DEFAULT_MAX_AUDIO_SECONDS,
    check_manifests,
)
from audiollm_lobes.data.templates import (
    AUDIO_MARKER,
    format_target,
    split_prompt,
)

logger = logging.getLogger(__name__)

#: Token-id items of every example (1-D ``LongTensor``).
PROMPT_KEYS = ("before_ids", "after_ids", "answer_ids")

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
    max_audio_seconds=DEFAULT_MAX_AUDIO_SECONDS,
    audio_check_store=None,
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
    max_audio_seconds : float or None
        Longest audio an example may have (validation reports longer
        ones; None: no limit).
    audio_check_store : str or os.PathLike, optional
        Keeps the measures of readable clips between runs (see
        :class:`~audiollm_lobes.data.manifest.AudioCheckCache`).

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
    kwargs["max_audio_seconds"] = max_audio_seconds
    kwargs["audio_check_store"] = audio_check_store
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
            entry.setdefault("start", None)
            entry.setdefault("stop", None)
            merged[ex_id] = entry
    return merged


def prompt_style(llm, prompt_format=None):
    """How prompts and answers are written for an LLM's prompt format.

    Arguments
    ---------
    llm : audiollm_lobes.llm.CausalLM
        The LLM (its ``prompt_format``, chat template, special ids).
    prompt_format : str, optional
        ``"plain"`` or ``"chat_template"``; None: the LLM's. It must equal
        the LLM's, which also decides the ids that stop generation.

    Returns
    -------
    render : callable or None
        For ``templates.split_prompt``: None (plain format) or
        ``llm.render_chat``.
    answer_prefix : str
        For ``templates.format_target``.

    Example
    -------
    >>> import transformers
    >>> from audiollm_lobes.llm import CausalLM
    >>> config = transformers.LlamaConfig(
    ...     vocab_size=20, hidden_size=8, intermediate_size=16,
    ...     num_hidden_layers=1, num_attention_heads=2,
    ... )
    >>> llm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
    >>> prompt_style(llm)
    (None, ' ')
    >>> prompt_style(llm, "chat_template")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
     ...
    ValueError: prompt_format='chat_template' differs from the LLM's ...
    """
    if prompt_format is not None and prompt_format != llm.prompt_format:
        raise ValueError(
            f"prompt_format={prompt_format!r} differs from the LLM's "
            f"({llm.prompt_format!r}); set prompt_format on the CausalLM "
            "(yaml: prompt_format of the backbones fragment), which also "
            "decides the tokens that stop generation"
        )
    if llm.prompt_format == "chat_template":
        return llm.render_chat, llm.chat_turn.answer_prefix
    return None, " "


def encode_prompt(llm, before, after, answer=None):
    """Token ids of a prompt split around its audio, and of an answer.

    Arguments
    ---------
    llm : audiollm_lobes.llm.CausalLM
        Gives the tokenizer and the special ids.
    before : str
        The prompt text before the audio (``templates.split_prompt``).
    after : str
        The prompt text after it.
    answer : str, optional
        The answer text (``templates.format_target``).

    Returns
    -------
    list of list of int
        ``[llm.prompt_bos_ids + before_ids, after_ids]``, plus
        ``answer_ids + [llm.answer_end_id]`` when ``answer`` is given.

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.llm import CausalLM
    >>> from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
    >>> llm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
    >>> before, after, answer = encode_prompt(llm, "USER: ", "?", " yes")
    >>> before[0] == llm.bos_id, answer[-1] == llm.eos_id
    (True, True)
    """
    texts = [before, after] + ([] if answer is None else [answer])
    ids = llm.encode(texts)
    out = [llm.prompt_bos_ids + ids[0], ids[1]]
    if answer is not None:
        out.append(ids[2] + [llm.answer_end_id])
    return out


def make_dataset(
    entries, llm, sample_rate=16000, gap_seconds=0.3, prompt_format=None
):
    """Builds a ``DynamicItemDataset`` with audio and prompt pipelines.

    Arguments
    ---------
    entries : dict
        ``{id: entry}`` as returned by ``load_entries``.
    llm : audiollm_lobes.llm.CausalLM
        Gives the tokenizer (``encode``), the prompt format and the
        special ids.
    sample_rate : int
        Audio sample rate.
    gap_seconds : float
        Silence between ``wav`` and ``wav2`` of a pair.
    prompt_format : str, optional
        ``"plain"`` or ``"chat_template"``; None: the LLM's (must match
        it, see :func:`prompt_style`).

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
    if prompt_format is not None:  # an early error on a mismatch
        prompt_style(llm, prompt_format)
    style = []  # (render, answer_prefix), read from the LLM on first use
    # optional fields (pairs, segments) default to absent
    entries = {
        ex_id: {"wav2": "", "start": None, "stop": None, **entry}
        for ex_id, entry in entries.items()
    }
    dataset = sb.dataio.dataset.DynamicItemDataset(entries)

    @sb.utils.data_pipeline.takes("wav", "wav2", "start", "stop")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav, wav2, start, stop):
        return read_example_audio(
            {"wav": wav, "wav2": wav2 or None, "start": start, "stop": stop},
            sample_rate=sample_rate,
            gap_seconds=gap_seconds,
        )

    @sb.utils.data_pipeline.takes("instruction", "target")
    @sb.utils.data_pipeline.provides(*PROMPT_KEYS)
    def text_pipeline(instruction, target):
        if not style:
            style.extend(prompt_style(llm))
            logger.info(
                "prompts in the %s format of %s", llm.prompt_format, llm.source
            )
        render, answer_prefix = style
        before, after = split_prompt(instruction, AUDIO_MARKER, render)
        answer = format_target(target, answer_prefix)
        for ids in encode_prompt(llm, before, after, answer):
            yield torch.LongTensor(ids)

    @sb.utils.data_pipeline.takes("wav", "wav2", "start", "stop")
    @sb.utils.data_pipeline.provides("audio_key")
    def audio_key_pipeline(wav, wav2, start, stop):
        entry = {"wav": wav, "wav2": wav2, "start": start, "stop": stop}
        return example_audio_key(entry)

    dataset.add_dynamic_item(audio_pipeline)
    dataset.add_dynamic_item(audio_key_pipeline)
    dataset.add_dynamic_item(text_pipeline)
    dataset.set_output_keys(OUTPUT_KEYS)
    return dataset
