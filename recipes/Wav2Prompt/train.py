#!/usr/bin/env python3
"""Wav2Prompt: speech prompts for a frozen text LLM, trained on ASR only
(Deng, Sun and Woodland, 2024).

A frozen Whisper encoder feeds a CIF prompter that fires one vector per LLM
token of the transcript. Training uses ASR data only: MSE to the frozen
LLM's token embeddings of the transcript, LLM cross-entropy through an ASR
template, and the CIF quantity loss. At test time the prompts replace the
text in the LLM's own text-task templates: zero-shot En->Fr translation,
SLU, spoken QA and spoken-query QA, next to an ASR -> LLM cascade built
from the same model, and (``cascade_asr``) next to a second cascade whose
ASR is independent of the front end: a CTC head on the same frozen
encoder, trained by ``ctc_asr.yaml`` on the same ASR data and budget.
``few_shot.yaml`` tunes the front end end-to-end on N examples per task
(LLM frozen); ``encoder_llm.yaml`` is the window Q-Former baseline;
``asr_no_mse.yaml`` the ablation without the MSE.

To run (from the repo root; the toy world is built on first use)::

    python recipes/Wav2Prompt/train.py hparams/ctc_asr.yaml
    python recipes/Wav2Prompt/train.py hparams/asr.yaml \\
        --cascade_asr=results/Wav2Prompt/ctc_asr/1234
    python recipes/Wav2Prompt/train.py hparams/few_shot.yaml \\
        --pretrained_frontend=results/Wav2Prompt/asr/1234 --shots=10
    python recipes/Wav2Prompt/compare.py results/Wav2Prompt/*/1234
    torchrun --nproc_per_node=2 recipes/Wav2Prompt/train.py hparams/asr.yaml \\
        --distributed_backend=gloo        # DDP (nccl on GPUs)

``Wav2PromptBrain``
------------------
Training (``train_template: audio``, the ASR stage)::

    wav ─► encoder (frozen) ─► CIFPrompter, scaled to the transcript's
    token count N ─► (batch, N, D_llm)
        ├─ MSE to llm.embed(" " + transcript)           (weight ``mse``)
        ├─ |sum(alpha) − N| on the unscaled weights      (``quantity``)
        └─ [BOS][ASR prompt][prompts][transcript] through the frozen
           LLM, cross-entropy on the transcript          (``ce``)

The ASR prompt is ``asr_before_ids`` / ``asr_after_ids`` (see
:func:`text_prompts.add_text_prompt_items`, ``asr_prompt``).

With ``train_template: text`` (few-shot tuning) the prompts replace the
text in the task's text template and the answer is the task target; the
CIF is left unscaled unless ``scale_to_transcript`` says otherwise.

Test (every task, zero-shot): the CIF runs unscaled (inference mode).

* ``asr`` examples: decoded with the ASR prompt (WER).
* other tasks, **Wav2Prompt**: the prompts are spliced where the text goes
  in the task's text template (``text_before_ids`` / ``text_after_ids``).
* other tasks, **cascade (front end ASR)**: the same model first
  transcribes the audio (``asr_before_ids``), then the hypothesis *text*
  fills the same template. It shares the front end's recognition errors.
* every task, **cascade (CTC ASR)**, with ``cascade_asr: <run folder of
  ctc_asr.yaml>``: the CTC head of that run transcribes the same encoder
  frames (greedy, characters), then its text fills the same template (on
  ``asr`` examples the CTC transcript is the answer: its WER).

The systems are scored per task; the cascades go to
``<test_results_name>_cascade.json`` and ``..._cascade_ctc.json``. A
non-CIF connector (the encoder-LLM baseline, a window Q-Former) runs the
same way, trained with CE only.

``CTCASRBrain`` (``ctc_asr.yaml``, in ``ctc_asr.py``)
-----------------------------------------------------
The cascade's independent ASR: ``encoder (frozen) ─► CTCHead`` (see
:mod:`audiollm_lobes.ctc`), characters of the training transcripts, CTC
loss, greedy decoding; no LLM is loaded. Its run folder holds
``ctc_asr.json`` (the head's arguments, the tokenizer file, the
fingerprint of the encoder it was trained on) and ``ctc_tokens.txt``. It
is a run of its own (own optimizer, gradient clipping, random
generators), so the front end trains exactly as without it; a
Wav2Prompt run loads it after training, for the test only, and refuses it
when its own encoder's fingerprint differs.

Validation also logs ``token_acc``: the share of fired vectors whose
nearest LLM token embedding is the transcript's token (a CIF front end).

Extra hparams: ``loss_weights`` (``{ce, mse, quantity}``),
``train_template`` (``audio`` | ``text``), ``scale_to_transcript``,
``cascade_asr`` (null or a ``ctc_asr.yaml`` run folder),
``repetition_penalty`` (of every LLM decoding; 1.0: none).

Authors
 * audiollm-lobes developers, 2026
"""

