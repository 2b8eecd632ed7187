"""Training helpers shared by the toy LM and the toy encoders.

Both pretraining loops (``toy_lm.pretrain_lm``, ``toy_whisper`` and
``toy_beats``) use AdamW with a linear warmup and a cosine decay to a
floor (:func:`warmup_cosine`), and draw batches of items of similar
lengths in random order (:func:`length_batches`). The weights of the toy
backbones depend on both, so any change here changes them (bump
``BACKBONES_VERSION`` in ``toyworld/backbones.py``).

Authors
 * audiollm-lobes developers, 2026
"""

import math

#: Final learning-rate factor of the toy encoders' schedule (the toy LM's
#: is ``warmup_cosine``'s default, 0.1).
ENCODER_LR_FLOOR = 0.05


def warmup_cosine(warmup, total, floor=0.1):
    """Learning-rate factor: linear warmup, then cosine decay to ``floor``.

    For ``torch.optim.lr_scheduler.LambdaLR``: step ``s < warmup`` gives
    ``(s + 1) / warmup``; later steps decay from 1 to ``floor`` at
    ``total`` along half a cosine, and stay at ``floor`` after it.

    Arguments
    ---------
    warmup : int
        Warmup steps.
    total : int
        Total steps (the end of the decay).
    floor : float
        The final factor.

    Returns
    -------
    callable
        ``step -> factor``.

    Example
    -------
    >>> factor = warmup_cosine(warmup=2, total=6, floor=0.1)
    >>> [round(factor(s), 3) for s in range(8)]
    [0.5, 1.0, 1.0, 0.868, 0.55, 0.232, 0.1, 0.1]
    """

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        cosine = 1 + math.cos(math.pi * min(1.0, progress))
        return floor + (1 - floor) * 0.5 * cosine

    return factor


def length_batches(lengths, batch_size, rng, pool):
    """One epoch of batches of similar lengths (less padding), in random
    order.

    The indices are shuffled, cut into chunks of ``pool`` batches, each
    chunk is sorted by length and cut into batches, and the batches are
    shuffled.

    Arguments
    ---------
    lengths : list of int
        The length of each item.
    batch_size : int
        Items per batch (the last batch of a chunk may be smaller).
    rng : random.Random
        Source of the two shuffles.
    pool : int
        Batches per length-sorted chunk.

    Returns
    -------
    list of list of int
        Every index exactly once.

    Example
    -------
    >>> import random
    >>> lengths = [5, 1, 4, 2, 3, 6]
    >>> batches = length_batches(lengths, 2, random.Random(0), pool=3)
    >>> sorted(sorted(lengths[i] for i in b) for b in batches)
    [[1, 2], [3, 4], [5, 6]]
    """
    index = list(range(len(lengths)))
    rng.shuffle(index)
    batches = []
    chunk = batch_size * pool
    for first in range(0, len(index), chunk):
        part = sorted(index[first : first + chunk], key=lengths.__getitem__)
        for start in range(0, len(part), batch_size):
            batches.append(part[start : start + batch_size])
    rng.shuffle(batches)
    return batches
