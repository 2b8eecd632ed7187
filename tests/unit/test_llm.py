"""Tests of the frozen causal-LM wrapper against plain HF / loop references.

Authors
 * audiollm-lobes developers, 2026
"""

import pytest
import torch
import torch.nn.functional as F
import transformers

from audiollm_lobes.llm import (
    IGNORE_INDEX,
    CausalLM,
    decode_loop,
    left_align,
    next_token_loss,
    pad_ids,
    sample_top_p,
    truncate_after_eos,
)
from audiollm_lobes.masks import positions_from_mask
from audiollm_lobes.toyworld.toy_lm import (
    _TINY_CORPUS,
    make_llama,
    train_tokenizer,
)

PROMPTS = [
    "the red cat",
    "le chien bleu dort dans le jardin",
    "红色",
    "USER: Repeat the text: the blue dog sleeps in the garden",
    "bring two",
]


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory):
    """A random Llama (GQA, untied head) with large weights, so that greedy
    decoding is far from trivial, and an EOS logit boosted so that most
    continuations end within ~20 tokens."""
    root = tmp_path_factory.mktemp("tiny_llm")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(_TINY_CORPUS) + "\n", encoding="utf-8")
    tok = train_tokenizer(corpus, root / "tok", vocab_size=400)
    folder = make_llama(
        tok,
        root / "lm",
        hidden=64,
        layers=2,
        heads=4,
        kv_heads=2,
        intermediate=128,
        init_std=0.3,
        tie_embeddings=False,
        seed=3,
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        eos = model.config.eos_token_id
        model.lm_head.weight[eos] *= 2.5
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def lm(lm_folder):
    torch.manual_seed(0)
    return CausalLM(lm_folder)


def _batch(lm, texts):
    tokens, mask = pad_ids(lm.encode(texts, add_bos=True), lm.pad_id)
    return lm.embed(tokens), mask


def _reference_greedy(lm, ids, max_new_tokens):
    """Greedy decoding of one unpadded prompt with the plain HF model,
    recomputing the whole sequence at each step (no cache)."""
    embeds = lm.embed(torch.tensor([ids]))
    out = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = lm.model(inputs_embeds=embeds, use_cache=False).logits
            token = int(logits[0, -1].argmax())
            out.append(token)
            if token == lm.eos_id:
                break
            embeds = torch.cat([embeds, lm.embed(torch.tensor([[token]]))], 1)
    return out


def _strip(row, lm):
    row = row.tolist()
    return row[: row.index(lm.eos_id) + 1] if lm.eos_id in row else row


# ------------------------------------------------------------- loading
def test_loads_through_from_pretrained(lm_folder, monkeypatch):
    calls = []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(source, *args, **kwargs):
        calls.append((source, kwargs))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(
        transformers.AutoModelForCausalLM, "from_pretrained", spy
    )
    model = CausalLM(lm_folder, attn_implementation="eager")
    assert len(calls) == 1
    source, kwargs = calls[0]
    assert source == str(lm_folder)
    assert kwargs["local_files_only"] is True
    assert kwargs["attn_implementation"] == "eager"
    assert kwargs["dtype"] == torch.float32
    assert isinstance(model.model, transformers.LlamaForCausalLM)


def test_frozen_and_stays_in_eval_mode(lm):
    assert not any(p.requires_grad for p in lm.parameters())
    lm.train()
    assert lm.training and not lm.model.training
    assert not any(m.training for m in lm.model.modules())
    lm.eval()


def test_unfrozen_follows_train_mode(lm_folder):
    model = CausalLM(lm_folder, freeze=False)
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    assert model.model.training


def test_bad_source_names_it(tmp_path):
    with pytest.raises(OSError, match="empty_folder"):
        CausalLM(tmp_path / "empty_folder_xyz", local_files_only=True)


def test_properties(lm):
    assert lm.hidden_size == 64
    assert lm.vocab_size == lm.model.config.vocab_size
    assert (lm.bos_id, lm.eos_id, lm.pad_id) == (1, 2, 3)
    assert lm.eos_ids == [2]
    assert lm.dtype == torch.float32


def test_embedding_norm_matches_loop(lm):
    weight = lm.model.get_input_embeddings().weight.double()
    special = set(lm.tokenizer.all_special_ids)
    norms = [
        float(weight[i].pow(2).sum().sqrt())
        for i in range(weight.shape[0])
        if i not in special
    ]
    assert lm.embedding_norm() == pytest.approx(sum(norms) / len(norms))


# ---------------------------------------------------------- tokenizing
def test_encode_decode(lm):
    ids = lm.encode(["the red cat", "红色的猫"], add_bos=True, add_eos=True)
    assert all(seq[0] == lm.bos_id and seq[-1] == lm.eos_id for seq in ids)
    assert lm.decode(ids) == ["the red cat", "红色的猫"]
    # decoding stops at the first EOS and skips pads
    tokens = lm.encode(["the cat"])[0]
    row = [lm.pad_id] + tokens + [lm.eos_id] + lm.encode(["dog"])[0]
    assert lm.decode(torch.tensor([row])) == ["the cat"]
    assert lm.encode("a b") == lm.encode(["a b"])


# ------------------------------------------------------------- helpers
def test_positions_from_mask_loop():
    """The default position ids of ``CausalLM.forward`` (``masks``): index
    among the row's valid positions; 0 on padding (never a valid output)."""
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 1, 0]])
    expected = torch.zeros_like(mask)
    for b in range(mask.shape[0]):
        count = 0
        for t in range(mask.shape[1]):
            if mask[b, t]:
                expected[b, t] = count
                count += 1
    assert torch.equal(positions_from_mask(mask), expected)
    assert torch.equal(positions_from_mask(mask, 2), expected[:, -2:])


