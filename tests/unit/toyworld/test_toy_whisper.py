"""Tests of the toy Whisper: the real checkpoint format, seeded.

Authors
 * audiollm-lobes developers, 2026
"""

import torch

from audiollm_lobes.encoders import WhisperEncoder
from audiollm_lobes.toyworld import toy_whisper

SR = 16000


def test_toy_whisper_real_format(tmp_path):
    from transformers import WhisperFeatureExtractor, WhisperModel

    folder = toy_whisper.make_toy_whisper(
        tmp_path / "w", d_model=32, layers=2, heads=4, seed=0
    )
    model = WhisperModel.from_pretrained(folder, local_files_only=True)
    assert model.config.num_mel_bins == 80
    assert model.config.max_source_positions == 1500
    assert model.config.encoder_layers == 2
    extractor = WhisperFeatureExtractor.from_pretrained(folder)
    assert extractor.feature_size == 80 and extractor.sampling_rate == SR
    # The same path a user's checkpoint takes.
    encoder = WhisperEncoder(source=folder)
    for name, value in encoder.encoder.state_dict().items():
        torch.testing.assert_close(value, model.encoder.state_dict()[name])
    feats, mask = encoder(torch.randn(1, 24000))
    assert feats.shape == (1, 75, 32) and bool(mask.all())
    # Seeded: the same seed gives the same weights, another seed not.
    again = toy_whisper.make_toy_whisper(
        tmp_path / "w2", d_model=32, layers=2, seed=0
    )
    other = toy_whisper.make_toy_whisper(
        tmp_path / "w3", d_model=32, layers=2, seed=1
    )
    w0 = WhisperModel.from_pretrained(again).encoder.conv1.weight
    w1 = WhisperModel.from_pretrained(other).encoder.conv1.weight
    assert torch.equal(w0, model.encoder.conv1.weight)
    assert not torch.equal(w1, w0)
