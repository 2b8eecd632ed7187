"""The toy BEATs: SpeechBrain's ``BEATs`` at a small size, made and
pretrained offline.

Like the toy Whisper (``toy_whisper``), the toy BEATs is briefly
pretrained on the toy world before the recipes freeze it
(``docs/design.md``, "Toy world"): it learns sound-event classification
(speech being one more class) plus speaking style, from masked-mean-pooled
features, on clips randomly cropped to ``beats_max_seconds``. The heads
are then discarded and the model is saved as ``{"cfg": ..., "model": ...}``
like the released checkpoints, which SpeechBrain's
``BEATs(ckp_path=...)`` loads. Training goes through ``BEATsEncoder``,
the code that serves the model frozen later.

Authors
 * audiollm-lobes developers, 2026
"""

import logging
import random
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiollm_lobes.atomic import save_torch
from audiollm_lobes.toyworld.clips import (
    SAMPLE_RATE,
    collate_audio,
    endless_batches,
    label_index,
    masked_mean,
    progress_bar,
)
from audiollm_lobes.toyworld.training import ENCODER_LR_FLOOR, warmup_cosine

logger = logging.getLogger(__name__)


def toy_beats_config(
    embed_dim=64,
    encoder_embed_dim=64,
    layers=2,
    heads=4,
    ffn_dim=128,
    conv_pos=32,
    conv_pos_groups=16,
):
    """The plain-dict BEATs config of a toy model.

    It mirrors the released BEATs checkpoints (post-LayerNorm with deep
    norm, gated relative position bias) at a small size, without dropout.

    Arguments
    ---------
    embed_dim : int
        Patch embedding size.
    encoder_embed_dim : int
        Transformer width (the output size).
    layers : int
        Transformer layers.
    heads : int
        Attention heads.
    ffn_dim : int
        Feed-forward width.
    conv_pos : int
        Kernel of the convolutional positional embedding.
    conv_pos_groups : int
        Its groups (must divide ``encoder_embed_dim``).

    Returns
    -------
    dict
        Plain Python types only (``torch.load`` with ``weights_only``).

    Example
    -------
    >>> toy_beats_config()["encoder_embed_dim"]
    64
    """
    if encoder_embed_dim % heads or encoder_embed_dim % conv_pos_groups:
        raise ValueError(
            f"toy BEATs: heads={heads} and conv_pos_groups={conv_pos_groups} "
            f"must divide encoder_embed_dim={encoder_embed_dim}"
        )
    return {
        "input_patch_size": 16,
        "embed_dim": int(embed_dim),
        "conv_bias": False,
        "encoder_layers": int(layers),
        "encoder_embed_dim": int(encoder_embed_dim),
        "encoder_ffn_embed_dim": int(ffn_dim),
        "encoder_attention_heads": int(heads),
        "activation_fn": "gelu",
        "layer_wise_gradient_decay_ratio": 1.0,
        "layer_norm_first": False,
        "deep_norm": True,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0,
        "dropout_input": 0.0,
        "conv_pos": int(conv_pos),
        "conv_pos_groups": int(conv_pos_groups),
        "relative_position_embedding": True,
        "num_buckets": 320,
        "max_distance": 800,
        "gru_rel_pos": True,
        "finetuned_model": False,
        "predictor_dropout": 0.0,
        "predictor_class": 527,
    }


