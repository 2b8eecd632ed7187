"""LAL (attention-only audio injection) against references.

The main reference is a hand-written float64 forward of the whole decoder
(RMSNorm, RoPE with explicit pair rotation, per-head GQA attention over
``[audio K/V ; causal text]``, SwiGLU MLP on text only), looping over
samples and heads and using only each sample's valid tokens. The HF models
are built in memory and wrapped with ``CausalLM.from_model``.
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
import transformers

from audiollm_lobes.injection import (
    LAL_ATTENTION,
    AttentionOnlyInjector,
    PALRouter,
    assemble_plits,
)
from audiollm_lobes.llm import CausalLM, pad_ids, truncate_after_eos

HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB = 32, 4, 4, 2, 61
EOS, PAD = 2, 0
# HF computes RMSNorm and the RoPE angles in float32 even for float64
# weights, so a float64 model agrees with a true float64 reference to ~1e-6
# (the audio itself moves the logits by > 1e-2, checked below).
TOL = 2e-5


@pytest.fixture(autouse=True)
def _one_thread(_few_threads):
    """Tiny tensors: one thread is ~100x faster than two on a busy box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(family):
    common = {
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": 48,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        # peaky attention, so that the audio visibly changes the output
        "initializer_range": 0.25,
        "rms_norm_eps": 1e-5,
        "bos_token_id": 1,
        "eos_token_id": EOS,
        "pad_token_id": PAD,
    }
    if family == "llama":
        return transformers.LlamaConfig(**common)
    return transformers.Qwen2Config(use_sliding_window=False, **common)


