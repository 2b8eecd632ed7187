"""Tests for the CIF lobe and its losses against plain per-sample references.

Authors
 * audiollm-lobes developers, 2026
"""

import math

import numpy as np
import pytest
import torch

from audiollm_lobes.cif import (
    CIF,
    CIFPrompter,
    cif_integrate,
    embedding_mse_loss,
    nearest_token_accuracy,
    quantity_loss,
)

# ---------------------------------------------------------------------------
# Plain references: Python loops over samples and frames, float64 numpy.
# ---------------------------------------------------------------------------


def ref_integrate(h, alpha, beta=1.0, tail=0.5, target=None):
    """Sequential accumulate-and-fire over one sample's valid frames.

    h: (T, D) array, alpha: (T,) array (valid frames only).
    """
    h = np.asarray(h, dtype=np.float64)
    alpha = [float(a) for a in alpha]
    if target is not None:
        total = sum(alpha)
        alpha = [a * target * beta / total for a in alpha] if target else []
    outs = []
    acc = 0.0
    integ = np.zeros(h.shape[1])
    for t, a in enumerate(alpha):
        while acc + a >= beta:  # fire; a frame may fire several times
            part = beta - acc
            outs.append(integ + part * h[t])
            integ = np.zeros(h.shape[1])
            acc = 0.0
            a -= part
        acc += a
        integ = integ + a * h[t]
    if target is not None:
        # Float rounding may leave the last output just short of beta.
        assert abs(len(outs) - target) <= 1
        if len(outs) < target:
            outs.append(integ)
        while len(outs) > target:
            extra = outs.pop()
            outs[-1] = outs[-1] + extra
    elif acc > tail * beta:
        outs.append(integ)
    return np.array(outs).reshape(len(outs), h.shape[1])


def ref_alphas(cif, x):
    """Weight predictor of ``cif`` on one sample's valid frames, by loops."""
    x = np.asarray(x, dtype=np.float64)
    length = x.shape[0]
    w_out = cif.predictor_out.weight.detach().double().numpy()[0]
    b_out = float(cif.predictor_out.bias.detach())
    alphas = []
    for t in range(length):
        if cif.predictor_conv is not None:
            w = cif.predictor_conv.weight.detach().double().numpy()
            b = cif.predictor_conv.bias.detach().double().numpy()
            kernel = w.shape[2]
            hid = b.copy()
            for k in range(kernel):
                src = t + k - kernel // 2
                if 0 <= src < length:  # frames outside are zeros
                    hid = hid + w[:, :, k] @ x[src]
            hid = np.maximum(hid, 0.0)
        elif cif.predictor_hidden is not None:
            w = cif.predictor_hidden.weight.detach().double().numpy()
            b = cif.predictor_hidden.bias.detach().double().numpy()
            hid = np.maximum(w @ x[t] + b, 0.0)
        else:
            hid = x[t]
        z = float(w_out @ hid + b_out)
        alphas.append(1.0 / (1.0 + math.exp(-z)))
    return np.array(alphas)


def ref_cif(cif, x, length, target=None):
    """Full module reference for one sample: alphas, fired outputs."""
    x = x[:length].detach().double().numpy()
    alphas = ref_alphas(cif, x)
    fired = ref_integrate(x, alphas, cif.beta, cif.tail_threshold, target)
    if cif.proj is not None:
        p = cif.proj.weight.detach().double().numpy()
        pb = cif.proj.bias.detach().double().numpy()
        fired = fired @ p.T + pb
    return alphas, fired


def padded_batch(lengths, dim, seed, pad_value=7.5):
    """Random batch with (large, finite) garbage in the padding."""
    gen = torch.Generator().manual_seed(seed)
    time = max(lengths)
    x = torch.randn(len(lengths), time, dim, generator=gen, dtype=torch.float64)
    for i, n in enumerate(lengths):
        x[i, n:] = pad_value
    rel = torch.tensor([n / time for n in lengths], dtype=torch.float64)
    return x, rel


# ---------------------------------------------------------------------------
# cif_integrate
# ---------------------------------------------------------------------------


