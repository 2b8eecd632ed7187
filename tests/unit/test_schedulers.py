"""Tests for the warm-up + cosine learning-rate schedule.

Authors
 * audiollm-lobes developers, 2026
"""

import math

import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from audiollm_lobes.schedulers import WarmupCosineScheduler


def test_hand_worked_rates():
    """start 0.1, peak 1, floor 0.2, 4 warm-up steps, 8 steps in all.

    Warm-up: 0.1 + 0.9 s / 4 = 0.1, 0.325, 0.55, 0.775. Cosine over the 4
    remaining steps: 0.2 + 0.8 (1 + cos(pi t / 4)) / 2 for t = 0..4:
    1, 0.2 + 0.4 (1 + 1/sqrt(2)), 0.6, 0.2 + 0.4 (1 - 1/sqrt(2)), 0.2;
    then the floor."""
    sched = WarmupCosineScheduler(1.0, 4, 8, start_lr=0.1, min_lr=0.2)
    half = 1 / math.sqrt(2)
    expected = [
        0.1,
        0.325,
        0.55,
        0.775,
        1.0,
        0.2 + 0.4 * (1 + half),
        0.6,
        0.2 + 0.4 * (1 - half),
        0.2,
        0.2,
        0.2,
    ]
    got = [sched.lr_at(s) for s in range(len(expected))]
    assert got == pytest.approx(expected, abs=1e-15)


def test_no_warmup_and_no_decay_span():
    sched = WarmupCosineScheduler(2.0, 0, 2, min_lr=1.0)
    assert [sched.lr_at(s) for s in range(4)] == pytest.approx(
        [2.0, 1.5, 1.0, 1.0]
    )
    flat = WarmupCosineScheduler(2.0, 3, 3, start_lr=0.5, min_lr=1.0)
    assert [flat.lr_at(s) for s in range(5)] == pytest.approx(
        [0.5, 1.0, 1.5, 1.0, 1.0]
    )


def test_every_optimizer_step_runs_at_its_scheduled_rate():
    """Created at lr_at(0) and called after each step (as the Brain does),
    the optimizer's k-th step uses lr_at(k), in every parameter group."""
    sched = WarmupCosineScheduler(1.0, 3, 10, start_lr=0.01, min_lr=0.1)
    w1 = torch.nn.Parameter(torch.zeros(1))
    w2 = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [w1]}, {"params": [w2]}], lr=0.01)
    for step in range(12):
        for group in opt.param_groups:
            assert group["lr"] == pytest.approx(sched.lr_at(step))
        before = w1.detach().clone()
        w1.grad = torch.ones(1)
        w2.grad = torch.ones(1)
        opt.step()
        # SGD: the update is exactly the rate of this step
        assert float(before - w1.detach()) == pytest.approx(sched.lr_at(step))
        used, following = sched(opt)
        assert used == pytest.approx(sched.lr_at(step))
        assert following == sched.lr_at(step + 1)
    assert sched.current_step == 12


def test_checkpoint_resumes_the_step_count(tmp_path):
    sched = WarmupCosineScheduler(1.0, 2, 10)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    for _ in range(5):
        sched(opt)
    checkpointer = Checkpointer(tmp_path, {"scheduler": sched})
    checkpointer.save_checkpoint()
    resumed = WarmupCosineScheduler(1.0, 2, 10)
    Checkpointer(tmp_path, {"scheduler": resumed}).recover_if_possible()
    assert resumed.current_step == 5
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    assert resumed(opt2) == (0.0, sched.lr_at(6))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_warmup_steps": -1}, "num_warmup_steps"),
        ({"num_warmup_steps": 5, "num_training_steps": 4}, ">= num_warmup"),
        ({"min_lr": -1.0}, "min_lr"),
        ({"peak_lr": float("nan")}, "peak_lr"),
    ],
)
def test_bad_settings(kwargs, message):
    args = {"peak_lr": 1.0, "num_warmup_steps": 1, "num_training_steps": 4}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        WarmupCosineScheduler(**args)
