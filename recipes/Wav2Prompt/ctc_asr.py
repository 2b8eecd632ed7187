"""The independent ASR of Wav2Prompt's second cascade (``ctc_asr.yaml``).

A CTC head (:class:`audiollm_lobes.ctc.CTCHead`) on the frozen encoder,
trained on the ASR data and budget of the Wav2Prompt ASR stage in a run of
its own, characters of the training transcripts, greedy decoding; no LLM
is loaded. ``train.py`` runs :func:`train_ctc_asr` for an hparams file
with a ``ctc_head``; a Wav2Prompt run with ``cascade_asr: <run folder>``
loads the trained head with :func:`load_cascade_asr` after its own
training, for the test only.

A run folder of ``ctc_asr.yaml`` holds, beside the usual files,
``ctc_asr.json`` (the head's arguments, the tokenizer file, the
fingerprint of the encoder it was trained on) and ``ctc_tokens.txt``
(SpeechBrain's ``CTCTextEncoder`` format).

Authors
 * audiollm-lobes developers, 2026
"""

import json
import logging
from pathlib import Path
from typing import NamedTuple

import speechbrain as sb
import torch
from speechbrain.utils.distributed import run_on_main

from audiollm_lobes.atomic import write_json
from audiollm_lobes.brain import AudioLLMBrain
from audiollm_lobes.ctc import (
    CTCHead,
    build_char_encoder,
    ctc_head_loss,
    greedy_texts,
    load_char_encoder,
    save_char_encoder,
)
from audiollm_lobes.data.datasets import build_datasets
from audiollm_lobes.data.sampling import train_loader_kwargs
from audiollm_lobes.feature_cache import encoder_fingerprint
from audiollm_lobes.masks import relative_lengths_to_mask
from audiollm_lobes.reporting import results_table, write_summary
from audiollm_lobes.trainable import (
    TrainableState,
    count_parameters,
    find_trainable_checkpoint,
)

logger = logging.getLogger(__name__)

#: What a ctc_asr.yaml run writes beside its checkpoints.
CTC_ASR_FILE = "ctc_asr.json"
CTC_TOKENS_FILE = "ctc_tokens.txt"


class CTCASRBrain(AudioLLMBrain):
    """Trains the cascade's independent ASR (``ctc_asr.yaml``): a CTC head
    on the frozen encoder's frames, characters, greedy decoding (see the
    module docstring). Validation logs the CTC loss and (``valid_decode``)
    the WER; the test writes ``test_results*`` like the other runs."""

    def compute_forward(self, batch, stage):
        """Log-probabilities (and, when decoding, transcripts)."""
        batch = batch.to(self.device)
        feats, feat_mask = self.encode_audio(batch)
        out = self.modules.ctc_head(feats, feat_mask)
        hyps = None
        decode = stage == sb.Stage.TEST or (
            stage == sb.Stage.VALID and self._hp("valid_decode", True)
        )
        if decode:
            hyps = greedy_texts(
                out.log_probs,
                out.mask,
                self.hparams.ctc_tokens,
                self.unwrap("ctc_head").blank_index,
            )
        return {"out": out, "hyps": hyps}

    def compute_objectives(self, predictions, batch, stage):
        """The CTC loss (logged as ``ctc``); records transcripts."""
        out = predictions["out"]
        tokens, rel_lens = batch.ctc_tokens
        token_mask = relative_lengths_to_mask(rel_lens, tokens.shape[1])
        head = self.unwrap("ctc_head")
        loss = ctc_head_loss(
            out.log_probs, out.mask, tokens, token_mask, head.blank_index
        )
        self._accumulate("ctc", loss)
        if predictions["hyps"] is not None:
            self.task_metrics.append(
                list(batch.task),
                list(batch.id),
                predictions["hyps"],
                list(batch.target),
            )
        return loss


class CascadeASR(NamedTuple):
    """A trained CTC head and its tokenizer: the independent ASR of the
    cascade (:func:`load_cascade_asr`)."""

    head: CTCHead
    tokens: object
    folder: str

    def transcribe(self, feats, mask):
        """Greedy transcripts of ``(batch, time, dim)`` encoder frames."""
        was_training = self.head.training
        self.head.eval()
        try:
            return self.head.transcribe(feats, mask, self.tokens)
        finally:
            self.head.train(was_training)


