"""Tests of the training helpers shared by the toy LM and the toy encoders.

Authors
 * audiollm-lobes developers, 2026
"""

import math
import random

import pytest

from audiollm_lobes.toyworld.training import length_batches, warmup_cosine


def test_lr_schedule_by_hand():
    factor = warmup_cosine(warmup=4, total=14, floor=0.1)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(4) == pytest.approx(1.0)
    assert factor(9) == pytest.approx(
        0.1 + 0.9 * 0.5 * (1 + math.cos(0.5 * math.pi))
    )
    assert factor(14) == pytest.approx(0.1)


def test_length_batches_cover_an_epoch():
    lengths = [random.Random(i).randint(3, 30) for i in range(103)]
    batches = length_batches(lengths, 8, random.Random(0), pool=4)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(103))
    assert all(len(b) <= 8 for b in batches)
