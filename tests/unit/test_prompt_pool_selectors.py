"""The authors' ``attention`` and ``residual`` selectors and the key losses
against per-sample, per-key python loops (float64): values and gradients
(keys, values, query projection, audio and text inputs).

Authors
 * audiollm-lobes developers, 2026
"""

import math

import pytest
import torch

from audiollm_lobes.prompt_pool import ENTROPY_EPS, KEY_LOSSES, PromptPool

DIM = 5
POOL = 7
K = 3


def make_pool(**kwargs):
    """A float64 pool, fixed k = K, keys and values spread out (N(0, 1)) so
    that scores are well separated and the residual changes its choice."""
    torch.manual_seed(0)
    args = {"llm_dim": DIM, "pool_size": POOL, "k": K, "seed": 0}
    args.update(kwargs)
    pool = PromptPool(**args).double()
    with torch.no_grad():
        pool.keys.normal_()
        pool.values.normal_()
    return pool


def make_batch(seed=1):
    """Audio (3, 6, DIM) and text (3, 4, DIM) with masks, float64."""
    gen = torch.Generator().manual_seed(seed)
    audio = torch.randn(3, 6, DIM, generator=gen, dtype=torch.float64)
    text = torch.randn(3, 4, DIM, generator=gen, dtype=torch.float64)
    audio_mask = torch.arange(6)[None] < torch.tensor([[6], [2], [4]])
    text_mask = torch.arange(4)[None] < torch.tensor([[4], [3], [1]])
    return audio, audio_mask, text, text_mask


# ------------------------------------------------------------ references
def dot(a, b):
    """Dot product of two vectors, written out."""
    return sum(a[j] * b[j] for j in range(a.shape[0]))


def unit(a):
    """``a / ||a||``."""
    return a / torch.sqrt(dot(a, a))


def ref_query(audio, audio_mask, text, text_mask, b):
    """Mean of sample ``b``'s valid audio and text positions."""
    rows = [audio[b, t] for t in range(audio.shape[1]) if audio_mask[b, t]]
    rows += [text[b, t] for t in range(text.shape[1]) if text_mask[b, t]]
    return sum(rows) / len(rows)


def ref_proj(pool, x):
    """``query_proj`` of one vector: identity or ``W x + b`` by rows."""
    if isinstance(pool.query_proj, torch.nn.Identity):
        return x
    weight, bias = pool.query_proj.weight, pool.query_proj.bias
    return torch.stack(
        [dot(weight[j], x) + bias[j] for j in range(weight.shape[0])]
    )


def ref_key_loss(pool, pairs, batch):
    """Key loss from ``pairs[b] = [(query_t, index_t), ...]``."""
    kind = pool.key_loss_type
    if kind == "none":
        return torch.zeros((), dtype=torch.float64)
    total, count = 0.0, 0
    for rows in pairs:
        for q, i in rows:
            cos = [dot(unit(q), unit(pool.keys[j])) for j in range(POOL)]
            if kind == "softmax_sum":
                term = -torch.exp(cos[i]) / sum(torch.exp(c) for c in cos)
            elif kind == "cosine":
                term = 1.0 - cos[i]
            else:
                diff = unit(q) - unit(pool.keys[i])
                term = torch.sqrt(dot(diff, diff))
            total = total + term
            count += 1
    if kind in ("distance_mean", "cosine"):
        return total / count
    return total / batch


