"""Wav2Prompt lobes and glue: a CIF speech prompter and text-task prompts.

Wav2Prompt (Deng, Sun and Woodland, 2024) trains a speech front end on
ASR data only so that it emits one vector per LLM token of the transcript,
close to the frozen LLM's own token embeddings. At test time those vectors
*replace the text* in the prompt templates the LLM already knows, so the
LLM handles spoken tasks it never saw as speech (zero-shot). This module
holds:

* :class:`CIFPrompter`: frozen-encoder frames -> LayerNorm -> linear ->
  optional Transformer layers -> :class:`~audiollm_lobes.cif.CIF` -> optional
  Transformer layers over the fired vectors -> linear to the LLM width;
* :class:`PreNormConnector`: a LayerNorm in front of any connector (used
  by the encoder-LLM baseline, a window Q-Former on the same frames);
* the text-template side: :func:`split_text_prompt`,
  :func:`text_instruction`, :func:`add_text_prompt_items` (dataset items for
  the zero-shot prompts and the CIF targets);
* :func:`majority_baselines`, :func:`comparison_table` (one markdown table
  with a column per system) and :func:`find_trainable_checkpoint`.

Authors
 * audiollm-lobes developers, 2026
"""

import math
import zlib
from pathlib import Path

import speechbrain as sb
import torch
from torch import nn

from audiollm_lobes.cif import CIF, CIFOutput
from audiollm_lobes.data.manifest import load_manifest
from audiollm_lobes.data.pipeline import OUTPUT_KEYS
from audiollm_lobes.data.templates import (
    TEXT_INSTRUCTIONS,
    TEXT_MARKER,
    TEXT_TASK_OF_AUDIO_TASK,
    fill,
    split_prompt,
)
from audiollm_lobes.metrics import (
    LOWER_IS_BETTER,
    TASK_METRICS,
    majority_baseline,
)

#: Dataset items added by :func:`add_text_prompt_items`.
TEXT_PROMPT_KEYS = [
    "text_before_ids",
    "text_after_ids",
    "transcript_ids",
    "asr_before_ids",
    "asr_after_ids",
]


