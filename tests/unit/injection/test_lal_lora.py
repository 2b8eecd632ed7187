"""LAL on an LLM that trains through LoRA, and ``first_layer``.

A LoRA layer computes ``x W^T + s (x A^T) B^T`` (``s = alpha / r``), i.e.
a plain linear layer of weight ``W + s B A``. So the reference of LAL on a
LoRA-adapted LLM is LAL on a copy of the LLM whose weights are merged by
hand (that plain LAL is itself tested against a float64 reference in
``test_lal.py`` / ``test_lal_families.py``): logits must agree, and the
gradients of the LoRA matrices must be the chain rule of the merged
weights' gradients, ``dA = s B^T dW`` and ``dB = s dW A^T``. Audio keys and
values that bypassed the adapters (e.g. Phi-3's fused ``qkv_proj`` read
through its base weight) would break both.
"""

import copy

import pytest
import torch
from conftest import llm_family_config, llm_family_model

from audiollm_lobes.injection.lal import AttentionOnlyInjector
from audiollm_lobes.llm import CausalLM
from audiollm_lobes.lora import LoRAAdapter
from audiollm_lobes.trainable import TrainableState, count_parameters

HIDDEN, VOCAB, LAYERS = 32, 61, 3
ALL_LINEAR = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"]
    + ["down_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
}


@pytest.fixture(autouse=True)
def _one_thread(_few_threads):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(family):
    config = llm_family_config(
        family,
        VOCAB,
        bos_id=1,
        eos_id=2,
        pad_id=0,
        num_hidden_layers=LAYERS,
        initializer_range=0.25,
    )
    return llm_family_model(family, config).double()


def _batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    audio = torch.randn(3, 5, HIDDEN, generator=gen).double()
    text = torch.randn(3, 6, HIDDEN, generator=gen).double()
    audio_mask = torch.arange(5)[None] < torch.tensor([5, 2, 0])[:, None]
    text_mask = torch.arange(6)[None] < torch.tensor([6, 3, 4])[:, None]
    labels = torch.randint(3, VOCAB, (3, 6), generator=gen)
    labels = labels.masked_fill(~text_mask, -100)
    labels[:, 0] = -100
    return audio, audio_mask, text, text_mask, labels


def _lora_layers(model):
    return {
        name: module
        for name, module in model.named_modules()
        if hasattr(module, "lora_A") and "default" in module.lora_A
    }


def _lora_setup(family, targets, lal_layers="all", seed=1):
    """(plain model, LoRA-adapted LLM, injector on it): LoRA B moved away
    from zero and the LAL maps from the identity, so everything counts."""
    plain = _model(family)
    model = copy.deepcopy(plain)
    llm = CausalLM.from_model(model)
    LoRAAdapter(llm, r=4, alpha=8, dropout=0.0, target_modules=targets)
    lal = AttentionOnlyInjector(
        llm, HIDDEN, lal_layers=lal_layers, llm_finetune="lora"
    ).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lal.parameters():
            if p.requires_grad:
                noise = torch.randn(p.shape, generator=gen).double()
                p.add_(0.2 * noise)
    return plain, llm, lal


def _merged(plain, model):
    """A copy of ``plain`` whose adapted weights are ``W + s B A``."""
    merged = copy.deepcopy(plain)
    modules = dict(merged.named_modules())
    for name, lora in _lora_layers(model).items():
        a = lora.lora_A["default"].weight
        b = lora.lora_B["default"].weight
        scale = lora.scaling["default"]
        weight = modules[name].weight
        with torch.no_grad():
            weight.copy_(lora.base_layer.weight + scale * b @ a)
    return merged


def _plain_injector(merged, lal):
    """A frozen-LLM injector on ``merged`` with ``lal``'s maps."""
    twin = AttentionOnlyInjector(
        CausalLM.from_model(merged, freeze=False),
        HIDDEN,
        lal_layers=lal.lal_layers,
        llm_finetune="none",
    ).double()
    maps = {
        k: v for k, v in lal.state_dict().items() if not k.startswith("llm.")
    }
    twin.load_state_dict(maps)
    return twin


@pytest.mark.parametrize("family", ["llama", "phi3"])
def test_lora_lal_equals_lal_on_merged_weights(family):
    plain, llm, lal = _lora_setup(family, ALL_LINEAR[family], [0, 2])
    audio, audio_mask, text, text_mask, labels = _batch()
    loss = lal(text, text_mask, audio, audio_mask, labels=labels)
    loss.backward()
    got = lal(text, text_mask, audio, audio_mask).detach()

    merged = _merged(plain, llm.model)
    twin = _plain_injector(merged, lal)
    # the twin froze its LLM: the merged weights need gradients again
    for name in _lora_layers(llm.model):
        dict(merged.named_modules())[name].weight.requires_grad_(True)
    ref_loss = twin(text, text_mask, audio, audio_mask, labels=labels)
    ref_loss.backward()
    ref = twin(text, text_mask, audio, audio_mask).detach()
    valid = text_mask
    torch.testing.assert_close(got[valid], ref[valid], atol=1e-10, rtol=0)
    torch.testing.assert_close(loss, ref_loss, atol=1e-10, rtol=0)

    # LAL maps: same gradient
    twin_params = dict(twin.named_parameters())
    for name, p in lal.named_parameters():
        if not name.startswith("llm."):
            torch.testing.assert_close(
                p.grad, twin_params[name].grad, atol=1e-9, rtol=1e-7
            )
    # LoRA matrices: the chain rule of the merged weight's gradient
    merged_modules = dict(merged.named_modules())
    lora_layers = _lora_layers(llm.model)
    assert len(lora_layers) == LAYERS * len(ALL_LINEAR[family])
    for name, lora in lora_layers.items():
        a = lora.lora_A["default"].weight
        b = lora.lora_B["default"].weight
        scale = lora.scaling["default"]
        d_weight = merged_modules[name].weight.grad
        torch.testing.assert_close(
            a.grad, scale * b.T @ d_weight, atol=1e-9, rtol=1e-7
        )
        torch.testing.assert_close(
            b.grad, scale * d_weight @ a.T, atol=1e-9, rtol=1e-7
        )
        assert float(b.grad.abs().sum()) > 0, name

    # not vacuous: the adapters change the output, and the audio matters
    base = _plain_injector(copy.deepcopy(plain), lal)
    plain_out = base(text, text_mask, audio, audio_mask).detach()
    assert (plain_out[valid] - got[valid]).abs().max() > 1e-3
    no_audio = lal(text, text_mask).detach()
    assert (no_audio[0] - got[0]).abs().max() > 1e-3


