"""Padding masks and position ids: the project's two length conventions.

Lobes take either SpeechBrain relative lengths (``(batch,)`` in
``[0, 1]``) or boolean masks (``(batch, len)``, True on valid positions);
these helpers convert between them, and give position ids from a mask for
sequences that are contiguous and right-padded (``docs/design.md``,
"Data flow").

Authors
 * audiollm-lobes developers, 2026
"""

import torch
from speechbrain.dataio.dataio import length_to_mask


def lengths_to_mask(lengths, max_len):
    """Boolean mask from absolute lengths (SpeechBrain's ``length_to_mask``).

    Arguments
    ---------
    lengths : torch.Tensor
        ``(batch,)`` number of valid positions of each row.
    max_len : int
        Padded length.

    Returns
    -------
    torch.Tensor
        ``(batch, max_len)`` bool, True where ``index < length``.

    Example
    -------
    >>> lengths_to_mask(torch.tensor([3, 1]), 4).long().tolist()
    [[1, 1, 1, 0], [1, 0, 0, 0]]
    """
    return length_to_mask(lengths.long(), int(max_len), dtype=torch.bool)


def relative_lengths_to_mask(rel_lens, max_len):
    """Boolean mask from SpeechBrain relative lengths.

    Arguments
    ---------
    rel_lens : torch.Tensor
        ``(batch,)`` relative lengths in ``[0, 1]``.
    max_len : int
        Padded length.

    Returns
    -------
    torch.Tensor
        ``(batch, max_len)`` bool, True on the first
        ``round(rel_len * max_len)`` positions.

    Example
    -------
    >>> relative_lengths_to_mask(torch.tensor([1.0, 0.5]), 4).long().tolist()
    [[1, 1, 1, 1], [1, 1, 0, 0]]
    """
    return lengths_to_mask(torch.round(rel_lens * max_len), max_len)


def positions_from_mask(mask, length=None):
    """Position ids: the cumulative sum of the mask minus one, 0 on padding.

    Arguments
    ---------
    mask : torch.Tensor
        ``(batch, total_len)`` bool or 0/1 attention mask.
    length : int, optional
        Return only the last ``length`` columns (the new tokens when the
        mask also covers cached ones).

    Returns
    -------
    torch.LongTensor
        ``(batch, length or total_len)``: each valid position's index
        among the valid positions of its row; padding positions get 0.

    Example
    -------
    >>> positions_from_mask(torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]]))
    tensor([[0, 1, 2, 0],
            [0, 0, 1, 2]])
    >>> positions_from_mask(torch.tensor([[1, 1, 1, 1]]), length=1)
    tensor([[3]])
    """
    mask = mask.long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0) * mask
    if length is not None:
        positions = positions[:, mask.shape[1] - length :]
    return positions
