"""LAL on each supported LLM family against a float64 reference.

The families of ``conftest.LLM_FAMILIES``, built in memory from the same
configs as the checkpoints the recipes are run with: Llama (multi-head),
Qwen2 (GQA, biased q/k/v), Mistral (GQA, one key/value head, untied) and
Phi-3 (GQA, fused ``qkv_proj`` and ``gate_up_proj``, untied). The
reference is a hand-written per-sample, per-head forward of the whole
decoder that reads each family's weights its own way (Phi-3's fused
matrices are split by rows here, independently of ``lal.frozen_kv_rows``).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import LLM_FAMILIES, llm_family_config, llm_family_model

from audiollm_lobes.injection import AttentionOnlyInjector
from audiollm_lobes.llm import CausalLM

HIDDEN, VOCAB, LAYERS = 32, 61, 3
# HF computes RMSNorm and the RoPE angles in float32 even for float64
# weights (see test_lal.py); the audio moves the logits by > 1e-2.
TOL = 2e-5


@pytest.fixture(autouse=True)
def _one_thread(_few_threads):
    """Tiny tensors: one thread is faster than two on a busy box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(family, dtype=torch.float64):
    config = llm_family_config(
        family,
        VOCAB,
        bos_id=1,
        eos_id=2,
        pad_id=0,
        num_hidden_layers=LAYERS,
        initializer_range=0.25,  # peaky attention: the audio is visible
        rms_norm_eps=1e-5,
    )
    return llm_family_model(family, config).to(dtype)


@pytest.fixture(scope="module", params=LLM_FAMILIES)
def family_model(request):
    return request.param, _model(request.param)


def _perturb(module, seed=1, scale=0.3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            p.add_(scale * noise.to(p.dtype))


def _batch(dtype, seed=0, batch=3, n_audio=5, n_text=6):
    gen = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, n_audio, HIDDEN, generator=gen, dtype=dtype)
    text = torch.randn(batch, n_text, HIDDEN, generator=gen, dtype=dtype)
    audio_mask = torch.arange(n_audio)[None] < torch.tensor([5, 2, 0])[:, None]
    text_mask = torch.arange(n_text)[None] < torch.tensor([6, 3, 4])[:, None]
    audio = audio.masked_fill(~audio_mask[..., None], 1e3)
    text = text.masked_fill(~text_mask[..., None], -1e3)
    return audio, audio_mask, text, text_mask


# ------------------------------------------------------------- reference
def _rms(x, weight, eps):
    return weight * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)


def _lin(x, weight, bias=None):
    out = x @ weight.T
    return out if bias is None else out + bias