def reference(pool, audio, audio_mask, text, text_mask, k, keep=None):
    """Prompts, indices, key loss and entropy loss, one sample at a time."""
    prompts, indices, pairs, entropies = [], [], [], []
    batch = audio.shape[0]
    for b in range(batch):
        q = ref_query(audio, audio_mask, text, text_mask, b)
        qd = q.detach() if pool.detach_query else q
        rows, order, sample_pairs = [], [], []
        if pool.selector == "residual":
            residual, residual_d = q, qd
            for _ in range(k):
                pq = ref_proj(pool, residual)
                cos = [
                    float(dot(unit(pq), unit(pool.keys[j])).detach())
                    for j in range(POOL)
                ]
                i = max(range(POOL), key=lambda j: cos[j])
                order.append(i)
                rows.append(pool.values[i])
                sample_pairs.append((ref_proj(pool, residual_d), i))
                residual = residual - pool.values[i]
                residual_d = residual_d - pool.values[i]
        else:
            pq = ref_proj(pool, q)
            if pool.selector == "attention":
                logits = [
                    dot(pq, pool.keys[j]) / math.sqrt(pool.key_dim)
                    for j in range(POOL)
                ]
                total = sum(torch.exp(x) for x in logits)
                weights = [torch.exp(x) / total for x in logits]
                if keep is not None:
                    p = pool.attention_dropout
                    weights = [
                        w * float(keep[b, j]) / (1 - p)
                        for j, w in enumerate(weights)
                    ]
                entropies.append(
                    -sum(w * torch.log(w + ENTROPY_EPS) for w in weights)
                )
                score = [float(w.detach()) for w in weights]
            else:  # similarity
                score = [
                    float(dot(unit(pq), unit(pool.keys[j])).detach())
                    for j in range(POOL)
                ]
            order = sorted(range(POOL), key=lambda j: -score[j])[:k]
            for i in order:
                value = pool.values[i]
                if pool.selector == "attention":
                    value = weights[i] * value
                rows.append(value)
            pqd = ref_proj(pool, qd)
            if pool.detach_query:
                pqd = pqd.detach()
            sample_pairs = [(pqd, i) for i in order]
        prompts.append(torch.stack(rows))
        indices.append(order)
        pairs.append(sample_pairs)
    key_loss = ref_key_loss(pool, pairs, batch)
    entropy = sum(entropies) / batch if entropies else None
    return torch.stack(prompts), torch.tensor(indices), key_loss, entropy


def run_both(pool, keep_seed=None, train=False):
    """Runs the pool and the reference; returns both results with the
    gradients of ``sum(prompts * W) + key_loss + 0.7 * entropy_loss``."""
    audio, audio_mask, text, text_mask = make_batch()
    weights = torch.randn(3, K, DIM, dtype=torch.float64)
    pool.train(train)

    def run(fn):
        pool.zero_grad(set_to_none=True)
        a = audio.clone().requires_grad_(True)
        t = text.clone().requires_grad_(True)
        prompts, indices, key_loss, entropy = fn(a, t)
        total = (prompts * weights).sum() + key_loss
        if entropy is not None:
            total = total + 0.7 * entropy
        total.backward()
        grads = {
            n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
            for n, p in pool.named_parameters()
        }
        for name, x in (("audio", a), ("text", t)):
            grads[name] = torch.zeros_like(x) if x.grad is None else x.grad
        return prompts.detach(), indices, key_loss.detach(), entropy, grads

    def vectorised(a, t):
        if keep_seed is not None:
            torch.manual_seed(keep_seed)
        out = pool(a, audio_mask, t, text_mask)
        entropy = (out.aux_losses or {}).get("entropy_loss")
        return out.prompts, out.indices, out.key_loss, entropy

    def looped(a, t):
        keep = None
        if keep_seed is not None:
            torch.manual_seed(keep_seed)
            keep = torch.rand(3, POOL) >= pool.attention_dropout
        return reference(pool, a, audio_mask, t, text_mask, K, keep)

    return run(vectorised), run(looped)


