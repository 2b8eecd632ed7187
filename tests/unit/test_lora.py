"""LoRAAdapter: exact no-op at init, the LoRA formula, only LoRA trains."""

import pytest
import torch

from audiollm_lobes.llm import CausalLM
from audiollm_lobes.lora import LoRAAdapter
from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
from audiollm_lobes.trainable import TrainableState


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_tiny_lm_folder(tmp_path_factory.mktemp("lm"))


def test_lora_is_identity_at_init_and_follows_formula(folder):
    base = CausalLM(folder)
    lm = CausalLM(folder)
    LoRAAdapter(lm, r=4, alpha=8, dropout=0.0)
    ids = torch.tensor([[1, 5, 9, 12, 7]])
    mask = torch.ones_like(ids)
    out_base = base(base.embed(ids), mask).logits
    out_lora = lm(lm.embed(ids), mask).logits
    assert torch.allclose(out_base, out_lora)  # lora_B starts at zero

    q = lm.model.model.layers[0].self_attn.q_proj
    with torch.no_grad():
        q.lora_B["default"].weight.normal_()
    x = torch.randn(3, q.in_features)
    a = q.lora_A["default"].weight
    b = q.lora_B["default"].weight
    w = q.base_layer.weight
    expected = x @ w.T + (8 / 4) * (x @ a.T @ b.T)
    if q.base_layer.bias is not None:
        expected = expected + q.base_layer.bias
    assert torch.allclose(q(x), expected, atol=1e-5)


def test_only_lora_weights_train_and_are_checkpointed(folder, tmp_path):
    lm = CausalLM(folder)
    adapter = LoRAAdapter(lm, r=2, alpha=4, dropout=0.1)
    frozen_before = {
        n: p.clone() for n, p in lm.named_parameters() if "lora_" not in n
    }
    params = [p for p in lm.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.5)
    ids = torch.tensor([[1, 5, 9, 12, 7, 3]])
    mask = torch.ones_like(ids)
    labels = ids.clone()
    for _ in range(2):
        opt.zero_grad()
        lm.loss(lm.embed(ids), mask, labels).backward()
        opt.step()
    for name, param in lm.named_parameters():
        if "lora_" not in name:
            assert torch.equal(param, frozen_before[name]), name
    state = TrainableState({"llm": lm}).state_dict()
    assert state and all("lora_" in k for k in state)
    # the LLM stays in eval mode, the LoRA dropouts follow train()
    adapter.train()
    lm.train()
    adapter.train()
    assert not lm.model.training
    assert all(m.training for m in adapter._dropouts)
    adapter.eval()
    assert not any(m.training for m in adapter._dropouts)
