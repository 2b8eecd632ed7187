"""Tests for the window Q-Former and the frame-stacking projector.

Authors
 * audiollm-lobes developers, 2026
"""

import math

import pytest
import torch

from audiollm_lobes.connectors import (
    FrameStackProjector,
    QFormerBlock,
    WindowQFormer,
    pack_valid,
    scale_to_norm,
)


def small_qformer(**kwargs):
    """A small float64 Q-Former in eval mode (no dropout)."""
    torch.manual_seed(0)
    args = {
        "input_dim": 6,
        "llm_dim": 10,
        "hidden_dim": 8,
        "num_layers": 2,
        "num_heads": 2,
        "ffn_dim": 16,
        "window_frames": 4,
        "dropout": 0.0,
    }
    args.update(kwargs)
    return WindowQFormer(**args).double().eval()


def lengths_to_mask(lengths, frames):
    """Boolean prefix mask (batch, frames)."""
    lengths = torch.as_tensor(lengths)
    return torch.arange(frames)[None, :] < lengths[:, None]


# ---------------------------------------------------------------- references


def manual_mha(query, key, mha):
    """Multi-head attention written out by hand (no mask; float64).

    query (q_len, dim), key (k_len, kdim); keys and values are the same.
    """
    dim = mha.embed_dim
    heads = mha.num_heads
    if mha._qkv_same_embed_dim:
        w_q, w_k, w_v = mha.in_proj_weight.split(dim)
    else:
        w_q, w_k, w_v = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
    b_q, b_k, b_v = mha.in_proj_bias.split(dim)
    q = query @ w_q.t() + b_q
    k = key @ w_k.t() + b_k
    v = key @ w_v.t() + b_v
    head = dim // heads
    outs = []
    for h in range(heads):
        sl = slice(h * head, (h + 1) * head)
        rows = []
        for i in range(q.shape[0]):
            logits = [
                float((q[i, sl] * k[j, sl]).sum().detach()) / math.sqrt(head)
                for j in range(k.shape[0])
            ]
            top = max(logits)
            weights = [math.exp(x - top) for x in logits]
            total = sum(weights)
            row = sum((w / total) * v[j, sl] for j, w in enumerate(weights))
            rows.append(row)
        outs.append(torch.stack(rows))
    out = torch.cat(outs, dim=-1)
    return out @ mha.out_proj.weight.t() + mha.out_proj.bias


def manual_layer_norm(x, norm):
    """LayerNorm written out (biased variance)."""
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def manual_block(block, h, frames):
    """Post-LN Q-Former block on one window's valid frames."""
    h = manual_layer_norm(
        h + manual_mha(h, h, block.self_attn), block.norm_self
    )
    h = manual_layer_norm(
        h + manual_mha(h, frames, block.cross_attn), block.norm_cross
    )
    lin1, _, lin2 = block.ffn
    ff = lin2(torch.nn.functional.gelu(lin1(h)))
    return manual_layer_norm(h + ff, block.norm_ffn)


def loop_reference(qf, x, mask):
    """Per sample, per window: run the Q-Former on the window's valid frames
    only (no padding at all), using the same submodules."""
    win, stride = qf.window_frames, qf.stride_frames
    outputs = []
    for b in range(x.shape[0]):
        tokens = []
        num_frames = x.shape[1]
        start = 0
        while True:
            end = start + win
            sel = mask[b, start:end]
            frames = x[b, start:end][sel]
            if frames.shape[0] > 0:
                tokens.append(
                    qf.encode_windows(
                        frames[None],
                        torch.ones(1, frames.shape[0], dtype=torch.bool),
                    )[0]
                )
            if end >= num_frames:
                break
            start += stride
        if tokens:
            outputs.append(torch.cat(tokens, dim=0))
        else:
            outputs.append(x.new_zeros(0, qf.llm_dim))
    return outputs


# --------------------------------------------------------------------- tests


def test_block_matches_hand_written_attention():
    torch.manual_seed(1)
    block = QFormerBlock(8, 6, num_heads=2, ffn_dim=12, dropout=0.0)
    block = block.double().eval()
    queries = torch.randn(1, 3, 8, dtype=torch.float64)
    frames = torch.randn(1, 5, 6, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, True, False]])
    out = block(queries, frames, mask)
    ref = manual_block(block, queries[0], frames[0][mask[0]])
    torch.testing.assert_close(out[0], ref, rtol=1e-10, atol=1e-10)


