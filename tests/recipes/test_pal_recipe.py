"""PAL recipe: each toy hparams file for a few steps; the paper scale on
the meta device (no weights), with trainable counts computed by hand."""

import json
import re
from pathlib import Path

import pytest
import torch
import transformers
from hyperpyyaml import load_hyperpyyaml

import audiollm_lobes.encoders
import audiollm_lobes.llm
from audiollm_lobes.backbone_widths import check_backbone_widths
from audiollm_lobes.trainable import count_parameters

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "PAL"
TASKS = {"sound_event", "captioning", "spoken_qa", "emotion", "asr"}
ROUTES = {
    "plits": {"fused": "plits"},
    "lal": {"fused": "lal"},
    "pal": {"whisper": "plits", "beats": "lal"},
}
BUDGET = ("steps_per_epoch", "number_of_epochs", "batch_size", "lr")


#: ``llm_finetune: lora`` runs: (hparams, extra overrides, module holding
#: the LoRA weights in the checkpoint, LoRA on the FFN too)
LORA_RUNS = {
    "plits": ("plits", (), "llm", True),
    "lal": ("lal", (), "injector", True),
    "pal": ("pal", (), "injector", True),
    # the frozen-FFN ablation, injecting from layer 1 on
    "lal_frozen_ffn": (
        "lal",
        (
            "--lora_target_modules=[q_proj,k_proj,v_proj,o_proj]",
            "--lal_first_layer=1",
        ),
        "injector",
        False,
    ),
}