def _model(family, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    cls = {
        "llama": transformers.LlamaForCausalLM,
        "qwen2": transformers.Qwen2ForCausalLM,
    }[family]
    return cls(_config(family)).to(dtype).eval()


@pytest.fixture(scope="module")
def llama64():
    return _model("llama")


@pytest.fixture(scope="module")
def llama32():
    return _model("llama", torch.float32)


def _injector(model, *args, **kwargs):
    """``AttentionOnlyInjector`` on an HF model wrapped in a ``CausalLM``."""
    return AttentionOnlyInjector(CausalLM.from_model(model), *args, **kwargs)


def _perturb(module, seed=1, scale=0.3):
    """Moves the trainable maps away from their (identity) init."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            p.add_(scale * noise.to(p.dtype))


def _batch(dtype, seed=0, batch=3, n_audio=5, n_text=6, dim=HIDDEN):
    gen = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, n_audio, dim, generator=gen, dtype=dtype)
    text = torch.randn(batch, n_text, HIDDEN, generator=gen, dtype=dtype)
    audio_lens = torch.tensor([n_audio, 2, 0][:batch])
    text_lens = torch.tensor([n_text, 3, 4][:batch])
    audio_mask = torch.arange(n_audio)[None] < audio_lens[:, None]
    text_mask = torch.arange(n_text)[None] < text_lens[:, None]
    # garbage in padding must not matter
    audio = audio.masked_fill(~audio_mask[..., None], 1e3)
    text = text.masked_fill(~text_mask[..., None], -1e3)
    return audio, audio_mask, text, text_mask


# ------------------------------------------------------------- reference
def _rms(x, weight, eps):
    return weight * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)


def _lin(x, module):
    out = x @ module.weight.T
    return out if module.bias is None else out + module.bias


def _rope(x, positions, theta):
    """Rotates pairs (i, i + d/2) by angle pos * theta^(-2i/d)."""
    dim = x.shape[-1]
    freq = theta ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angle = positions.double()[:, None] * freq[None]  # (len, dim/2)
    cos, sin = angle.cos()[:, None, :], angle.sin()[:, None, :]
    x1, x2 = x[..., : dim // 2], x[..., dim // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


@torch.no_grad()
def reference_logits(model, lal, text, text_mask, audio, audio_mask):
    """Per-sample float64 forward; returns a list of (len_b, vocab)."""
    cfg = model.config
    eps = cfg.rms_norm_eps
    theta = cfg.rope_parameters["rope_theta"]
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    groups = cfg.num_attention_heads // cfg.num_key_value_heads
    decoder = model.model
    outputs = []
    for b in range(text.shape[0]):
        length = int(text_mask[b].sum())
        h = text[b, :length].double()
        if audio is None:
            a = torch.zeros(0, HIDDEN, dtype=torch.float64)
        else:
            a = audio[b][audio_mask[b]].double()
        n_audio = a.shape[0]
        offset = n_audio if lal.audio_rope == "prefix" else 0
        pos = torch.arange(length) + offset
        for i, layer in enumerate(decoder.layers):
            att = layer.self_attn
            x = _rms(h, layer.input_layernorm.weight, eps)
            q = _lin(x, att.q_proj).view(length, -1, head_dim)
            k = _lin(x, att.k_proj).view(length, -1, head_dim)
            v = _lin(x, att.v_proj).view(length, -1, head_dim)
            q, k = _rope(q, pos, theta), _rope(k, pos, theta)
            allowed = torch.ones(length, length).tril().bool()
            if i in lal.lal_layers and n_audio > 0:
                if lal.kv_projection == "shared":
                    m = _lin(a, lal.maps[str(i)])
                    xa = _rms(m, layer.input_layernorm.weight, eps)
                    ka, va = _lin(xa, att.k_proj), _lin(xa, att.v_proj)
                else:
                    ka = _lin(a, lal.k_maps[str(i)])
                    va = _lin(a, lal.v_maps[str(i)])
                ka = ka.view(n_audio, -1, head_dim)
                va = va.view(n_audio, -1, head_dim)
                if lal.audio_rope == "prefix":
                    ka = _rope(ka, torch.arange(n_audio), theta)
                k, v = torch.cat([ka, k]), torch.cat([va, v])
                see_audio = torch.ones(length, n_audio).bool()
                allowed = torch.cat([see_audio, allowed], dim=1)
            heads = []
            for j in range(q.shape[1]):
                kj, vj = k[:, j // groups], v[:, j // groups]
                scores = q[:, j] @ kj.T / math.sqrt(head_dim)
                scores = scores.masked_fill(~allowed, float("-inf"))
                heads.append(torch.softmax(scores, dim=-1) @ vj)
            h = h + _lin(torch.cat(heads, dim=-1), att.o_proj)
            y = _rms(h, layer.post_attention_layernorm.weight, eps)
            mlp = layer.mlp
            h = h + _lin(
                F.silu(_lin(y, mlp.gate_proj)) * _lin(y, mlp.up_proj),
                mlp.down_proj,
            )
        h = _rms(h, decoder.norm.weight, eps)
        outputs.append(h @ model.lm_head.weight.T)
    return outputs


def _valid_rows(logits, text_mask):
    return [logits[b, : int(text_mask[b].sum())] for b in range(len(logits))]


def _greedy_uncached(lal, audio, audio_mask, text, text_mask, steps):
    """Recomputes everything (a fresh audio cache too) at every step."""
    embed = lal.hf_model.get_input_embeddings()
    rows = []
    for b in range(text.shape[0]):
        length = int(text_mask[b].sum())
        seq = text[b : b + 1, :length]
        a = None if audio is None else audio[b : b + 1]
        am = None if audio is None else audio_mask[b : b + 1]
        tokens = []
        for _ in range(steps):
            mask = torch.ones(seq.shape[:2], dtype=torch.bool)
            logits = lal(seq, mask, a, am)
            token = logits[0, -1].argmax()
            tokens.append(int(token))
            seq = torch.cat([seq, embed(token.view(1, 1)).to(seq.dtype)], 1)
        rows.append(tokens)
    return torch.tensor(rows)


# ----------------------------------------------------------------- tests
@pytest.mark.parametrize(
    "kv_projection,audio_rope",
    [
        ("shared", "none"),
        ("shared", "prefix"),
        ("new", "none"),
        ("new", "prefix"),
    ],
)
def test_llama_matches_reference_float64(llama64, kv_projection, audio_rope):
    lal = _injector(
        llama64,
        audio_dim=HIDDEN,
        lal_layers=[1, 3],
        kv_projection=kv_projection,
        audio_rope=audio_rope,
    ).double()
    _perturb(lal)
    audio, audio_mask, text, text_mask = _batch(torch.float64)
    got = _valid_rows(lal(text, text_mask, audio, audio_mask), text_mask)
    ref = reference_logits(llama64, lal, text, text_mask, audio, audio_mask)
    plain = reference_logits(llama64, lal, text, text_mask, None, None)
    for g, r in zip(got, ref):
        assert torch.allclose(g, r, atol=TOL, rtol=0)
    # the audio changes the output of the samples that have audio
    assert (ref[0] - plain[0]).abs().max() > 1e-2
    assert (ref[1] - plain[1]).abs().max() > 1e-2
    # a sample without valid audio gets the text-only output (with "none")
    if audio_rope == "none":
        assert torch.allclose(ref[2], plain[2], atol=1e-12, rtol=0)


def test_qwen2_family_matches_reference_float64():
    model = _model("qwen2")
    assert model.model.layers[0].self_attn.k_proj.bias is not None
    lal = _injector(
        model, audio_dim=HIDDEN, lal_layers="all", audio_rope="prefix"
    ).double()
    _perturb(lal)
    audio, audio_mask, text, text_mask = _batch(torch.float64, seed=3)
    got = _valid_rows(lal(text, text_mask, audio, audio_mask), text_mask)
    ref = reference_logits(model, lal, text, text_mask, audio, audio_mask)
    for g, r in zip(got, ref):
        assert torch.allclose(g, r, atol=TOL, rtol=0)


def test_audio_dim_differs_from_hidden(llama64):
    lal = _injector(llama64, audio_dim=12, lal_layers=[0, 2])
    lal = lal.double()
    _perturb(lal)
    audio, audio_mask, text, text_mask = _batch(torch.float64, dim=12)
    got = _valid_rows(lal(text, text_mask, audio, audio_mask), text_mask)
    ref = reference_logits(llama64, lal, text, text_mask, audio, audio_mask)
    for g, r in zip(got, ref):
        assert torch.allclose(g, r, atol=TOL, rtol=0)


def test_eager_model_gets_the_same_result(llama64):
    eager = copy.deepcopy(llama64)
    eager.config._attn_implementation = "eager"
    lal = _injector(eager, audio_dim=HIDDEN, lal_layers=[2])
    lal = lal.double()
    _perturb(lal)
    audio, audio_mask, text, text_mask = _batch(torch.float64, seed=5)
    got = _valid_rows(lal(text, text_mask, audio, audio_mask), text_mask)
    ref = reference_logits(eager, lal, text, text_mask, audio, audio_mask)
    for g, r in zip(got, ref):
        assert torch.allclose(g, r, atol=TOL, rtol=0)
    assert eager.config._attn_implementation == "eager"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_lal_layers_is_the_text_only_llm(dtype):
    model = _model("llama", dtype)
    lal = _injector(model, audio_dim=HIDDEN, lal_layers=[])
    assert sum(p.numel() for p in lal.parameters()) == 0
    audio, audio_mask, text, text_mask = _batch(dtype)
    got = lal(text, text_mask, audio, audio_mask)
    plain = model(inputs_embeds=text, attention_mask=text_mask.long()).logits
    for g, p in zip(_valid_rows(got, text_mask), _valid_rows(plain, text_mask)):
        assert torch.equal(g, p)
    # no audio at all is the same thing
    assert torch.equal(got, lal(text, text_mask))
    # the model's own attention setting is untouched afterwards
    assert model.config._attn_implementation == "sdpa"


def test_layers_outside_lal_layers_hold_no_audio(llama32):
    lal = _injector(llama32, audio_dim=HIDDEN, lal_layers=[0, 2])
    audio, audio_mask, _, _ = _batch(torch.float32)
    cache, mask = lal.build_cache(audio, audio_mask)
    lengths = [cache.get_seq_length(i) for i in range(LAYERS)]
    assert lengths == [5, 0, 5, 0]
    assert torch.equal(mask, audio_mask)


def test_audio_rope_none_ignores_audio_order_prefix_does_not(llama64):
    audio, audio_mask, text, text_mask = _batch(torch.float64)
    audio, audio_mask = audio[:1], audio_mask[:1]
    text, text_mask = text[:1], text_mask[:1]
    flipped = audio.flip(1)
    for rope, same in (("none", True), ("prefix", False)):
        lal = _injector(llama64, audio_dim=HIDDEN, audio_rope=rope).double()
        _perturb(lal)
        a = lal(text, text_mask, audio, audio_mask)
        b = lal(text, text_mask, flipped, audio_mask)
        diff = float((a - b).abs().max().detach())
        assert diff < 1e-8 if same else diff > 1e-3


def test_prefix_text_positions_continue_after_the_audio(llama32):
    lal = _injector(llama32, HIDDEN, audio_rope="prefix")
    audio_mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    text_mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    positions = lal.text_positions(text_mask.bool(), audio_mask.bool())
    assert positions.tolist() == [[3, 4, 3], [1, 2, 3], [0, 0, 0]]


def test_gradients_reach_the_maps_only():
    model = _model("llama", torch.float32)
    for kv in ("shared", "new"):
        lal = _injector(model, HIDDEN, lal_layers=[1, 2], kv_projection=kv)
        audio, audio_mask, text, text_mask = _batch(torch.float32)
        labels = torch.randint(3, VOCAB, text_mask.shape)
        labels = labels.masked_fill(~text_mask, -100)
        labels[:, 0] = -100
        loss = lal.loss(text, text_mask, labels, audio, audio_mask)
        loss.backward()
        names = [n for n, _ in lal.named_parameters()]
        assert names and all(
            n.split(".")[0] in ("maps", "k_maps", "v_maps") for n in names
        )
        for name, p in lal.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        for p in model.parameters():
            assert not p.requires_grad and p.grad is None
        # the LLM is not part of the module tree (not saved with it)
        assert all(
            k.split(".")[0] in ("maps", "k_maps", "v_maps")
            for k in lal.state_dict()
        )


def test_loss_is_cross_entropy_of_the_reference(llama64):
    lal = _injector(llama64, HIDDEN, lal_layers=[0, 3]).double()
    _perturb(lal)
    audio, audio_mask, text, text_mask = _batch(torch.float64, seed=7)
    labels = torch.randint(3, VOCAB, text_mask.shape)
    labels = labels.masked_fill(~text_mask, -100)
    labels[:, :2] = -100
    got = lal.loss(text, text_mask, labels, audio, audio_mask, "sum")
    ref = reference_logits(llama64, lal, text, text_mask, audio, audio_mask)
    total = 0.0
    for b, logits in enumerate(ref):
        for t in range(1, logits.shape[0]):
            if labels[b, t] != -100:
                logp = torch.log_softmax(logits[t - 1], -1)
                total -= float(logp[labels[b, t]])
    assert math.isclose(got.item(), total, rel_tol=1e-6)


@pytest.mark.parametrize("audio_rope", ["none", "prefix"])
def test_cached_generation_equals_uncached_greedy(llama32, audio_rope):
    lal = _injector(
        llama32, HIDDEN, lal_layers=[1, 2, 3], audio_rope=audio_rope
    )
    _perturb(lal)
    audio, audio_mask, text, text_mask = _batch(torch.float32, seed=2)
    steps = 6
    got = lal.generate(audio, audio_mask, text, text_mask, steps, eos_ids=[])
    ref = _greedy_uncached(lal, audio, audio_mask, text, text_mask, steps)
    assert torch.equal(got, ref)
    # samples differ, so the test is not vacuous
    assert len({tuple(r) for r in ref.tolist()}) > 1


def test_generation_stops_at_eos_and_pads(llama32):
    lal = _injector(llama32, HIDDEN, lal_layers=[0, 1])
    _perturb(lal)
    audio, audio_mask, text, text_mask = _batch(torch.float32, seed=4)
    free = lal.generate(audio, audio_mask, text, text_mask, 8, eos_ids=[])
    eos = int(free[0, 2])  # sample 0 emits this token at step 2
    got = lal.generate(
        audio, audio_mask, text, text_mask, 8, eos_ids=[eos], pad_id=PAD
    )
    expected = truncate_after_eos(free, [eos], PAD)[:, : got.shape[1]]
    assert torch.equal(got, expected)
    assert got[0, 2] == eos and torch.all(got[0, 3:] == PAD)


def test_batch_decodes_like_each_sample_alone(llama32):
    lal = _injector(llama32, HIDDEN, lal_layers=[0, 2, 3], audio_rope="prefix")
    _perturb(lal)
    audio, audio_mask, text, text_mask = _batch(torch.float32, seed=6)
    batch_tokens = lal.generate(
        audio, audio_mask, text, text_mask, 6, eos_ids=[]
    )
    batch_logits = lal(text, text_mask, audio, audio_mask)
    for b in range(3):
        na, nt = int(audio_mask[b].sum()), int(text_mask[b].sum())
        a, am = audio[b : b + 1, :na], audio_mask[b : b + 1, :na]
        t, tm = text[b : b + 1, :nt], text_mask[b : b + 1, :nt]
        alone = lal.generate(a, am, t, tm, 6, eos_ids=[])
        assert torch.equal(alone[0], batch_tokens[b])
        logits = lal(t, tm, a, am)
        assert torch.allclose(logits[0], batch_logits[b, :nt], atol=1e-5)


def test_pal_routing_with_plits_tokens_in_loss_and_generation(llama64):
    """Whisper tokens spliced into the input (PLITS), BEATs tokens as K/V."""
    router = PALRouter({"whisper": "plits", "beats": "lal"})
    gen = torch.Generator().manual_seed(8)
    batch = 2
    whisper = torch.randn(batch, 4, HIDDEN, generator=gen, dtype=torch.float64)
    beats = torch.randn(batch, 3, HIDDEN, generator=gen, dtype=torch.float64)
    w_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]).bool()
    b_mask = torch.tensor([[1, 1, 0], [1, 1, 1]]).bool()
    routed = router({"whisper": (whisper, w_mask), "beats": (beats, b_mask)})
    assert torch.equal(routed.plits_mask, w_mask)
    assert torch.equal(routed.lal_mask, b_mask)

    lal = _injector(llama64, HIDDEN, lal_layers=[1, 3]).double()
    _perturb(lal)
    embed = llama64.get_input_embeddings()
    before = torch.tensor([[1, 7, 8], [1, 9, 0]])
    after = torch.tensor([[11, 12], [13, 14]])
    answer = torch.tensor([[20, 21, EOS], [22, EOS, PAD]])
    seq = assemble_plits(
        embed,
        before,
        before != 0,
        routed.plits,
        routed.plits_mask,
        after,
        after != 0,
        answer,
        answer != PAD,
    )
    loss = lal.loss(
        seq.embeds, seq.mask, seq.labels, routed.lal, routed.lal_mask
    )
    ref = reference_logits(
        llama64, lal, seq.embeds, seq.mask, routed.lal, routed.lal_mask
    )
    targets, scores = [], []
    for b, logits in enumerate(ref):
        for t in range(1, logits.shape[0]):
            if seq.labels[b, t] != -100:
                scores.append(logits[t - 1])
                targets.append(seq.labels[b, t])
    ref_loss = F.cross_entropy(torch.stack(scores), torch.stack(targets))
    assert math.isclose(loss.item(), ref_loss.item(), rel_tol=1e-6)

    prompt = assemble_plits(
        embed,
        before,
        before != 0,
        routed.plits,
        routed.plits_mask,
        after,
        after != 0,
    )
    got = lal.generate(
        routed.lal, routed.lal_mask, prompt.embeds, prompt.mask, 5, eos_ids=[]
    )
    ref_tokens = _greedy_uncached(
        lal, routed.lal, routed.lal_mask, prompt.embeds, prompt.mask, 5
    )
    assert torch.equal(got, ref_tokens)


def test_bad_arguments_are_reported(llama32):
    with pytest.raises(ValueError, match="out of range"):
        _injector(llama32, HIDDEN, lal_layers=[0, LAYERS])
    with pytest.raises(ValueError, match="kv_projection"):
        _injector(llama32, HIDDEN, kv_projection="tied")
    with pytest.raises(ValueError, match="audio_rope"):
        _injector(llama32, HIDDEN, audio_rope="alibi")
    with pytest.raises(TypeError, match="PreTrainedModel"):
        AttentionOnlyInjector(object(), HIDDEN)
    with pytest.raises(TypeError, match="CausalLM.from_model"):
        AttentionOnlyInjector(llama32, HIDDEN)  # an unwrapped HF model
    lal = _injector(llama32, HIDDEN)
    audio, audio_mask, text, text_mask = _batch(torch.float32)
    with pytest.raises(ValueError, match="audio_dim=32"):
        lal(text, text_mask, audio[..., :5], audio_mask)
    with pytest.raises(ValueError, match="audio_mask"):
        lal(text, text_mask, audio, audio_mask[:, :2])
    with pytest.raises(ValueError, match="without any valid token"):
        lal(text, torch.zeros_like(text_mask), audio, audio_mask)


def test_works_through_the_causal_lm_wrapper(tmp_path):
    from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder

    lm = CausalLM(make_tiny_lm_folder(tmp_path, layers=3))
    lal = AttentionOnlyInjector(lm, audio_dim=8, lal_layers=[1, 2])
    assert lal.hf_model is lm.model
    ids = lm.encode(["the cat", "a dog is here"], add_bos=True)
    tokens, mask = pad_ids(ids, lm.pad_id)
    assert not bool(mask.all())  # right padding present
    audio = torch.randn(2, 4, 8)
    out = lal.generate(audio, None, lm.embed(tokens), mask, 4)
    assert out.shape[0] == 2 and out.shape[1] <= 4
    # the wrapper's EOS/pad are used: nothing but pad after an EOS
    after = (out == lm.eos_id).long().cumsum(1) - (out == lm.eos_id).long()
    assert torch.all(out[after > 0] == lm.pad_id)
    assert lm.model.config._attn_implementation != LAL_ATTENTION


def test_a_config_sliding_window_does_not_crop_the_audio():
    # Phi-3-mini (2047) and Mistral-7B-v0.1 (4096) declare a sliding
    # window without per-layer types, so HF's own cache for their config
    # would keep only the last positions of each layer, audio included.
    # LAL attends through its own full masks: the window shorter than
    # audio + text here must change nothing, in the loss or in decoding.
    common = dict(_config("llama").to_dict())
    for key in ("architectures", "model_type", "transformers_version"):
        common.pop(key, None)
    torch.manual_seed(0)
    windowed = transformers.MistralForCausalLM(
        transformers.MistralConfig(**{**common, "sliding_window": 3})
    ).eval()
    full = transformers.MistralForCausalLM(
        transformers.MistralConfig(**{**common, "sliding_window": None})
    ).eval()
    full.load_state_dict(windowed.state_dict())
    lals = [
        _injector(m, HIDDEN, lal_layers=[1, 2, 3]) for m in (windowed, full)
    ]
    for lal in lals:
        _perturb(lal)
    audio, audio_mask, text, text_mask = _batch(torch.float32, seed=2)
    logits = [lal(text, text_mask, audio, audio_mask) for lal in lals]
    torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=1e-5)
    tokens = [
        lal.generate(audio, audio_mask, text, text_mask, 6, eos_ids=[])
        for lal in lals
    ]
    assert torch.equal(tokens[0], tokens[1])