def test_hand_written_full_model_one_window():
    qf = small_qformer(num_layers=1, queries_per_window=2)
    x = torch.randn(1, 3, 6, dtype=torch.float64)
    tokens, mask = qf(x)
    h = manual_layer_norm(qf.queries, qf.query_norm)
    h = manual_block(qf.blocks[0], h, x[0])
    ref = h @ qf.proj.weight.t() + qf.proj.bias
    assert mask.tolist() == [[True, True]]
    torch.testing.assert_close(tokens[0], ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("queries", [1, 3])
def test_token_count_per_length(queries):
    qf = small_qformer(window_frames=17, queries_per_window=queries)
    lengths = [1, 16, 17, 18, 34, 35, 100]
    x = torch.randn(len(lengths), 100, 6, dtype=torch.float64)
    tokens, mask = qf(x, lengths_to_mask(lengths, 100))
    expected = [math.ceil(n / 17) * queries for n in lengths]
    assert mask.sum(dim=1).tolist() == expected
    assert tokens.shape == (len(lengths), 6 * queries, 10)
    # prefix mask, padded token slots are zero
    for row, n in zip(mask, expected):
        assert row[:n].all() and not row[n:].any()
    assert (tokens[~mask] == 0).all()


def test_two_seconds_gives_six_tokens_not_88():
    qf = small_qformer(window_frames=None, window_seconds=0.333)
    assert qf.window_frames == 17 and qf.stride_frames == 17
    x = torch.randn(2, 1500, 6, dtype=torch.float64)
    tokens, mask = qf(x, lengths_to_mask([100, 1500], 1500))
    assert mask.sum(dim=1).tolist() == [6, 89]  # tail kept: ceil(1500/17)
    assert tokens.shape[1] == 89


def test_window_from_seconds_and_default():
    assert small_qformer(window_frames=None).window_frames == 17
    qf = small_qformer(window_frames=None, window_seconds=0.32, frame_rate=25)
    assert qf.window_frames == 8
    qf = small_qformer(window_frames=10, stride_seconds=0.1, frame_rate=50)
    assert qf.stride_frames == 5


@pytest.mark.parametrize(
    "window, stride, norm_first", [(4, None, False), (5, 3, True)]
)
def test_vectorised_equals_loop_reference(window, stride, norm_first):
    qf = small_qformer(
        window_frames=window,
        stride_frames=stride,
        queries_per_window=2,
        norm_first=norm_first,
    )
    torch.manual_seed(3)
    x = torch.randn(4, 23, 6, dtype=torch.float64)
    mask = lengths_to_mask([23, 9, 1, 14], 23)
    # a hole: a whole window with no valid frame inside sample 0
    mask[0, 8:16] = False
    # a partly valid window inside sample 3
    mask[3, 2] = False
    tokens, token_mask = qf(x, mask)
    reference = loop_reference(qf, x, mask)
    for b, ref in enumerate(reference):
        n = ref.shape[0]
        assert int(token_mask[b].sum()) == n
        assert token_mask[b, :n].all()
        torch.testing.assert_close(tokens[b, :n], ref, rtol=1e-9, atol=1e-9)
    assert tokens.shape[1] == max(r.shape[0] for r in reference)


def test_padding_invariance():
    qf = small_qformer(window_frames=5, queries_per_window=2)
    torch.manual_seed(4)
    alone = torch.randn(1, 12, 6, dtype=torch.float64)
    tokens_alone, mask_alone = qf(alone)
    # same sample padded with garbage inside a longer batch
    batch = torch.randn(2, 31, 6, dtype=torch.float64) * 100
    batch[0, :12] = alone[0]
    batch[0, 12:] = float("nan")
    mask = lengths_to_mask([12, 31], 31)
    tokens, token_mask = qf(batch, mask)
    n = int(mask_alone.sum())
    assert n == 6 and int(token_mask[0].sum()) == n
    torch.testing.assert_close(tokens[0, :n], tokens_alone[0], rtol=0, atol=0)
    assert torch.isfinite(tokens).all()
    # extra padded frames with no extra window change nothing either
    more = torch.cat([alone, torch.zeros(1, 40, 6, dtype=torch.float64)], 1)
    tokens_more, mask_more = qf(more, lengths_to_mask([12], 52))
    assert tokens_more.shape[1] == n
    torch.testing.assert_close(tokens_more, tokens_alone, rtol=0, atol=0)


def test_empty_samples():
    qf = small_qformer()
    x = torch.randn(2, 9, 6, dtype=torch.float64)
    tokens, mask = qf(x, lengths_to_mask([0, 5], 9))
    assert mask.sum(dim=1).tolist() == [0, 2]
    tokens, mask = qf(x, torch.zeros(2, 9, dtype=torch.bool))
    assert tokens.shape == (2, 0, 10) and mask.shape == (2, 0)


def test_gradients_reach_queries_and_stay_finite():
    qf = small_qformer(dropout=0.1).float().train()
    x = torch.randn(2, 13, 6)
    x[1, 7:] = float("nan")  # padding with non-finite garbage
    tokens, mask = qf(x, lengths_to_mask([13, 7], 13))
    (tokens[mask] ** 2).sum().backward()
    assert qf.queries.grad is not None
    assert qf.queries.grad.abs().sum() > 0
    for name, param in qf.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


def test_output_scale_sets_token_norm():
    qf = small_qformer(output_scale=0.7)
    tokens, mask = qf(torch.randn(2, 11, 6, dtype=torch.float64))
    norms = tokens[mask].norm(dim=-1)
    torch.testing.assert_close(norms, torch.full_like(norms, 0.7))
    y = scale_to_norm(torch.randn(3, 5, dtype=torch.float64) * 50, 2.0)
    torch.testing.assert_close(
        y.norm(dim=-1), torch.full((3,), 2.0, dtype=torch.float64)
    )


def test_pack_valid_against_loop():
    torch.manual_seed(5)
    tokens = torch.randn(3, 6, 2)
    valid = torch.rand(3, 6) > 0.5
    valid[2] = False
    packed, mask = pack_valid(tokens, valid)
    assert packed.shape[1] == int(valid.sum(dim=1).max())
    for b in range(3):
        kept = [tokens[b, i] for i in range(6) if valid[b, i]]
        assert int(mask[b].sum()) == len(kept)
        for j, t in enumerate(kept):
            assert torch.equal(packed[b, j], t)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_heads": 3}, "num_heads"),
        ({"window_seconds": 0.3}, "not both"),
        ({"window_frames": 0}, "window"),
        ({"output_scale": -1.0}, "output_scale"),
    ],
)
def test_qformer_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_qformer(**kwargs)


