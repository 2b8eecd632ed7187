"""PLITS assembly against a per-sample reference written with lists."""

import torch

from audiollm_lobes.injection import (
    PLITSSequence,
    assemble_plits,
    pack_segments,
)
from audiollm_lobes.masks import positions_from_mask


def _reference_pack(values, masks):
    """Per-sample Python reference: concatenate valid elements in order."""
    rows = []
    for b in range(masks[0].shape[0]):
        row = []
        for value, mask in zip(values, masks):
            for t in range(mask.shape[1]):
                if mask[b, t]:
                    row.append(value[b, t])
        rows.append(row)
    total = max(len(r) for r in rows)
    out = torch.zeros((len(rows), total) + tuple(values[0].shape[2:]))
    for b, row in enumerate(rows):
        for t, item in enumerate(row):
            out[b, t] = item
    lens = torch.tensor([len(r) for r in rows])
    return out, torch.arange(total)[None] < lens[:, None]


def test_pack_segments_matches_reference_random():
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        batch = 4
        values, masks = [], []
        for length in (3, 5, 2, 4):
            values.append(torch.randn(batch, length, 6, generator=gen))
            # random (not necessarily left-aligned) masks
            masks.append(torch.rand(batch, length, generator=gen) > 0.4)
        got, got_mask, dest = pack_segments(values, masks)
        ref, ref_mask = _reference_pack(values, masks)
        assert torch.equal(got_mask, ref_mask)
        assert torch.allclose(got, ref)
        # padding positions of the packed output are zeros
        assert torch.all(got[~got_mask] == 0)
        # dest points each valid element to its packed slot
        for value, mask, d in zip(values, masks, dest):
            b, t = torch.nonzero(mask, as_tuple=True)
            assert torch.allclose(got[b, d[b, t]], value[b, t])


def test_position_ids_restart_per_sample():
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert positions_from_mask(mask).tolist() == [
        [0, 1, 2, 0, 0],
        [0, 1, 2, 3, 4],
    ]


def test_assemble_plits_is_independent_of_batch_neighbours():
    """A sample packed with a longer neighbour equals the sample alone."""
    torch.manual_seed(0)
    table = torch.nn.Embedding(20, 8)
    before = torch.tensor([[1, 2, 3], [1, 4, 0]])
    after = torch.tensor([[5, 6], [7, 0]])
    answer = torch.tensor([[8, 9, 2], [10, 2, 0]])
    audio = torch.randn(2, 4, 8)
    audio_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]).bool()
    prompts = torch.randn(2, 3, 8)
    seq = assemble_plits(
        table,
        before,
        before != 0,
        audio,
        audio_mask,
        after,
        after != 0,
        answer,
        answer != 0,
        prompts=prompts,
    )
    alone = assemble_plits(
        table,
        before[1:, :2],
        before[1:, :2] != 0,
        audio[1:, :2],
        audio_mask[1:, :2],
        after[1:, :1],
        after[1:, :1] != 0,
        answer[1:, :2],
        answer[1:, :2] != 0,
        prompts=prompts[1:],
    )
    n = int(alone.mask.sum())
    assert torch.allclose(seq.embeds[1, :n], alone.embeds[0, :n])
    assert torch.equal(seq.labels[1, :n], alone.labels[0, :n])
    assert torch.equal(seq.position_ids[1, :n], alone.position_ids[0, :n])
    # labels: only the answer positions carry ids, right after the audio text
    expected = [-100] * (3 + 2 + 2 + 1) + [10, 2]
    assert alone.labels[0].tolist() == expected
    # the audio tokens sit right after the prompts and "before" text
    assert torch.allclose(seq.embeds[0, 6:10], audio[0])


def test_generation_sequence_has_no_labels():
    table = torch.nn.Embedding(10, 4)
    ids = torch.tensor([[1, 2]])
    seq = assemble_plits(
        table,
        ids,
        ids != 0,
        torch.zeros(1, 2, 4),
        torch.ones(1, 2).bool(),
        ids,
        ids != 0,
    )
    assert isinstance(seq, PLITSSequence)
    assert seq.labels is None
    assert seq.embeds.shape == (1, 6, 4)
    assert seq.position_ids.tolist() == [[0, 1, 2, 3, 4, 5]]
