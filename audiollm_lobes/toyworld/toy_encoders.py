"""Toy Whisper-style and BEATs-style encoders, made and pretrained offline.

A randomly initialised frozen encoder outputs little but its positional
embedding (DESIGN §6), so the toy encoders are briefly pretrained on the
toy world before the recipes freeze them, as real encoders are frozen
after their own pretraining:

* the toy Whisper (a small ``WhisperModel`` with the real 80-bin log-mel
  and convolution front end) learns CTC on character transcripts plus
  speaker, style and sound-event classification from masked-mean-pooled
  features;
* the toy BEATs (SpeechBrain's ``BEATs`` with a small config) learns
  sound-event classification (speech being one more class) plus style.

Only the encoders are kept (the heads are discarded), saved in the real
formats: ``<out_dir>/whisper/`` (a HF folder with the feature extractor)
and ``<out_dir>/beats/beats.pt`` (``{"cfg": ..., "model": ...}``). Both are
trained through ``WhisperEncoder`` / ``BEATsEncoder``, the same code that
serves them frozen later.

Authors
 * audiollm-lobes developers, 2026
"""

import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000

#: Architecture and training budget of the toy encoders per world profile.
PROFILES = {
    "tiny": {
        "whisper": {"d_model": 64, "layers": 2, "heads": 4, "ffn_dim": 256},
        "beats": {
            "embed_dim": 64,
            "encoder_embed_dim": 64,
            "layers": 2,
            "heads": 4,
            "ffn_dim": 128,
            "conv_pos": 32,
            "conv_pos_groups": 16,
        },
        "whisper_steps": 300,
        "beats_steps": 250,
        "batch_size": 8,
        "lr": 2e-3,
        "warmup_steps": 30,
        "beats_speech_items": 200,
        "beats_max_seconds": 1.5,
    },
    "small": {
        "whisper": {"d_model": 128, "layers": 3, "heads": 4, "ffn_dim": 512},
        "beats": {
            "embed_dim": 128,
            "encoder_embed_dim": 128,
            "layers": 2,
            "heads": 4,
            "ffn_dim": 256,
            "conv_pos": 64,
            "conv_pos_groups": 16,
        },
        "whisper_steps": 3000,
        "beats_steps": 400,
        "batch_size": 12,
        "lr": 2e-3,
        "warmup_steps": 60,
        "beats_speech_items": 600,
        "beats_max_seconds": 1.5,
    },
}


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
    _atomic_torch_save({"cfg": cfg, "model": model.state_dict()}, out_path)
    return out_path


def _atomic_torch_save(obj, path):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_replace_dir(src, dst):
    """Moves folder ``src`` to ``dst``, replacing any old ``dst``."""
    src, dst = Path(src), Path(dst)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


def read_wav(path):
    """Reads a 16 kHz mono wav file with soundfile.

    Arguments
    ---------
    path : str or Path
        The file.

    Returns
    -------
    torch.Tensor
        ``(samples,)`` float32.

    Example
    -------
    >>> import os, tempfile, soundfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> soundfile.write(path, [0.0] * 160, 16000)
    >>> read_wav(path).shape
    torch.Size([160])
    """
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32")
    except Exception as err:  # soundfile raises several error types
        raise OSError(f"cannot read audio file {str(path)!r}: {err}") from err
    if rate != SAMPLE_RATE:
        raise ValueError(
            f"audio file {str(path)!r} has sample rate {rate}; expected "
            f"{SAMPLE_RATE}"
        )
    if data.ndim != 1:
        raise ValueError(
            f"audio file {str(path)!r} has {data.shape[1]} channels; "
            "expected mono"
        )
    return torch.from_numpy(data)


