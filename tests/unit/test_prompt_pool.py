"""Tests for the LiSTEN prompt pool and the fixed soft prompt.

Authors
 * audiollm-lobes developers, 2026
"""

import math

import pytest
import torch

from audiollm_lobes.prompt_pool import (
    PromptPool,
    SoftPrompt,
    masked_mean,
    mean_embedding,
)

DIM = 5
POOL = 7


def make_pool(**kwargs):
    """A float64 pool with fixed k = 3 by default."""
    torch.manual_seed(0)
    args = {"llm_dim": DIM, "pool_size": POOL, "k": 3, "seed": 0}
    args.update(kwargs)
    pool = PromptPool(**args).double()
    # spread the keys so that scores are well separated
    with torch.no_grad():
        pool.keys.normal_()
    return pool


def make_batch(seed=1):
    """Audio (3, 6, DIM) and text (3, 4, DIM) with masks, float64."""
    gen = torch.Generator().manual_seed(seed)
    audio = torch.randn(3, 6, DIM, generator=gen, dtype=torch.float64)
    text = torch.randn(3, 4, DIM, generator=gen, dtype=torch.float64)
    audio_mask = torch.arange(6)[None] < torch.tensor([[6], [2], [4]])
    text_mask = torch.arange(4)[None] < torch.tensor([[4], [3], [1]])
    return audio, audio_mask, text, text_mask


def loop_query(audio, audio_mask, text=None, text_mask=None):
    """Per-sample query: plain sums over the valid positions."""
    queries = []
    for b in range(audio.shape[0]):
        total = torch.zeros(audio.shape[-1], dtype=audio.dtype)
        count = 0
        for t in range(audio.shape[1]):
            if audio_mask[b, t]:
                total = total + audio[b, t]
                count += 1
        if text is not None:
            for t in range(text.shape[1]):
                if text_mask[b, t]:
                    total = total + text[b, t]
                    count += 1
        queries.append(total / count)
    return queries


def cosine(a, b):
    """Cosine similarity of two vectors, written out."""
    return (a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum())


def loop_reference(pool, audio, audio_mask, text, text_mask, k):
    """Per-sample, per-key reference of prompts and key loss (l2)."""
    prompts, indices, losses = [], [], []
    for q in loop_query(audio, audio_mask, text, text_mask):
        if pool.selector == "attention_topk":
            logits = [
                (q * pool.keys[i]).sum() / math.sqrt(DIM) for i in range(POOL)
            ]
            total = sum(torch.exp(x) for x in logits)
            scores = [torch.exp(x) / total for x in logits]
        else:
            scores = [cosine(q, pool.keys[i]) for i in range(POOL)]
        order = sorted(range(POOL), key=lambda i: -float(scores[i].detach()))[
            :k
        ]
        indices.append(order)
        chosen_sum = sum(scores[i] for i in order)
        rows = []
        for j, i in enumerate(order):
            value = pool.values[i]
            if pool.selector == "attention_topk":
                value = value * (k * scores[i] / chosen_sum)
            if pool.selector == "residual_base":
                value = pool.base_prompt[j] + value
            rows.append(value)
        prompts.append(torch.stack(rows))
        qd = q.detach()
        qn = qd / torch.sqrt((qd * qd).sum())
        for i in order:
            kn = pool.keys[i] / torch.sqrt((pool.keys[i] ** 2).sum())
            losses.append(torch.sqrt(((qn - kn) ** 2).sum()))
    key_loss = sum(losses) / len(losses)
    return torch.stack(prompts), torch.tensor(indices), key_loss


@pytest.mark.parametrize(
    "selector", ["similarity", "attention_topk", "residual_base"]
)
def test_selector_matches_loop_reference_with_gradients(selector):
    pool = make_pool(selector=selector)
    audio, audio_mask, text, text_mask = make_batch()
    weights = torch.randn(3, 3, DIM, dtype=torch.float64)

    def run(fn):
        pool.zero_grad()
        a = audio.clone().requires_grad_(True)
        prompts, indices, key_loss = fn(a)
        ((prompts * weights).sum() + key_loss).backward()
        grads = {n: p.grad.clone() for n, p in pool.named_parameters()}
        return prompts.detach(), indices, key_loss.detach(), grads, a.grad

    def vectorised(a):
        out = pool(a, audio_mask, text, text_mask)
        return out.prompts, out.indices, out.key_loss

    def looped(a):
        return loop_reference(pool, a, audio_mask, text, text_mask, 3)

    got = run(vectorised)
    ref = run(looped)
    assert torch.equal(got[1], ref[1])
    torch.testing.assert_close(got[0], ref[0])
    torch.testing.assert_close(got[2], ref[2])
    for name in ref[3]:
        torch.testing.assert_close(got[3][name], ref[3][name], msg=name)
    if selector == "attention_topk":
        torch.testing.assert_close(got[4], ref[4])
        assert got[4].abs().sum() > 0  # the query gets gradient
    else:
        assert got[4] is None or got[4].abs().sum() == 0


