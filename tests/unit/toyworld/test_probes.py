"""Tests of the linear probes, and of the frozen toy encoders of the tiny
world through them.

Authors
 * audiollm-lobes developers, 2026
"""

import pytest
import torch

from audiollm_lobes.encoders import WhisperEncoder
from audiollm_lobes.toyworld import clips, probes, toy_encoders, toy_whisper


def test_linear_probe_against_hand_cases():
    gen = torch.Generator().manual_seed(0)
    labels = [["a", "b", "c"][i % 3] for i in range(90)]
    centres = {"a": 0.0, "b": 5.0, "c": 10.0}
    feats = torch.randn(90, 4, generator=gen)
    feats[:, 1] += torch.tensor([centres[v] for v in labels])
    result = probes.linear_probe(feats, labels, test_fraction=0.3)
    assert result["test_acc"] > 0.9
    assert result["n_test"] == 27 and result["classes"] == 3
    # Pure noise features: no better than a generous chance bound.
    noise = torch.randn(90, 4, generator=gen)
    shuffled = probes.linear_probe(noise, labels, test_fraction=0.3)
    assert shuffled["test_acc"] < 0.7
    # Explicit test set; a test label never seen in training is an error.
    result = probes.linear_probe(
        feats[:60], labels[:60], feats[60:63], ["a", "b", "zzz"]
    )
    hand = sum(int(p == t) for p, t in zip(["a", "b", None], ["a", "b", "zzz"]))
    assert result["test_acc"] <= hand / 3 + 1e-9
    assert result["chance"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="one label per item"):
        probes.linear_probe(feats, labels[:10])


def test_probe_on_frozen_tiny_encoders(tiny_world, tiny_backbones, tmp_path):
    """Linear probes on frozen toy features, trained on train clips and
    scored on held-out valid+test clips, beat chance by far; and the
    pretrained Whisper's output depends on the audio, not mostly on its
    positional table as a random one's does."""
    results = probes.probe_report(tiny_world, tiny_backbones)
    assert len(results) == 4
    summary = {k: round(v["test_acc"], 3) for k, v in results.items()}
    for result in results.values():
        chance = 1.0 / result["classes"]
        assert result["test_acc"] >= max(0.6, 3 * chance), summary

    speech_test = clips.load_speech(tiny_world, "test")
    whisper = WhisperEncoder(tiny_backbones / "whisper")
    wav, lens = clips.collate_audio([x["audio"] for x in speech_test[:32]])
    pretrained = probes.utterance_variation_ratio(*whisper(wav, lens))
    random_folder = toy_whisper.make_toy_whisper(
        tmp_path / "random", **toy_encoders.PROFILES["tiny"]["whisper"]
    )
    random_ratio = probes.utterance_variation_ratio(
        *WhisperEncoder(random_folder)(wav, lens)
    )
    assert pretrained > 1.0 and pretrained > 100 * random_ratio, (
        pretrained,
        random_ratio,
    )
