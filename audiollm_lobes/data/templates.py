"""Task instruction templates and the prompt format shared by all recipes.

An *instruction* is a string with exactly one ``<audio>`` marker where the
audio tokens go (audio tasks), or one ``<text>`` marker where the text of
the utterance goes (the text versions of the tasks that the toy LLM is
pretrained on, and that Wav2Prompt fills with its speech prompts).
Placeholders such as ``<question>`` are filled when a manifest is built,
so manifests only ever hold the ``<audio>`` marker.

With the ``plain`` prompt format the LLM sees
``USER: <instruction>\\nASSISTANT:`` followed by ``" " + answer`` and EOS;
with ``chat_template`` the instruction is a user turn rendered by the
tokenizer's own chat template (``llm.CausalLM.render_chat``), and the answer
follows with the template's prefix and end-of-turn token (see
``data.pipeline.make_dataset``). Curly braces are never used in templates
because SpeechBrain formats manifest strings with ``str.format_map``.

Authors
 * audiollm-lobes developers, 2026
"""

import random

AUDIO_MARKER = "<audio>"
TEXT_MARKER = "<text>"
PROMPT_FORMAT = "USER: <instruction>\nASSISTANT:"

#: Tasks that take audio as input, with their paraphrased instructions.
AUDIO_INSTRUCTIONS = {
    "asr": [
        "<audio> Transcribe the speech.",
        "<audio> Write down what is said.",
        "<audio> What does the speaker say?",
        "Transcribe this recording: <audio>",
        "<audio> Give the transcription of the audio.",
    ],
    "translate_fr": [
        "<audio> Translate the speech into French.",
        "<audio> Say this in French.",
        "Translate what is said into French: <audio>",
        "<audio> Give the French translation.",
    ],
    "translate_zh": [
        "<audio> Translate the speech into Chinese.",
        "<audio> Say this in Chinese.",
        "Translate what is said into Chinese: <audio>",
        "<audio> Give the Chinese translation.",
    ],
    "emotion": [
        "<audio> Describe the emotion of the speaker in one word.",
        "<audio> How does the speaker feel?",
        "What emotion is expressed here? <audio>",
        "<audio> Name the speaking style in one word.",
    ],
    "speaker_verification": [
        "<audio> Are the two utterances spoken by the same person? "
        "Answer yes or no.",
        "<audio> Is it the same speaker twice? Answer yes or no.",
        "Do these two voices belong to one speaker? <audio> Answer yes or no.",
    ],
    "spoken_qa": [
        "<audio> Question: <question>",
        "Listen: <audio> Question: <question>",
        "<audio> Answer about the speech. Question: <question>",
    ],
    "spoken_query_qa": [
        "<audio> Answer the spoken question.",
        "Answer this question: <audio>",
        "<audio> Reply to the question.",
    ],
    "slu": [
        "<audio> Parse the spoken command into intent and slots.",
        "Parse this command: <audio>",
        "<audio> What is the intent of the command and its slots?",
    ],
    "sound_event": [
        "<audio> What sound event is this?",
        "<audio> Name the sound you hear.",
        "Classify the sound: <audio>",
    ],
    "captioning": [
        "<audio> Describe the audio in a caption.",
        "<audio> Write a caption for the sounds.",
        "Describe what you hear: <audio>",
    ],
}

#: Text versions of the speech tasks (the toy LLM is pretrained on these).
TEXT_INSTRUCTIONS = {
    "repeat": [
        "Repeat the text: <text>",
        "Copy this sentence: <text>",
        "<text> Say that again.",
    ],
    "translate_fr": [
        "Translate into French: <text>",
        "<text> Translate this into French.",
        "What is this in French? <text>",
    ],
    "translate_zh": [
        "Translate into Chinese: <text>",
        "<text> Translate this into Chinese.",
        "What is this in Chinese? <text>",
    ],
    "spoken_qa": [
        "<text> Question: <question>",
        "Read: <text> Question: <question>",
        "<text> Answer about the text. Question: <question>",
    ],
    "spoken_query_qa": [
        "<text>",
        "Answer this question: <text>",
        "<text> Reply briefly.",
    ],
    "slu": [
        "Parse the command: <text>",
        "<text> Give the intent and slots.",
        "What is the intent of this command? <text>",
    ],
    "captioning": [
        "Write a caption for these sounds: <text>",
        "<text> Describe these sounds in one sentence.",
        "Caption this sequence of sounds: <text>",
    ],
}