def test_left_align_loop():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 7, 3, generator=gen)
    mask = torch.rand(6, 7, generator=gen) > 0.4
    mask[:, 0] = True
    embeds, new_mask = left_align(x, mask)
    width = int(mask.sum(1).max())
    assert embeds.shape == (6, width, 3)
    for b in range(6):
        valid = x[b][mask[b]]
        n = valid.shape[0]
        assert torch.equal(embeds[b, width - n :], valid)
        assert torch.all(embeds[b, : width - n] == 0)
        assert new_mask[b].tolist() == [0] * (width - n) + [1] * n


def test_next_token_loss_matches_a_loop():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 5, 7, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 7, (3, 5), generator=gen)
    labels[torch.rand(3, 5, generator=gen) > 0.6] = IGNORE_INDEX
    labels[:, 0] = IGNORE_INDEX
    labels[0, 1] = 4  # at least one target
    seen = []

    def logits_fn(at):
        seen.append(at)
        return logits[at]

    got = next_token_loss(logits_fn, labels, logits, reduction="sum")
    total = 0.0
    for b in range(3):
        for t in range(1, 5):
            if labels[b, t] != IGNORE_INDEX:
                total -= float(
                    F.log_softmax(logits[b, t - 1], -1)[labels[b, t]]
                )
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(total, rel=1e-6)
    # logits are asked for exactly the positions before a label
    assert torch.equal(seen[0][:, :-1], labels[:, 1:] != IGNORE_INDEX)
    assert not seen[0][:, -1].any()


def test_decode_loop_pads_after_eos_and_stops():
    gen = torch.Generator().manual_seed(4)
    steps = torch.randn(6, 4, 5, generator=gen)  # (step, batch, vocab)
    fed = []

    def next_logits(token):
        fed.append(token)
        return steps[len(fed) - 1].clone()

    out = decode_loop(next_logits, 6, eos_ids=[1, 3], pad_id=0)
    ref = truncate_after_eos(steps.argmax(-1).T, [1, 3], 0)
    assert torch.equal(out, ref[:, : out.shape[1]])
    # it stops at the step where the last sample ends (before the 6th
    # here), and the model is never run on a token nobody needs
    is_eos = torch.isin(ref, torch.tensor([1, 3]))
    last = torch.where(is_eos.any(1), is_eos.long().argmax(1), 5)
    assert out.shape[1] == int(last.max()) + 1 < 6
    assert len(fed) == out.shape[1] and fed[0] is None
    assert all(torch.equal(f, out[:, i]) for i, f in enumerate(fed[1:]))
    # min_new_tokens forbids EOS
    fed.clear()
    out = decode_loop(next_logits, 6, [1, 3], 0, min_new_tokens=6)
    assert out.shape[1] == 6 and not torch.isin(out, torch.tensor([1, 3])).any()