def test_hand_worked_example():
    # alphas 0.4, 0.8, 0.5, 0.3 with beta 1:
    #   y1 = 0.4 h1 + 0.6 h2                 (h2 is split 0.6 / 0.2)
    #   y2 = 0.2 h2 + 0.5 h3 + 0.3 h4        (sum reaches 2.0 at h4)
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [-1.0, 3.0]])
    alphas = torch.tensor([[0.4, 0.8, 0.5, 0.3]])
    fired, mask = cif_integrate(h.unsqueeze(0), alphas)
    expected = torch.tensor([[0.4, 0.6], [0.7, 2.1]])
    assert mask.tolist() == [[True, True]]
    torch.testing.assert_close(fired[0], expected)

    # A fifth frame of weight 0.6 > 0.5 is fired as the tail: y3 = 0.6 h5.
    h5 = torch.cat([h, torch.tensor([[1.0, -2.0]])])
    fired, mask = cif_integrate(
        h5.unsqueeze(0), torch.tensor([[0.4, 0.8, 0.5, 0.3, 0.6]])
    )
    assert mask.tolist() == [[True, True, True]]
    torch.testing.assert_close(fired[0, 2], torch.tensor([0.6, -1.2]))
    # ... but a remainder of 0.3 is dropped, and so is 0.6 if the threshold
    # is 0.7.
    _, mask = cif_integrate(
        h5.unsqueeze(0), torch.tensor([[0.4, 0.8, 0.5, 0.3, 0.3]])
    )
    assert mask.tolist() == [[True, True]]
    _, mask = cif_integrate(
        h5.unsqueeze(0),
        torch.tensor([[0.4, 0.8, 0.5, 0.3, 0.6]]),
        tail_threshold=0.7,
    )
    assert mask.tolist() == [[True, True]]


def test_hand_worked_scaling():
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [-1.0, 3.0]])
    # Four weights of 0.2 rescaled to 0.5 each for 2 tokens.
    fired, mask = cif_integrate(
        h.unsqueeze(0),
        torch.full((1, 4), 0.2),
        target_lengths=torch.tensor([2]),
    )
    assert mask.tolist() == [[True, True]]
    expected = torch.tensor([[0.5, 0.5], [0.5, 2.5]])
    torch.testing.assert_close(fired[0], expected)
    # Two frames of 0.5 rescaled to 1.5 each for 3 tokens: a frame fires
    # twice; y1 = h1, y2 = 0.5 h1 + 0.5 h2, y3 = h2.
    fired, mask = cif_integrate(
        h[:2].unsqueeze(0),
        torch.full((1, 2), 0.5),
        target_lengths=torch.tensor([3]),
    )
    assert mask.tolist() == [[True, True, True]]
    expected = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    torch.testing.assert_close(fired[0], expected)


@pytest.mark.parametrize("beta,tail", [(1.0, 0.5), (0.7, 0.3), (2.0, 0.9)])
@pytest.mark.parametrize("scaled", [False, True])
def test_integrate_matches_reference(beta, tail, scaled):
    gen = torch.Generator().manual_seed(int(beta * 10) + 100 * scaled)
    for _ in range(4):
        lengths = torch.randint(1, 25, (5,), generator=gen).tolist()
        time, dim = max(lengths), 3
        values = torch.randn(5, time, dim, generator=gen, dtype=torch.float64)
        alphas = torch.rand(5, time, generator=gen, dtype=torch.float64)
        for i, n in enumerate(lengths):
            alphas[i, n:] = 0.0
            values[i, n:] = 0.0
        targets = None
        if scaled:
            # Up to twice the number of frames: frames fire several times.
            targets = torch.tensor(
                [
                    int(torch.randint(0, 2 * n + 1, (1,), generator=gen))
                    for n in lengths
                ]
            )
        fired, mask = cif_integrate(values, alphas, beta, tail, targets)
        for i, n in enumerate(lengths):
            ref = ref_integrate(
                values[i, :n].numpy(),
                alphas[i, :n].numpy(),
                beta,
                tail,
                None if targets is None else int(targets[i]),
            )
            assert int(mask[i].sum()) == len(ref)
            assert mask[i, : len(ref)].all()
            np.testing.assert_allclose(
                fired[i, : len(ref)].numpy(), ref, rtol=1e-9, atol=1e-9
            )
            assert (fired[i, len(ref) :] == 0).all()