def load_manifest_items(world_root, split, task):
    """Reads ``<world_root>/manifests/<split>/<task>.json``.

    Arguments
    ---------
    world_root : str or Path
        The toy world folder.
    split : str
        ``train``, ``valid`` or ``test``.
    task : str
        Task name, e.g. ``asr``.

    Returns
    -------
    list of dict
        Entries (with ``id`` added, sorted by id) whose ``wav`` has
        ``{data_root}`` replaced by ``world_root``.

    Example
    -------
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "manifests", "train"))
    >>> with open(os.path.join(root, "manifests", "train", "asr.json"),
    ...           "w") as f:
    ...     _ = f.write('{"u1": {"wav": "{data_root}/a.wav"}}')
    >>> load_manifest_items(root, "train", "asr")[0]["wav"] == root + "/a.wav"
    True
    """
    path = Path(world_root) / "manifests" / split / f"{task}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"toy encoders: manifest {str(path)!r} not found (build the toy "
            "world first with audiollm_lobes.toyworld.world.build_world)"
        )
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    items = []
    for key in sorted(data):
        entry = dict(data[key])
        if "wav" not in entry:
            raise ValueError(f"{path}: entry {key!r} has no 'wav' field")
        entry["wav"] = entry["wav"].replace("{data_root}", str(world_root))
        entry["id"] = key
        items.append(entry)
    return items


def load_speech(world_root, split, limit=None, seed=0):
    """Speech utterances of a split (from ``asr.json``) with their labels.

    Arguments
    ---------
    world_root : str or Path
        The toy world folder.
    split : str
        ``train``, ``valid`` or ``test``.
    limit : int, optional
        Keep at most this many (a seeded random subset).
    seed : int
        Seed of the subset.

    Returns
    -------
    list of dict
        ``{"id", "audio" (samples,), "transcript", "speaker", "style"}``.

    Example
    -------
    >>> load_speech  # doctest: +ELLIPSIS
    <function load_speech at ...>
    """
    items = load_manifest_items(world_root, split, "asr")
    if limit is not None and len(items) > limit:
        items = sorted(random.Random(seed).sample(items, limit), key=_by_id)
    out = []
    for item in items:
        for field in ("transcript", "speaker", "style"):
            if field not in item:
                raise ValueError(
                    f"asr manifest of split {split!r}: entry {item['id']!r} "
                    f"has no {field!r} field"
                )
        out.append(
            {
                "id": item["id"],
                "audio": read_wav(item["wav"]),
                "transcript": item["transcript"],
                "speaker": str(item["speaker"]),
                "style": str(item["style"]),
            }
        )
    return out


def load_sound_events(world_root, split):
    """Single sound-event clips of a split (from ``sound_event.json``).

    Arguments
    ---------
    world_root : str or Path
        The toy world folder.
    split : str
        ``train``, ``valid`` or ``test``.

    Returns
    -------
    list of dict
        ``{"id", "audio" (samples,), "event"}`` (event = the target).

    Example
    -------
    >>> load_sound_events  # doctest: +ELLIPSIS
    <function load_sound_events at ...>
    """
    items = load_manifest_items(world_root, split, "sound_event")
    return [
        {
            "id": item["id"],
            "audio": read_wav(item["wav"]),
            "event": str(item["target"]).strip(),
        }
        for item in items
    ]


def _by_id(item):
    return item["id"]


def collate_audio(audios, min_samples=0):
    """Right-pads clips into a batch with SpeechBrain relative lengths.

    Arguments
    ---------
    audios : list of torch.Tensor
        Clips ``(samples_i,)``.
    min_samples : int
        Pad the batch to at least this many samples.

    Returns
    -------
    tuple
        ``(wav (batch, samples), wav_lens (batch,))``.

    Example
    -------
    >>> wav, lens = collate_audio([torch.ones(4), torch.ones(2)])
    >>> wav.tolist(), lens.tolist()
    ([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]], [1.0, 0.5])
    """
    longest = max(max(len(a) for a in audios), min_samples)
    wav = torch.zeros(len(audios), longest)
    lens = torch.zeros(len(audios))
    for i, audio in enumerate(audios):
        wav[i, : len(audio)] = audio
        lens[i] = len(audio) / longest
    return wav, lens


