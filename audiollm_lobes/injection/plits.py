"""PLITS sequence assembly: audio tokens spliced into the LLM's input.

Every sample's pieces (soft prompts, BOS + instruction before the audio,
audio tokens, instruction after the audio, answer + EOS) are laid out
contiguously and right-padded, so text positions never depend on the
lengths of the other samples in the batch (``docs/design.md``, "Data
flow")::

    [prompts][BOS][before][audio][after][answer][EOS][pad ...]

Position ids come from the cumulative sum of the attention mask
(``masks.positions_from_mask``). All of it is built with tensor ops: one
scatter per segment, no per-sample loop.

Authors
 * audiollm-lobes developers, 2026
"""

from dataclasses import dataclass
from typing import List, Optional

import torch

from audiollm_lobes.llm import IGNORE_INDEX
from audiollm_lobes.masks import positions_from_mask


def pack_segments(values, masks):
    """Packs per-sample segments contiguously, right-padded.

    Arguments
    ---------
    values : list of torch.Tensor
        One tensor per segment, ``(batch, len_i, ...)``; trailing dims must
        agree between segments.
    masks : list of torch.Tensor
        Boolean ``(batch, len_i)``: which elements of each segment are real.
        Valid elements need not be left-aligned; their order is kept.

    Returns
    -------
    packed : torch.Tensor
        ``(batch, total, ...)`` with each sample's valid elements first,
        in segment order, then zeros.
    mask : torch.Tensor
        Boolean ``(batch, total)``.
    dest : list of torch.Tensor
        Per segment, ``(batch, len_i)`` long tensor giving where each
        element landed (``total`` for padding elements).

    Example
    -------
    >>> a = torch.tensor([[1, 2], [3, 0]])
    >>> b = torch.tensor([[7, 0, 0], [8, 9, 5]])
    >>> ma, mb = a != 0, b != 0
    >>> packed, mask, _ = pack_segments([a, b], [ma, mb])
    >>> packed.tolist()
    [[1, 2, 7, 0], [3, 8, 9, 5]]
    >>> mask.sum(1).tolist()
    [3, 4]
    """
    if len(values) != len(masks) or not values:
        raise ValueError("pack_segments needs one mask per segment")
    batch = masks[0].shape[0]
    lens = torch.stack([m.sum(1) for m in masks], dim=1)  # (batch, segs)
    starts = torch.cumsum(lens, dim=1) - lens
    totals = lens.sum(1)
    total = int(totals.max()) if batch > 0 else 0
    trailing = values[0].shape[2:]
    out = values[0].new_zeros((batch, total + 1) + tuple(trailing))
    dest_all = []
    for value, mask, start in zip(values, masks, starts.unbind(1)):
        if value.shape[:2] != mask.shape:
            raise ValueError(
                f"segment of shape {tuple(value.shape)} does not match its "
                f"mask {tuple(mask.shape)}"
            )
        mask = mask.bool()
        rank = torch.cumsum(mask.long(), dim=1) - 1
        dest = torch.where(mask, start[:, None] + rank, total)
        index = dest.view(batch, -1, *([1] * len(trailing)))
        index = index.expand_as(value)
        out = out.scatter(1, index, value.to(out.dtype))
        dest_all.append(dest)
    out = out[:, :total]
    positions = torch.arange(total, device=masks[0].device)
    mask = positions[None, :] < totals[:, None]
    return out, mask, dest_all


@dataclass
class PLITSSequence:
    """An assembled LLM input in the PLITS layout (``assemble_plits``).

    Attributes
    ----------
    embeds : torch.Tensor
        ``(batch, len, dim)`` input embeddings.
    mask : torch.Tensor
        ``(batch, len)`` boolean attention mask.
    position_ids : torch.Tensor
        ``(batch, len)``.
    labels : torch.Tensor or None
        ``(batch, len)`` token ids at answer positions, ``IGNORE_INDEX``
        (-100) elsewhere; None for a generation prompt.
    segment_dest : list of torch.Tensor
        Where each segment's elements landed (see ``pack_segments``).
    """

    embeds: torch.Tensor
    mask: torch.Tensor
    position_ids: torch.Tensor
    labels: Optional[torch.Tensor]
    segment_dest: List[torch.Tensor]


def assemble_plits(
    llm_embed,
    before_ids,
    before_mask,
    audio,
    audio_mask,
    after_ids,
    after_mask,
    answer_ids=None,
    answer_mask=None,
    prompts=None,
    prompts_mask=None,
    ignore_index=IGNORE_INDEX,
):
    """Builds ``[prompts][before][audio][after][answer]`` for the LLM.

    Arguments
    ---------
    llm_embed : callable
        Maps token ids ``(batch, len)`` to embeddings ``(batch, len, dim)``.
    before_ids, before_mask : torch.Tensor
        ``(batch, len_b)`` ids (BOS included) and mask of the prompt text
        before the audio.
    audio, audio_mask : torch.Tensor
        ``(batch, n_audio, dim)`` audio tokens and their mask.
    after_ids, after_mask : torch.Tensor
        ``(batch, len_a)`` prompt text after the audio.
    answer_ids, answer_mask : torch.Tensor, optional
        ``(batch, len_t)`` answer ids (EOS included) for teacher forcing;
        omit for generation.
    prompts, prompts_mask : torch.Tensor, optional
        ``(batch, k, dim)`` soft prompts placed before BOS.
    ignore_index : int
        Label of positions without a target.

    Returns
    -------
    PLITSSequence
        The packed input; ``labels`` hold the answer ids at their positions.

    Example
    -------
    >>> table = torch.nn.Embedding(10, 4)
    >>> ids = torch.tensor([[1, 2], [1, 0]])
    >>> audio = torch.zeros(2, 3, 4)
    >>> am = torch.tensor([[1, 1, 1], [1, 0, 0]]).bool()
    >>> ans = torch.tensor([[5, 9], [6, 9]])
    >>> seq = assemble_plits(
    ...     table, ids, ids != 0, audio, am, ids, ids != 0, ans, ans != 0
    ... )
    >>> seq.labels[0].tolist()
    [-100, -100, -100, -100, -100, -100, -100, 5, 9]
    >>> seq.labels[1].tolist()
    [-100, -100, -100, 6, 9, -100, -100, -100, -100]
    """
    values, masks = [], []
    if prompts is not None:
        if prompts_mask is None:
            prompts_mask = torch.ones(
                prompts.shape[:2], dtype=torch.bool, device=prompts.device
            )
        values.append(prompts)
        masks.append(prompts_mask.bool())
    values += [llm_embed(before_ids), audio, llm_embed(after_ids)]
    masks += [before_mask.bool(), audio_mask.bool(), after_mask.bool()]
    if answer_ids is not None:
        values.append(llm_embed(answer_ids))
        masks.append(answer_mask.bool())
    dtype = values[0].dtype
    values = [v.to(dtype) for v in values]
    embeds, mask, dest = pack_segments(values, masks)
    labels = None
    if answer_ids is not None:
        id_values = [
            torch.full(m.shape, ignore_index, device=m.device) for m in masks
        ]
        id_values[-1] = torch.where(
            answer_mask.bool(), answer_ids, ignore_index
        )
        labels, _, _ = pack_segments(id_values, masks)
        labels = torch.where(mask, labels, ignore_index)
    return PLITSSequence(
        embeds=embeds,
        mask=mask,
        position_ids=positions_from_mask(mask),
        labels=labels,
        segment_dest=dest,
    )