def test_integrate_gradcheck():
    gen = torch.Generator().manual_seed(3)
    values = torch.randn(2, 6, 2, generator=gen, dtype=torch.float64)
    alphas = 0.1 + 0.8 * torch.rand(2, 6, generator=gen, dtype=torch.float64)
    values.requires_grad_(True)
    alphas.requires_grad_(True)

    def unscaled(v, a):
        return cif_integrate(v, a)[0]

    def scaled(v, a):
        return cif_integrate(v, a, target_lengths=torch.tensor([4, 2]))[0]

    assert torch.autograd.gradcheck(unscaled, (values, alphas))
    assert torch.autograd.gradcheck(scaled, (values, alphas))


def test_integrate_empty_inputs():
    fired, mask = cif_integrate(torch.zeros(2, 0, 3), torch.zeros(2, 0))
    assert fired.shape == (2, 0, 3) and mask.shape == (2, 0)
    fired, mask = cif_integrate(
        torch.ones(2, 4, 3),
        torch.full((2, 4), 0.5),
        target_lengths=torch.tensor([0, 0]),
    )
    assert fired.shape == (2, 0, 3) and mask.shape == (2, 0)


def test_integrate_bad_input():
    with pytest.raises(ValueError, match="values"):
        cif_integrate(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="alphas"):
        cif_integrate(torch.zeros(2, 3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="beta"):
        cif_integrate(torch.zeros(1, 3, 4), torch.zeros(1, 3), beta=0.0)
    with pytest.raises(ValueError, match="target_lengths"):
        cif_integrate(
            torch.zeros(1, 3, 4),
            torch.ones(1, 3),
            target_lengths=torch.tensor([1, 2]),
        )
    with pytest.raises(ValueError, match="target_lengths"):
        cif_integrate(
            torch.zeros(1, 3, 4),
            torch.ones(1, 3),
            target_lengths=torch.tensor([1.5]),
        )
    with pytest.raises(ValueError, match="alphas"):
        cif_integrate(
            torch.zeros(1, 3, 4),
            torch.zeros(1, 3),
            target_lengths=torch.tensor([2]),
        )


# ---------------------------------------------------------------------------
# CIF module
# ---------------------------------------------------------------------------

PREDICTORS = [
    {"weight_predictor": "conv", "conv_kernel": 3},
    {"weight_predictor": "conv", "conv_kernel": 5, "hidden_dim": 7},
    {"weight_predictor": "linear"},
    {"weight_predictor": "linear", "hidden_dim": 6},
]


@pytest.mark.parametrize("kwargs", PREDICTORS)
@pytest.mark.parametrize("scaled", [False, True])
def test_module_matches_reference(kwargs, scaled):
    torch.manual_seed(0)
    dim = 4
    cif = CIF(dim, 5, tail_threshold=0.4, **kwargs).double()
    lengths = [9, 4, 13, 1]
    x, rel = padded_batch(lengths, dim, seed=1)
    targets = torch.tensor([3, 6, 2, 1]) if scaled else None
    out = cif(x, rel, targets)
    for i, n in enumerate(lengths):
        alphas, fired = ref_cif(
            cif, x[i], n, None if not scaled else int(targets[i])
        )
        np.testing.assert_allclose(
            out.alphas[i, :n].detach().numpy(), alphas, rtol=1e-10
        )
        assert (out.alphas[i, n:] == 0).all()
        np.testing.assert_allclose(
            float(out.alpha_sum[i].detach()), alphas.sum(), rtol=1e-10
        )
        assert int(out.mask[i].sum()) == len(fired)
        np.testing.assert_allclose(
            out.embeddings[i, : len(fired)].detach().numpy(),
            fired,
            rtol=1e-8,
            atol=1e-10,
        )
        assert (out.embeddings[i, len(fired) :] == 0).all()


def test_module_no_projection_and_beta():
    torch.manual_seed(1)
    cif = CIF(3, 3, beta=0.6, output_proj=False, tail_threshold=0.2).double()
    lengths = [11, 6]
    x, rel = padded_batch(lengths, 3, seed=2)
    out = cif(x, rel)
    for i, n in enumerate(lengths):
        _, fired = ref_cif(cif, x[i], n)
        assert int(out.mask[i].sum()) == len(fired)
        np.testing.assert_allclose(
            out.embeddings[i, : len(fired)].detach().numpy(), fired, atol=1e-10
        )


def test_padding_does_not_leak():
    torch.manual_seed(2)
    cif = CIF(4, 6)
    x = torch.randn(1, 8, 4)
    alone = cif(x, target_lengths=torch.tensor([3]))
    padded = torch.cat([x, torch.full((1, 5, 4), 100.0)], dim=1)
    batch = torch.cat([padded, torch.randn(1, 13, 4)])
    rel = torch.tensor([8 / 13, 1.0])
    both = cif(batch, rel, target_lengths=torch.tensor([3, 4]))
    torch.testing.assert_close(both.embeddings[0, :3], alone.embeddings[0])
    torch.testing.assert_close(both.alphas[0, :8], alone.alphas[0])
    assert not both.mask[0, 3:].any()


def test_count_equals_target_when_scaling():
    torch.manual_seed(3)
    cif = CIF(8, 8)  # float32 on purpose: rounding must not change counts
    gen = torch.Generator().manual_seed(4)
    for _ in range(40):
        lengths = torch.randint(1, 60, (6,), generator=gen)
        time = int(lengths.max())
        x = torch.randn(6, time, 8, generator=gen)
        targets = torch.stack(
            [
                torch.randint(0, 2 * int(n) + 2, (1,), generator=gen)[0]
                for n in lengths
            ]
        )
        out = cif(x, lengths / time, targets)
        assert out.mask.sum(dim=1).tolist() == targets.tolist()
        assert out.embeddings.shape[1] == int(targets.max())
        # Every fired vector carries a full beta of weight.
        fired, _ = cif_integrate(
            torch.ones(6, time, 1),
            out.alphas,
            target_lengths=targets,
        )
        weights = fired[..., 0][out.mask]
        torch.testing.assert_close(weights, torch.ones_like(weights))


def test_gradients_reach_weight_predictor():
    torch.manual_seed(5)
    cif = CIF(4, 6)
    x = torch.randn(2, 12, 4)
    rel = torch.tensor([1.0, 0.75])
    targets = torch.tensor([4, 2])
    predictor = [
        cif.predictor_conv.weight,
        cif.predictor_conv.bias,
        cif.predictor_out.weight,
        cif.predictor_out.bias,
    ]

    # Through the fired vectors, with target-length scaling ...
    out = cif(x, rel, targets)
    goal = torch.randn_like(out.embeddings)
    grads = torch.autograd.grad(
        embedding_mse_loss(out.embeddings, out.mask, goal, out.mask),
        predictor,
    )
    assert all(g.abs().sum() > 0 for g in grads)
    # ... and without it.
    out = cif(x, rel)
    grads = torch.autograd.grad(out.embeddings.pow(2).sum(), predictor)
    assert all(g.abs().sum() > 0 for g in grads)
    # Through the quantity loss alone.
    out = cif(x, rel)
    grads = torch.autograd.grad(
        quantity_loss(out.alpha_sum, targets), predictor
    )
    assert all(g.abs().sum() > 0 for g in grads)


def test_module_bad_input():
    with pytest.raises(ValueError, match="weight_predictor"):
        CIF(4, 4, weight_predictor="lstm")
    with pytest.raises(ValueError, match="output_dim"):
        CIF(4, 5, output_proj=False)
    with pytest.raises(ValueError, match="conv_kernel"):
        CIF(4, 4, conv_kernel=4)
    with pytest.raises(ValueError, match="beta"):
        CIF(4, 4, beta=-1.0)
    cif = CIF(4, 4)
    with pytest.raises(ValueError, match="x"):
        cif(torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="lengths"):
        cif(torch.zeros(2, 5, 4), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="lengths"):
        cif(torch.zeros(2, 5, 4), torch.tensor([1.0, 1.5]))
    with pytest.raises(ValueError, match="at least one frame"):
        cif(torch.zeros(2, 5, 4), torch.tensor([1.0, 0.0]))


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


def test_quantity_loss_reference():
    alpha_sum = torch.tensor([2.5, 4.0, 0.2], dtype=torch.float64)
    targets = torch.tensor([3, 3, 0])
    # (0.5 + 1.0 + 0.2) / 3
    torch.testing.assert_close(
        quantity_loss(alpha_sum, targets),
        torch.tensor(1.7 / 3, dtype=torch.float64),
    )
    # beta 0.5: |2.5 - 1.5|, |4.0 - 1.5|, |0.2 - 0|
    torch.testing.assert_close(
        quantity_loss(alpha_sum, targets, beta=0.5),
        torch.tensor(3.7 / 3, dtype=torch.float64),
    )
    with pytest.raises(ValueError, match="target_lengths"):
        quantity_loss(alpha_sum, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="alpha_sum"):
        quantity_loss(alpha_sum[None], targets)


def test_embedding_mse_reference():
    gen = torch.Generator().manual_seed(6)
    out = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    tgt = torch.randn(3, 7, 4, generator=gen, dtype=torch.float64)
    out_len, tgt_len = [5, 2, 0], [4, 7, 3]
    out_mask = torch.arange(5) < torch.tensor(out_len)[:, None]
    tgt_mask = torch.arange(7) < torch.tensor(tgt_len)[:, None]
    total, count = 0.0, 0
    for b in range(3):
        for n in range(min(out_len[b], tgt_len[b])):
            for d in range(4):
                total += float(out[b, n, d] - tgt[b, n, d]) ** 2
                count += 1
    loss = embedding_mse_loss(out, out_mask, tgt, tgt_mask)
    np.testing.assert_allclose(float(loss), total / count, rtol=1e-12)

    # Padding values never matter, and get no gradient.
    out2 = out.clone()
    out2[~out_mask] = 1e6
    tgt2 = tgt.clone()
    tgt2[~tgt_mask] = -1e6
    out2.requires_grad_(True)
    loss2 = embedding_mse_loss(out2, out_mask, tgt2, tgt_mask)
    np.testing.assert_allclose(float(loss2.detach()), total / count, rtol=1e-12)
    loss2.backward()
    assert (out2.grad[~out_mask] == 0).all()

    # No valid position: zero loss that still backpropagates.
    empty = embedding_mse_loss(out2, torch.zeros_like(out_mask), tgt2, tgt_mask)
    assert float(empty.detach()) == 0.0 and empty.requires_grad


def test_embedding_mse_bad_input():
    out = torch.zeros(2, 3, 4)
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="target_embeddings"):
        embedding_mse_loss(out, mask, torch.zeros(2, 3, 5), mask)
    with pytest.raises(ValueError, match="cif_mask"):
        embedding_mse_loss(out, mask[:, :2], out, mask)
    with pytest.raises(ValueError, match="target_mask"):
        embedding_mse_loss(out, mask, out, mask[:1])