def test_key_loss_hand_worked():
    # query (3, 4) -> (0.6, 0.8); keys (1, 0), (0, 2), (-1, 0)
    for loss, expected in [
        ("l2", (math.sqrt(0.4) + math.sqrt(0.8)) / 2),
        ("cosine", ((1 - 0.8) + (1 - 0.6)) / 2),
    ]:
        pool = PromptPool(
            2, pool_size=3, k=2, key_loss=loss, query_source="audio"
        ).double()
        with torch.no_grad():
            pool.keys.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0]]))
        out = pool(torch.tensor([[[3.0, 4.0]]], dtype=torch.float64))
        assert out.indices.tolist() == [[1, 0]]
        torch.testing.assert_close(
            out.scores, torch.tensor([[0.6, 0.8, -0.6]], dtype=torch.float64)
        )
        assert out.key_loss.item() == pytest.approx(expected, abs=1e-12)


def test_key_loss_none_and_detach_query():
    audio, audio_mask, text, text_mask = make_batch()
    pool = make_pool(key_loss="none")
    assert pool(audio, audio_mask, text, text_mask).key_loss.item() == 0.0
    for detach in (True, False):
        pool = make_pool(detach_query=detach, query_source="audio")
        pool.query_proj = torch.nn.Identity()
        a = audio.clone().requires_grad_(True)
        pool(a, audio_mask).key_loss.backward()
        if detach:
            assert a.grad is None
        else:
            assert a.grad.abs().sum() > 0


def test_query_masking_ignores_padding():
    pool = make_pool()
    audio, audio_mask, text, text_mask = make_batch()
    out = pool(audio, audio_mask, text, text_mask)
    garbage_audio = audio.clone()
    garbage_audio[~audio_mask] = float("nan")
    garbage_text = text.clone()
    garbage_text[~text_mask] = 1e6
    out2 = pool(garbage_audio, audio_mask, garbage_text, text_mask)
    assert torch.equal(out.indices, out2.indices)
    torch.testing.assert_close(out.prompts, out2.prompts, rtol=0, atol=0)
    torch.testing.assert_close(out.key_loss, out2.key_loss, rtol=0, atol=0)
    # the query against a loop
    query = pool.query(audio, audio_mask, text, text_mask)
    ref = torch.stack(loop_query(audio, audio_mask, text, text_mask))
    torch.testing.assert_close(query, ref)
    # audio-only query ignores the text entirely
    pool_a = make_pool(query_source="audio")
    ref_a = torch.stack(loop_query(audio, audio_mask))
    torch.testing.assert_close(pool_a.query(audio, audio_mask), ref_a)
    torch.testing.assert_close(
        pool_a.query(audio, audio_mask, garbage_text * float("nan")), ref_a
    )


def test_stochastic_k_bounds_and_eval():
    pool = PromptPool(DIM, pool_size=30, seed=123)
    assert pool.stochastic_k and pool.k_max == 12 and pool.k_eval == 12
    audio = torch.randn(2, 3, DIM)
    text = torch.randn(2, 2, DIM)
    for _ in range(20):
        out = pool(audio, text=text)
        k = out.prompts.shape[1]
        assert 1 <= k <= 12 and pool.last_k == k
        assert out.indices.shape == (2, k) == out.prompt_mask.shape
    # the draw itself (what forward uses), many times
    ks = [pool.current_k() for _ in range(2400)]
    assert set(ks) == set(range(1, 13))
    # roughly uniform: each value about 200 times out of 2400
    counts = [ks.count(v) for v in range(1, 13)]
    assert min(counts) > 120 and max(counts) < 280
    # the same seed draws the same sequence
    pool2 = PromptPool(DIM, pool_size=30, seed=123)
    ks2 = [pool2(audio, text=text).prompts.shape[1] for _ in range(20)]
    ks2 += [pool2.current_k() for _ in range(2400)]
    pool3 = PromptPool(DIM, pool_size=30, seed=123)
    assert ks2 == [pool3.current_k() for _ in range(2420)]
    pool.eval()
    assert {pool(audio, text=text).prompts.shape[1] for _ in range(5)} == {12}
    assert pool(audio, text=text, k=5).prompts.shape[1] == 5
    pool_e = PromptPool(DIM, pool_size=30, k_max=4, k_eval=2).eval()
    assert pool_e(audio, text=text).prompts.shape[1] == 2


def test_fixed_k_train_and_eval():
    pool = make_pool(k=2)
    assert not pool.stochastic_k and pool.k_eval == 2
    audio, audio_mask, text, text_mask = make_batch()
    assert pool(audio, audio_mask, text, text_mask).prompts.shape[1] == 2
    pool.eval()
    assert pool(audio, audio_mask, text, text_mask).prompts.shape[1] == 2


