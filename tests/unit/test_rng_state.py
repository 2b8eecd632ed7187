"""RNGState: the random generators a resumed run continues from."""

import logging
import random

import numpy as np
import torch

from audiollm_lobes.atomic import save_torch
from audiollm_lobes.rng_state import RNGState


def _draws():
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random())


def test_every_generator_is_restored(tmp_path):
    rng = RNGState()
    path = tmp_path / "rng.ckpt"
    rng.save(path)
    expected = _draws()
    _draws()  # the run goes on
    rng.load(path, end_of_epoch=True)
    assert _draws() == expected
    assert rng.pending is None  # end of epoch: nothing to apply later


def test_intra_epoch_state_is_applied_again_before_the_first_step(tmp_path):
    """Re-entering an epoch draws the data loader's base seed from the
    global generator; the uninterrupted run did not at that point."""
    rng = RNGState()
    path = tmp_path / "rng.ckpt"
    rng.save(path)
    expected = _draws()
    rng.load(path, end_of_epoch=False)
    torch.empty((), dtype=torch.int64).random_()  # the loader's base seed
    rng.apply_pending()
    assert _draws() == expected
    after = _draws()
    rng.apply_pending()  # once only
    assert _draws() != after


def test_states_of_another_world_size_are_not_restored(tmp_path, caplog):
    rng = RNGState()
    path = tmp_path / "rng.ckpt"
    rng.save(path)
    saved = torch.load(path, weights_only=False)
    save_torch({"world_size": 2, "states": saved["states"] * 2}, path)
    first = _draws()
    with caplog.at_level(logging.WARNING):
        rng.load(path, end_of_epoch=False)
    assert "saved by 2 processes" in caplog.text
    assert _draws() != first and rng.pending is None