def test_nearest_token_accuracy_reference():
    """Against a per-position loop with float64 distances."""
    g = torch.Generator().manual_seed(3)
    table = torch.randn(30, 6, generator=g)
    out = torch.randn(3, 5, 6, generator=g)
    out[0, 1] = table[7] + 0.01  # surely nearest to 7
    mask = torch.rand(3, 5, generator=g) > 0.2
    ids = torch.randint(0, 30, (3, 4), generator=g)
    ids[0, 1] = 7
    mask[0, 1] = True
    ids[2, 3] = -1
    got = nearest_token_accuracy(out, mask, table, ids)
    correct = total = 0
    for b in range(3):
        for n in range(4):  # min(5 fired, 4 targets)
            if not mask[b, n] or ids[b, n] < 0:
                continue
            d = [
                float(((out[b, n].double() - row.double()) ** 2).sum())
                for row in table
            ]
            total += 1
            correct += int(int(np.argmin(d)) == int(ids[b, n]))
    assert correct >= 1
    assert math.isclose(float(got), correct / total, rel_tol=1e-6)


@pytest.mark.parametrize(
    "mask_len, table_dim, field",
    [(3, 3, "cif_mask"), (2, 4, "embedding_table")],
)
def test_nearest_token_accuracy_bad_input(mask_len, table_dim, field):
    with pytest.raises(ValueError, match=field):
        nearest_token_accuracy(
            torch.zeros(1, 2, 3),
            torch.ones(1, mask_len, dtype=torch.bool),
            torch.zeros(5, table_dim),
            torch.zeros(1, 2, dtype=torch.long),
        )


