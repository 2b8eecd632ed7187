"""Builds LiSTEN's paper-scale hparams on the ``meta`` device (no weights).

The trainable part (window Q-Former + projection + prompt pool, soft
prompt or LoRA) is counted and compared with a count worked out by hand
from the published shapes; the papers' choices (plain linear projection,
the development code's key loss, 20 soft-prompt tokens, warm-up + cosine
decay) are checked in ``dps_paper.yaml``, ``soft_prompt_paper.yaml`` and
``lora_paper.yaml``.
"""

import math
from pathlib import Path

import pytest
import torch
import transformers
from hyperpyyaml import load_hyperpyyaml

import audiollm_lobes.encoders
import audiollm_lobes.llm
from audiollm_lobes.backbone_widths import check_backbone_widths
from audiollm_lobes.prompt_pool import PromptPool, SoftPrompt
from audiollm_lobes.schedulers import WarmupCosineScheduler
from audiollm_lobes.trainable import count_parameters

ROOT = Path(__file__).resolve().parents[2]
HPARAMS = ROOT / "recipes" / "LiSTEN" / "hparams"
PAPER = HPARAMS / "dps_paper.yaml"
PAPERS = ("dps_paper", "soft_prompt_paper", "lora_paper")


def _qformer_by_hand(d_in, hidden, ffn, layers, llm_dim, queries=1):
    """Parameters of a post-LN BERT-style window Q-Former, worked out."""
    self_attn = 4 * hidden * hidden + 4 * hidden  # q,k,v,out + biases
    cross_attn = (
        hidden * hidden  # q from the queries
        + 2 * hidden * d_in  # k, v from the frames
        + 3 * hidden  # in-projection biases
        + hidden * hidden
        + hidden  # out projection
    )
    ffn_params = hidden * ffn + ffn + ffn * hidden + hidden
    norms = 3 * 2 * hidden
    per_layer = self_attn + cross_attn + ffn_params + norms
    query_params = queries * hidden + 2 * hidden  # queries + their LayerNorm
    projection = hidden * llm_dim + llm_dim
    return layers * per_layer + query_params + projection


def _load_on_meta(tmp_path, name="dps_paper"):
    overrides = {
        # no backbone is loaded: the paper's widths are declared in the file
        "backbones": None,
        "llm": None,
        "encoder": None,
        "llm_token_embeddings": None,
        "llm_embedding_norm": 1.0,
        "llm_source": "unused",
        "whisper_source": "unused",
        "beats_source": "unused",
        "data_folder": str(tmp_path / "data"),
        "output_folder": str(tmp_path / "out"),
    }
    path = HPARAMS / f"{name}.yaml"
    text = path.read_text(encoding="utf-8")
    overrides = {k: v for k, v in overrides.items() if f"\n{k}:" in text}
    with open(path, encoding="utf-8") as fin, torch.device("meta"):
        return load_hyperpyyaml(fin, overrides)


class _MetaLlama8B(audiollm_lobes.llm.CausalLM):
    """Stands in for ``CausalLM``: Llama-3.1-8B's shapes, no weights."""

    def __init__(self, source, dtype=None, **kwargs):
        torch.nn.Module.__init__(self)
        config = transformers.LlamaConfig(
            vocab_size=128256,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
        )
        model = transformers.LlamaForCausalLM(config)
        self._wrap(str(source), model, None, True, False)


class _Whisper(torch.nn.Module):
    """Stands in for whisper-large-v2's encoder: a width, a frame rate."""

    frame_rate = 50.0
    output_dim = 1280

    def __init__(self, *args, **kwargs):
        super().__init__()


class _BEATs(_Whisper):
    """Stands in for BEATs."""

    output_dim = 768


def _load_with_meta_backbones(monkeypatch, tmp_path, name):
    """The whole file, backbones included, with weightless stand-ins."""
    monkeypatch.setattr(audiollm_lobes.llm, "CausalLM", _MetaLlama8B)
    monkeypatch.setattr(audiollm_lobes.encoders, "WhisperEncoder", _Whisper)
    monkeypatch.setattr(audiollm_lobes.encoders, "BEATsEncoder", _BEATs)
    overrides = {
        "llm_source": "meta",
        "whisper_source": "meta",
        "beats_source": "meta",
        "llm_device_map": None,
        "data_folder": str(tmp_path / "data"),
        "output_folder": str(tmp_path / "out"),
    }
    path = HPARAMS / f"{name}.yaml"
    with open(path, encoding="utf-8") as fin, torch.device("meta"):
        return load_hyperpyyaml(fin, overrides)


