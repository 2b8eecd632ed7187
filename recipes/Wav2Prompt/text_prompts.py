"""Wav2Prompt's text-task prompts: dataset items around the speech prompts.

At test time Wav2Prompt's speech prompts *replace the text* in the prompt
templates the frozen LLM already knows from text (its zero-shot tasks); at
training time the CIF is taught to fire one vector per token of the
transcript. :func:`add_text_prompt_items` adds the token ids of both to a
dataset from :func:`audiollm_lobes.data.pipeline.make_dataset`.

Authors
 * audiollm-lobes developers, 2026
"""

import zlib

import speechbrain as sb
import torch

from audiollm_lobes.data.pipeline import (
    OUTPUT_KEYS,
    encode_prompt,
    prompt_style,
)
from audiollm_lobes.data.templates import (
    TEXT_INSTRUCTIONS,
    TEXT_MARKER,
    TEXT_TASK_OF_AUDIO_TASK,
    fill,
    split_prompt,
)

#: Dataset items added by :func:`add_text_prompt_items`.
TEXT_PROMPT_KEYS = [
    "text_before_ids",
    "text_after_ids",
    "transcript_ids",
    "asr_before_ids",
    "asr_after_ids",
]


def split_text_prompt(instruction, render=None):
    """Splits a text-task instruction at ``<text>`` for splicing.

    The space before the marker is moved from the prompt into the spliced
    text, because the tokenizer fuses a word with its leading space
    (``" the"`` is one token): the text (or the speech prompts standing
    for it) is tokenised as ``" " + text``.

    Arguments
    ---------
    instruction : str
        An instruction holding one ``<text>`` marker.
    render : callable, optional
        The prompt format (see ``templates.split_prompt``; default plain).

    Returns
    -------
    tuple of str
        ``(before, after)``, the prompt around the text.

    Example
    -------
    >>> split_text_prompt("Translate into French: <text>")
    ('USER: Translate into French:', '\\nASSISTANT:')
    >>> split_text_prompt("<text> Say that again.")
    ('USER:', ' Say that again.\\nASSISTANT:')
    """
    if instruction.count(TEXT_MARKER) != 1:
        raise ValueError(
            f"text instruction {instruction!r}: expected exactly one "
            f"{TEXT_MARKER} marker"
        )
    before, after = split_prompt(instruction, TEXT_MARKER, render)
    if before.endswith(" "):
        before = before[:-1]
    return before, after


def text_instruction(entry, ex_id, template="hash"):
    """The text-task instruction (with ``<text>``) for a speech example.

    The text version of the example's task (``asr`` -> ``repeat``) is the
    prompt the toy LLM was pretrained on; placeholders such as
    ``<question>`` are filled from the entry.

    Arguments
    ---------
    entry : dict
        A manifest entry (``task``; ``question`` for spoken QA; an entry
        with its own ``text_instruction`` keeps it, e.g. an instruction
        given at inference time).
    ex_id : str
        Its id (seeds the paraphrase choice).
    template : str or int
        ``"hash"``: a paraphrase chosen from the id (deterministic, varied
        over examples); an int: that paraphrase for every example.

    Returns
    -------
    str
        The instruction, holding one ``<text>`` marker.

    Example
    -------
    >>> text_instruction({"task": "translate_fr"}, "x", template=0)
    'Translate into French: <text>'
    >>> text_instruction({"task": "spoken_qa", "question": "where?"}, "x", 1)
    'Read: <text> Question: where?'
    >>> text_instruction({"text_instruction": "Summarise: <text>"}, "x")
    'Summarise: <text>'
    """
    if entry.get("text_instruction"):  # given with the example
        chosen = entry["text_instruction"]
        if chosen.count(TEXT_MARKER) != 1:
            raise ValueError(
                f"example {ex_id!r}: text_instruction {chosen!r} must hold "
                f"exactly one {TEXT_MARKER} marker"
            )
        return chosen
    task = entry.get("task")
    if task not in TEXT_TASK_OF_AUDIO_TASK:
        raise ValueError(
            f"example {ex_id!r}: task {task!r} has no text version to "
            f"prompt zero-shot; expected one of "
            f"{sorted(TEXT_TASK_OF_AUDIO_TASK)}"
        )
    choices = TEXT_INSTRUCTIONS[TEXT_TASK_OF_AUDIO_TASK[task]]
    if template == "hash":
        index = zlib.crc32(str(ex_id).encode("utf-8")) % len(choices)
    elif isinstance(template, int) and 0 <= template < len(choices):
        index = template
    else:
        raise ValueError(
            f"text_template: expected 'hash' or an int in [0, "
            f"{len(choices)}), got {template!r}"
        )
    chosen = choices[index]
    if "<question>" in chosen:
        if not entry.get("question"):
            raise ValueError(
                f"example {ex_id!r} (task {task}): field 'question' is "
                "needed by the text template and is missing or empty"
            )
        chosen = fill(chosen, question=entry["question"])
    return chosen