def assert_same(got, ref):
    """Same indices; close prompts, losses and gradients."""
    assert torch.equal(got[1], ref[1])
    torch.testing.assert_close(got[0], ref[0])
    torch.testing.assert_close(got[2], ref[2])
    if ref[3] is None:
        assert got[3] is None
    else:
        torch.testing.assert_close(got[3].detach(), ref[3].detach())
    assert got[4].keys() == ref[4].keys()
    for name in ref[4]:
        torch.testing.assert_close(got[4][name], ref[4][name], msg=name)


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("key_dim", [None, 3])
@pytest.mark.parametrize("detach_query", [True, False])
@pytest.mark.parametrize("key_loss", KEY_LOSSES)
@pytest.mark.parametrize("selector", ["similarity", "attention", "residual"])
def test_selector_and_key_loss_match_loop(
    selector, key_loss, detach_query, key_dim
):
    pool = make_pool(
        selector=selector,
        key_loss=key_loss,
        detach_query=detach_query,
        key_dim=key_dim,
    )
    got, ref = run_both(pool)
    assert_same(got, ref)
    grads = got[4]
    assert grads["values"].abs().sum() > 0
    if key_loss != "none" or selector == "attention":
        assert grads["keys"].abs().sum() > 0
    # the projection learns from the LLM loss (attention), or from a key
    # loss unless it is detached behind the projection (the residual's
    # projected residuals keep the projection's gradient)
    proj_learns = selector == "attention" or (
        key_loss != "none" and (not detach_query or selector == "residual")
    )
    if key_dim is not None:
        proj_grad = grads["query_proj.weight"].abs().sum()
        assert (proj_grad > 0) == proj_learns
    # the query gets gradient through the attention weights, or through
    # a key loss that is not detached
    query_grad = grads["audio"].abs().sum() + grads["text"].abs().sum()
    expects_query_grad = selector == "attention" or (
        key_loss != "none" and not detach_query
    )
    assert (query_grad > 0) == expects_query_grad
    if selector == "residual":
        # the residual changed the choice at least once (the test would
        # not see a wrong update otherwise)
        assert any(len(set(row)) > 1 for row in got[1].tolist())


def test_residual_values_get_key_loss_gradient_through_the_residual():
    """With a detached query, the key loss still reaches the values chosen
    before each step (they are subtracted from the query), as in the
    authors' code; the similarity selector's values get none from it."""
    for selector, expected in (("residual", True), ("similarity", False)):
        pool = make_pool(selector=selector, key_loss="softmax_sum")
        audio, audio_mask, text, text_mask = make_batch()
        pool(audio, audio_mask, text, text_mask).key_loss.backward()
        has_grad = pool.values.grad is not None and bool(
            pool.values.grad.abs().sum() > 0
        )
        assert has_grad == expected, selector


def test_attention_dropout_matches_loop_in_training_only():
    p = 0.3
    pool = make_pool(selector="attention", attention_dropout=p)
    # a seed whose mask drops some weights but keeps at least K per sample
    # (with fewer, the top-k would choose among tied zeros)
    for seed in range(100):
        torch.manual_seed(seed)
        keep = torch.rand(3, POOL) >= p
        if keep.sum(dim=1).min() >= K and not keep.all():
            break
    else:
        raise AssertionError("no suitable seed")
    got, ref = run_both(pool, keep_seed=seed, train=True)
    assert_same(got, ref)
    # some weights were dropped: zeros among the pool's weights
    audio, audio_mask, text, text_mask = make_batch()
    torch.manual_seed(seed)
    scores = pool.train()(audio, audio_mask, text, text_mask).scores
    assert (scores == 0).any()
    # eval mode: no dropout, the weights over the whole pool sum to 1
    out = pool.eval()(audio, audio_mask, text, text_mask)
    torch.testing.assert_close(
        out.scores.sum(dim=1), torch.ones(3, dtype=torch.float64)
    )
    assert (out.scores > 0).all()


def test_attention_hand_worked():
    """Equal keys: uniform weights 1/P, prompts = value / P, entropy about
    log P (the 1e-8 inside the log of the authors' formula)."""
    pool = PromptPool(
        2, pool_size=4, k=2, selector="attention", query_source="audio"
    ).double()
    with torch.no_grad():
        pool.keys.zero_()
        pool.values.copy_(torch.arange(8.0).reshape(4, 2))
    out = pool(torch.tensor([[[3.0, 4.0]]], dtype=torch.float64))
    torch.testing.assert_close(
        out.scores, torch.full((1, 4), 0.25, dtype=torch.float64)
    )
    # ties: topk returns two of the four entries, each weighted by 1/4
    torch.testing.assert_close(
        out.prompts[0], pool.values[out.indices[0]].detach() / 4
    )
    expected = -math.log(0.25 + ENTROPY_EPS)
    assert out.aux_losses["entropy_loss"].item() == pytest.approx(
        expected, abs=1e-12
    )