import logging
import sys
from pathlib import Path

import speechbrain as sb
import torch
from ctc_asr import load_cascade_asr, read_cascade_asr, train_ctc_asr
from speechbrain.utils.distributed import if_main_process, run_on_main
from text_prompts import add_text_prompt_items

from audiollm_lobes.backbone_widths import check_backbone_widths
from audiollm_lobes.brain import AudioLLMBrain
from audiollm_lobes.cif import (
    CIFPrompter,
    embedding_mse_loss,
    nearest_token_accuracy,
    quantity_loss,
)
from audiollm_lobes.cli import load_recipe_hparams
from audiollm_lobes.data.datasets import build_datasets, recipe_baselines
from audiollm_lobes.data.manifest import ManifestError
from audiollm_lobes.data.sampling import train_loader_kwargs
from audiollm_lobes.data.tasks import make_task_metrics
from audiollm_lobes.injection import assemble_plits
from audiollm_lobes.llm import pad_ids, token_embeddings
from audiollm_lobes.reporting import (
    results_table,
    write_results,
    write_summary,
)
from audiollm_lobes.trainable import (
    TrainableState,
    count_parameters,
    find_trainable_checkpoint,
)

logger = logging.getLogger(__name__)

LOSS_NAMES = ("ce", "mse", "quantity")
TEMPLATES = {"audio": "asr", "text": "text"}
#: Column labels of the two cascades.
CASCADE_LABEL = "cascade (front end ASR)"
CASCADE_CTC_LABEL = "cascade (CTC ASR)"


def check_loss_weights(weights, connector):
    """Validates ``loss_weights`` against the connector; returns floats.

    Arguments
    ---------
    weights : dict
        ``{name: weight}`` with names among ``ce``, ``mse``, ``quantity``
        (missing names weigh 0).
    connector : torch.nn.Module
        The front end; ``mse`` and ``quantity`` need a
        :class:`~audiollm_lobes.cif.CIFPrompter`.

    Returns
    -------
    dict
        ``{name: float}`` for all three names.

    Example
    -------
    >>> prompter = CIFPrompter(4, 4, hidden_dim=4)
    >>> check_loss_weights({"ce": 1, "mse": 2}, prompter)
    {'ce': 1.0, 'mse': 2.0, 'quantity': 0.0}
    >>> check_loss_weights({"mse": 1}, torch.nn.Linear(2, 2))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: loss_weights.mse=1.0 needs a CIFPrompter connector ...
    """
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(LOSS_NAMES))
    if unknown:
        raise ValueError(
            f"loss_weights: unknown names {unknown}; expected {LOSS_NAMES}"
        )
    out = {name: float(weights.get(name, 0.0)) for name in LOSS_NAMES}
    if any(w < 0 for w in out.values()) or not any(out.values()):
        raise ValueError(
            f"loss_weights: expected non-negative weights, not all zero; "
            f"got {out}"
        )
    if not isinstance(connector, CIFPrompter):
        for name in ("mse", "quantity"):
            if out[name]:
                raise ValueError(
                    f"loss_weights.{name}={out[name]} needs a CIFPrompter "
                    "connector (one vector per token); got "
                    f"{type(connector).__name__}"
                )
    return out


def select_rows(batch_tensors, rows):
    """Indexes the batch dimension of several tensors.

    Arguments
    ---------
    batch_tensors : list of torch.Tensor
        Tensors ``(batch, ...)``.
    rows : torch.Tensor
        ``(n,)`` long indices.

    Returns
    -------
    list of torch.Tensor
        Tensors ``(n, ...)``.

    Example
    -------
    >>> a, b = select_rows([torch.arange(3), torch.eye(3)],
    ...                    torch.tensor([2, 0]))
    >>> a.tolist(), b[0].tolist()
    ([2, 0], [0.0, 0.0, 1.0])
    """
    return [t.index_select(0, rows.to(t.device)) for t in batch_tensors]