@pytest.mark.parametrize("selector", ["attention_topk", "attention"])
def test_attention_selector_gives_gradient_to_keys(selector):
    pool = make_pool(selector=selector, key_loss="none")
    audio, audio_mask, text, text_mask = make_batch()
    out = pool(audio, audio_mask, text, text_mask)
    (out.prompts**2).sum().backward()
    assert pool.keys.grad is not None and pool.keys.grad.abs().sum() > 0
    # the similarity selector does not: its keys learn from the key loss
    pool = make_pool(selector="similarity", key_loss="none")
    out = pool(audio, audio_mask, text, text_mask)
    (out.prompts**2).sum().backward()
    assert pool.keys.grad is None or pool.keys.grad.abs().sum() == 0


def test_attention_weights_sum_to_k():
    pool = make_pool(selector="attention_topk")
    with torch.no_grad():
        pool.values.fill_(1.0)
    audio, audio_mask, text, text_mask = make_batch()
    out = pool(audio, audio_mask, text, text_mask)
    torch.testing.assert_close(
        out.prompts[..., 0].sum(dim=1), torch.full((3,), 3.0).double()
    )
    torch.testing.assert_close(
        out.scores.sum(dim=1), torch.ones(3, dtype=torch.float64)
    )


def test_residual_is_base_plus_selected():
    pool = make_pool(selector="residual_base", k=None, k_max=4)
    assert pool.base_prompt.shape == (4, DIM)
    audio, audio_mask, text, text_mask = make_batch()
    pool.eval()
    for k in (1, 4):
        out = pool(audio, audio_mask, text, text_mask, k=k)
        expected = pool.base_prompt[:k][None] + pool.values[out.indices]
        torch.testing.assert_close(out.prompts, expected, rtol=0, atol=0)
        # same selection as the similarity selector
        scores = torch.nn.functional.cosine_similarity(
            pool.query(audio, audio_mask, text, text_mask)[:, None],
            pool.keys[None],
            dim=-1,
        )
        assert torch.equal(out.indices, scores.topk(k, dim=1).indices)
    with pytest.raises(ValueError, match="base_prompt_len"):
        make_pool(selector="residual_base", base_prompt_len=2)(
            audio, audio_mask, text, text_mask
        )


def test_key_dim_projection():
    pool = make_pool(key_dim=3)
    assert isinstance(pool.query_proj, torch.nn.Linear)
    assert pool.keys.shape == (POOL, 3)
    audio, audio_mask, text, text_mask = make_batch()
    out = pool(audio, audio_mask, text, text_mask)
    out.key_loss.backward()
    assert pool.keys.grad.abs().sum() > 0


def test_value_init_mean_embedding():
    emb = torch.randn(50, DIM) + 3.0
    pool = PromptPool(DIM, pool_size=200, k=1, value_init=emb)
    torch.testing.assert_close(
        pool.values.mean(dim=0), emb.mean(dim=0), atol=0.01, rtol=0
    )
    assert abs(float((pool.values - emb.mean(0)).std().detach()) - 0.02) < 0.005
    torch.testing.assert_close(mean_embedding(emb.mean(0), DIM), emb.mean(0))
    with pytest.raises(ValueError, match="value_init"):
        PromptPool(DIM, pool_size=4, k=1, value_init=torch.randn(4, DIM + 1))


def test_recording_and_usage_counts():
    pool = make_pool().eval()
    audio, audio_mask, text, text_mask = make_batch()
    out = pool(audio, audio_mask, text, text_mask)
    pool.record(["asr", "asr", "emotion"])  # not recording: no-op
    assert pool.records == []
    pool.start_recording()
    out = pool(audio, audio_mask, text, text_mask)
    pool.record(["asr", "asr", "emotion"])
    assert len(pool.records) == 3
    expected = torch.zeros(POOL, dtype=torch.long)
    for row in out.indices[:2]:
        for i in row:
            expected[i] += 1
    assert torch.equal(pool.usage_counts("asr"), expected)
    assert int(pool.usage_counts().sum()) == 9
    assert int(pool.usage_counts("unknown").sum()) == 0
    with pytest.raises(ValueError, match="tags"):
        pool.record(["asr"])
    pool.stop_recording()
    pool(audio, audio_mask, text, text_mask)
    pool.record(["x", "y", "z"])
    assert len(pool.records) == 3
    pool.start_recording()
    assert pool.records == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"selector": "nearest"}, "selector"),
        ({"key_loss": "l1"}, "key_loss"),
        ({"query_source": "text"}, "query_source"),
        ({"k": 8}, "k=8"),
        ({"k": 2, "stochastic_k": True}, "not both"),
        ({"k": None, "stochastic_k": False}, "fixed k"),
        ({"k_eval": 0}, "k_eval"),
        ({"base_prompt_len": 3}, "residual_base"),
        ({"selector": "residual", "base_prompt_len": 3}, "residual_base"),
        ({"attention_dropout": 0.1}, "only used by the 'attention'"),
        ({"selector": "attention", "attention_dropout": 1.0}, r"\[0, 1\)"),
    ],
)
def test_pool_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_pool(**kwargs)


