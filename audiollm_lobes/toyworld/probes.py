"""Linear probes on frozen toy-encoder features.

How well the frozen features of an encoder separate labels (speaker,
style, sound event) with a linear classifier, on held-out clips: the
check that the toy encoders' pretraining worked
(``python -m audiollm_lobes.toyworld --probe``, and the unit tests).

Authors
 * audiollm-lobes developers, 2026
"""

from pathlib import Path

import torch
import torch.nn.functional as F

from audiollm_lobes.toyworld.clips import (
    collate_audio,
    load_sound_events,
    load_speech,
    masked_mean,
)


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
    >>> from audiollm_lobes.toyworld.backbones import build_backbones
    >>> from audiollm_lobes.toyworld.world import build_world
    >>> world = build_world("tiny", progress=False)  # doctest: +SKIP
    >>> backbones = build_backbones(world, "tiny")  # doctest: +SKIP
    >>> report = probe_report(world, backbones)  # doctest: +SKIP
    >>> sorted(report)[:2]  # doctest: +SKIP
    ['sound event (beats)', 'sound event (whisper)']
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