class Wav2PromptBrain(AudioLLMBrain):
    """AudioLLMBrain for Wav2Prompt (see the module docstring)."""

    def on_fit_start(self):
        """Checks the loss weights once, then the usual set-up."""
        self.loss_weights = check_loss_weights(
            self._hp("loss_weights"), self.unwrap("connector")
        )
        template = self._hp("train_template", "audio")
        if template not in TEMPLATES:
            raise ValueError(
                f"train_template: expected one of {sorted(TEMPLATES)}, got "
                f"{template!r}"
            )
        logger.info("loss weights: %s", self.loss_weights)
        super().on_fit_start()

    @property
    def uses_cif(self):
        """Whether the front end is a CIF prompter (the module itself, not
        its DDP wrapper)."""
        return isinstance(self.unwrap("connector"), CIFPrompter)

    # ------------------------------------------------------------ pieces
    def front_end(self, feats, feat_mask, target_lengths=None):
        """Speech prompts ``(tokens, mask, cif_output_or_None)``.

        ``target_lengths`` (``(batch,)``) scales a CIF to fire that many
        vectors; it is ignored by other connectors.
        """
        connector = self.modules.connector
        if self.uses_cif:
            out = connector(feats, feat_mask, target_lengths=target_lengths)
            return out.embeddings, out.mask, out
        tokens, mask = connector(feats, feat_mask)
        return tokens, mask, None

    def sequence(
        self, batch, template, audio, audio_mask, rows=None, answer=None
    ):
        """Assembles ``[BOS][before][audio][after]([answer])``.

        Arguments
        ---------
        batch : PaddedBatch
            The batch.
        template : str
            ``"asr"`` (``asr_*_ids``) or ``"text"`` (``text_*_ids``).
        audio, audio_mask : torch.Tensor
            ``(n, len, dim)`` tokens spliced at the marker, and mask.
        rows : torch.Tensor, optional
            Batch rows the sequence is built for (default all).
        answer : tuple of torch.Tensor, optional
            ``(ids, mask)`` ``(n, len)`` teacher-forced answer.
        """
        before, before_mask = self.text_segment(batch, f"{template}_before_ids")
        after, after_mask = self.text_segment(batch, f"{template}_after_ids")
        if rows is not None:
            before, before_mask, after, after_mask = select_rows(
                [before, before_mask, after, after_mask], rows
            )
        ans_ids, ans_mask = answer if answer is not None else (None, None)
        return assemble_plits(
            self.llm.embed,
            before,
            before_mask,
            audio,
            audio_mask,
            after,
            after_mask,
            ans_ids,
            ans_mask,
        )

    def generate(self, seq):
        """Greedy/beam decoding of an assembled prompt; returns texts."""
        tokens = self.llm.generate(
            seq.embeds,
            seq.mask,
            max_new_tokens=self._hp("max_new_tokens", 48),
            num_beams=self._hp("num_beams", 1),
            repetition_penalty=self._hp("repetition_penalty", 1.0),
        )
        return self.llm.decode(tokens.tolist())

    def text_tokens(self, texts):
        """Embeds ``" " + text`` of each string: ``(embeds, mask)``."""
        ids = self.llm.encode([" " + t.strip() for t in texts])
        tokens, mask = pad_ids(ids, self.llm.pad_id)
        tokens, mask = tokens.to(self.device), mask.to(self.device).bool()
        return self.llm.embed(tokens), mask

    # ------------------------------------------------------- Brain hooks
    def compute_forward(self, batch, stage):
        """Training losses (TRAIN/VALID) or zero-shot decoding (TEST)."""
        batch = batch.to(self.device)
        feats, feat_mask = self.encode_audio(batch)
        if stage == sb.Stage.TEST:
            return self.zero_shot_forward(batch, feats, feat_mask)
        template = TEMPLATES[self._hp("train_template", "audio")]
        scale = self._hp("scale_to_transcript", template == "asr")
        transcript, transcript_mask = self.text_segment(batch, "transcript_ids")
        n_tokens = transcript_mask.sum(1)
        target_lengths = n_tokens if scale else None
        audio, audio_mask, cif = self.front_end(
            feats, feat_mask, target_lengths
        )
        weights = self.loss_weights
        parts = {}
        if cif is not None:
            parts["mse"] = embedding_mse_loss(
                audio, audio_mask, self.llm.embed(transcript), transcript_mask
            )
            parts["quantity"] = quantity_loss(
                cif.alpha_sum, n_tokens, beta=self.unwrap("connector").beta
            )
        if weights["ce"] > 0 or stage != sb.Stage.TRAIN:
            # ASR data ("asr"): the answer is the transcript after the ASR
            # prompt; few-shot ("text"): the task's answer after its text
            # template
            answer = self.text_segment(batch, "answer_ids")
            seq = self.sequence(
                batch, template, audio, audio_mask, answer=answer
            )
            parts["ce"] = self.llm_loss(seq, batch, stage)
        out = {"parts": parts, "hyps": None, "diagnostics": {}}
        if cif is not None and stage == sb.Stage.VALID:
            # how text-like the prompts are: nearest token = transcript's
            ids = transcript.masked_fill(~transcript_mask, -1)
            out["diagnostics"]["token_acc"] = nearest_token_accuracy(
                audio, audio_mask, token_embeddings(self.llm), ids
            )
        if stage == sb.Stage.VALID and self._hp("valid_decode", False):
            audio, audio_mask, _ = self.front_end(feats, feat_mask)
            out["hyps"] = self.generate(
                self.sequence(batch, template, audio, audio_mask)
            )
        return out

    def generate_batch(self, batch):
        """Answers of a batch without targets, as the test step decodes
        them: ``asr`` examples with the ASR prompt, the others with the
        speech prompts spliced into their text templates."""
        batch = batch.to(self.device)
        feats, feat_mask = self.encode_audio(batch)
        return self.zero_shot_forward(batch, feats, feat_mask, cascades=False)[
            "hyps"
        ]

    def add_dataset_items(self, dataset, entries, training=True):
        """Adds the text-task and ASR prompts (and, for training, the
        transcript tokens) of :func:`text_prompts.add_text_prompt_items`
        with this run's ``text_template``, ``asr_instruction`` and
        ``asr_prompt``."""
        return add_text_prompt_items(
            dataset,
            entries,
            self.llm,
            template=self._hp("text_template", "hash"),
            asr_instruction=self._hp(
                "asr_instruction", "<audio> Transcribe the speech."
            ),
            asr_prompt=self._hp("asr_prompt", "manifest"),
            require_transcript=training,
        )

    def zero_shot_forward(self, batch, feats, feat_mask, cascades=True):
        """ASR, Wav2Prompt and cascade hypotheses of a test batch.

        Returns ``{"hyps", "cascade", "cascade_ctc"}``: the system's
        answers; the front-end cascade's (None on ``asr`` rows); the CTC
        cascade's when a ``cascade_asr`` is loaded (the CTC transcript on
        ``asr`` rows), else None. ``cascades=False`` decodes the system
        only (:meth:`generate_batch`).
        """
        audio, audio_mask, _ = self.front_end(feats, feat_mask)
        tasks = list(batch.task)
        asr_hyps = self.generate(self.sequence(batch, "asr", audio, audio_mask))
        hyps, cascade = list(asr_hyps), [None] * len(tasks)
        rows = [i for i, t in enumerate(tasks) if t != "asr"]
        index = torch.tensor(rows, device=self.device)
        if rows:
            sub_audio, sub_mask = select_rows([audio, audio_mask], index)
            w2p = self.generate(
                self.sequence(batch, "text", sub_audio, sub_mask, rows=index)
            )
            for j, i in enumerate(rows):
                hyps[i] = w2p[j]
        if rows and cascades:
            casc = self.text_task_answers(
                batch, [asr_hyps[i] for i in rows], index
            )
            for j, i in enumerate(rows):
                cascade[i] = casc[j]
        cascade_ctc = None
        asr = getattr(self, "cascade_asr", None)
        if cascades and asr is not None:
            # the independent ASR reads the same frozen-encoder frames
            cascade_ctc = asr.transcribe(feats, feat_mask)
            if rows:
                casc = self.text_task_answers(
                    batch, [cascade_ctc[i] for i in rows], index
                )
                for j, i in enumerate(rows):
                    cascade_ctc[i] = casc[j]
        return {
            "parts": {},
            "hyps": hyps,
            "cascade": cascade,
            "cascade_ctc": cascade_ctc,
        }

    def text_task_answers(self, batch, texts, rows):
        """The LLM's answers with ``texts`` where the text goes in the
        text templates of batch ``rows`` (a cascade's second pass)."""
        text, text_mask = self.text_tokens(texts)
        return self.generate(
            self.sequence(batch, "text", text, text_mask, rows=rows)
        )

    def compute_objectives(self, predictions, batch, stage):
        """Weighted sum of the loss parts; records hypotheses."""
        if predictions["hyps"] is not None:
            self.task_metrics.append(
                list(batch.task),
                list(batch.id),
                predictions["hyps"],
                list(batch.target),
            )
        for key, metrics in (
            ("cascade", self.cascade_metrics),
            ("cascade_ctc", self.cascade_ctc_metrics),
        ):
            answers = predictions.get(key)
            if answers is None:
                continue
            rows = [i for i, h in enumerate(answers) if h is not None]
            if rows:
                metrics.append(
                    [batch.task[i] for i in rows],
                    [batch.id[i] for i in rows],
                    [answers[i] for i in rows],
                    [batch.target[i] for i in rows],
                )
        if stage == sb.Stage.TEST:
            return torch.zeros((), device=self.device)
        for name, value in predictions.get("diagnostics", {}).items():
            self._accumulate(name, value)
        loss = None
        for name, value in predictions["parts"].items():
            self._accumulate(name, value)
            weight = self.loss_weights[name]
            if weight > 0:
                term = weight * value
                loss = term if loss is None else loss + term
        return loss

    def on_stage_start(self, stage, epoch=None):
        """Also resets the cascades' metrics."""
        super().on_stage_start(stage, epoch)
        definitions = self._hp("task_definitions", None)
        self.cascade_metrics = make_task_metrics(definitions)
        self.cascade_ctc_metrics = make_task_metrics(definitions)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """As the base class; in TEST also writes the cascades' results
        (``<name>_cascade*.json``, ``..._hyps.jsonl``)."""
        super().on_stage_end(stage, stage_loss, epoch)
        if stage != sb.Stage.TEST:
            return
        self.cascade_summary = self.cascade_metrics.summarize()
        self.cascade_ctc_summary = None
        cascades = [("cascade", CASCADE_LABEL, self.cascade_metrics)]
        if getattr(self, "cascade_asr", None) is not None:
            self.cascade_ctc_summary = self.cascade_ctc_metrics.summarize()
            cascades.append(
                ("cascade_ctc", CASCADE_CTC_LABEL, self.cascade_ctc_metrics)
            )
        summaries = [self.cascade_summary, self.cascade_ctc_summary]
        if not if_main_process():  # every process tested; one writes
            return
        out_dir = Path(self.hparams.output_folder)
        name = self._hp("test_results_name", "test_results")
        for (suffix, label, metrics), summary in zip(cascades, summaries):
            write_results(summary, out_dir / f"{name}_{suffix}.json")
            metrics.write_predictions(out_dir / f"{name}_{suffix}_hyps.jsonl")
            logger.info("%s:\n%s", label, results_table([(label, summary)]))

    def evaluate_zero_shot(self, test_set, loader_kwargs, name):
        """Runs the test set; returns ``(wav2prompt, cascade, cascade_ctc)``
        summaries (the last None without a loaded ``cascade_asr``).

        Arguments
        ---------
        test_set : Dataset
            The test set (built with the Wav2Prompt items).
        loader_kwargs : dict
            Test dataloader options.
        name : str
            Results file stem in the output folder.

        Returns
        -------
        tuple of dict
            Per-task summaries of the system and of the two cascades.
        """
        self.hparams.test_results_name = name
        self.evaluate(
            test_set, min_key="loss", test_loader_kwargs=loader_kwargs
        )
        return self.test_summary, self.cascade_summary, self.cascade_ctc_summary