# ---------------------------------------------------------- CIFPrompter


def test_prompter_without_layers_is_cif_then_projection():
    """pre/post layers 0: LayerNorm -> linear -> CIF -> linear, exactly."""
    torch.manual_seed(0)
    prompter = CIFPrompter(6, 5, hidden_dim=7, weight_predictor="linear")
    prompter.eval()
    x = torch.randn(3, 9, 6)
    mask = torch.arange(9)[None] < torch.tensor([[9], [5], [7]])
    target = torch.tensor([4, 2, 3])
    out = prompter(x, mask, target_lengths=target)

    h = prompter.input_proj(prompter.input_norm(x))
    h = h.masked_fill(~mask[..., None], 0.0)
    alphas = torch.sigmoid(prompter.cif.predictor_out(h).squeeze(-1))
    alphas = alphas * mask
    fired, fired_mask = cif_integrate(h, alphas, target_lengths=target)
    expected = prompter.out_proj(fired) * fired_mask[..., None]
    assert torch.equal(out.mask, fired_mask)
    assert torch.allclose(out.embeddings, expected, atol=1e-6)
    assert torch.allclose(out.alpha_sum, alphas.sum(1), atol=1e-6)


def test_prompter_sample_does_not_depend_on_batch_padding():
    """A sample alone and padded in a batch fires the same vectors."""
    torch.manual_seed(0)
    prompter = CIFPrompter(
        6, 5, hidden_dim=8, pre_layers=1, post_layers=1, num_heads=2
    ).eval()
    long = torch.randn(1, 12, 6)
    short = torch.randn(1, 7, 6)
    batch = torch.cat([long, torch.cat([short, torch.randn(1, 5, 6)], 1)])
    mask = torch.arange(12)[None] < torch.tensor([[12], [7]])
    with torch.no_grad():
        both = prompter(batch, mask)
        alone = prompter(short, torch.ones(1, 7, dtype=torch.bool))
    n = int(alone.mask.sum())
    assert int(both.mask[1].sum()) == n
    assert torch.allclose(
        both.embeddings[1, :n], alone.embeddings[0, :n], atol=1e-5
    )
    assert both.embeddings[1, n:].abs().sum() == 0


def test_prompter_gradients_reach_predictor_through_scaled_cif():
    prompter = CIFPrompter(4, 3, hidden_dim=4)
    out = prompter(
        torch.randn(2, 8, 4),
        torch.ones(2, 8, dtype=torch.bool),
        target_lengths=torch.tensor([3, 5]),
    )
    out.embeddings.pow(2).sum().backward()
    assert prompter.cif.predictor_out.weight.grad.abs().sum() > 0


def test_prompter_rejects_bad_shapes_and_sizes():
    with pytest.raises(ValueError, match="input_dim"):
        CIFPrompter(0, 4)
    with pytest.raises(ValueError, match="num_heads"):
        CIFPrompter(4, 4, hidden_dim=6, pre_layers=1, num_heads=4)
    with pytest.raises(ValueError, match=r"x: expected \(batch, time, 4\)"):
        CIFPrompter(4, 4)(torch.randn(1, 3, 5), torch.ones(1, 3).bool())