def test_qformer_bad_input():
    qf = small_qformer()
    with pytest.raises(ValueError, match="expected \\(batch, frames, 6\\)"):
        qf(torch.randn(2, 5, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match="mask has shape"):
        qf(
            torch.randn(2, 5, 6, dtype=torch.float64),
            torch.ones(2, 4, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match="torch.bool"):
        qf(torch.randn(2, 5, 6, dtype=torch.float64), torch.ones(2, 5))


# ------------------------------------------------------- FrameStackProjector


def test_frame_stack_against_loop():
    torch.manual_seed(6)
    proj = FrameStackProjector(3, 5, stack=4, hidden_dim=7).double()
    x = torch.randn(3, 10, 3, dtype=torch.float64)
    mask = lengths_to_mask([10, 5, 4], 10)
    tokens, token_mask = proj(x, mask)
    lin1, _, _, lin2 = proj.mlp
    for b, length in enumerate([10, 5, 4]):
        groups = math.ceil(length / 4)
        assert int(token_mask[b].sum()) == groups
        for g in range(groups):
            frames = []
            for t in range(g * 4, g * 4 + 4):
                ok = t < length
                frames.append(x[b, t] if ok else torch.zeros(3).double())
            flat = torch.cat(frames)
            hidden = lin1(flat)
            gelu = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))
            ref = lin2(gelu)
            torch.testing.assert_close(tokens[b, g], ref)


def test_frame_stack_padding_invariance_and_scale():
    torch.manual_seed(7)
    proj = FrameStackProjector(3, 5, stack=3, hidden_dim=7, output_scale=2.0)
    alone = torch.randn(1, 7, 3)
    tokens_alone, _ = proj(alone)
    batch = torch.full((2, 15, 3), float("nan"))
    batch[0, :7] = alone[0]
    batch[1] = torch.randn(15, 3)
    tokens, mask = proj(batch, lengths_to_mask([7, 15], 15))
    assert mask.sum(dim=1).tolist() == [3, 5]
    torch.testing.assert_close(tokens[0, :3], tokens_alone[0])
    torch.testing.assert_close(tokens[mask].norm(dim=-1), torch.full((8,), 2.0))


def test_frame_stack_bad_input():
    with pytest.raises(ValueError, match="stack"):
        FrameStackProjector(3, 5, stack=0)
    proj = FrameStackProjector(3, 5, stack=2, hidden_dim=4)
    with pytest.raises(ValueError, match="FrameStackProjector"):
        proj(torch.randn(2, 4))