def test_paper_scale_trainable_parameters(tmp_path):
    hp = _load_on_meta(tmp_path)
    connector, pool = hp["connector"], hp["prompt_pool"]
    assert all(p.device.type == "meta" for p in connector.parameters())
    assert all(p.device.type == "meta" for p in pool.parameters())
    # 1280 (Whisper-large-v2) + 768 (BEATs) fused frames, 4096-wide LLM
    assert hp["encoder_dim"] == 2048 and hp["llm_dim"] == 4096
    qformer = _qformer_by_hand(2048, 768, 3072, 2, 4096)
    assert count_parameters(connector) == qformer
    # ~22.8 M in the blocks, as estimated from the author's code
    assert qformer - (768 * 4096 + 4096) - 3 * 768 == 22_835_712
    # 400 keys + 400 single-token values, each 4096 wide (~3.3 M)
    assert count_parameters(pool) == 2 * 400 * 4096
    assert pool.k_max == 160 and pool.k_eval == 160
    assert count_parameters(connector) + count_parameters(pool) == 29_264_640


def test_paper_scale_shapes(tmp_path):
    hp = _load_on_meta(tmp_path)
    connector, pool = hp["connector"], hp["prompt_pool"]
    assert connector.window_frames == 17
    proj = [m for m in connector.modules() if isinstance(m, torch.nn.Linear)]
    assert proj[-1].weight.shape == (4096, 768)
    shapes = {name: tuple(p.shape) for name, p in pool.named_parameters()}
    assert sorted(shapes.values()) == [(400, 4096), (400, 4096)]


def test_paper_scale_rejects_other_backbones(tmp_path):
    from types import SimpleNamespace

    from audiollm_lobes.backbone_widths import check_backbone_widths

    hp = _load_on_meta(tmp_path)
    # backbones of the published widths pass, and every width is checked
    encoder = SimpleNamespace(
        output_dim=2048, stream_dims={"whisper": 1280, "beats": 768}
    )
    llm = SimpleNamespace(
        hidden_size=4096, config=SimpleNamespace(num_hidden_layers=32)
    )
    hp = dict(hp, llm=llm, encoder=encoder)
    assert check_backbone_widths(hp) == {
        "llm_dim": 4096,
        "encoder_dim": 2048,
        "whisper_dim": 1280,
        "beats_dim": 768,
    }
    small_llm = SimpleNamespace(
        hidden_size=2048, config=SimpleNamespace(num_hidden_layers=16)
    )
    with pytest.raises(ValueError, match="llm_dim=4096.*2048"):
        check_backbone_widths(dict(hp, llm=small_llm))


def test_dps_paper_follows_the_papers_choices(tmp_path):
    hp = _load_on_meta(tmp_path)
    pool = hp["prompt_pool"]
    assert isinstance(pool, PromptPool) and pool.selector == "similarity"
    # the development code's key loss, query not detached, lambda = 1
    assert pool.key_loss_type == "softmax_sum" and not pool.detach_query
    assert hp["aux_loss_weights"]["key_loss"] == 1.0
    # plain linear projection: no rescaling to the embeddings' norm
    assert hp["connector"].output_scale is None


def test_paper_lr_schedule_hand_worked(tmp_path):
    """Warm-up from 1e-6 to 3e-5 over the first epoch's 3000 optimizer
    steps, cosine decay to 1e-5 at step 90000 (30 epochs x 3000)."""
    hp = _load_on_meta(tmp_path)
    sched = hp["lr_scheduler"]
    assert isinstance(sched, WarmupCosineScheduler)
    assert (sched.num_warmup_steps, sched.num_training_steps) == (3000, 90000)
    # the optimizer starts at the rate of step 0
    assert hp["opt_class"].keywords["lr"] == sched.lr_at(0) == 1e-6
    # step 1500: half-way up, 1e-6 + 29e-6 / 2; step 46500: half-way down
    # the cosine, 1e-5 + 2e-5 / 2
    expected = {1500: 1.55e-5, 3000: 3e-5, 46500: 2e-5, 90000: 1e-5}
    for step, lr in expected.items():
        assert sched.lr_at(step) == pytest.approx(lr, rel=1e-12), step
    assert sched.lr_at(24750) == pytest.approx(
        1e-5 + 2e-5 * 0.5 * (1 + math.cos(math.pi / 4)), rel=1e-12
    )
    # 8 processes: the warm-up is still the first epoch
    hp8 = load_hyperpyyaml(
        PAPER.read_text(encoding="utf-8"),
        {
            "backbones": None,
            "llm": None,
            "encoder": None,
            "llm_token_embeddings": None,
            "llm_source": "unused",
            "whisper_source": "unused",
            "beats_source": "unused",
            "data_folder": str(tmp_path / "data"),
            "output_folder": str(tmp_path / "out"),
            "num_processes": 8,
        },
    )
    assert hp8["lr_scheduler"].num_warmup_steps == 375
    assert hp8["lr_scheduler"].num_training_steps == 11250