def test_residual_hand_worked_with_a_repeated_entry():
    """q = (1, 0.2); keys e1, e2; values (0.5, 0), (0, 1).
    Step 0: cos(q, e1) = 0.981 > cos(q, e2) = 0.196, pick 0, r = (0.5, 0.2).
    Step 1: cos(r, e1) = 0.928 > 0.371, pick 0 again, r = (0, 0.2).
    Step 2: cos(r, e2) = 1, pick 1."""
    pool = PromptPool(
        2, pool_size=3, k=3, selector="residual", query_source="audio"
    ).double()
    with torch.no_grad():  # the third entry points away and is never used
        pool.keys.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1, -1]]))
        pool.values.copy_(torch.tensor([[0.5, 0.0], [0.0, 1.0], [9, 9]]))
    pool.start_recording()
    out = pool(torch.tensor([[[1.0, 0.2]]], dtype=torch.float64))
    pool.record(["asr"])
    assert out.indices.tolist() == [[0, 0, 1]]
    torch.testing.assert_close(out.prompts[0], pool.values[[0, 0, 1]])
    assert pool.usage_counts("asr").tolist() == [2, 1, 0]
    n = math.sqrt(1.04)
    expected = [[1 / n, 0.2 / n, -1.2 / (n * math.sqrt(2))]]
    torch.testing.assert_close(out.scores, torch.tensor(expected).double())
    # distance_mean over the steps' residual queries (0.5,0.2), (0, 0.2)
    r0 = torch.tensor([1.0, 0.2]) / math.sqrt(1.04)
    r1 = torch.tensor([0.5, 0.2]) / math.sqrt(0.29)
    dist = [
        (r0 - torch.tensor([1.0, 0.0])).norm(),
        (r1 - torch.tensor([1.0, 0.0])).norm(),
        (torch.tensor([0.0, 1.0]) - torch.tensor([0.0, 1.0])).norm(),
    ]
    assert out.key_loss.item() == pytest.approx(float(sum(dist) / 3), abs=1e-7)


@pytest.mark.parametrize(
    "selector",
    ["similarity", "attention", "residual", "attention_topk", "residual_base"],
)
def test_every_selector_records_its_indices(selector):
    pool = make_pool(selector=selector, k=None, k_max=3).eval()
    audio, audio_mask, text, text_mask = make_batch()
    pool.start_recording()
    out = pool(audio, audio_mask, text, text_mask)
    pool.record(["a", "b", "a"])
    assert out.prompts.shape == (3, 3, DIM)
    assert out.indices.shape == out.prompt_mask.shape == (3, 3)
    assert [row for _, row in pool.records] == [
        tuple(r) for r in out.indices.tolist()
    ]
    assert int(pool.usage_counts().sum()) == 9
    assert int(pool.usage_counts("a").sum()) == 6
    # stochastic k in training
    pool.train()
    for _ in range(5):
        out = pool(audio, audio_mask, text, text_mask)
        assert out.prompts.shape[1] == pool.last_k <= 3
        assert out.indices.shape == (3, pool.last_k)


def test_key_loss_names():
    assert PromptPool(DIM, 4, k=1, key_loss="l2").key_loss_type == (
        "distance_mean"
    )
    assert PromptPool(DIM, 4, k=1).key_loss_type == "distance_mean"
    # distance_sum = k x distance_mean (the same distances, summed)
    audio, audio_mask, text, text_mask = make_batch()
    losses = {}
    for name in ("distance_mean", "distance_sum"):
        pool = make_pool(key_loss=name)
        losses[name] = pool(audio, audio_mask, text, text_mask).key_loss
    torch.testing.assert_close(
        losses["distance_sum"], K * losses["distance_mean"]
    )
