"""Tests of the toy BEATs: the real checkpoint format.

Authors
 * audiollm-lobes developers, 2026
"""

import pytest
import torch

from audiollm_lobes.encoders import BEATsEncoder
from audiollm_lobes.toyworld import toy_beats


def test_toy_beats_real_format(tmp_path):
    from speechbrain.lobes.models.beats import BEATs

    path = toy_beats.make_toy_beats(
        tmp_path / "b" / "beats.pt", embed_dim=32, encoder_embed_dim=32
    )
    checkpoint = torch.load(path, weights_only=True)
    assert sorted(checkpoint) == ["cfg", "model"]
    for value in checkpoint["cfg"].values():
        assert isinstance(value, (bool, int, float, str))
    reference = BEATs(ckp_path=str(path))
    encoder = BEATsEncoder(ckp_path=path)
    state = encoder.model.state_dict()
    assert state.keys() == checkpoint["model"].keys()
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(state[name], value)
    assert encoder.output_dim == 32 and encoder.frame_rate == 50.0
    with pytest.raises(ValueError, match="must divide"):
        toy_beats.make_toy_beats(
            tmp_path / "x.pt", encoder_embed_dim=30, heads=4
        )
