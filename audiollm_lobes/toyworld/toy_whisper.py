"""The toy Whisper: a small ``WhisperModel``, made and pretrained offline.

A randomly initialised frozen Whisper-style encoder outputs little but its
positional embedding (``docs/design.md``, "Toy world"), so the toy
Whisper is briefly pretrained on the toy world before the recipes freeze
it, as a real encoder is frozen after its own pretraining. It has the real
80-bin log-mel and convolution front end, and its encoder learns CTC on
character transcripts plus speaker, style and sound-event classification
from masked-mean-pooled features. The heads are then discarded and the
model is saved as a HF folder with its ``WhisperFeatureExtractor``.
Training goes through ``WhisperEncoder``, the code that serves the model
frozen later.

Authors
 * audiollm-lobes developers, 2026
"""

import logging
import random
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiollm_lobes.toyworld.clips import (
    collate_audio,
    endless_batches,
    label_index,
    masked_mean,
    progress_bar,
)
from audiollm_lobes.toyworld.training import ENCODER_LR_FLOOR, warmup_cosine

logger = logging.getLogger(__name__)


def make_toy_whisper(
    out_dir, d_model=64, layers=2, heads=4, ffn_dim=None, seed=0
):
    """Creates a small randomly initialised Whisper checkpoint folder.

    The encoder has the real front end (80 mel bins, two convolutions,
    ``max_source_positions=1500`` sinusoidal positions); the decoder is a
    single small layer with an 8-token vocabulary, kept only so that the
    folder is a regular ``WhisperModel`` checkpoint.

    Arguments
    ---------
    out_dir : str or Path
        Folder to write (created; files inside are overwritten).
    d_model : int
        Encoder width.
    layers : int
        Number of encoder layers.
    heads : int
        Attention heads (must divide ``d_model``).
    ffn_dim : int, optional
        Feed-forward width; default ``4 * d_model``.
    seed : int
        Seed of the initialisation.

    Returns
    -------
    pathlib.Path
        ``out_dir``, loadable by ``WhisperModel.from_pretrained`` and by
        ``audiollm_lobes.encoders.WhisperEncoder``.

    Example
    -------
    >>> import tempfile
    >>> from transformers import WhisperModel
    >>> folder = make_toy_whisper(tempfile.mkdtemp(), d_model=32, layers=1)
    >>> WhisperModel.from_pretrained(folder).config.d_model
    32
    """
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    if d_model % heads:
        raise ValueError(
            f"make_toy_whisper: heads={heads} must divide d_model={d_model}"
        )
    config = WhisperConfig(
        vocab_size=8,
        num_mel_bins=80,
        d_model=d_model,
        encoder_layers=layers,
        encoder_attention_heads=heads,
        encoder_ffn_dim=ffn_dim or 4 * d_model,
        decoder_layers=1,
        decoder_attention_heads=heads,
        decoder_ffn_dim=d_model,
        max_source_positions=1500,
        max_target_positions=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
        suppress_tokens=[],
        begin_suppress_tokens=[],
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WhisperModel(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out_dir)
    return out_dir


class _WhisperHeads(nn.Module):
    """CTC and utterance-classification heads of the toy Whisper."""

    def __init__(self, dim, n_chars, n_speakers, n_styles, n_events):
        super().__init__()
        self.ctc = nn.Linear(dim, n_chars + 1)
        self.speaker = nn.Linear(dim, n_speakers)
        self.style = nn.Linear(dim, n_styles)
        self.event = nn.Linear(dim, max(1, n_events))


def _whisper_losses(heads, feats, mask, batch):
    log_probs = heads.ctc(feats).log_softmax(-1)
    frames = mask.sum(1)
    ctc = F.ctc_loss(
        log_probs.transpose(0, 1),
        batch["targets"],
        frames,
        batch["target_lens"],
        blank=0,
        reduction="none",
        zero_infinity=True,
    )
    ctc = (ctc / batch["target_lens"].clamp(min=1)).mean()
    pooled = masked_mean(feats, mask)
    loss = ctc
    parts = {"ctc": float(ctc.detach())}
    for name in ("speaker", "style", "event"):
        labels = batch[name]
        if bool((labels >= 0).any()):
            ce = F.cross_entropy(
                getattr(heads, name)(pooled), labels, ignore_index=-100
            )
            loss = loss + ce
            parts[name] = float(ce.detach())
    return loss, parts


def _whisper_batch(items, index, vocabs):
    chars, speakers, styles, events = vocabs
    wav, lens = collate_audio([items[i]["audio"] for i in index])
    targets, target_lens = [], []
    labels = {"speaker": [], "style": [], "event": []}
    for i in index:
        item = items[i]
        text = [chars[c] + 1 for c in item.get("transcript", "") if c in chars]
        targets.extend(text)
        target_lens.append(len(text))
        labels["speaker"].append(speakers.get(item.get("speaker"), -100))
        labels["style"].append(styles.get(item.get("style"), -100))
        labels["event"].append(events.get(item.get("event"), -100))
    batch = {
        "wav": wav,
        "lens": lens,
        "targets": torch.tensor(targets, dtype=torch.long),
        "target_lens": torch.tensor(target_lens, dtype=torch.long),
    }
    for name, values in labels.items():
        batch[name] = torch.tensor(values, dtype=torch.long)
    return batch


def _greedy_ctc(log_probs, frames, alphabet):
    best = log_probs.argmax(-1)
    out = []
    for row, n in zip(best.tolist(), frames.tolist()):
        text, prev = [], 0
        for idx in row[:n]:
            if idx != prev and idx != 0:
                text.append(alphabet[idx - 1])
            prev = idx
        out.append("".join(text))
    return out


def _edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(
                min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            )
        prev = cur
    return prev[-1]


def _evaluate_whisper(encoder, heads, items, vocabs, batch_size):
    """CER and head accuracies on held-out items."""
    chars = vocabs[0]
    alphabet = sorted(chars, key=chars.get)
    encoder.eval()
    errors, total = 0, 0
    hits = {"speaker": [0, 0], "style": [0, 0], "event": [0, 0]}
    with torch.no_grad():
        order = sorted(range(len(items)), key=lambda i: len(items[i]["audio"]))
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = _whisper_batch(items, index, vocabs)
            feats, mask = encoder(batch["wav"], batch["lens"])
            log_probs = heads.ctc(feats).log_softmax(-1)
            hyps = _greedy_ctc(log_probs, mask.sum(1), alphabet)
            for i, hyp in zip(index, hyps):
                ref = items[i].get("transcript")
                if ref:
                    errors += _edit_distance(hyp, ref)
                    total += len(ref)
            pooled = masked_mean(feats, mask)
            for name in hits:
                labels = batch[name]
                keep = labels >= 0
                pred = getattr(heads, name)(pooled).argmax(1)
                hits[name][0] += int((pred[keep] == labels[keep]).sum())
                hits[name][1] += int(keep.sum())
    encoder.train()
    stats = {"valid_cer": errors / max(1, total)}
    for name, (good, count) in hits.items():
        if count:
            stats[f"valid_{name}_acc"] = good / count
    return stats


def pretrain_toy_whisper(
    train_items, valid_items, init_dir, cfg, seed=0, progress=True
):
    """Pretrains a toy Whisper encoder in place of its folder's weights.

    Arguments
    ---------
    train_items : list of dict
        Clips with ``audio`` and any of ``transcript``, ``speaker``,
        ``style``, ``event`` (missing labels are ignored by the losses).
    valid_items : list of dict
        Held-out clips for the reported figures.
    init_dir : str or Path
        A folder made by ``make_toy_whisper``.
    cfg : dict
        A ``PROFILES`` entry (``whisper_steps``, ``batch_size``, ``lr``,
        ``warmup_steps``).
    seed : int
        Seed of batching and heads.
    progress : bool
        Show a progress bar.

    Returns
    -------
    tuple
        ``(encoder, stats)``: the trained ``WhisperEncoder`` (unfrozen)
        and a dict of figures.

    Example
    -------
    >>> import tempfile
    >>> folder = make_toy_whisper(tempfile.mkdtemp(), d_model=32, layers=1)
    >>> gen = torch.Generator().manual_seed(0)
    >>> items = [
    ...     {"audio": torch.randn(8000, generator=gen), "transcript": text,
    ...      "speaker": speaker, "style": "calm"}
    ...     for text, speaker in (("ab", "x"), ("ba", "y"))
    ... ]
    >>> cfg = {"whisper_steps": 2, "batch_size": 2, "lr": 1e-3,
    ...        "warmup_steps": 1}
    >>> encoder, stats = pretrain_toy_whisper(
    ...     items, items, folder, cfg, progress=False
    ... )
    >>> stats["steps"], 0.0 <= stats["valid_speaker_acc"] <= 1.0
    (2, True)
    """
    from audiollm_lobes.encoders import WhisperEncoder

    torch.manual_seed(seed)
    rng = random.Random(seed)
    encoder = WhisperEncoder(init_dir, freeze=False)
    chars = label_index(
        c for it in train_items for c in it.get("transcript", "")
    )
    speakers = label_index(
        it["speaker"] for it in train_items if "speaker" in it
    )
    styles = label_index(it["style"] for it in train_items if "style" in it)
    events = label_index(it["event"] for it in train_items if "event" in it)
    vocabs = (chars, speakers, styles, events)
    heads = _WhisperHeads(
        encoder.output_dim, len(chars), len(speakers), len(styles), len(events)
    )
    params = list(encoder.parameters()) + list(heads.parameters())
    params = [p for p in params if p.requires_grad]
    steps = int(cfg["whisper_steps"])
    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, warmup_cosine(int(cfg["warmup_steps"]), steps, ENCODER_LR_FLOOR)
    )
    lengths = [len(it["audio"]) for it in train_items]
    batches = endless_batches(lengths, int(cfg["batch_size"]), rng)
    encoder.train()
    start = time.time()
    running = {}
    for step in progress_bar(range(steps), steps, "toy whisper", progress):
        batch = _whisper_batch(train_items, next(batches), vocabs)
        feats, mask = encoder(batch["wav"], batch["lens"])
        loss, parts = _whisper_losses(heads, feats, mask, batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        for key, value in parts.items():
            running[key] = 0.95 * running.get(key, value) + 0.05 * value
        if (step + 1) % 50 == 0:
            logger.info(
                "toy whisper step %d: %s",
                step + 1,
                {k: round(v, 3) for k, v in running.items()},
            )
    stats = {"train_seconds": time.time() - start, "steps": steps}
    stats.update({f"train_{k}_loss": v for k, v in running.items()})
    if valid_items:
        stats.update(
            _evaluate_whisper(
                encoder, heads, valid_items, vocabs, int(cfg["batch_size"])
            )
        )
    encoder.eval()
    return encoder, stats


def save_toy_whisper(encoder, init_dir, out_dir):
    """Saves a pretrained toy Whisper encoder as a ``WhisperModel`` folder.

    The decoder and the feature extractor are those of ``init_dir``; the
    encoder weights are ``encoder``'s.

    Arguments
    ---------
    encoder : audiollm_lobes.encoders.WhisperEncoder
        The pretrained encoder (from ``pretrain_toy_whisper``).
    init_dir : str or Path
        The folder it was initialised from (``make_toy_whisper``).
    out_dir : str or Path
        Folder to write (created; files inside are overwritten).

    Returns
    -------
    pathlib.Path
        ``out_dir``, loadable by ``WhisperModel.from_pretrained`` and by
        ``WhisperEncoder``.

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.encoders import WhisperEncoder
    >>> root = Path(tempfile.mkdtemp())
    >>> init = make_toy_whisper(root / "init", d_model=32, layers=1)
    >>> encoder = WhisperEncoder(init, freeze=False)
    >>> with torch.no_grad():
    ...     _ = encoder.encoder.conv1.bias.fill_(0.5)
    >>> saved = WhisperEncoder(save_toy_whisper(encoder, init, root / "out"))
    >>> saved.encoder.conv1.bias.unique().tolist()
    [0.5]
    """
    from transformers import WhisperModel

    model = WhisperModel.from_pretrained(init_dir)
    model.encoder.load_state_dict(encoder.encoder.state_dict())
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    extractor = Path(init_dir) / "preprocessor_config.json"
    if extractor.is_file():
        shutil.copy(extractor, out_dir / extractor.name)
    return out_dir