def _rope(x, positions, theta):
    dim = x.shape[-1]
    freq = theta ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angle = positions.double()[:, None] * freq[None]
    cos, sin = angle.cos()[:, None, :], angle.sin()[:, None, :]
    x1, x2 = x[..., : dim // 2], x[..., dim // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def _qkv_weights(att, cfg, head_dim):
    """``[(weight, bias)] * 3`` of the query, key and value projections."""
    if hasattr(att, "qkv_proj"):  # Phi-3: rows [queries; keys; values]
        w = att.qkv_proj.weight
        nq = cfg.num_attention_heads * head_dim
        nkv = cfg.num_key_value_heads * head_dim
        return [
            (w[:nq], None),
            (w[nq : nq + nkv], None),
            (w[nq + nkv :], None),
        ]
    return [(p.weight, p.bias) for p in (att.q_proj, att.k_proj, att.v_proj)]


def _mlp(mlp, y):
    if hasattr(mlp, "gate_up_proj"):  # Phi-3: [gate; up] rows
        gate, up = _lin(y, mlp.gate_up_proj.weight).chunk(2, dim=-1)
    else:
        gate, up = _lin(y, mlp.gate_proj.weight), _lin(y, mlp.up_proj.weight)
    return _lin(F.silu(gate) * up, mlp.down_proj.weight)


@torch.no_grad()
def reference_logits(model, lal, text, text_mask, audio, audio_mask):
    """Per-sample float64 forward; returns a list of (len_b, vocab)."""
    cfg = model.config
    eps = cfg.rms_norm_eps
    theta = cfg.rope_parameters["rope_theta"]
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    groups = cfg.num_attention_heads // cfg.num_key_value_heads
    outputs = []
    for b in range(text.shape[0]):
        length = int(text_mask[b].sum())
        h = text[b, :length].double()
        a = audio[b][audio_mask[b]].double()
        n_audio = a.shape[0]
        offset = n_audio if lal.audio_rope == "prefix" else 0
        pos = torch.arange(length) + offset
        for i, layer in enumerate(model.model.layers):
            att = layer.self_attn
            (wq, bq), (wk, bk), (wv, bv) = _qkv_weights(att, cfg, head_dim)
            x = _rms(h, layer.input_layernorm.weight, eps)
            q = _lin(x, wq, bq).view(length, -1, head_dim)
            k = _lin(x, wk, bk).view(length, -1, head_dim)
            v = _lin(x, wv, bv).view(length, -1, head_dim)
            q, k = _rope(q, pos, theta), _rope(k, pos, theta)
            allowed = torch.ones(length, length).tril().bool()
            if i in lal.lal_layers and n_audio > 0:
                if lal.kv_projection == "shared":
                    m = lal.maps[str(i)]
                    xa = _rms(
                        _lin(a, m.weight, m.bias),
                        layer.input_layernorm.weight,
                        eps,
                    )
                    ka, va = _lin(xa, wk, bk), _lin(xa, wv, bv)
                else:
                    km, vm = lal.k_maps[str(i)], lal.v_maps[str(i)]
                    ka = _lin(a, km.weight, km.bias)
                    va = _lin(a, vm.weight, vm.bias)
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
            h = h + _lin(torch.cat(heads, dim=-1), att.o_proj.weight)
            y = _rms(h, layer.post_attention_layernorm.weight, eps)
            h = h + _mlp(layer.mlp, y)
        h = _rms(h, model.model.norm.weight, eps)
        outputs.append(h @ model.lm_head.weight.T)
    return outputs


# ----------------------------------------------------------------- tests
@pytest.mark.parametrize(
    "kv_projection,audio_rope", [("shared", "prefix"), ("new", "none")]
)
def test_lal_matches_reference_on_each_family(
    family_model, kv_projection, audio_rope
):
    family, model = family_model
    lal = AttentionOnlyInjector(
        CausalLM.from_model(model),
        audio_dim=HIDDEN,
        lal_layers=[0, 2],
        kv_projection=kv_projection,
        audio_rope=audio_rope,
    ).double()
    _perturb(lal)
    audio, audio_mask, text, text_mask = _batch(torch.float64)
    logits = lal(text, text_mask, audio, audio_mask)
    ref = reference_logits(model, lal, text, text_mask, audio, audio_mask)
    plain = reference_logits(
        model, lal, text, text_mask, audio, torch.zeros_like(audio_mask)
    )
    for b, r in enumerate(ref):
        got = logits[b, : r.shape[0]]
        assert torch.allclose(got, r, atol=TOL, rtol=0), (family, b)
    # the audio is heard by the samples that have some
    assert (ref[0] - plain[0]).abs().max() > 1e-2
    assert (ref[1] - plain[1]).abs().max() > 1e-2


def test_new_kv_maps_start_at_the_frozen_projections(family_model):
    """``kv_projection="new"`` starts from the layer's frozen key/value
    weights (for Phi-3: the key and value rows of ``qkv_proj``)."""
    family, model = family_model
    lal = AttentionOnlyInjector(
        CausalLM.from_model(model), HIDDEN, kv_projection="new"
    )
    cfg = model.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    for i, layer in enumerate(model.model.layers):
        _, (wk, bk), (wv, bv) = _qkv_weights(layer.self_attn, cfg, head_dim)
        for lin, w, b in (
            (lal.k_maps[str(i)], wk, bk),
            (lal.v_maps[str(i)], wv, bv),
        ):
            assert torch.equal(lin.weight.double(), w.double()), family
            assert (lin.bias is None) == (b is None), family
            if b is not None:
                assert torch.equal(lin.bias.double(), b.double())


def test_cached_generation_equals_recomputing(family_model):
    """Greedy decoding from the audio cache equals recomputing the whole
    forward (audio cache included) for every token, on each family."""
    family, model = family_model
    model32 = _model(family, torch.float32)
    lal = AttentionOnlyInjector(
        CausalLM.from_model(model32), HIDDEN, lal_layers=[1, 2]
    )
    _perturb(lal)
    audio, audio_mask, text, text_mask = _batch(torch.float32, seed=2)
    steps = 4
    got = lal.generate(audio, audio_mask, text, text_mask, steps, eos_ids=[])
    embed = model32.get_input_embeddings()
    for b in range(text.shape[0]):
        seq = text[b : b + 1, : int(text_mask[b].sum())]
        tokens = []
        for _ in range(steps):
            mask = torch.ones(seq.shape[:2], dtype=torch.bool)
            logits = lal(seq, mask, audio[b : b + 1], audio_mask[b : b + 1])
            token = logits[0, -1].argmax()
            tokens.append(int(token))
            seq = torch.cat([seq, embed(token.view(1, 1))], 1)
        assert got[b].tolist() == tokens, (family, b)