@pytest.mark.parametrize("key", sorted(LORA_RUNS))
def test_pal_hparams_run_with_lora(
    key, tiny_backbones, tmp_path, run_tiny_recipe
):
    """The LLM trains through LoRA in every integration: the LoRA weights
    get counted (once, by part) and checkpointed with the rest."""
    name, extra, holder, ffn = LORA_RUNS[key]
    out = tmp_path / key
    proc = run_tiny_recipe(
        "PAL",
        name,
        out,
        extra=("--llm_finetune=lora", *extra),
        threads=1,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["llm_finetune"] == "lora"
    parts = summary["trainable_parameters_by_part"]
    assert parts["llm_lora"] > 0
    assert sum(parts.values()) == summary["trainable_parameters"]
    assert all(v["n"] == 2 for v in summary["test"].values())
    results = (out / "results.md").read_text()
    assert "trainable parameters by part:" in results
    assert f"llm_lora {parts['llm_lora']:,}" in results
    ckpts = list((out / "save").glob("CKPT*/trainable.ckpt"))
    state = torch.load(ckpts[0], map_location="cpu")
    lora = [k for k in state if "lora_" in k]
    assert lora and all(k.split(".")[0] == holder for k in lora)
    assert sum(state[k].numel() for k in lora) == parts["llm_lora"]
    assert (
        sum(v.numel() for v in state.values())
        == (summary["trainable_parameters"])
    )
    assert not any("embed_tokens" in k for k in state)
    assert any(".mlp." in k for k in lora) == ffn
    assert any(".self_attn.k_proj." in k for k in lora)
    if key == "lal_frozen_ffn":
        maps = {k.split(".")[2] for k in state if k.startswith("injector.maps")}
        assert "0" not in maps and maps


@pytest.mark.parametrize("name", ["plits", "lal", "pal"])
def test_pal_hparams_run(name, tiny_backbones, tmp_path, run_tiny_recipe):
    out = tmp_path / name
    # pal runs from the recipe folder, the others from the repo root
    cwd = RECIPE if name == "pal" else ROOT
    proc = run_tiny_recipe("PAL", name, out, cwd=cwd, threads=1)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test"]) == TASKS
    for task, values in summary["test"].items():
        assert values["n"] == 2, task
    assert summary["routes"] == ROUTES[name]
    assert summary["trainable_parameters"] > 0
    eff = summary["efficiency"]
    assert eff["train_steps"] == 2
    assert 0 < eff["train_step_seconds_median"] < 60
    assert eff["peak_rss_mb"] > 50
    results = (out / "results.md").read_text()
    assert results.count("|") > 10
    assert "train step time: median" in results
    assert "peak RSS" in results
    assert (out / "train_log.txt").exists()
    # only trainable parameters are checkpointed, never the frozen LLM
    ckpts = list((out / "save").glob("CKPT*/trainable.ckpt"))
    assert len(ckpts) == 1
    state = torch.load(ckpts[0], map_location="cpu")
    assert state and not any("embed_tokens" in k for k in state)
    assert not any(k.startswith("llm.") for k in state)
    assert not any(".encoders." in k for k in state), "frozen encoder saved"
    assert (
        sum(v.numel() for v in state.values())
        == (summary["trainable_parameters"])
    )
    prefixes = {k.split(".")[0] for k in state}
    # cached encoder features: the per-stream LayerNorms are frozen
    expected = {
        "plits": {"connector"},
        "lal": {"connector", "injector"},
        "pal": {"whisper_connector", "beats_connector", "injector"},
    }[name]
    assert prefixes == expected


def test_same_budget_in_toy_hparams():
    """plits/lal/pal.yaml train with the same data and step budget."""
    values = {}
    for name in ("plits", "lal", "pal"):
        text = (RECIPE / "hparams" / f"{name}.yaml").read_text()
        keys = BUDGET + ("tasks", "qformer_hidden", "window_frames")
        values[name] = {
            key: re.search(rf"^{key}: (.+)$", text, re.M).group(1)
            for key in keys
        }
    assert values["plits"] == values["lal"] == values["pal"]
    assert set(values["pal"]["tasks"].strip("[]").split(", ")) == TASKS


def test_bad_routes_stop_early(tiny_backbones, tmp_path, run_tiny_recipe):
    proc = run_tiny_recipe(
        "PAL",
        "pal",
        tmp_path / "bad",
        extra=["--routes={extra: lal}"],
        threads=1,
    )
    assert proc.returncode != 0
    message = "connectors has no entry for routed streams ['extra']"
    assert message in proc.stdout + proc.stderr


def test_benchmark_routes_pal_by_the_encoders_token_counts(tiny_backbones):
    """benchmarks/pal_efficiency.py gives PAL each encoder's own token
    count: its formulas against the recipe's encoders and Q-Former."""
    import importlib.util

    from audiollm_lobes.connectors import WindowQFormer
    from audiollm_lobes.encoders import (
        BEATsEncoder,
        FusedEncoder,
        WhisperEncoder,
    )

    spec = importlib.util.spec_from_file_location(
        "pal_efficiency", ROOT / "benchmarks" / "pal_efficiency.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    encoder = FusedEncoder(
        {
            "whisper": WhisperEncoder(tiny_backbones / "whisper"),
            "beats": BEATsEncoder(tiny_backbones / "beats" / "beats.pt"),
        }
    )
    qformer = WindowQFormer(4, 4, 4, 1, 1, 4, window_frames=17)
    gen = torch.Generator().manual_seed(0)
    for n_audio in (1, 3, 8):
        wav = 0.1 * torch.randn(1, n_audio * 17 * 320, generator=gen)
        with torch.no_grad():
            _, mask, streams = encoder(wav, return_streams=True)
        assert qformer.num_windows(int(mask.sum())) == n_audio
        counts = tuple(
            qformer.num_windows(int(streams[name][1].sum()))
            for name in ("whisper", "beats")
        )
        assert counts == bench.pal_token_counts(n_audio)


# ---------------------------------------------------------------- paper
LLAMA_1B = {
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "tie_word_embeddings": True,
}


class _MetaCausalLM(audiollm_lobes.llm.CausalLM):
    """Stands in for ``CausalLM``: a Llama-3.2-1B-shaped model, no weights."""

    def __init__(self, source, dtype=None, **kwargs):
        del source, dtype, kwargs
        torch.nn.Module.__init__(self)
        config = transformers.LlamaConfig(**LLAMA_1B)
        model = transformers.LlamaForCausalLM(config)
        self._wrap("meta", model, None, True, False)

    def embedding_norm(self):
        return 1.0


class _MetaEncoder(torch.nn.Module):
    """Stands in for a frozen encoder: only its width and frame rate."""

    frame_rate = 50.0

    output_dim = None

    def __init__(self, *args, **kwargs):
        super().__init__()
        del args, kwargs


class _MetaWhisper(_MetaEncoder):
    output_dim = 1280  # Whisper-large


class _MetaAudioEncoder(_MetaEncoder):
    output_dim = 768  # BEATs/SSLAM base


def _qformer_params(input_dim, llm_dim, hidden, layers, ffn):
    """WindowQFormer, one query per window, post-LN (by hand)."""
    self_attn = 4 * hidden * hidden + 4 * hidden
    cross_attn = 2 * hidden * hidden + 2 * hidden * input_dim + 4 * hidden
    mlp = 2 * hidden * ffn + ffn + hidden
    norms = 3 * 2 * hidden
    block = self_attn + cross_attn + mlp + norms
    return hidden + 2 * hidden + layers * block + hidden * llm_dim + llm_dim


def test_pal_paper_meta_device(monkeypatch, tmp_path):
    monkeypatch.setattr(audiollm_lobes.llm, "CausalLM", _MetaCausalLM)
    monkeypatch.setattr(audiollm_lobes.encoders, "WhisperEncoder", _MetaWhisper)
    monkeypatch.setattr(
        audiollm_lobes.encoders, "BEATsEncoder", _MetaAudioEncoder
    )
    overrides = {
        "llm_source": "meta",
        "whisper_source": "meta",
        "audio_encoder_source": "meta",
        "data_folder": str(tmp_path),
        "output_folder": str(tmp_path / "out"),
    }
    path = RECIPE / "hparams" / "pal_paper.yaml"
    with torch.device("meta"), open(path, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    llm = hparams["llm"].model
    assert llm.get_input_embeddings().weight.is_meta
    # the frozen LLM is Llama-3.2-1B sized (1.24 B with tied embeddings)
    assert count_parameters(llm, trainable_only=False) == 1_235_814_400
    assert count_parameters(llm) == 0
    assert hparams["routes"] == {"whisper": "plits", "audio_encoder": "lal"}
    # train.py's width check covers every declared backbone width
    assert check_backbone_widths(hparams) == {
        "llm_dim": 2048,
        "llm_layers": 16,
        "whisper_dim": 1280,
        "audio_encoder_dim": 768,
    }

    trainable = {
        name: module
        for name, module in hparams["modules"].items()
        if name != "llm"
    }
    for name, module in trainable.items():
        for pname, param in module.named_parameters():
            assert param.is_meta, f"{name}.{pname} holds real memory"
    hidden, layers, ffn = 768, 2, 3072
    expected = {
        "lora": 0,  # llm_finetune: none (a parameter-free FrozenLLM)
        "encoder": 2 * 1280 + 2 * 768,  # per-stream LayerNorms
        "whisper_connector": _qformer_params(1280, 2048, hidden, layers, ffn),
        "audio_encoder_connector": _qformer_params(
            768, 2048, hidden, layers, ffn
        ),
        # LAL "shared": one 2048 -> 2048 map (+ bias) per layer, all 16
        "injector": 16 * (2048 * 2048 + 2048),
    }
    counts = {name: count_parameters(m) for name, m in trainable.items()}
    assert counts == expected
    injector = hparams["injector"]
    assert injector.lal_layers == list(range(16))
    assert tuple(injector.maps["15"].weight.shape) == (2048, 2048)
    proj = hparams["whisper_connector"].proj.weight
    assert tuple(proj.shape) == (2048, 768)
    assert hparams["whisper_connector"].window_frames == 17


@pytest.mark.parametrize("ffn", [True, False])
def test_pal_paper_lora_counts(monkeypatch, tmp_path, ffn):
    """llm_finetune: lora at the paper's scale (meta device): LoRA r=8 on
    the 16 Llama-3.2-1B layers, counted by hand, held by the injector."""
    monkeypatch.setattr(audiollm_lobes.llm, "CausalLM", _MetaCausalLM)
    monkeypatch.setattr(audiollm_lobes.encoders, "WhisperEncoder", _MetaWhisper)
    monkeypatch.setattr(
        audiollm_lobes.encoders, "BEATsEncoder", _MetaAudioEncoder
    )
    overrides = {
        "llm_source": "meta",
        "whisper_source": "meta",
        "audio_encoder_source": "meta",
        "data_folder": str(tmp_path),
        "output_folder": str(tmp_path / "out"),
        "llm_finetune": "lora",
    }
    if not ffn:  # the frozen-FFN ablation
        overrides["lora_target_modules"] = [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
        ]
    path = RECIPE / "hparams" / "pal_paper.yaml"
    with torch.device("meta"), open(path, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    d, kv, mlp = 2048, 512, 8192
    # r * (in + out) per adapted linear layer
    attention = 8 * ((d + d) + (d + kv) + (d + kv) + (d + d))
    feed_forward = 8 * 3 * (d + mlp)
    lora = 16 * (attention + (feed_forward if ffn else 0))
    llm = hparams["llm"].model
    assert count_parameters(llm) == lora
    assert lora == (5_636_096 if ffn else 1_703_936)
    maps = 16 * (2048 * 2048 + 2048)
    assert count_parameters(hparams["injector"]) == maps + lora
    modules = torch.nn.ModuleDict(hparams["modules"])
    assert count_parameters(modules) == 109_680_128 + lora