def test_from_model_wraps_without_reloading(lm):
    same = CausalLM.from_model(lm.model, lm.tokenizer)
    assert same.model is lm.model
    assert (same.bos_id, same.eos_ids, same.pad_id) == (
        lm.bos_id,
        lm.eos_ids,
        lm.pad_id,
    )
    embeds, mask = _batch(lm, PROMPTS[:2])
    assert torch.equal(same(embeds, mask).logits, lm(embeds, mask).logits)
    with pytest.raises(TypeError, match="PreTrainedModel"):
        CausalLM.from_model(lm)


def test_from_model_special_ids_without_tokenizer():
    def wrap(**ids):
        config = transformers.LlamaConfig(
            vocab_size=12,
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            **ids,
        )
        return CausalLM.from_model(transformers.LlamaForCausalLM(config))

    lm = wrap(bos_token_id=1, eos_token_id=[5, 2], pad_token_id=7)
    assert (lm.bos_id, lm.eos_ids, lm.eos_id, lm.pad_id) == (1, [5, 2], 5, 7)
    lm = wrap(eos_token_id=4, pad_token_id=None)
    assert (lm.eos_ids, lm.pad_id) == ([4], 4)  # pad falls back to EOS
    lm.model.generation_config.eos_token_id = None
    assert lm.eos_ids == [4]  # from the model config
    lm = wrap(bos_token_id=None, eos_token_id=None, pad_token_id=None)
    assert (lm.bos_id, lm.eos_ids, lm.pad_id) == (None, [], 0)
    with pytest.raises(ValueError, match="tokenizer"):
        lm.encode(["a"])


def test_truncate_after_eos_loop():
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 6, (8, 10), generator=gen)
    out = truncate_after_eos(tokens, [2, 5], pad_id=0)
    for b in range(8):
        seen = False
        for t in range(10):
            expected = 0 if seen else int(tokens[b, t])
            assert int(out[b, t]) == expected
            seen = seen or int(tokens[b, t]) in (2, 5)


# -------------------------------------------------------------- forward
def test_forward_matches_hf_and_logits_at(lm):
    embeds, mask = _batch(lm, PROMPTS)
    out = lm(embeds, mask)
    with torch.no_grad():
        ref = lm.model(inputs_embeds=embeds, attention_mask=mask.long())
    assert torch.allclose(out.logits[mask], ref.logits[mask], atol=1e-5)
    # each right-padded row equals the prompt run alone
    for b in range(len(PROMPTS)):
        n = int(mask[b].sum())
        alone = lm(embeds[b : b + 1, :n], mask[b : b + 1, :n])
        assert torch.allclose(alone.logits[0], out.logits[b, :n], atol=1e-4)
    gen = torch.Generator().manual_seed(0)
    at = (torch.rand(mask.shape, generator=gen) > 0.5) & mask
    sparse = lm(embeds, mask, logits_at=at)
    assert sparse.logits.shape == (int(at.sum()), lm.vocab_size)
    assert torch.allclose(sparse.logits, out.logits[at], atol=1e-5)
    assert torch.equal(sparse.hidden_states, out.hidden_states)


def test_forward_never_projects_the_full_sequence(lm, monkeypatch):
    embeds, mask = _batch(lm, PROMPTS)
    seen = []
    head = lm.model.get_output_embeddings()
    hook = head.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    try:
        at = torch.zeros_like(mask)
        at[:, 1] = True
        lm(embeds, mask, logits_at=at)
    finally:
        hook.remove()
    assert seen == [torch.Size([len(PROMPTS), lm.hidden_size])]