def make_toy_beats(
    out_path,
    embed_dim=64,
    encoder_embed_dim=64,
    layers=2,
    heads=4,
    ffn_dim=128,
    conv_pos=32,
    conv_pos_groups=16,
    seed=0,
):
    """Creates a small randomly initialised BEATs checkpoint file.

    Arguments
    ---------
    out_path : str or Path
        File to write (parent folders are created).
    embed_dim : int
        Patch embedding size.
    encoder_embed_dim : int
        Transformer width.
    layers : int
        Transformer layers.
    heads : int
        Attention heads.
    ffn_dim : int
        Feed-forward width.
    conv_pos : int
        Kernel of the convolutional positional embedding.
    conv_pos_groups : int
        Its groups.
    seed : int
        Seed of the initialisation.

    Returns
    -------
    pathlib.Path
        ``out_path``, holding ``{"cfg": dict, "model": state_dict}`` as
        SpeechBrain's ``BEATs(ckp_path=...)`` loads.

    Example
    -------
    >>> import os, tempfile
    >>> path = make_toy_beats(os.path.join(tempfile.mkdtemp(), "b.pt"),
    ...                       embed_dim=32, encoder_embed_dim=32, layers=1)
    >>> sorted(torch.load(path))
    ['cfg', 'model']
    """
    from speechbrain.lobes.models.beats import BEATs

    cfg = toy_beats_config(
        embed_dim,
        encoder_embed_dim,
        layers,
        heads,
        ffn_dim,
        conv_pos,
        conv_pos_groups,
    )

    class _FreshBEATs(BEATs):
        """BEATs built from a cfg-only file: skips loading weights."""

        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_only = Path(tmp) / "cfg.pt"
        torch.save({"cfg": cfg, "model": {}}, cfg_only)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _FreshBEATs(ckp_path=str(cfg_only), freeze=False)
    save_torch({"cfg": cfg, "model": model.state_dict()}, out_path)
    return out_path


def _random_crop(audio, max_samples, rng):
    if len(audio) <= max_samples:
        return audio
    start = rng.randrange(len(audio) - max_samples + 1)
    return audio[start : start + max_samples]


