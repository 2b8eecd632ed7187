"""Shared pytest fixtures: the tiny toy world and its toy backbones.

Both are built once (cached under ``$AUDIOLLM_LOBES_HOME``, default
``~/.cache/audiollm_lobes``) and reused by every test that needs them.

Authors
 * audiollm-lobes developers, 2026
"""

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_world():
    """Root folder of the ``tiny`` toy world (built on first use)."""
    from audiollm_lobes.toyworld.world import build_world

    return build_world("tiny", progress=False)


@pytest.fixture(scope="session")
def tiny_backbones(tiny_world):
    """Backbones folder (``lm/``, ``whisper/``, ``beats/beats.pt``)."""
    from audiollm_lobes.toyworld.backbones import build_backbones

    return build_backbones(tiny_world, profile="tiny", progress=False)


@pytest.fixture(autouse=True)
def _few_threads():
    """Keeps each test on the machine's two cores, deterministic."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    yield