def _transformer(width, layers, heads, ffn_dim, dropout):
    """A pre-LN ``nn.TransformerEncoder`` or None when ``layers == 0``."""
    if layers == 0:
        return None
    layer = nn.TransformerEncoderLayer(
        width,
        heads,
        ffn_dim,
        dropout=dropout,
        batch_first=True,
        norm_first=True,
    )
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class CIFPrompter(nn.Module):
    """Speech prompter: frames -> one LLM-width vector per text token.

    ``LayerNorm(input_dim)`` (the frozen encoder's features are not
    normalised) -> ``Linear(input_dim, hidden_dim)`` -> ``pre_layers``
    Transformer layers over the frames -> CIF (weights from a conv or
    linear predictor, threshold ``beta``) -> ``post_layers`` Transformer
    layers over the fired vectors -> ``Linear(hidden_dim, llm_dim)``.
    With ``pre_layers = post_layers = 0`` it is a plain CIF with an output
    projection. All layers attend only to valid positions.

    Arguments
    ---------
    input_dim : int
        Width of the encoder frames.
    llm_dim : int
        Width of the LLM's token embeddings.
    hidden_dim : int
        Width of the layers around the CIF.
    pre_layers : int
        Transformer layers before the CIF (over frames).
    post_layers : int
        Transformer layers after the CIF (over fired vectors).
    num_heads : int
        Attention heads of those layers.
    ffn_dim : int, optional
        Their feed-forward width (default ``4 * hidden_dim``).
    dropout : float
        Their dropout.
    beta : float
        CIF firing threshold.
    weight_predictor : str
        ``"conv"`` or ``"linear"`` (see :class:`~audiollm_lobes.cif.CIF`).
    conv_kernel : int
        Kernel of the conv weight predictor.
    tail_threshold : float
        Fraction of ``beta`` above which the remainder fires at inference.

    Example
    -------
    >>> prompter = CIFPrompter(input_dim=8, llm_dim=6, hidden_dim=16,
    ...                        pre_layers=1, post_layers=1, num_heads=2)
    >>> x = torch.randn(2, 12, 8)
    >>> mask = torch.arange(12)[None] < torch.tensor([[12], [7]])
    >>> out = prompter(x, mask, target_lengths=torch.tensor([4, 2]))
    >>> out.embeddings.shape, out.mask.sum(1).tolist()
    (torch.Size([2, 4, 6]), [4, 2])
    >>> out.alpha_sum.shape
    torch.Size([2])
    """

    def __init__(
        self,
        input_dim,
        llm_dim,
        hidden_dim=256,
        pre_layers=0,
        post_layers=0,
        num_heads=4,
        ffn_dim=None,
        dropout=0.1,
        beta=1.0,
        weight_predictor="conv",
        conv_kernel=3,
        tail_threshold=0.5,
    ):
        super().__init__()
        for name, value in (
            ("input_dim", input_dim),
            ("llm_dim", llm_dim),
            ("hidden_dim", hidden_dim),
            ("num_heads", num_heads),
        ):
            if int(value) != value or value < 1:
                raise ValueError(
                    f"CIFPrompter: {name}={value!r}; expected an int >= 1"
                )
        for name, value in (
            ("pre_layers", pre_layers),
            ("post_layers", post_layers),
        ):
            if int(value) != value or value < 0:
                raise ValueError(
                    f"CIFPrompter: {name}={value!r}; expected an int >= 0"
                )
        if (pre_layers or post_layers) and hidden_dim % num_heads:
            raise ValueError(
                f"CIFPrompter: num_heads={num_heads} must divide "
                f"hidden_dim={hidden_dim}"
            )
        ffn_dim = ffn_dim or 4 * hidden_dim
        self.input_dim = input_dim
        self.llm_dim = llm_dim
        self.input_norm = nn.LayerNorm(input_dim)
        self.input_proj = nn.Linear(input_dim, hidden_dim)
        self.pre = _transformer(
            hidden_dim, pre_layers, num_heads, ffn_dim, dropout
        )
        self.cif = CIF(
            hidden_dim,
            hidden_dim,
            beta=beta,
            weight_predictor=weight_predictor,
            conv_kernel=conv_kernel,
            tail_threshold=tail_threshold,
            output_proj=False,
        )
        self.post = _transformer(
            hidden_dim, post_layers, num_heads, ffn_dim, dropout
        )
        self.out_proj = nn.Linear(hidden_dim, llm_dim)

    @property
    def beta(self):
        """The CIF firing threshold."""
        return self.cif.beta

    def forward(self, x, mask, target_lengths=None):
        """Fires label-level prompt vectors from encoder frames.

        Arguments
        ---------
        x : torch.Tensor
            Frames, ``(batch, time, input_dim)``.
        mask : torch.Tensor
            Boolean ``(batch, time)``, True on valid frames.
        target_lengths : torch.Tensor, optional
            ``(batch,)`` token counts; when given (training) the CIF is
            scaled to fire exactly that many vectors.

        Returns
        -------
        CIFOutput
            ``embeddings`` ``(batch, n, llm_dim)`` (zero where ``mask`` is
            False), ``mask`` ``(batch, n)``, unscaled ``alpha_sum``
            ``(batch,)`` and ``alphas`` ``(batch, time)``.

        Example
        -------
        >>> prompter = CIFPrompter(4, 5, hidden_dim=8)
        >>> out = prompter(torch.randn(1, 6, 4), torch.ones(1, 6).bool())
        >>> out.embeddings.shape[-1]
        5
        """
        if x.dim() != 3 or x.shape[-1] != self.input_dim:
            raise ValueError(
                f"CIFPrompter: x: expected (batch, time, {self.input_dim}), "
                f"got shape {tuple(x.shape)}"
            )
        mask = mask.bool()
        h = self.input_proj(self.input_norm(x))
        if self.pre is not None:
            h = self.pre(h, src_key_padding_mask=~mask)
        out = self.cif(h, target_lengths=target_lengths, mask=mask)
        fired, fired_mask = out.embeddings, out.mask
        if self.post is not None and fired.shape[1] > 0:
            # a row with nothing fired attends to a dummy slot, then is zeroed
            safe = fired_mask.clone()
            safe[:, 0] = True
            fired = self.post(fired, src_key_padding_mask=~safe)
        emb = self.out_proj(fired) * fired_mask.unsqueeze(-1).to(fired.dtype)
        return CIFOutput(emb, fired_mask, out.alpha_sum, out.alphas)