def main(argv):
    """Trains, then evaluates every test task zero-shot (and the
    cascades); ``ctc_asr.yaml`` (a ``ctc_head``) trains the cascade's
    independent ASR instead."""
    hparams, run_opts = load_recipe_hparams(argv, __file__)
    if hparams.get("ctc_head") is not None:
        return train_ctc_asr(hparams, run_opts)
    check_backbone_widths(hparams)
    weights = check_loss_weights(hparams["loss_weights"], hparams["connector"])
    pretrained = None
    if hparams.get("pretrained_frontend"):  # checked before the data
        try:
            pretrained = find_trainable_checkpoint(
                hparams["pretrained_frontend"]
            )
        except FileNotFoundError as err:
            raise FileNotFoundError(f"pretrained_frontend: {err}") from None
    if hparams.get("cascade_asr"):  # checked before training
        read_cascade_asr(hparams["cascade_asr"])
    datasets = build_datasets(hparams)
    brain = Wav2PromptBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    for split in ("train", "valid", "test"):
        brain.add_dataset_items(datasets[split], datasets["entries"][split])
    if pretrained is not None:
        logger.info("loading the pretrained front end from %s", pretrained)
        TrainableState({"connector": hparams["connector"]}).load(pretrained)
    n_trainable = count_parameters(brain.modules)
    logger.info("trainable parameters: %d", n_trainable)
    test_opts = hparams["test_dataloader_opts"]
    summary = {"system": hparams["system_name"], "loss_weights": weights}
    if hparams.get("evaluate_before_tuning"):
        summary["before_tuning"], _, _ = brain.evaluate_zero_shot(
            datasets["test"], test_opts, "before_tuning"
        )
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_kwargs(hparams, datasets["train"]),
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    if hparams.get("cascade_asr"):
        # after training: the front end's training never sees it
        brain.cascade_asr = load_cascade_asr(
            hparams["cascade_asr"],
            brain.unwrap("encoder"),
            hparams.get("sample_rate", 16000),
            brain.device,
        )
        summary["cascade_asr"] = str(hparams["cascade_asr"])
    summary["test"], summary["cascade"], summary["cascade_ctc"] = (
        brain.evaluate_zero_shot(datasets["test"], test_opts, "test_results")
    )
    summary["baselines"] = recipe_baselines(hparams, datasets)
    summary["train_tasks"] = list(
        hparams.get("train_tasks") or hparams["tasks"]
    )
    summary["max_train_per_task"] = hparams.get("max_train_per_task")
    # few-shot runs read their shots from another split's manifests
    summary["train_manifest_split"] = (
        hparams.get("train_manifest_split") or "train"
    )
    summary["trainable_parameters"] = n_trainable
    summary["decoding"] = {
        key: hparams.get(key)
        for key in ("max_new_tokens", "num_beams", "repetition_penalty")
    }
    run_on_main(
        write_summary,
        args=[hparams["output_folder"], summary, results_lines(summary)],
    )


