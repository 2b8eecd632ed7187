"""In-memory cache of frozen-encoder features, one entry per clip.

A frozen, deterministic encoder gives the same features for a clip at
every epoch, and tasks that share a clip (the ASR and translation entries
of one utterance) share them too. :class:`FeatureCache` keeps each clip's
features on the CPU, unpadded, keyed by the batch's ``audio_key``; a batch
is then re-padded from the cache instead of running the encoder.
:func:`precompute_features` fills it for a whole dataset before training
and stops the dataset from reading audio at all.

Authors
 * audiollm-lobes developers, 2026
"""

import logging

import speechbrain as sb
import torch

logger = logging.getLogger(__name__)


class FeatureCache:
    """Frozen-encoder outputs, computed once per clip.

    Arguments
    ---------
    run : callable
        ``(wavs (batch, samples), rel_lens (batch,)) -> {name: (feats
        (batch, frames, dim), mask (batch, frames))}``; several named
        outputs (e.g. one per encoder stream) are cached together.

    Example
    -------
    >>> from types import SimpleNamespace
    >>> calls = []
    >>> def run(wavs, lens):
    ...     calls.append(len(wavs))
    ...     n = torch.round(lens * wavs.shape[1])
    ...     mask = torch.arange(wavs.shape[1])[None] < n[:, None]
    ...     return {"feats": (wavs[..., None] * 2, mask)}
    >>> cache = FeatureCache(run)
    >>> batch = SimpleNamespace(audio_key=["a", "b"], id=["1", "2"],
    ...     sig=(torch.tensor([[1.0, 2.0], [3.0, 0.0]]),
    ...          torch.tensor([1.0, 0.5])))
    >>> feats, mask = cache.features(batch, "cpu")["feats"]
    >>> feats[..., 0].tolist(), mask.tolist()
    ([[2.0, 4.0], [6.0, 0.0]], [[True, True], [True, False]])
    >>> _ = cache.features(batch, "cpu")  # cached: the encoder is not run
    >>> calls, len(cache)
    ([2], 2)
    """

    def __init__(self, run):
        self.run = run
        self.entries = {}

    def __len__(self):
        return len(self.entries)

    def __contains__(self, key):
        return key in self.entries

    def features(self, batch, device):
        """Features of a batch, encoding only the clips not seen before.

        Clips not seen before are encoded together (cropped to the longest
        of them) under ``no_grad``; every output is kept on the CPU,
        unpadded, and the batch is re-padded from the cache.

        Arguments
        ---------
        batch : PaddedBatch
            With ``audio_key`` and ``id``, and ``sig`` (``(wavs, rel_lens)``)
            unless every clip is cached.
        device : str or torch.device
            Where the padded outputs go.

        Returns
        -------
        dict
            ``{name: (feats (batch, frames, dim), mask (batch, frames))}``,
            right-padded.
        """
        keys = list(batch.audio_key)
        missing = [i for i, k in enumerate(keys) if k not in self.entries]
        if missing:
            if not hasattr(batch, "sig"):
                raise RuntimeError(
                    f"{len(missing)} clip(s) of batch {list(batch.id)[:3]} "
                    f"are not in the feature cache ({keys[missing[0]]!r}) "
                    "and the batch carries no audio ('sig'): the dataset's "
                    "features were not all precomputed"
                )
            wavs, wav_lens = batch.sig
            index = torch.tensor(missing, device=wavs.device)
            sub_lens = wav_lens[index]
            # crop to the longest clip of the sub-batch
            longest = sub_lens.max()
            n_samples = int(torch.ceil(longest * wavs.shape[1]))
            with torch.no_grad():
                outputs = self.run(wavs[index, :n_samples], sub_lens / longest)
            for row, i in enumerate(missing):
                self.entries[keys[i]] = {
                    name: feats[row, : int(mask[row].sum())].detach().cpu()
                    for name, (feats, mask) in outputs.items()
                }
        out = {}
        for name in self.entries[keys[0]]:
            items = [self.entries[k][name] for k in keys]
            lengths = torch.tensor([len(x) for x in items])
            feats = torch.nn.utils.rnn.pad_sequence(items, batch_first=True)
            mask = torch.arange(feats.shape[1])[None] < lengths[:, None]
            out[name] = (feats.to(device), mask.to(device))
        return out


def precompute_features(dataset, encode_batch, context, batch_size=32):
    """Encodes every distinct clip of ``dataset`` once; drops its audio.

    Clips are encoded once each (examples sharing a clip share its
    features), shortest first so that batches hold little padding, under
    ``no_grad`` and ``context`` (e.g. SpeechBrain's ``training_ctx``).
    ``encode_batch`` is expected to fill a :class:`FeatureCache`. The
    dataset's ``sig`` output is then dropped, so later loaders read no
    audio.

    Arguments
    ---------
    dataset : speechbrain.dataio.dataset.DynamicItemDataset
        With ``id``, ``audio_key``, ``duration`` and ``sig``.
    encode_batch : callable
        ``(PaddedBatch) -> None``, e.g. a Brain's ``encode_audio`` on a
        batch moved to its device.
    context : contextlib.AbstractContextManager
        Precision context of the stage.
    batch_size : int
        Clips per encoder pass.

    Returns
    -------
    int
        Number of clips encoded (0 when the dataset was already done).
    """
    outputs = list(dataset.pipeline.output_mapping)
    if "sig" not in outputs:
        return 0  # already precomputed
    with dataset.output_keys_as(["id", "audio_key"]):
        rows = [dataset[i] for i in range(len(dataset))]
    first = {}
    for row in rows:
        first.setdefault(row["audio_key"], row["id"])
    keep = set(first.values())
    todo = dataset.filtered_sorted(
        key_test={"id": lambda eid: eid in keep}, sort_key="duration"
    )
    loader = sb.dataio.dataloader.make_dataloader(todo, batch_size=batch_size)
    with torch.no_grad(), context:
        for batch in loader:
            encode_batch(batch)
    logger.info(
        "precomputed encoder features of %d clips (%d examples)",
        len(keep),
        len(rows),
    )
    dataset.set_output_keys([k for k in outputs if k != "sig"])
    return len(keep)
