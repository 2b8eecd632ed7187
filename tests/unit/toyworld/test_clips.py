"""Tests of the toy encoders' clips: batching, pooling, manifest reading.

Authors
 * audiollm-lobes developers, 2026
"""

import pytest
import torch

from audiollm_lobes.toyworld.clips import (
    collate_audio,
    load_speech,
    masked_mean,
)


def test_masked_mean_and_collate_against_loop():
    gen = torch.Generator().manual_seed(2)
    clips = [torch.randn(n, generator=gen) for n in (5, 9, 3)]
    wav, lens = collate_audio(clips)
    assert wav.shape == (3, 9)
    for i, clip in enumerate(clips):
        n = int(round(float(lens[i]) * 9))
        assert torch.equal(wav[i, :n], clip) and torch.all(wav[i, n:] == 0)
    feats = torch.randn(3, 4, 2, generator=gen)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]).bool()
    pooled = masked_mean(feats, mask)
    for i in range(3):
        rows = [feats[i, t] for t in range(4) if mask[i, t]]
        torch.testing.assert_close(pooled[i], sum(rows) / len(rows))


def test_missing_manifest_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="asr.json"):
        load_speech(tmp_path, "train")