def test_forward_with_cache_continues(lm):
    embeds, mask = _batch(lm, PROMPTS[:2])
    full = lm(embeds, mask)
    first = lm(embeds[:, :3], mask[:, :3], use_cache=True)
    rest = lm(embeds[:, 3:], mask, past_key_values=first.past_key_values)
    tail = mask[:, 3:]
    assert torch.allclose(
        rest.logits[tail], full.logits[:, 3:][tail], atol=1e-4
    )


def test_bad_shapes(lm):
    embeds, mask = _batch(lm, PROMPTS[:2])
    with pytest.raises(ValueError, match="attention_mask"):
        lm(embeds, mask[:1])
    with pytest.raises(ValueError, match="logits_at"):
        lm(embeds, mask, logits_at=mask[:, :2])
    with pytest.raises(ValueError, match="inputs_embeds"):
        lm(embeds[0], mask)
    with pytest.raises(ValueError, match="no valid position"):
        lm.generate(embeds, torch.zeros_like(mask))


# ----------------------------------------------------------------- loss
def _labels(lm, texts, answers):
    prompts = lm.encode(texts, add_bos=True)
    outs = lm.encode(answers, add_eos=True)
    tokens, mask = pad_ids([p + a for p, a in zip(prompts, outs)], lm.pad_id)
    labels = tokens.masked_fill(~mask, IGNORE_INDEX)
    for b, p in enumerate(prompts):
        labels[b, : len(p)] = IGNORE_INDEX
    return tokens, mask, labels


def test_loss_matches_hf_and_loop(lm):
    tokens, mask, labels = _labels(
        lm, PROMPTS[:3], [" le chat", " the dog sleeps", " 猫"]
    )
    embeds = lm.embed(tokens)
    loss = lm.loss(embeds, mask, labels)
    with torch.no_grad():
        ref = lm.model(
            inputs_embeds=embeds, attention_mask=mask.long(), labels=labels
        ).loss
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    # float64 loop over the labelled positions
    logits = lm(embeds, mask).logits.double()
    total, count = 0.0, 0
    for b in range(tokens.shape[0]):
        for t in range(1, tokens.shape[1]):
            if labels[b, t] != IGNORE_INDEX:
                logp = F.log_softmax(logits[b, t - 1], -1)
                total -= float(logp[labels[b, t]])
                count += 1
    assert loss.item() == pytest.approx(total / count, rel=1e-5)
    per_token = lm.loss(embeds, mask, labels, reduction="none")
    assert per_token.shape == (count,)


def test_loss_gradient_reaches_inputs_only(lm):
    tokens, mask, labels = _labels(lm, PROMPTS[:2], [" a", " b c"])
    embeds = lm.embed(tokens).detach().requires_grad_(True)
    lm.loss(embeds, mask, labels).backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0
    assert all(p.grad is None for p in lm.parameters())


def test_loss_without_labels_is_zero(lm):
    tokens, mask, _ = _labels(lm, PROMPTS[:2], [" a", " b"])
    labels = torch.full_like(tokens, IGNORE_INDEX)
    assert lm.loss(lm.embed(tokens), mask, labels).item() == 0.0


# ------------------------------------------------------------ generate
def test_generation_is_not_trivial(lm):
    embeds, mask = _batch(lm, PROMPTS)
    out = lm.generate(embeds, mask, max_new_tokens=24)
    rows = [tuple(_strip(r, lm)) for r in out]
    assert len(set(rows)) == len(rows)
    assert sum(len(set(r)) > 3 for r in rows) >= 3
    assert sum(r[-1] == lm.eos_id for r in rows) >= 3


def test_cached_greedy_equals_uncached(lm):
    embeds, mask = _batch(lm, PROMPTS)
    cached = lm.generate(embeds, mask, max_new_tokens=24, use_cache=True)
    uncached = lm.generate(embeds, mask, max_new_tokens=24, use_cache=False)
    assert torch.equal(cached, uncached)
    ids = lm.encode(PROMPTS, add_bos=True)
    for b, prompt in enumerate(ids):
        assert _strip(cached[b], lm) == _reference_greedy(lm, prompt, 24)