def test_pool_bad_input():
    pool = make_pool()
    audio, audio_mask, text, text_mask = make_batch()
    with pytest.raises(ValueError, match="text=..."):
        pool(audio, audio_mask)
    with pytest.raises(ValueError, match="audio has shape"):
        pool(audio[..., :3], audio_mask, text, text_mask)
    with pytest.raises(ValueError, match="text_mask"):
        pool(audio, audio_mask, text, text_mask.float())
    with pytest.raises(ValueError, match="batch size"):
        pool(audio, audio_mask, text[:2], text_mask[:2])
    with pytest.raises(ValueError, match="k=9"):
        pool(audio, audio_mask, text, text_mask, k=9)


def test_masked_mean_reference():
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    mask = torch.tensor([[True, False, True, False], [False] * 4])
    out = masked_mean(x, mask)
    torch.testing.assert_close(out[0], (x[0, 0] + x[0, 2]) / 2)
    assert torch.equal(out[1], torch.zeros(3, dtype=torch.float64))


def test_soft_prompt():
    emb = torch.randn(30, DIM) + 1.0
    sp = SoftPrompt(DIM, num_tokens=4, value_init=emb)
    audio = torch.randn(3, 2, DIM)
    out = sp(audio)
    assert out.prompts.shape == (3, 4, DIM)
    assert out.prompt_mask.all() and out.scores is None
    assert out.indices.tolist() == [[0, 1, 2, 3]] * 3
    assert out.key_loss.item() == 0.0
    assert torch.equal(out.prompts[1], sp.values)
    assert (sp.values - emb.mean(0)).abs().max() < 0.2
    (out.prompts.sum() + out.key_loss).backward()
    torch.testing.assert_close(sp.values.grad, torch.full((4, DIM), 3.0))
    with pytest.raises(ValueError, match="num_tokens"):
        SoftPrompt(DIM, num_tokens=0)
    with pytest.raises(ValueError, match="4 tokens"):
        sp(audio, k=2)


def test_stochastic_k_without_seed_follows_the_global_seed():
    """With no ``seed``, the k draws come from torch's global generator, so
    a seeded run (``seed_everything``) repeats them exactly; a different
    global seed gives different draws."""

    def draws(global_seed):
        torch.manual_seed(global_seed)
        pool = PromptPool(DIM, pool_size=30)
        return [pool.current_k() for _ in range(50)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


def test_resumed_pool_draws_the_same_ks_as_an_uninterrupted_one(tmp_path):
    """The stochastic-k generator state travels with the checkpoint
    (``TrainableState``): a pool restored mid-run continues the k sequence
    of the run it was saved from, not its own initial seed."""
    from audiollm_lobes.trainable import TrainableState

    pool = PromptPool(DIM, pool_size=30, seed=3)
    first = [pool.current_k() for _ in range(20)]
    TrainableState({"prompt_pool": pool}).save(tmp_path / "ckpt")
    uninterrupted = [pool.current_k() for _ in range(30)]

    fresh = PromptPool(DIM, pool_size=30, seed=3)
    assert [fresh.current_k() for _ in range(20)] == first  # same start
    restored = PromptPool(DIM, pool_size=30, seed=3)
    TrainableState({"prompt_pool": restored}).load(tmp_path / "ckpt")
    assert [restored.current_k() for _ in range(30)] == uninterrupted
    # without the state, a resumed run would have restarted the sequence
    assert first[:20] != uninterrupted[:20]


def test_checkpoint_without_generator_state_still_loads(tmp_path):
    """Checkpoints written before the generator state was saved hold only
    parameters; they load (with a warning) and keep the pool's own state."""
    from audiollm_lobes.trainable import TrainableState

    pool = PromptPool(DIM, pool_size=30, seed=3)
    params = {
        f"prompt_pool.{n}": p.detach()
        for n, p in pool.named_parameters()
        if p.requires_grad
    }
    torch.save(params, tmp_path / "old")
    other = PromptPool(DIM, pool_size=30, seed=4)
    TrainableState({"prompt_pool": other}).load(tmp_path / "old")
    assert torch.equal(other.keys, pool.keys)
    reference = PromptPool(DIM, pool_size=30, seed=4)
    assert [other.current_k() for _ in range(10)] == [
        reference.current_k() for _ in range(10)
    ]