def ctc_encoder_fingerprint(encoder, sample_rate):
    """What must match between a ``ctc_asr.yaml`` run and the run using
    its head: the frozen encoder's weights and settings, the sample rate.

    Arguments
    ---------
    encoder : torch.nn.Module
        The frozen encoder.
    sample_rate : int
        Of the audio it reads.

    Returns
    -------
    str
        :func:`~audiollm_lobes.feature_cache.encoder_fingerprint`.

    Example
    -------
    >>> enc = torch.nn.Linear(2, 2)
    >>> ctc_encoder_fingerprint(enc, 16000) == ctc_encoder_fingerprint(
    ...     enc, 8000)
    False
    """
    return encoder_fingerprint(
        encoder, "frames", {"sample_rate": int(sample_rate)}
    )


def read_cascade_asr(folder):
    """The record and checkpoint of a ``ctc_asr.yaml`` run folder.

    Arguments
    ---------
    folder : str or Path
        The run folder (``results/Wav2Prompt/ctc_asr/<seed>``).

    Returns
    -------
    tuple
        ``(record dict, trainable.ckpt path)``.

    Raises
    ------
    FileNotFoundError
        Naming ``cascade_asr`` and what is missing.
    """
    folder = Path(folder)
    record_file = folder / CTC_ASR_FILE
    if not record_file.is_file():
        raise FileNotFoundError(
            f"cascade_asr: no {CTC_ASR_FILE} in {folder} (expected the run "
            "folder of a ctc_asr.yaml run)"
        )
    record = json.loads(record_file.read_text(encoding="utf-8"))
    tokens = folder / record["tokens_file"]
    if not tokens.is_file():
        raise FileNotFoundError(f"cascade_asr: {tokens} is missing")
    try:
        checkpoint = find_trainable_checkpoint(folder)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"cascade_asr: {err}") from None
    return record, checkpoint


def load_cascade_asr(folder, encoder, sample_rate, device="cpu"):
    """Loads the CTC head of a ``ctc_asr.yaml`` run for this run's encoder.

    The head is built inside ``torch.random.fork_rng``: loading it leaves
    every random generator as it was.

    Arguments
    ---------
    folder : str or Path
        The ``ctc_asr.yaml`` run folder.
    encoder : torch.nn.Module
        This run's frozen encoder, whose frames the head will read.
    sample_rate : int
        This run's sample rate.
    device : str or torch.device
        Where the head runs.

    Returns
    -------
    CascadeASR
        The head (eval mode, frozen) and its tokenizer.

    Raises
    ------
    ValueError
        When the head was trained on another encoder (or sample rate).
    """
    record, checkpoint = read_cascade_asr(folder)
    found = ctc_encoder_fingerprint(encoder, sample_rate)
    if found != record["encoder_fingerprint"]:
        raise ValueError(
            f"cascade_asr: {folder} was trained on another encoder or "
            f"sample rate (whisper_source {record.get('whisper_source')}, "
            f"sample rate {record.get('sample_rate')}, fingerprint "
            f"{record['encoder_fingerprint']}) than this run's (fingerprint "
            f"{found}); train ctc_asr.yaml with this run's whisper_source"
        )
    tokens = load_char_encoder(
        Path(folder) / record["tokens_file"], record["head"]["vocab_size"]
    )
    with torch.random.fork_rng(devices=[]):
        head = CTCHead(**record["head"])
    TrainableState({"ctc_head": head}).load(checkpoint)
    head.to(device).eval().requires_grad_(False)
    logger.info("cascade ASR: the CTC head of %s (%s)", folder, checkpoint)
    return CascadeASR(head, tokens, str(folder))


