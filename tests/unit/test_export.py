"""Export pieces: safetensors state round trip, peft adapter, relocation."""

import tempfile

import pytest
import torch
from peft import PeftModel

from audiollm_lobes.export import (
    flatten_state,
    read_lobes,
    unflatten_state,
    write_peft_adapter,
)
from audiollm_lobes.inference import recorded_value, relocate_hparams
from audiollm_lobes.llm import CausalLM
from audiollm_lobes.lora import LoRAAdapter
from audiollm_lobes.prompt_pool import PromptPool
from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
from audiollm_lobes.trainable import TrainableState


def test_trainable_state_round_trips_through_safetensors(tmp_path):
    from safetensors.torch import save_file

    pool = PromptPool(6, pool_size=5, seed=3)
    lin = torch.nn.Linear(3, 2)
    state = TrainableState({"pool": pool, "lin": lin})
    torch.rand(4, generator=pool.generator)  # move the generator on
    saved = state.state_dict()
    save_file(flatten_state(saved), str(tmp_path / "lobes.safetensors"))
    fresh_pool, fresh_lin = (
        PromptPool(6, pool_size=5, seed=9),
        torch.nn.Linear(3, 2),
    )
    fresh = TrainableState({"pool": fresh_pool, "lin": fresh_lin})
    fresh.load_state_dict(read_lobes(tmp_path / "lobes.safetensors"))
    for key, value in saved.items():
        got = fresh.state_dict()[key]
        if isinstance(value, dict):
            assert torch.equal(got["generator"], value["generator"])
        else:
            assert torch.equal(got, value)
    assert torch.equal(
        torch.rand(4, generator=fresh_pool.generator),
        torch.rand(4, generator=pool.generator),
    )


def test_a_state_of_other_shapes_is_refused_naming_them():
    state = TrainableState({"lin": torch.nn.Linear(3, 2)})
    other = TrainableState({"lin": torch.nn.Linear(4, 2)}).state_dict()
    with pytest.raises(RuntimeError, match=r"lin.weight: saved \(2, 4\)"):
        state.load_state_dict(other, source="x")


def test_only_tensor_extra_states_are_exported():
    with pytest.raises(TypeError, match="made of tensors"):
        flatten_state({"m._extra_state": {"step": 3}})
    assert unflatten_state({"a": torch.ones(1)})["a"].item() == 1.0


def test_peft_adapter_loads_on_the_base_model_to_the_same_logits(tmp_path):
    folder = make_tiny_lm_folder(tmp_path / "lm")
    llm = CausalLM(folder)
    LoRAAdapter(llm, r=2, alpha=4, dropout=0.0)
    torch.manual_seed(0)
    with torch.no_grad():  # trained-looking, non-zero LoRA weights
        for name, param in llm.model.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.2)
    write_peft_adapter(llm, tmp_path / "adapter")
    base = CausalLM(folder).model
    ids = torch.randint(0, llm.vocab_size, (2, 7))
    with torch.no_grad():
        plain = base(input_ids=ids).logits
        ours = llm.model(input_ids=ids).logits
        peft_model = PeftModel.from_pretrained(base, str(tmp_path / "adapter"))
        theirs = peft_model(input_ids=ids).logits
    assert not torch.allclose(plain, ours, atol=1e-4)  # the adapter acts
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-6)


def test_relocation_replaces_whole_values_and_paths_below_them():
    text = (
        "output_folder: results/x/1\n"
        "save_folder: results/x/1/save\n"
        "note: results/x/10\n"
        "llm_source: toy://tiny/lm\n"
        "llm:\n"
        "  source: !apply:f\n"
        "  - toy://tiny/lm\n"
    )
    assert recorded_value(text, "llm_source") == "toy://tiny/lm"
    new = relocate_hparams(
        text, {"results/x/1": "/w", "toy://tiny/lm": "/models/lm"}
    )
    assert "save_folder: /w/save" in new
    assert "note: results/x/10" in new
    assert new.count("/models/lm") == 2


def test_peft_adapter_needs_injected_lora():
    llm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
    with pytest.raises((AttributeError, ValueError)):
        write_peft_adapter(llm, tempfile.mkdtemp())