def results_lines(summary):
    """``results.md``: the system, its loss weights, and one table with a
    column for the system, each cascade and (few-shot) the scores before
    tuning.

    Arguments
    ---------
    summary : dict
        ``system``, ``trainable_parameters``, ``loss_weights``, ``test``,
        ``cascade``, ``baselines`` and optional ``before_tuning`` and
        ``cascade_ctc``.

    Returns
    -------
    list of str
        Markdown lines.

    Example
    -------
    >>> lines = results_lines({"system": "wav2prompt",
    ...     "trainable_parameters": 5, "loss_weights": {"ce": 1.0},
    ...     "test": {"slu": {"exact_match": 50.0, "n": 2}},
    ...     "cascade": {"slu": {"exact_match": 100.0, "n": 2}},
    ...     "cascade_ctc": {"slu": {"exact_match": 0.0, "n": 2}},
    ...     "baselines": {"slu": 25.0}})
    >>> print("\\n".join(lines[4:]))  # doctest: +NORMALIZE_WHITESPACE
    | task | metric | wav2prompt | cascade (front end ASR) |
      cascade (CTC ASR) | n | majority |
    |---|---|---:|---:|---:|---:|---:|
    | slu | exact_match ↑ | 50.00 | 100.00 | 0.00 | 2 | 25.00 |
    """
    system = summary["system"]
    columns = [(system, summary["test"]), (CASCADE_LABEL, summary["cascade"])]
    if summary.get("cascade_ctc") is not None:
        columns.append((CASCADE_CTC_LABEL, summary["cascade_ctc"]))
    if summary.get("before_tuning"):
        columns.insert(0, (f"{system} (before)", summary["before_tuning"]))
    return [
        f"system: {system}",
        f"trainable parameters: {summary['trainable_parameters']:,}",
        f"loss weights: {summary['loss_weights']}",
        "",
        results_table(columns, summary.get("baselines") or None),
    ]


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except ManifestError as err:
        # one clear report of every bad example, no deep traceback
        sys.exit(f"Wav2Prompt: the data manifests have problems:\n{err}")
    except FileNotFoundError as err:
        sys.exit(f"Wav2Prompt: {err}")