#: Which audio task a text task corresponds to (ASR is "repeat" in text).
TEXT_TASK_OF_AUDIO_TASK = {
    "asr": "repeat",
    "translate_fr": "translate_fr",
    "translate_zh": "translate_zh",
    "spoken_qa": "spoken_qa",
    "spoken_query_qa": "spoken_query_qa",
    "slu": "slu",
}

#: The built-in tasks. A recipe declares more in its hparams
#: (``task_definitions``, see :mod:`audiollm_lobes.data.tasks`).
KNOWN_TASKS = tuple(AUDIO_INSTRUCTIONS)


def fill(template, **fields):
    """Fills ``<name>`` placeholders (other than the markers) in a template.

    Arguments
    ---------
    template : str
        A template such as ``"<audio> Question: <question>"``.
    **fields : str
        Values for the placeholders, e.g. ``question="where is the cat?"``.

    Returns
    -------
    str
        The template with each ``<name>`` replaced.

    Example
    -------
    >>> fill("<audio> Question: <question>", question="where is it?")
    '<audio> Question: where is it?'
    """
    for name, value in fields.items():
        template = template.replace(f"<{name}>", value)
    return template


def sample_instruction(task, rng=None, text=False, **fields):
    """Draws one paraphrased instruction for ``task`` and fills it.

    Arguments
    ---------
    task : str
        A task name (a key of ``AUDIO_INSTRUCTIONS`` or, with ``text=True``,
        of ``TEXT_INSTRUCTIONS``).
    rng : random.Random, optional
        Random generator (for determinism).
    text : bool
        Use the text version of the task.
    **fields : str
        Placeholder values (``question=...``, ``text=...``).

    Returns
    -------
    str
        The instruction.

    Example
    -------
    >>> rng = random.Random(0)
    >>> s = sample_instruction("asr", rng)
    >>> s.count(AUDIO_MARKER)
    1
    """
    table = TEXT_INSTRUCTIONS if text else AUDIO_INSTRUCTIONS
    if task not in table:
        kind = "text" if text else "audio"
        raise KeyError(
            f"unknown {kind} task {task!r}; expected one of {sorted(table)}"
        )
    rng = rng or random
    return fill(rng.choice(table[task]), **fields)


def split_prompt(instruction, marker=AUDIO_MARKER, render=None):
    """Wraps an instruction in the prompt format and splits it at the marker.

    Arguments
    ---------
    instruction : str
        An instruction holding one ``marker`` (or none, for text-only use).
    marker : str
        The marker to split at.
    render : callable, optional
        ``render(instruction) -> str``, the whole prompt text (e.g. a chat
        template's user turn and generation prompt,
        ``llm.CausalLM.render_chat``); default: the plain format
        ``PROMPT_FORMAT``.

    Returns
    -------
    tuple of str
        ``(before, after)``: the prompt text before and after the marker.
        Without a marker, ``before`` is the whole prompt and ``after`` is
        empty.

    Example
    -------
    >>> split_prompt("<audio> Transcribe the speech.")
    ('USER: ', ' Transcribe the speech.\\nASSISTANT:')
    >>> split_prompt("Hear <audio>.", render=lambda s: f"[INST] {s} [/INST]")
    ('[INST] Hear ', '. [/INST]')
    """
    if render is None:
        prompt = PROMPT_FORMAT.replace("<instruction>", instruction)
    else:
        prompt = render(instruction)
    count = prompt.count(marker)
    if count > 1:
        raise ValueError(
            f"instruction {instruction!r} holds {count} {marker} markers; "
            "expected at most one"
        )
    if count == 0:
        return prompt, ""
    before, after = prompt.split(marker)
    return before, after


def format_target(answer, prefix=" "):
    """Returns the answer text as the LLM should produce it (before EOS).

    Arguments
    ---------
    answer : str
        The answer.
    prefix : str
        What comes between the prompt and the answer: one space after the
        plain format's ``ASSISTANT:``; a chat template's own prefix
        (``llm.CausalLM.chat_turn.answer_prefix``, usually empty).

    Returns
    -------
    str
        ``prefix + answer.strip()``.

    Example
    -------
    >>> format_target("kitchen")
    ' kitchen'
    >>> format_target(" kitchen ", prefix="")
    'kitchen'
    """
    return prefix + answer.strip()