def masked_mean(feats, mask):
    """Mean over valid frames.

    Arguments
    ---------
    feats : torch.Tensor
        ``(batch, frames, dim)``.
    mask : torch.Tensor
        ``(batch, frames)`` bool.

    Returns
    -------
    torch.Tensor
        ``(batch, dim)``.

    Example
    -------
    >>> feats = torch.tensor([[[1.0], [3.0], [100.0]]])
    >>> masked_mean(feats, torch.tensor([[True, True, False]])).tolist()
    [[2.0]]
    """
    weights = mask.unsqueeze(-1).to(feats.dtype)
    return (feats * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def pooled_features(encoder, audios, batch_size=16):
    """Masked-mean-pooled features of clips, batched by length.

    Arguments
    ---------
    encoder : torch.nn.Module
        Maps ``(wav, wav_lens)`` to ``(feats, mask)``.
    audios : list of torch.Tensor
        Clips ``(samples_i,)``.
    batch_size : int
        Clips per forward pass.

    Returns
    -------
    torch.Tensor
        ``(len(audios), dim)`` in the input order.

    Example
    -------
    >>> def frames(wav, wav_lens):  # one frame per 100 samples
    ...     feats = wav.reshape(wav.shape[0], -1, 100).mean(-1, keepdim=True)
    ...     n = torch.round(wav_lens * feats.shape[1]).long()
    ...     return feats, torch.arange(feats.shape[1])[None] < n[:, None]
    >>> out = pooled_features(frames, [torch.ones(300), 2 * torch.ones(100)])
    >>> out.squeeze(1).tolist()
    [1.0, 2.0]
    """
    order = sorted(range(len(audios)), key=lambda i: len(audios[i]))
    out = [None] * len(audios)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            wav, lens = collate_audio([audios[i] for i in index], 2800)
            feats, mask = encoder(wav, lens)
            pooled = masked_mean(feats, mask)
            for row, i in enumerate(index):
                out[i] = pooled[row]
    return torch.stack(out)


def utterance_variation_ratio(feats, mask):
    """How much features vary between clips relative to over time.

    Over the frames valid in every clip, the variance across clips at a
    fixed frame (averaged over frames and features) is divided by the
    variance over time of the clip-averaged features (the part every clip
    shares, e.g. a positional embedding). A random frozen Whisper-style
    encoder gives about 1e-3 (its output is mostly its positional table);
    an encoder whose output depends on the audio gives around 1 or more.

    Arguments
    ---------
    feats : torch.Tensor
        ``(clips, frames, dim)``.
    mask : torch.Tensor
        ``(clips, frames)`` bool.

    Returns
    -------
    float
        The ratio.

    Example
    -------
    >>> position = torch.arange(4.0)[None, :, None].expand(3, 4, 1)
    >>> clip = torch.tensor([0.0, 1.0, 2.0])[:, None, None]
    >>> mask = torch.ones(3, 4, dtype=torch.bool)
    >>> ratio = utterance_variation_ratio(position + clip, mask)
    >>> round(ratio, 6)  # var([0, 1, 2]) / var([0, 1, 2, 3])
    0.6
    """
    frames = int(mask.sum(1).min())
    if frames < 2 or feats.shape[0] < 2:
        raise ValueError(
            "utterance_variation_ratio: needs at least 2 clips with at "
            f"least 2 common valid frames; got {feats.shape[0]} clips and "
            f"{frames} frames"
        )
    x = feats[:, :frames].double()
    between = x.var(0).mean()
    temporal = x.mean(0).var(0).mean()
    return float(between / temporal.clamp(min=1e-30))


# ----------------------------------------------------------------------------
# Linear probe
# ----------------------------------------------------------------------------


def linear_probe(
    features,
    labels,
    test_features=None,
    test_labels=None,
    test_fraction=0.3,
    weight_decay=1e-3,
    max_iter=100,
    seed=0,
):
    """Accuracy of a logistic-regression probe on frozen features.

    Features are standardised with the training part's statistics, then a
    linear softmax classifier is fitted by full-batch L-BFGS on
    L2-penalised cross-entropy (float64). Without ``test_features`` a
    seeded random split keeps ``test_fraction`` of the items for testing.

    Arguments
    ---------
    features : torch.Tensor
        ``(items, dim)``.
    labels : list or torch.Tensor
        ``items`` class labels (any hashable values).
    test_features : torch.Tensor, optional
        Held-out ``(items_test, dim)``; labels unseen in training count as
        errors.
    test_labels : list or torch.Tensor, optional
        Their labels.
    test_fraction : float
        Fraction held out when no test set is given.
    weight_decay : float
        L2 penalty on the weights.
    max_iter : int
        Most L-BFGS iterations.
    seed : int
        Seed of the split and initialisation.

    Returns
    -------
    dict
        ``train_acc``, ``test_acc``, ``chance`` (majority class of the test
        part), ``classes``, ``n_train``, ``n_test``.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> labels = [i % 2 for i in range(40)]
    >>> feats = torch.randn(40, 3, generator=g)
    >>> feats[:, 0] += 4 * torch.tensor(labels, dtype=torch.float)
    >>> linear_probe(feats, labels)["test_acc"]
    1.0
    """
    features = features.detach().double()
    labels = [_label(v) for v in labels]
    if features.dim() != 2 or features.shape[0] != len(labels):
        raise ValueError(
            f"linear_probe: features must be (items, dim) with one label per "
            f"item; got {tuple(features.shape)} and {len(labels)} labels"
        )
    if test_features is None:
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(labels), generator=gen).tolist()
        n_test = max(1, int(round(test_fraction * len(labels))))
        test_idx, train_idx = perm[:n_test], perm[n_test:]
        test_features = features[test_idx]
        test_labels = [labels[i] for i in test_idx]
        features = features[train_idx]
        labels = [labels[i] for i in train_idx]
    else:
        test_features = test_features.detach().double()
        test_labels = [_label(v) for v in test_labels]
    classes = sorted(set(labels), key=str)
    if len(classes) < 2:
        raise ValueError("linear_probe: the training part has one class only")
    index = {c: i for i, c in enumerate(classes)}
    y = torch.tensor([index[v] for v in labels])
    y_test = torch.tensor([index.get(v, -1) for v in test_labels])
    mean = features.mean(0)
    std = features.std(0).clamp(min=1e-8)
    x = (features - mean) / std
    x_test = (test_features - mean) / std
    gen = torch.Generator().manual_seed(seed)
    weight = (torch.randn(x.shape[1], len(classes), generator=gen) * 0.01).to(
        x.dtype
    )
    weight.requires_grad_(True)
    bias = torch.zeros(len(classes), dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y)
        loss = loss + weight_decay * (weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        train_acc = ((x @ weight + bias).argmax(1) == y).double().mean()
        pred = (x_test @ weight + bias).argmax(1)
        test_acc = (pred == y_test).double().mean()
    counts = {}
    for v in test_labels:
        counts[v] = counts.get(v, 0) + 1
    return {
        "train_acc": float(train_acc),
        "test_acc": float(test_acc),
        "chance": max(counts.values()) / len(test_labels),
        "classes": len(classes),
        "n_train": len(labels),
        "n_test": len(test_labels),
    }


def _label(value):
    return value.item() if torch.is_tensor(value) else value


# ----------------------------------------------------------------------------
# Pretraining
# ----------------------------------------------------------------------------


def _batches(lengths, batch_size, rng):
    """Batches of indices of similar lengths, in random order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 20
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        for b in range(0, len(part), batch_size):
            batches.append(part[b : b + batch_size])
    rng.shuffle(batches)
    return batches


def _random_crop(audio, max_samples, rng):
    if len(audio) <= max_samples:
        return audio
    start = rng.randrange(len(audio) - max_samples + 1)
    return audio[start : start + max_samples]


def _endless_batches(lengths, batch_size, rng):
    while True:
        yield from _batches(lengths, batch_size, rng)


def _lr_lambda(warmup, total):
    def schedule(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return schedule


def _vocab(values):
    return {v: i for i, v in enumerate(sorted(set(values)))}


def _progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


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
    >>> pretrain_toy_whisper  # doctest: +ELLIPSIS
    <function pretrain_toy_whisper at ...>
    """
    from audiollm_lobes.encoders import WhisperEncoder

    torch.manual_seed(seed)
    rng = random.Random(seed)
    encoder = WhisperEncoder(init_dir, freeze=False)
    chars = _vocab(c for it in train_items for c in it.get("transcript", ""))
    speakers = _vocab(it["speaker"] for it in train_items if "speaker" in it)
    styles = _vocab(it["style"] for it in train_items if "style" in it)
    events = _vocab(it["event"] for it in train_items if "event" in it)
    vocabs = (chars, speakers, styles, events)
    heads = _WhisperHeads(
        encoder.output_dim, len(chars), len(speakers), len(styles), len(events)
    )
    params = list(encoder.parameters()) + list(heads.parameters())
    params = [p for p in params if p.requires_grad]
    steps = int(cfg["whisper_steps"])
    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _lr_lambda(int(cfg["warmup_steps"]), steps)
    )
    lengths = [len(it["audio"]) for it in train_items]
    batches = _endless_batches(lengths, int(cfg["batch_size"]), rng)
    encoder.train()
    start = time.time()
    running = {}
    for step in _progress(range(steps), steps, "toy whisper", progress):
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
    >>> pretrain_toy_beats  # doctest: +ELLIPSIS
    <function pretrain_toy_beats at ...>
    """
    from audiollm_lobes.encoders import BEATsEncoder

    torch.manual_seed(seed)
    rng = random.Random(seed)
    encoder = BEATsEncoder(init_path, freeze=False)

    def event_of(item):
        return item.get("event", "speech")

    events = _vocab(event_of(it) for it in train_items)
    styles = _vocab(it["style"] for it in train_items if "style" in it)
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
        opt, _lr_lambda(int(cfg["warmup_steps"]), steps)
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
    batches = _endless_batches(lengths, int(cfg["batch_size"]), rng)
    encoder.train()
    start = time.time()
    running = None
    for step in _progress(range(steps), steps, "toy BEATs", progress):
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


def pretrain_toy_encoders(
    world_root, out_dir, profile_cfg, seed=0, progress=True, num_threads=2
):
    """Makes, pretrains and saves the toy Whisper and BEATs of a toy world.

    Arguments
    ---------
    world_root : str or Path
        A toy world folder (``manifests/<split>/asr.json`` and
        ``sound_event.json`` with their wavs).
    out_dir : str or Path
        Where ``whisper/`` and ``beats/beats.pt`` are written (atomically,
        replacing older ones).
    profile_cfg : dict
        A ``PROFILES`` entry (architecture and training budget).
    seed : int
        Seed of initialisation, batching and subsets.
    progress : bool
        Show progress bars.
    num_threads : int, optional
        Torch threads while training (restored afterwards); None keeps
        the current setting.

    Returns
    -------
    dict
        ``{"whisper": stats, "beats": stats, "seconds": total}`` with
        training losses, held-out CER and head accuracies.

    Example
    -------
    >>> PROFILES["tiny"]["whisper"]["d_model"]
    64
    """
    from transformers import WhisperModel

    start = time.time()
    threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(int(num_threads))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        speech_train = load_speech(world_root, "train")
        speech_valid = load_speech(world_root, "valid")
        sound_train = load_sound_events(world_root, "train")
        sound_valid = load_sound_events(world_root, "valid")
        load_seconds = time.time() - start

        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            tmp = Path(tmp)
            init_dir = make_toy_whisper(
                tmp / "whisper_init", seed=seed, **profile_cfg["whisper"]
            )
            encoder, whisper_stats = pretrain_toy_whisper(
                speech_train + sound_train,
                speech_valid + sound_valid,
                init_dir,
                profile_cfg,
                seed=seed,
                progress=progress,
            )
            model = WhisperModel.from_pretrained(init_dir)
            model.encoder.load_state_dict(encoder.encoder.state_dict())
            staged = tmp / "whisper"
            model.save_pretrained(staged)
            for name in os.listdir(init_dir):
                if name == "preprocessor_config.json":
                    shutil.copy(init_dir / name, staged / name)
            del model, encoder

            init_path = make_toy_beats(
                tmp / "beats_init.pt", seed=seed, **profile_cfg["beats"]
            )
            limit = int(profile_cfg.get("beats_speech_items", 0))
            rng = random.Random(seed)
            speech_part = rng.sample(
                speech_train, min(limit, len(speech_train))
            )
            beats, beats_stats = pretrain_toy_beats(
                sound_train + speech_part,
                sound_valid + speech_valid[: max(1, limit // 4)],
                init_path,
                profile_cfg,
                seed=seed,
                progress=progress,
            )
            cfg = torch.load(init_path)["cfg"]
            state = {
                k: v.detach().clone()
                for k, v in beats.model.state_dict().items()
            }
            _atomic_replace_dir(staged, out_dir / "whisper")
            (out_dir / "beats").mkdir(exist_ok=True)
            _atomic_torch_save(
                {"cfg": cfg, "model": state}, out_dir / "beats" / "beats.pt"
            )
    finally:
        torch.set_num_threads(threads)
    return {
        "whisper": whisper_stats,
        "beats": beats_stats,
        "load_seconds": load_seconds,
        "seconds": time.time() - start,
        "train_items": {
            "speech": len(speech_train),
            "sound_event": len(sound_train),
        },
    }


def probe_report(world_root, backbones_dir):
    """Linear-probe accuracies of the frozen toy encoders of a toy world.

    Probes are fitted on the train clips and scored on the held-out valid +
    test clips: speaker and style from the toy Whisper's pooled features,
    sound event from the toy BEATs' and the toy Whisper's.

    Arguments
    ---------
    world_root : str or Path
        A toy world folder.
    backbones_dir : str or Path
        Its backbones folder (``whisper/``, ``beats/beats.pt``).

    Returns
    -------
    dict
        ``{probe: linear_probe result}`` (``test_acc``, ``classes``, ...).

    Example
    -------
    >>> probe_report  # doctest: +ELLIPSIS
    <function probe_report at ...>
    """
    from audiollm_lobes.encoders import BEATsEncoder, WhisperEncoder

    backbones_dir = Path(backbones_dir)
    whisper = WhisperEncoder(backbones_dir / "whisper")
    beats = BEATsEncoder(backbones_dir / "beats" / "beats.pt")
    speech = {s: load_speech(world_root, s) for s in ("train", "valid", "test")}
    sound = {
        s: load_sound_events(world_root, s) for s in ("train", "valid", "test")
    }

    def probe(encoder, items, field):
        train, test = items["train"], items["valid"] + items["test"]
        return linear_probe(
            pooled_features(encoder, [x["audio"] for x in train]),
            [x[field] for x in train],
            pooled_features(encoder, [x["audio"] for x in test]),
            [x[field] for x in test],
        )

    return {
        "speaker (whisper)": probe(whisper, speech, "speaker"),
        "style (whisper)": probe(whisper, speech, "style"),
        "sound event (beats)": probe(beats, sound, "event"),
        "sound event (whisper)": probe(whisper, sound, "event"),
    }
