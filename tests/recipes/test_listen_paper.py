"""Builds LiSTEN's paper-scale hparams on the ``meta`` device (no weights).

The trainable part (window Q-Former + projection + prompt pool) is counted
and compared with a count worked out by hand from the published shapes.
"""

from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from audiollm_lobes.trainable import count_parameters

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "recipes" / "LiSTEN" / "hparams" / "dps_paper.yaml"


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


def _load_on_meta(tmp_path):
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
    with open(PAPER, encoding="utf-8") as fin, torch.device("meta"):
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