def test_padded_batch_equals_each_prompt_alone(lm):
    embeds, mask = _batch(lm, PROMPTS)
    assert len(set(mask.sum(1).tolist())) == len(PROMPTS)
    batch = lm.generate(embeds, mask, max_new_tokens=24)
    for b in range(len(PROMPTS)):
        n = int(mask[b].sum())
        alone = lm.generate(embeds[b : b + 1, :n], mask[b : b + 1, :n], 24)
        assert _strip(alone[0], lm) == _strip(batch[b], lm)
        # nothing but pads after the EOS
        row = batch[b].tolist()
        if lm.eos_id in row:
            after = row[row.index(lm.eos_id) + 1 :]
            assert all(t == lm.pad_id for t in after)


def test_beam_search_ends_with_eos(lm):
    embeds, mask = _batch(lm, PROMPTS)
    out = lm.generate(embeds, mask, max_new_tokens=40, num_beams=4)
    assert out.shape[0] == len(PROMPTS)
    for row in out:
        seq = _strip(row, lm)
        assert seq[-1] == lm.eos_id
    assert max(len(_strip(r, lm)) for r in out) > 3
    # same beams for a prompt alone
    n = int(mask[1].sum())
    alone = lm.generate(embeds[1:2, :n], mask[1:2, :n], 40, num_beams=4)
    assert _strip(alone[0], lm) == _strip(out[1], lm)


def test_sampling_is_seeded(lm):
    embeds, mask = _batch(lm, PROMPTS[:3])
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        outs.append(
            lm.generate(
                embeds,
                mask,
                max_new_tokens=12,
                do_sample=True,
                temperature=0.8,
                top_p=0.9,
            )
        )
    assert torch.equal(outs[0], outs[1])
    assert outs[0].max() < lm.vocab_size


def test_uncached_sampling_and_beam_errors(lm):
    embeds, mask = _batch(lm, PROMPTS[:3])
    torch.manual_seed(3)
    first = lm.generate(embeds, mask, 10, do_sample=True, use_cache=False)
    torch.manual_seed(3)
    second = lm.generate(embeds, mask, 10, do_sample=True, use_cache=False)
    assert torch.equal(first, second)
    with pytest.raises(ValueError, match="use_cache=False"):
        lm.generate(embeds, mask, 5, num_beams=2, use_cache=False)


def test_min_new_tokens_both_paths(lm):
    embeds, mask = _batch(lm, PROMPTS)
    for use_cache in (True, False):
        out = lm.generate(
            embeds, mask, 6, min_new_tokens=6, use_cache=use_cache
        )
        assert out.shape == (len(PROMPTS), 6)
        assert not torch.isin(out, torch.tensor(lm.eos_ids)).any()


def test_sample_top_p_keeps_the_nucleus():
    probs = torch.tensor([0.5, 0.3, 0.1, 0.06, 0.04])
    logits = probs.log().expand(4000, -1)
    gen = torch.Generator().manual_seed(0)
    draws = sample_top_p(logits, top_p=0.75, generator=gen)
    assert set(draws.tolist()) == {0, 1}
    assert (draws == 0).float().mean().item() == pytest.approx(0.625, abs=0.03)
    draws = sample_top_p(logits, top_p=1.0, generator=gen)
    freq = torch.bincount(draws, minlength=5).float() / 4000
    assert torch.allclose(freq, probs, atol=0.03)