def pretrain_toy_beats(
    train_items, valid_items, init_path, cfg, seed=0, progress=True
):
    """Pretrains a toy BEATs on sound events (speech is one class) + style.

    Arguments
    ---------
    train_items : list of dict
        Clips with ``audio`` and ``event`` (sound clips) or ``style``
        (speech clips, whose event class is ``"speech"``).
    valid_items : list of dict
        Held-out clips for the reported figures.
    init_path : str or Path
        A file made by ``make_toy_beats``.
    cfg : dict
        A ``PROFILES`` entry (``beats_steps``, ``batch_size``, ``lr``,
        ``warmup_steps``, optional ``beats_max_seconds``: training clips
        longer than this are randomly cropped).
    seed : int
        Seed of batching and heads.
    progress : bool
        Show a progress bar.

    Returns
    -------
    tuple
        ``(encoder, stats)``: the trained ``BEATsEncoder`` and figures.

    Example
    -------
    >>> import os, tempfile
    >>> path = make_toy_beats(os.path.join(tempfile.mkdtemp(), "b.pt"),
    ...                       embed_dim=32, encoder_embed_dim=32, layers=1)
    >>> gen = torch.Generator().manual_seed(0)
    >>> items = [
    ...     {"audio": torch.randn(8000, generator=gen), "event": "beep"},
    ...     {"audio": torch.randn(8000, generator=gen), "style": "sad"},
    ... ]
    >>> cfg = {"beats_steps": 2, "batch_size": 2, "lr": 1e-3,
    ...        "warmup_steps": 1, "beats_max_seconds": 0.25}
    >>> encoder, stats = pretrain_toy_beats(
    ...     items, items, path, cfg, progress=False
    ... )
    >>> stats["steps"], 0.0 <= stats["valid_event_acc"] <= 1.0
    (2, True)
    """
    from audiollm_lobes.encoders import BEATsEncoder

    torch.manual_seed(seed)
    rng = random.Random(seed)
    encoder = BEATsEncoder(init_path, freeze=False)

    def event_of(item):
        return item.get("event", "speech")

    events = label_index(event_of(it) for it in train_items)
    styles = label_index(it["style"] for it in train_items if "style" in it)
    event_head = nn.Linear(encoder.output_dim, len(events))
    style_head = nn.Linear(encoder.output_dim, max(1, len(styles)))
    params = (
        list(encoder.parameters())
        + list(event_head.parameters())
        + list(style_head.parameters())
    )
    steps = int(cfg["beats_steps"])
    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, warmup_cosine(int(cfg["warmup_steps"]), steps, ENCODER_LR_FLOOR)
    )

    max_samples = int(float(cfg.get("beats_max_seconds", 0)) * SAMPLE_RATE)

    def make_batch(items, index, crop=False):
        audios = [items[i]["audio"] for i in index]
        if crop and max_samples > 0:
            audios = [_random_crop(a, max_samples, rng) for a in audios]
        wav, lens = collate_audio(audios, 2800)
        ev = [events.get(event_of(items[i]), -100) for i in index]
        st = [styles.get(items[i].get("style"), -100) for i in index]
        return wav, lens, torch.tensor(ev), torch.tensor(st)

    def losses(wav, lens, ev, st):
        feats, mask = encoder(wav, lens)
        pooled = masked_mean(feats, mask)
        ev_logits = event_head(pooled)
        loss = F.cross_entropy(ev_logits, ev, ignore_index=-100)
        st_logits = style_head(pooled)
        if bool((st >= 0).any()):
            loss = loss + F.cross_entropy(st_logits, st, ignore_index=-100)
        return loss, ev_logits, st_logits

    lengths = [len(it["audio"]) for it in train_items]
    batches = endless_batches(lengths, int(cfg["batch_size"]), rng)
    encoder.train()
    start = time.time()
    running = None
    for step in progress_bar(range(steps), steps, "toy BEATs", progress):
        batch = make_batch(train_items, next(batches), crop=True)
        loss, _, _ = losses(*batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        value = float(loss.detach())
        running = value if running is None else 0.95 * running + 0.05 * value
        if (step + 1) % 50 == 0:
            logger.info("toy BEATs step %d: loss %.3f", step + 1, running)
    stats = {
        "train_seconds": time.time() - start,
        "steps": steps,
        "train_loss": running,
    }
    encoder.eval()
    if valid_items:
        hits = {"event": [0, 0], "style": [0, 0]}
        with torch.no_grad():
            size = int(cfg["batch_size"])
            for b in range(0, len(valid_items), size):
                index = list(range(b, min(len(valid_items), b + size)))
                wav, lens, ev, st = make_batch(valid_items, index)
                _, ev_logits, st_logits = losses(wav, lens, ev, st)
                for name, logits, labels in (
                    ("event", ev_logits, ev),
                    ("style", st_logits, st),
                ):
                    keep = labels >= 0
                    pred = logits.argmax(1)
                    hits[name][0] += int((pred[keep] == labels[keep]).sum())
                    hits[name][1] += int(keep.sum())
        for name, (good, count) in hits.items():
            if count:
                stats[f"valid_{name}_acc"] = good / count
    return encoder, stats


def save_toy_beats(encoder, init_path, out_path):
    """Saves a pretrained toy BEATs as a ``{"cfg", "model"}`` checkpoint.

    Arguments
    ---------
    encoder : audiollm_lobes.encoders.BEATsEncoder
        The pretrained encoder (from ``pretrain_toy_beats``).
    init_path : str or Path
        The checkpoint it was initialised from (``make_toy_beats``): its
        ``cfg`` is kept.
    out_path : str or Path
        File to write, atomically (parent folders are created).

    Returns
    -------
    pathlib.Path
        ``out_path``, loadable by ``BEATs(ckp_path=...)`` and by
        ``BEATsEncoder``.

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.encoders import BEATsEncoder
    >>> root = Path(tempfile.mkdtemp())
    >>> init = make_toy_beats(root / "init.pt", embed_dim=32,
    ...                       encoder_embed_dim=32, layers=1)
    >>> encoder = BEATsEncoder(init, freeze=False)
    >>> out = save_toy_beats(encoder, init, root / "beats" / "beats.pt")
    >>> torch.load(out)["cfg"] == torch.load(init)["cfg"]
    True
    """
    cfg = torch.load(init_path)["cfg"]
    state = {
        k: v.detach().clone() for k, v in encoder.model.state_dict().items()
    }
    return save_torch({"cfg": cfg, "model": state}, out_path)