@pytest.mark.parametrize("family", ["llama", "phi3"])
def test_audio_keys_values_go_through_the_adapters(family):
    """Only the key/value projections adapted, audio in layer 1 only:
    the LoRA gradients of layer 1's key/value projection come partly
    from the audio path, so they change when the audio is dropped, while
    its output equals LAL on the merged weights (above) only if the
    audio keys/values use the adapted projection."""
    targets = ["k_proj", "v_proj"] if family == "llama" else ["qkv_proj"]
    plain, llm, lal = _lora_setup(family, targets, [1])
    audio, audio_mask, text, text_mask, labels = _batch(seed=3)
    keys, _ = lal.audio_key_values(audio, audio_mask, 1)
    merged = _merged(plain, llm.model)
    twin = _plain_injector(merged, lal)
    ref_keys, _ = twin.audio_key_values(audio, audio_mask, 1)
    base_keys, _ = _plain_injector(copy.deepcopy(plain), lal).audio_key_values(
        audio, audio_mask, 1
    )
    torch.testing.assert_close(keys, ref_keys, atol=1e-12, rtol=0)
    assert (keys - base_keys).abs().max() > 1e-3

    def lora_grads(with_audio):
        lal.zero_grad()
        a, am = (audio, audio_mask) if with_audio else (None, None)
        lal(text, text_mask, a, am, labels=labels).backward()
        name = "model.layers.1.self_attn." + targets[0]
        layer = dict(llm.model.model.named_modules())[name[6:]]
        return layer.lora_B["default"].weight.grad.clone()

    assert (lora_grads(True) - lora_grads(False)).abs().max() > 1e-6


def test_lora_weights_are_part_of_the_injector():
    plain, llm, lal = _lora_setup("llama", ALL_LINEAR["llama"], [1, 2])
    lora = {n for n, p in lal.named_parameters() if "lora_" in n}
    maps = {n for n, p in lal.named_parameters() if n.startswith("maps.")}
    trainable = {n for n, p in lal.named_parameters() if p.requires_grad}
    assert trainable == lora | maps and lora and maps
    assert all(n.startswith("llm.model.") for n in lora)
    # r=4 on q, k, v, o (32 -> 32, no GQA in the tiny Llama) and gate,
    # up, down (32 <-> 64): r * (in + out) each
    per_layer = 4 * (4 * (32 + 32) + 3 * (32 + 64))
    maps_count = 2 * (32 * 32 + 32)
    assert count_parameters(lal) == LAYERS * per_layer + maps_count
    state = TrainableState({"injector": lal}).state_dict()
    assert set(state) == {f"injector.{n}" for n in trainable}
    # frozen LLM: outside the module, nothing of it trains
    frozen = AttentionOnlyInjector(CausalLM.from_model(plain), HIDDEN)
    assert all(n.startswith("maps.") for n, _ in frozen.named_parameters())
    assert not any(p.requires_grad for p in plain.parameters())
    with pytest.raises(ValueError, match="llm_finetune"):
        AttentionOnlyInjector(llm, HIDDEN, llm_finetune="full")


def test_first_layer_injects_from_that_layer_on():
    model = _model("llama")
    llm = CausalLM.from_model(model)
    later = AttentionOnlyInjector(llm, HIDDEN, first_layer=1).double()
    assert later.lal_layers == [1, 2]
    same = AttentionOnlyInjector(llm, HIDDEN, lal_layers=[1, 2]).double()
    same.load_state_dict(later.state_dict())
    picked = AttentionOnlyInjector(
        llm, HIDDEN, lal_layers=[0, 2], first_layer=1
    )
    assert picked.lal_layers == [2]
    audio, audio_mask, text, text_mask, _ = _batch()
    torch.testing.assert_close(
        later(text, text_mask, audio, audio_mask),
        same(text, text_mask, audio, audio_mask),
        atol=0,
        rtol=0,
    )
    cache, _ = later.build_cache(audio, audio_mask)
    assert [cache.get_seq_length(i) for i in range(LAYERS)] == [0, 5, 5]
    for bad in (-1, LAYERS, 1.5, True):
        with pytest.raises(ValueError, match="first_layer"):
            AttentionOnlyInjector(llm, HIDDEN, first_layer=bad)
    with pytest.raises(ValueError, match="no layer from first_layer=2"):
        AttentionOnlyInjector(llm, HIDDEN, lal_layers=[0, 1], first_layer=2)
    assert (
        AttentionOnlyInjector(llm, HIDDEN, [], first_layer=2).lal_layers == []
    )
