"""Prompt-usage statistics against hand-worked values."""

import math

import numpy as np

from audiollm_lobes.analysis import (
    entropy_bits,
    overlap,
    plot_usage_heatmap,
    usage_statistics,
)


def test_entropy_and_effective_prompts_by_hand():
    assert entropy_bits([0.25] * 4) == 2.0
    p = [0.5, 0.25, 0.25]
    assert math.isclose(entropy_bits(p), 1.5)
    stats = usage_statistics({"asr": [2, 1, 1, 0]})
    assert math.isclose(stats["per_task"]["asr"]["effective_prompts"], 2**1.5)
    assert stats["per_task"]["asr"]["distinct"] == 3
    assert stats["per_task"]["asr"]["top"][:3] == [0, 1, 2]


def test_overlap_and_groups_by_hand():
    counts = {
        "asr": [4, 4, 0, 0],  # (0.5, 0.5, 0, 0)
        "spoken_qa": [2, 6, 0, 0],  # (0.25, 0.75, 0, 0)
        "emotion": [0, 1, 3, 0],  # (0, 0.25, 0.75, 0)
        "captioning": [0, 0, 1, 1],  # (0, 0, 0.5, 0.5)
    }
    stats = usage_statistics(counts)
    assert math.isclose(stats["overlap"]["asr"]["spoken_qa"], 0.75)
    assert math.isclose(stats["overlap"]["asr"]["emotion"], 0.25)
    assert math.isclose(stats["overlap"]["emotion"]["captioning"], 0.5)
    groups = stats["group_overlap"]
    assert math.isclose(groups["within_speech_content"], 0.75)
    assert math.isclose(groups["within_sound_paralinguistic"], 0.5)
    # across: asr-emotion .25, asr-cap 0, qa-emotion .25, qa-cap 0
    assert math.isclose(groups["across_groups"], 0.125)
    assert overlap(np.eye(3)[0], np.eye(3)[0]) == 1.0


def test_heatmap_png(tmp_path):
    path = plot_usage_heatmap(
        {"asr": [3, 1, 0, 0], "emotion": [0, 0, 1, 3]}, tmp_path / "u.png"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