def add_text_prompt_items(
    dataset,
    entries,
    llm,
    template="hash",
    asr_instruction="<audio> Transcribe the speech.",
    asr_prompt="manifest",
    prompt_format=None,
    require_transcript=True,
):
    """Adds the Wav2Prompt items to a dataset from ``make_dataset``.

    Items (all 1-D ``LongTensor``):

    The prompts follow the LLM's prompt format like the dataset's own
    (``data.pipeline.prompt_style``; "BOS first" below holds for the plain
    format with a tokenizer that has a BOS).

    * ``text_before_ids`` (BOS first) / ``text_after_ids``: the text-task
      prompt around the spliced text (see :func:`split_text_prompt`);
    * ``transcript_ids``: ``" " + transcript`` tokenised, the CIF targets;
    * ``asr_before_ids`` (BOS first) / ``asr_after_ids``: an ASR prompt
      around the audio. With ``asr_prompt="manifest"`` it is the manifest
      instruction for ``asr`` examples and ``asr_instruction`` for the
      others (the cascade's first pass); with ``asr_prompt="instruction"``
      it is ``asr_instruction`` for every example, split like a text prompt
      (:func:`split_text_prompt`: the prompts stand for the text), e.g. an
      instruction the frozen LLM knows from text, as the toy LM knows
      ``"Repeat the text: <audio>"``.

    Arguments
    ---------
    dataset : speechbrain.dataio.dataset.DynamicItemDataset
        From :func:`audiollm_lobes.data.pipeline.make_dataset`.
    entries : dict
        The entries it was built from (``transcript`` is required).
    llm : audiollm_lobes.llm.CausalLM
        Gives the tokenizer and BOS id.
    template : str or int
        Paraphrase choice (see :func:`text_instruction`).
    asr_instruction : str
        ASR instruction with one ``<audio>`` marker.
    asr_prompt : str
        ``"manifest"`` or ``"instruction"``: the ASR prompt of ``asr``
        examples (see above).
    prompt_format : str, optional
        ``"plain"`` or ``"chat_template"``; None: the LLM's (must match
        it).
    require_transcript : bool
        Every entry needs a ``transcript`` (training, test); False for
        examples to answer only (inference), whose missing transcripts
        give empty ``transcript_ids``.

    Returns
    -------
    speechbrain.dataio.dataset.DynamicItemDataset
        The same dataset, with the new output keys.

    Example
    -------
    >>> from audiollm_lobes.data.pipeline import load_entries, make_dataset
    >>> from audiollm_lobes.llm import CausalLM
    >>> from audiollm_lobes.toyworld.sources import resolve_source
    >>> llm = CausalLM(resolve_source("toy://tiny/lm"))  # doctest: +SKIP
    >>> entries = load_entries(["data/manifests/test/slu.json"], "data")
    ... # doctest: +SKIP
    >>> data = add_text_prompt_items(make_dataset(entries, llm), entries, llm)
    ... # doctest: +SKIP
    >>> llm.decode([data[0]["text_before_ids"].tolist()])  # doctest: +SKIP
    ['USER: Find the intent and slots:']
    """
    if asr_instruction.count("<audio>") != 1:
        raise ValueError(
            f"asr_instruction {asr_instruction!r}: expected one <audio> marker"
        )
    if asr_prompt not in ("manifest", "instruction"):
        raise ValueError(
            f"asr_prompt: expected 'manifest' or 'instruction', got "
            f"{asr_prompt!r}"
        )
    missing = [i for i, e in entries.items() if not e.get("transcript")]
    if missing and require_transcript:
        raise ValueError(
            f"{len(missing)} examples lack the field 'transcript' needed by "
            f"Wav2Prompt (CIF targets), e.g. {missing[:5]}"
        )
    render, _ = prompt_style(llm, prompt_format)
    prompts = {
        ex_id: split_text_prompt(
            text_instruction(entry, ex_id, template), render
        )
        for ex_id, entry in entries.items()
    }
    fixed_asr = split_text_prompt(
        asr_instruction.replace("<audio>", "<text>"), render
    )

    @sb.utils.data_pipeline.takes("id", "task", "instruction")
    @sb.utils.data_pipeline.provides(*TEXT_PROMPT_KEYS)
    def text_prompt_pipeline(ex_id, task, instruction):
        before, after = prompts[ex_id]
        if asr_prompt == "instruction":
            # the prompts stand for the text: split as a text prompt
            asr_before, asr_after = fixed_asr
        else:
            asr = instruction if task == "asr" else asr_instruction
            asr_before, asr_after = split_prompt(asr, render=render)
        transcript = " " + (entries[ex_id].get("transcript") or "").strip()
        text_ids = encode_prompt(llm, before, after, answer=None)
        asr_ids = encode_prompt(llm, asr_before, asr_after, answer=None)
        yield torch.LongTensor(text_ids[0])
        yield torch.LongTensor(text_ids[1])
        yield torch.LongTensor(llm.encode(transcript)[0])
        yield torch.LongTensor(asr_ids[0])
        yield torch.LongTensor(asr_ids[1])

    dataset.add_dynamic_item(text_prompt_pipeline)
    dataset.set_output_keys(OUTPUT_KEYS + TEXT_PROMPT_KEYS)
    return dataset
