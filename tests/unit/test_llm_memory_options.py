"""CausalLM's options for large LLMs: gradient checkpointing of the frozen
decoder (same numbers, layers recomputed in the backward pass, never with
a KV cache) and ``device_map`` passed through to ``from_pretrained``."""

import pytest
import torch
import transformers

from audiollm_lobes.llm import CausalLM, pad_ids
from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_tiny_lm_folder(tmp_path_factory.mktemp("tiny_lm"))


def _count_mlp_calls(lm):
    """A list whose length grows by one per MLP call of any layer (a
    pre-hook: a recomputation stops as soon as it has what the backward
    pass needs, before the MLP returns)."""
    calls = []
    for layer in lm.decoder().layers:
        layer.mlp.register_forward_pre_hook(lambda *_: calls.append(1))
    return calls


def _inputs(lm):
    ids = lm.encode(["the cat sat", "a dog"], add_bos=True)
    tokens, mask = pad_ids(ids, lm.pad_id)
    embeds = lm.embed(tokens).detach().requires_grad_(True)
    return embeds, mask


def _loss_and_grad(lm, embeds, mask, **forward_kwargs):
    out = lm(embeds, mask, **forward_kwargs)
    loss = (out.logits.float() ** 2).mean()
    (grad,) = torch.autograd.grad(loss, embeds)
    return loss.detach(), grad


def test_checkpointed_decoder_matches_and_recomputes_each_layer(folder):
    plain = CausalLM(folder)
    ckpt = CausalLM(folder, gradient_checkpointing=True)
    assert not ckpt.model.training  # frozen: eval mode, still checkpointed
    layers = len(ckpt.decoder().layers)
    embeds, mask = _inputs(plain)
    calls = _count_mlp_calls(ckpt)
    ref_loss, ref_grad = _loss_and_grad(plain, embeds, mask)
    loss, grad = _loss_and_grad(ckpt, embeds, mask)
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)
    # one forward + one recomputation in the backward pass per layer
    assert len(calls) == 2 * layers
    calls.clear()
    with torch.no_grad():  # no backward: nothing to recompute
        ckpt(embeds, mask)
    assert len(calls) == layers


def test_forwards_over_a_kv_cache_are_not_checkpointed(folder):
    """Replaying a layer would write its keys/values into the cache twice
    (LAL continues from a cache of audio keys/values in training)."""
    plain = CausalLM(folder)
    ckpt = CausalLM(folder, gradient_checkpointing=True)
    embeds, mask = _inputs(plain)
    calls = _count_mlp_calls(ckpt)
    results = []
    for lm in (plain, ckpt):
        cache = transformers.DynamicCache(config=lm.config)
        results.append(
            _loss_and_grad(
                lm, embeds, mask, past_key_values=cache, use_cache=True
            )
        )
    assert len(calls) == len(ckpt.decoder().layers)  # no recomputation
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=0)


def test_memory_options_are_checked_early(folder):
    with pytest.raises(TypeError, match="llm_gradient_checkpointing"):
        CausalLM(folder, gradient_checkpointing="yes")
    with pytest.raises(ValueError, match="not both"):
        CausalLM(folder, device="cpu", device_map="cpu")


def test_device_map_reaches_from_pretrained(folder, monkeypatch):
    pytest.importorskip("accelerate")
    auto = transformers.AutoModelForCausalLM
    load = auto.from_pretrained
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("device_map", "absent"))
        return load(*args, **kwargs)

    monkeypatch.setattr(auto, "from_pretrained", spy)
    assert CausalLM(folder, device_map="cpu").device.type == "cpu"
    CausalLM(folder)
    assert seen == ["cpu", "absent"]
