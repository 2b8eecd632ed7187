"""Labelled clips of a toy world and their batches, for the toy encoders.

What the toy Whisper (``toy_whisper``), the toy BEATs (``toy_beats``) and
the probes (``probes``) share: reading the speech and sound-event clips of
a built toy world with their labels (through the toolkit's own manifest
and audio readers, :mod:`audiollm_lobes.data`), padding clips into a
batch, pooling frame features, and the random batch order of the
pretraining.

Authors
 * audiollm-lobes developers, 2026
"""

import random

import torch

from audiollm_lobes.data.audio import read_wav
from audiollm_lobes.data.manifest import load_manifest
from audiollm_lobes.toyworld.training import length_batches
from audiollm_lobes.toyworld.world import manifest_path

SAMPLE_RATE = 16000

#: Batches per length-sorted chunk in the encoders' batch order.
BATCH_POOL = 20


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
        Entries (with ``id`` added, sorted by id) whose ``{data_root}``
        placeholders are replaced by ``world_root``.

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
    path = manifest_path(world_root, split, task)
    if not path.is_file():
        raise FileNotFoundError(
            f"toy encoders: manifest {str(path)!r} not found (build the toy "
            "world first with audiollm_lobes.toyworld.world.build_world)"
        )
    data = load_manifest(path, {"data_root": str(world_root)})
    items = []
    for key in sorted(data):
        entry = dict(data[key])
        if "wav" not in entry:
            raise ValueError(f"{path}: entry {key!r} has no 'wav' field")
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
    >>> from audiollm_lobes.toyworld.world import build_world
    >>> world = build_world("tiny", progress=False)  # doctest: +SKIP
    >>> clip = load_speech(world, "valid", limit=1)[0]  # doctest: +SKIP
    >>> sorted(clip), clip["audio"].dtype  # doctest: +SKIP
    (['audio', 'id', 'speaker', 'style', 'transcript'], torch.float32)
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
                "audio": read_wav(item["wav"], SAMPLE_RATE),
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
    >>> from audiollm_lobes.toyworld.world import build_world
    >>> world = build_world("tiny", progress=False)  # doctest: +SKIP
    >>> clip = load_sound_events(world, "valid")[0]  # doctest: +SKIP
    >>> sorted(clip)  # doctest: +SKIP
    ['audio', 'event', 'id']
    """
    items = load_manifest_items(world_root, split, "sound_event")
    return [
        {
            "id": item["id"],
            "audio": read_wav(item["wav"], SAMPLE_RATE),
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


def label_index(values):
    """Maps each distinct label to its rank in sorted order.

    Arguments
    ---------
    values : iterable
        Labels (sortable, hashable).

    Returns
    -------
    dict
        ``{label: index}``.

    Example
    -------
    >>> label_index(["cat", "ant", "cat"])
    {'ant': 0, 'cat': 1}
    """
    return {v: i for i, v in enumerate(sorted(set(values)))}


def endless_batches(lengths, batch_size, rng):
    """Epoch after epoch of ``length_batches`` (pools of 20 batches).

    Arguments
    ---------
    lengths : list of int
        The length of each clip.
    batch_size : int
        Clips per batch.
    rng : random.Random
        Source of the batch order.

    Yields
    ------
    list of int
        The indices of one batch.

    Example
    -------
    >>> batches = endless_batches([3, 1, 2], 2, random.Random(0))
    >>> sorted(i for _ in range(2) for i in next(batches))
    [0, 1, 2]
    """
    while True:
        yield from length_batches(lengths, batch_size, rng, BATCH_POOL)


def progress_bar(iterable, total, desc, enabled):
    """Wraps ``iterable`` in a tqdm bar when ``enabled``.

    Arguments
    ---------
    iterable : iterable
        What to iterate.
    total : int
        Its length.
    desc : str
        The bar's label.
    enabled : bool
        Without it, ``iterable`` is returned as it is.

    Returns
    -------
    iterable
        ``iterable`` or a tqdm bar over it.

    Example
    -------
    >>> list(progress_bar(range(3), 3, "steps", enabled=False))
    [0, 1, 2]
    """
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)