def add_ctc_items(dataset, entries, tokens):
    """Adds ``ctc_tokens`` (the transcript's character ids) to a dataset
    and keeps only what the CTC run reads (no LLM prompt items).

    Arguments
    ---------
    dataset : speechbrain.dataio.dataset.DynamicItemDataset
        From :func:`audiollm_lobes.data.datasets.build_datasets`.
    entries : dict
        Its entries (each needs a ``transcript``).
    tokens : speechbrain.dataio.encoder.CTCTextEncoder
        The character tokenizer.

    Returns
    -------
    DynamicItemDataset
        The same dataset.
    """
    missing = [i for i, e in entries.items() if not e.get("transcript")]
    if missing:
        raise ValueError(
            f"{len(missing)} examples lack the field 'transcript' the CTC "
            f"ASR trains on, e.g. {missing[:5]}"
        )

    @sb.utils.data_pipeline.takes("transcript")
    @sb.utils.data_pipeline.provides("ctc_tokens")
    def ctc_pipeline(transcript):
        return torch.LongTensor(tokens.encode_sequence(list(transcript)))

    dataset.add_dynamic_item(ctc_pipeline)
    dataset.set_output_keys(
        ["id", "task", "target", "sig", "audio_key", "ctc_tokens"]
    )
    return dataset


def _make_ctc_tokens(path, texts):
    """Builds and saves the character tokenizer unless ``path`` exists
    (a resumed run keeps its own)."""
    if not Path(path).is_file():
        save_char_encoder(build_char_encoder(texts), path)


def train_ctc_asr(hparams, run_opts):
    """``ctc_asr.yaml``: trains the CTC head, tests its ASR, writes the
    record a Wav2Prompt run's ``cascade_asr`` reads."""
    loaded = getattr(hparams["encoder"], "output_dim", None)
    if loaded is not None and int(hparams["encoder_dim"]) != int(loaded):
        raise ValueError(
            f"hparams declare encoder_dim={hparams['encoder_dim']} but the "
            f"loaded encoder has {loaded}; override --encoder_dim={loaded} "
            "or give a matching checkpoint"
        )
    datasets = build_datasets({**hparams, "llm": None})  # no LLM here
    out_dir = Path(hparams["output_folder"])
    train = datasets["entries"]["train"]
    texts = [entry.get("transcript") or "" for entry in train.values()]
    run_on_main(_make_ctc_tokens, args=[out_dir / CTC_TOKENS_FILE, texts])
    tokens = load_char_encoder(out_dir / CTC_TOKENS_FILE)
    hparams["ctc_tokens"] = tokens
    head = hparams["ctc_head"](vocab_size=len(tokens))
    hparams["modules"]["ctc_head"] = head
    hparams["checkpointer"].add_recoverable(
        "trainable", TrainableState({"ctc_head": head})
    )
    for split in ("train", "valid", "test"):
        add_ctc_items(datasets[split], datasets["entries"][split], tokens)
    record = {
        "head": head.arguments,
        "tokens_file": CTC_TOKENS_FILE,
        "encoder_fingerprint": ctc_encoder_fingerprint(
            hparams["encoder"], hparams.get("sample_rate", 16000)
        ),
        "whisper_source": hparams.get("whisper_source"),
        "sample_rate": int(hparams.get("sample_rate", 16000)),
    }
    run_on_main(write_json, args=[out_dir / CTC_ASR_FILE, record])
    brain = CTCASRBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    n_trainable = count_parameters(brain.modules)
    logger.info("trainable parameters: %d", n_trainable)
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_kwargs(hparams, datasets["train"]),
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    brain.evaluate(
        datasets["test"],
        min_key="loss",
        test_loader_kwargs=hparams["test_dataloader_opts"],
    )
    system = hparams["system_name"]
    summary = {
        "system": system,
        "test": brain.test_summary,
        "train_tasks": list(hparams["tasks"]),
        "max_train_per_task": hparams.get("max_train_per_task"),
        "ctc_labels": len(tokens),
        "trainable_parameters": n_trainable,
    }
    lines = [
        f"system: {system} (the cascade's independent ASR: CTC head, "
        "characters, greedy)",
        f"trainable parameters: {n_trainable:,}",
        "",
        results_table([(system, summary["test"])]),
    ]
    run_on_main(write_summary, args=[hparams["output_folder"], summary, lines])
