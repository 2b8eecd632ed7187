"""Decoding caches (``audiollm_lobes.kv_cache``) against references.

* ``ReservedCacheLayer`` against ``torch.cat`` bookkeeping;
* ``CausalLM.generate`` (which decodes over ``reserved_cache``) against
  HF ``generate`` over HF's own default ``DynamicCache``, token for token,
  for greedy, beam and sampled decoding, on Llama, Phi-3 and a Mistral
  whose sliding window is shorter than the sequences (its layers stay
  HF's sliding-window layers);
* the cache is written in place: no layer grows or is reallocated while
  decoding.

The models are float64 so that rounding cannot reorder hypotheses.
"""

import pytest
import torch
import transformers
from transformers.cache_utils import DynamicLayer

from audiollm_lobes import kv_cache
from audiollm_lobes.kv_cache import (
    ReservedCacheLayer,
    cache_keyword,
    reserved_cache,
)
from audiollm_lobes.llm import CausalLM

VOCAB = 53


def _lm(family):
    common = {
        "vocab_size": VOCAB,
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }
    config, model_class = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "phi3": (transformers.Phi3Config, transformers.Phi3ForCausalLM),
        "mistral": (
            transformers.MistralConfig,
            transformers.MistralForCausalLM,
        ),
    }[family]
    extra = {"sliding_window": 5} if family == "mistral" else {}
    torch.manual_seed(0)
    model = model_class(config(**common, **extra)).double().eval()
    return CausalLM.from_model(model)


def _prompts(lm):
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (3, 9), generator=gen)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 6:] = False  # right padding of different lengths
    mask[2, 4:] = False
    return lm.embed(ids), mask


def _with_hf_default_cache(lm, monkeypatch, **kwargs):
    embeds, mask = _prompts(lm)
    with monkeypatch.context() as patch:
        patch.setattr(lm, "_reserved_cache_kwargs", lambda *args: {})
        torch.manual_seed(3)
        return lm.generate(embeds, mask, **kwargs)


@pytest.mark.parametrize("family", ["llama", "phi3", "mistral"])
@pytest.mark.parametrize(
    "options",
    [
        {"max_new_tokens": 12},
        {"max_new_tokens": 10, "num_beams": 3},
        {"max_new_tokens": 10, "do_sample": True, "temperature": 1.5},
    ],
    ids=["greedy", "beams", "sampling"],
)
def test_generate_equals_hf_default_cache(family, options, monkeypatch):
    lm = _lm(family)
    embeds, mask = _prompts(lm)
    torch.manual_seed(3)
    got = lm.generate(embeds, mask, **options)
    want = _with_hf_default_cache(lm, monkeypatch, **options)
    assert torch.equal(got, want)
    assert len(set(map(tuple, got.tolist()))) > 1  # not all one answer


def test_generate_decodes_in_place(monkeypatch):
    lm = _lm("llama")
    embeds, mask = _prompts(lm)
    made = []

    def spy(config, capacity):
        made.append(reserved_cache(config, capacity))
        return made[-1]

    monkeypatch.setattr("audiollm_lobes.llm.reserved_cache", spy)
    buffers = []
    update = ReservedCacheLayer.update

    def recording_update(layer, keys, values, *args, **kwargs):
        out = update(layer, keys, values, *args, **kwargs)
        buffers.append((id(layer), layer._key_buffer.data_ptr()))
        return out

    monkeypatch.setattr(ReservedCacheLayer, "update", recording_update)
    lm.generate(embeds, mask, max_new_tokens=8, min_new_tokens=8)
    [cache] = made
    assert all(type(layer) is ReservedCacheLayer for layer in cache.layers)
    assert [layer.capacity for layer in cache.layers] == [9 + 8] * 3
    # prefill + 7 decoding steps per layer, each into the first buffer
    assert len(buffers) == 3 * 8
    assert len(set(buffers)) == 3
    assert all(layer.get_seq_length() == 9 + 7 for layer in cache.layers)


def test_a_cache_chosen_by_the_caller_is_left_to_hf():
    lm = _lm("llama")
    assert lm._reserved_cache_kwargs(10, {"cache_implementation": "x"}) == {}
    embeds, mask = _prompts(lm)
    # HF refuses a cache object together with cache_implementation
    static = lm.generate(embeds, mask, 6, cache_implementation="static")
    assert torch.equal(static, lm.generate(embeds, mask, 6))


def test_reserved_cache_keeps_hf_sliding_layers():
    llama = _lm("llama").model.config
    mistral = _lm("mistral").model.config
    assert [type(x) for x in reserved_cache(llama, 7).layers] == [
        ReservedCacheLayer
    ] * 3
    sliding = reserved_cache(mistral, 7).layers
    assert all(type(x) is not ReservedCacheLayer for x in sliding)
    assert all(isinstance(x, DynamicLayer) for x in sliding)
    with pytest.raises(ValueError, match="one value per layer"):
        reserved_cache(llama, [4, 4])


def test_cache_keyword_follows_the_signature():
    class Old(torch.nn.Module):
        def forward(self, inputs_embeds=None, past_key_values=None):
            return inputs_embeds

    class New(torch.nn.Module):
        def forward(self, inputs_embeds=None, cache=None):
            return inputs_embeds

    assert cache_keyword(Old()) == "past_key_values"
    assert cache_keyword(New()) == "cache"
    assert kv_cache.cache_keyword(_lm("llama").model) in (
        "cache",
        "past_key_values",
    )


def test_reserved_cache_layer_is_a_growing_concatenation():
    gen = torch.Generator().manual_seed(0)
    layer = ReservedCacheLayer(capacity=4)
    keys = values = None
    for n in (3, 1, 1, 2, 1):  # grows past its capacity twice
        k = torch.randn(2, 3, n, 5, generator=gen)
        v = torch.randn(2, 3, n, 5, generator=gen)
        got_k, got_v = layer.update(k, v)
        keys = k if keys is None else torch.cat([keys, k], 2)
        values = v if values is None else torch.cat([values, v], 2)
        assert torch.equal(got_k, keys) and torch.equal(got_v, values)
        assert layer.get_seq_length() == keys.shape[2] <= layer.capacity
    # expansion to 4 rows, then a reorder of positions 5.. only
    rows = torch.tensor([1, 0, 1, 1])
    layer.select_rows(rows)
    keys, values = keys[rows], values[rows]
    assert torch.equal(layer.keys, keys)
    perm = torch.tensor([2, 2, 0, 3])
    layer.select_rows(perm, start=5)
    keys[:, :, 5:] = keys[perm, :, 5:]
    values[:, :, 5:] = values[perm, :, 5:]
    assert torch.equal(layer.keys, keys) and torch.equal(layer.values, values)
    # decoding continues in place after the reorder
    k = torch.randn(4, 3, 1, 5, generator=gen)
    got_k, _ = layer.update(k, k)
    assert torch.equal(got_k, torch.cat([keys, k], 2))