def test_bfloat16_model_takes_float32_embeddings(lm_folder, lm):
    half = CausalLM(lm_folder, dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    embeds, mask = _batch(lm, PROMPTS[:2])
    out = half(embeds, mask)
    ref = lm(embeds, mask)
    assert out.logits.dtype == torch.bfloat16
    probs = torch.softmax(out.logits.float()[mask], -1)
    ref_probs = torch.softmax(ref.logits[mask], -1)
    assert (probs - ref_probs).abs().max() < 0.1
    with pytest.raises(ValueError, match="dtype"):
        CausalLM(lm_folder, dtype="float8")


def test_eager_attention_matches_sdpa_on_a_padded_batch(lm_folder, lm):
    """The recipes' ``llm_attn_implementation`` swaps HF's attention code;
    loss and the gradient reaching the input embeddings must not change."""
    eager = CausalLM(lm_folder, attn_implementation="eager")
    assert eager.model.config._attn_implementation == "eager"
    assert lm.model.config._attn_implementation == "sdpa"
    tokens, mask, labels = _labels(
        lm, PROMPTS[:3], [" le chat", " the dog sleeps", " 猫"]
    )
    assert not mask.all()  # right padding is exercised
    grads = []
    for model in (lm, eager):
        embeds = model.embed(tokens).detach().requires_grad_(True)
        loss = model.loss(embeds, mask, labels)
        loss.backward()
        grads.append((loss.detach(), embeds.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6)
    scale = float(grads[0][1].abs().max())
    assert scale > 0
    torch.testing.assert_close(
        grads[0][1], grads[1][1], rtol=1e-4, atol=1e-4 * scale
    )


def _loss_and_input_grad(model, tokens, mask, labels):
    embeds = model.embed(tokens).detach().requires_grad_(True)
    loss = model.loss(embeds, mask, labels)
    loss.backward()
    return loss.detach(), embeds.grad


def test_compiled_training_forward_matches_eager(lm_folder, lm):
    """``compile_training`` compiles the decoder for gradient-enabled,
    cache-free forwards only: same loss and input gradients as the eager
    decoder on a padded batch, no compiled copy in the state dict, and
    no-grad forwards and decoding never touch the compiled decoder."""
    compiled = CausalLM(lm_folder, compile_training=True)
    assert compiled.state_dict().keys() == lm.state_dict().keys()
    tokens, mask, labels = _labels(
        lm, PROMPTS[:3], [" le chat", " the dog sleeps", " 猫"]
    )
    assert not mask.all()
    with torch.no_grad():
        compiled.loss(compiled.embed(tokens), mask, labels)
    compiled.generate(*_batch(compiled, PROMPTS[:2]), max_new_tokens=3)
    assert compiled._compiled == {}  # inference stayed eager
    ref_loss, ref_grad = _loss_and_input_grad(lm, tokens, mask, labels)
    loss, grad = _loss_and_input_grad(compiled, tokens, mask, labels)
    assert compiled.compile_training and compiled._compiled.get("ran")
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    scale = float(ref_grad.abs().max())
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-4 * scale)
    # another length reuses the dynamic-shape graph and stays exact
    tokens, mask, labels = _labels(lm, PROMPTS[3:5], [" un", " deux trois"])
    ref_loss, _ = _loss_and_input_grad(lm, tokens, mask, labels)
    loss, _ = _loss_and_input_grad(compiled, tokens, mask, labels)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)


def test_failed_compilation_falls_back_to_eager(
    lm_folder, lm, monkeypatch, caplog
):
    def broken_compile(module, **kwargs):
        def run(**inputs):
            raise RuntimeError("no C++ compiler found\nmore detail")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = CausalLM(lm_folder, compile_training=True)
    tokens, mask, labels = _labels(lm, PROMPTS[:2], [" a", " b c"])
    with caplog.at_level("WARNING", logger="audiollm_lobes.llm"):
        loss, _ = _loss_and_input_grad(model, tokens, mask, labels)
    assert "no C++ compiler found" in caplog.text
    assert "more detail" not in caplog.text  # first line only
    ref_loss, _ = _loss_and_input_grad(lm, tokens, mask, labels)
    torch.testing.assert_close(loss, ref_loss)
    assert not model.compile_training and model._compiled == {}


def test_compile_training_must_be_a_bool(lm_folder):
    with pytest.raises(TypeError, match="llm_compile_training.*'yes'"):
        CausalLM(lm_folder, compile_training="yes")
