"""Every ``*_paper.yaml`` is ready for a GPU: bf16, loader workers,
gradient accumulation with an LR schedule counted in optimizer steps,
intra-epoch checkpoints, and the LLM's gradient checkpointing and
``device_map`` reaching ``CausalLM``. Built on the meta device with
stand-ins for the backbones (no weights)."""

from pathlib import Path

import pytest
import torch
import transformers
from hyperpyyaml import load_hyperpyyaml

import audiollm_lobes.encoders
import audiollm_lobes.llm

ROOT = Path(__file__).resolve().parents[2]
PAPERS = {
    "LiSTEN": "dps_paper.yaml",
    "PAL": "pal_paper.yaml",
    "Wav2Prompt": "asr_paper.yaml",
}


class _RecordingLLM(audiollm_lobes.llm.CausalLM):
    """Stands in for ``CausalLM``: a tiny Llama, the arguments recorded."""

    calls = []

    def __init__(self, source, dtype=None, **kwargs):
        _RecordingLLM.calls.append(kwargs)
        torch.nn.Module.__init__(self)
        config = transformers.LlamaConfig(
            vocab_size=16,
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
        )
        model = transformers.LlamaForCausalLM(config)
        self._wrap(str(source), model, None, True, False)

    def embedding_norm(self):
        return 1.0


class _Encoder(torch.nn.Module):
    """Stands in for a frozen encoder: only a width and a frame rate."""

    frame_rate = 50.0
    output_dim = 1024

    def __init__(self, *args, **kwargs):
        super().__init__()


def _load(monkeypatch, tmp_path, recipe, **overrides):
    monkeypatch.setattr(audiollm_lobes.llm, "CausalLM", _RecordingLLM)
    for name in ("WhisperEncoder", "BEATsEncoder"):
        monkeypatch.setattr(audiollm_lobes.encoders, name, _Encoder)
    _RecordingLLM.calls.clear()
    values = {
        "llm_token_embeddings": None,
        "llm_embedding_norm": 1.0,
        "data_folder": str(tmp_path / "data"),
        "output_folder": str(tmp_path / "out"),
        **overrides,
    }
    for key in ("llm", "whisper", "beats", "audio_encoder"):
        values[f"{key}_source"] = "meta"
    path = ROOT / "recipes" / recipe / "hparams" / PAPERS[recipe]
    text = path.read_text(encoding="utf-8")
    values = {k: v for k, v in values.items() if f"\n{k}:" in text}
    with torch.device("meta"), open(path, encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, values)


@pytest.mark.parametrize("recipe", sorted(PAPERS))
def test_paper_run_options(recipe, monkeypatch, tmp_path):
    hp = _load(
        monkeypatch,
        tmp_path,
        recipe,
        grad_accumulation_factor=2,
        num_processes=4,
    )
    assert hp["precision"] == "bf16"
    assert hp["ckpt_interval_minutes"] > 0 and hp["ckpt_interval_steps"] == 0
    assert hp["num_workers"] > 0
    for split in ("train", "valid", "test"):
        opts = hp[f"{split}_dataloader_opts"]
        assert opts["num_workers"] == hp["num_workers"], split
    # the schedule counts optimizer steps: batches / (factor x processes)
    batches = hp["steps_per_epoch"] * hp["number_of_epochs"]
    assert hp["lr_scheduler"].num_training_steps == batches // 8
    assert hp["llm_device_map"] == "cuda"
    assert isinstance(hp["llm_gradient_checkpointing"], bool)


@pytest.mark.parametrize(
    "recipe",
    [
        "LiSTEN",
        "PAL",
        "Wav2Prompt",
    ],
)
def test_paper_llm_memory_options_reach_causal_lm(
    recipe, monkeypatch, tmp_path
):
    hp = _load(
        monkeypatch,
        tmp_path,
        recipe,
        llm_device_map="cuda:3",
        llm_gradient_checkpointing=True,
    )
    assert len(_RecordingLLM.calls) == 1
    kwargs = _RecordingLLM.calls[0]
    assert kwargs.get("device_map") == hp["llm_device_map"] == "cuda:3"
    assert kwargs.get("gradient_checkpointing") is True