class PreNormConnector(nn.Module):
    """A LayerNorm on the frames in front of any ``(x, mask)`` connector.

    Arguments
    ---------
    connector : torch.nn.Module
        Maps ``(frames, mask)`` to ``(tokens, token_mask)``.
    input_dim : int
        Width of the frames.

    Example
    -------
    >>> from audiollm_lobes.connectors import WindowQFormer
    >>> qf = WindowQFormer(8, 6, hidden_dim=8, num_layers=1, num_heads=2,
    ...                    ffn_dim=16, window_frames=4)
    >>> conn = PreNormConnector(qf, 8)
    >>> tokens, mask = conn(torch.randn(2, 10, 8), torch.ones(2, 10).bool())
    >>> tokens.shape
    torch.Size([2, 3, 6])
    """

    def __init__(self, connector, input_dim):
        super().__init__()
        self.norm = nn.LayerNorm(input_dim)
        self.connector = connector

    def forward(self, x, mask):
        """Normalises ``x`` ``(batch, time, dim)`` and runs the connector."""
        return self.connector(self.norm(x), mask)


def split_text_prompt(instruction):
    """Splits a text-task instruction at ``<text>`` for splicing.

    The space before the marker is moved from the prompt into the spliced
    text, because the tokenizer fuses a word with its leading space
    (``" the"`` is one token): the text (or the speech prompts standing
    for it) is tokenised as ``" " + text``.

    Arguments
    ---------
    instruction : str
        An instruction holding one ``<text>`` marker.

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
    before, after = split_prompt(instruction, TEXT_MARKER)
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
        A manifest entry (``task``; ``question`` for spoken QA).
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
    """
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
):
    """Adds the Wav2Prompt items to a dataset from ``make_dataset``.

    Items (all 1-D ``LongTensor``):

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

    Returns
    -------
    speechbrain.dataio.dataset.DynamicItemDataset
        The same dataset, with the new output keys.

    Example
    -------
    >>> add_text_prompt_items  # doctest: +ELLIPSIS
    <function add_text_prompt_items at ...>
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
    if missing:
        raise ValueError(
            f"{len(missing)} examples lack the field 'transcript' needed by "
            f"Wav2Prompt (CIF targets), e.g. {missing[:5]}"
        )
    prompts = {
        ex_id: split_text_prompt(text_instruction(entry, ex_id, template))
        for ex_id, entry in entries.items()
    }
    bos = [llm.bos_id] if llm.bos_id is not None else []
    fixed_asr = split_text_prompt(asr_instruction.replace("<audio>", "<text>"))

    @sb.utils.data_pipeline.takes("id", "task", "instruction")
    @sb.utils.data_pipeline.provides(*TEXT_PROMPT_KEYS)
    def text_prompt_pipeline(ex_id, task, instruction):
        before, after = prompts[ex_id]
        if asr_prompt == "instruction":
            # the prompts stand for the text: split as a text prompt
            asr_before, asr_after = fixed_asr
        else:
            asr = instruction if task == "asr" else asr_instruction
            asr_before, asr_after = split_prompt(asr)
        transcript = " " + entries[ex_id]["transcript"].strip()
        ids = llm.encode([before, after, transcript, asr_before, asr_after])
        yield torch.LongTensor(bos + ids[0])
        yield torch.LongTensor(ids[1])
        yield torch.LongTensor(ids[2])
        yield torch.LongTensor(bos + ids[3])
        yield torch.LongTensor(ids[4])

    dataset.add_dynamic_item(text_prompt_pipeline)
    dataset.set_output_keys(OUTPUT_KEYS + TEXT_PROMPT_KEYS)
    return dataset


def majority_baselines(data_root, tasks, test_entries):
    """Majority-answer score of each accuracy / exact-match task.

    The answer is the most frequent target of the task's **train**
    manifest (read without loading audio, so zero-shot tasks that are not
    trained on still get a baseline), scored on the test entries.

    Arguments
    ---------
    data_root : str
        Folder with ``manifests/train/<task>.json``.
    tasks : list of str
        Test tasks.
    test_entries : dict
        ``{id: entry}`` of the test set.

    Returns
    -------
    dict
        ``{task: percent}`` for the tasks scored by accuracy or exact match
        whose train manifest exists.

    Example
    -------
    >>> import json, tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "manifests" / "train").mkdir(parents=True)
    >>> train = {"a": {"task": "slu", "target": "x"},
    ...          "b": {"task": "slu", "target": "x"}}
    >>> _ = (root / "manifests/train/slu.json").write_text(json.dumps(train))
    >>> test = {"c": {"task": "slu", "target": "x"},
    ...         "d": {"task": "slu", "target": "y"}}
    >>> majority_baselines(str(root), ["slu", "asr"], test)
    {'slu': 50.0}
    """
    out = {}
    for task in tasks:
        metric = TASK_METRICS.get(task)
        if metric not in ("accuracy", "exact_match"):
            continue
        path = Path(data_root) / "manifests" / "train" / f"{task}.json"
        refs = [e["target"] for e in test_entries.values() if e["task"] == task]
        if not path.is_file() or not refs:
            continue
        train = load_manifest(path, {"data_root": str(data_root)})
        answers = [e["target"] for e in train.values() if "target" in e]
        if answers:
            out[task] = majority_baseline(
                answers, refs, normalize=metric == "accuracy"
            )
    return out


def _fmt(value, digits=2):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def comparison_table(columns, baselines=None, digits=2):
    """One markdown table with a column per system.

    Rows are (task, main metric) in order of first appearance; a system
    without a task shows ``–``.

    Arguments
    ---------
    columns : list of tuple
        ``(label, summary)`` with ``summary`` as from
        :meth:`~audiollm_lobes.metrics.TaskMetrics.summarize`.
    baselines : dict, optional
        ``{task: percent}`` majority baselines (extra column).
    digits : int
        Decimals shown.

    Returns
    -------
    str
        The table (no trailing newline).

    Example
    -------
    >>> w = {"asr": {"wer": 8.0, "n": 4}, "slu": {"exact_match": 50.0,
    ...      "n": 2}}
    >>> c = {"slu": {"exact_match": 100.0, "n": 2}}
    >>> print(comparison_table([("wav2prompt", w), ("cascade", c)],
    ...                        {"slu": 25.0}))
    | task | metric | n | wav2prompt | cascade | majority |
    |---|---|---:|---:|---:|---:|
    | asr | wer ↓ | 4 | 8.00 | – | – |
    | slu | exact_match ↑ | 2 | 50.00 | 100.00 | 25.00 |
    """
    rows = {}
    for _, summary in columns:
        for task, values in (summary or {}).items():
            if task not in rows:
                metrics = [m for m in values if m != "n"]
                if metrics:
                    rows[task] = (metrics[0], values.get("n", ""))
    labels = [label for label, _ in columns]
    header = "| task | metric | n | " + " | ".join(labels) + " |"
    rule = "|---|---|---:|" + "---:|" * len(labels)
    if baselines:
        header += " majority |"
        rule += "---:|"
    lines = [header, rule]
    for task, (metric, n) in rows.items():
        arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
        cells = [
            _fmt((summary or {}).get(task, {}).get(metric), digits)
            for _, summary in columns
        ]
        row = f"| {task} | {metric} {arrow} | {n} | " + " | ".join(cells)
        row += " |"
        if baselines:
            row += f" {_fmt(baselines.get(task), digits)} |"
        lines.append(row)
    return "\n".join(lines)


def find_trainable_checkpoint(path):
    """Finds the ``trainable.ckpt`` of a run (file, save folder or run).

    Arguments
    ---------
    path : str or Path
        A ``trainable.ckpt`` file, or a folder holding
        ``CKPT*/trainable.ckpt`` (directly or under ``save/``).

    Returns
    -------
    Path
        The newest matching file (SpeechBrain names checkpoints by date).

    Example
    -------
    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> (run / "save" / "CKPT+1").mkdir(parents=True)
    >>> _ = (run / "save" / "CKPT+1" / "trainable.ckpt").write_bytes(b"")
    >>> find_trainable_checkpoint(run).name
    'trainable.ckpt'
    """
    path = Path(path)
    if path.is_file():
        return path
    found = sorted(path.glob("CKPT*/trainable.ckpt"))
    found = found or sorted(path.glob("save/CKPT*/trainable.ckpt"))
    if not found:
        raise FileNotFoundError(
            f"pretrained_frontend: no trainable.ckpt under {path} (expected a "
            "file, or a run / save folder of an asr.yaml run holding "
            "CKPT*/trainable.ckpt)"
        )
    return found[-1]