def test_soft_prompt_paper_trainable_parameters(tmp_path):
    hp = _load_on_meta(tmp_path, "soft_prompt_paper")
    connector, prompt = hp["connector"], hp["prompt_pool"]
    assert isinstance(prompt, SoftPrompt) and prompt.num_tokens == 20
    assert connector.output_scale is None
    qformer = _qformer_by_hand(2048, 768, 3072, 2, 4096)
    assert count_parameters(connector) == qformer
    assert count_parameters(prompt) == 20 * 4096
    assert count_parameters(connector) + count_parameters(prompt) == 26_069_760
    assert hp["k_eval_sweep"] == []


def test_lora_paper_trainable_parameters(monkeypatch, tmp_path):
    hp = _load_with_meta_backbones(monkeypatch, tmp_path, "lora_paper")
    llm, connector = hp["llm"], hp["connector"]
    assert "prompt_pool" not in hp and "prompt_pool" not in hp["modules"]
    assert hp["modules"]["lora"] is hp["lora"]
    lora = [n for n, p in llm.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in n for n in lora)
    assert {n.split(".")[-4] for n in lora} == {"q_proj", "v_proj"}
    # per layer, rank 8: q 4096 -> 4096 (A 8x4096, B 4096x8) and v
    # 4096 -> 1024 (8 KV heads x 128; A 8x4096, B 1024x8); 32 layers
    per_layer = (8 * 4096 + 4096 * 8) + (8 * 4096 + 1024 * 8)
    assert count_parameters(llm) == 32 * per_layer == 3_407_872
    assert hp["lora"].r == 8 and hp["lora"].alpha == 32
    qformer = _qformer_by_hand(2048, 768, 3072, 2, 4096)
    assert count_parameters(connector) == qformer
    assert count_parameters(connector) + count_parameters(llm) == 29_395_712
    assert connector.output_scale is None


@pytest.mark.parametrize("name", PAPERS)
def test_paper_files_build_with_the_published_backbones(
    name, monkeypatch, tmp_path
):
    hp = _load_with_meta_backbones(monkeypatch, tmp_path, name)
    assert check_backbone_widths(hp) == {
        "llm_dim": 4096,
        "encoder_dim": 2048,
        "whisper_dim": 1280,
        "beats_dim": 768,
    }
    assert all(
        p.device.type == "meta"
        for module in hp["modules"].values()
        for p in module.parameters()
    )


def test_paper_files_differ_only_in_the_method(tmp_path):
    """The three files share data, backbones, Q-Former and optimisation."""
    loaded = {name: _load_on_meta(tmp_path, name) for name in PAPERS[:2]}
    text = {
        name: (HPARAMS / f"{name}.yaml").read_text(encoding="utf-8")
        for name in PAPERS
    }
    shared = (
        "lr weight_decay warmup_start_lr min_lr batch_size steps_per_epoch "
        "number_of_epochs num_beams max_new_tokens qformer_hidden "
        "qformer_layers queries_per_window window_frames llm_dim "
        "whisper_dim beats_dim seed tasks max_grad_norm precision"
    ).split()
    dps, soft = loaded["dps_paper"], loaded["soft_prompt_paper"]
    for key in shared:
        assert dps[key] == soft[key], key
        line = next(
            x for x in text["dps_paper"].splitlines() if x.startswith(f"{key}:")
        )
        assert line in text["lora_paper"].splitlines(), key
    assert vars(dps["lr_scheduler"]) == vars(soft["lr_scheduler"])
