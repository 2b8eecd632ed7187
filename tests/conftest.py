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


#: Overrides that shrink any recipe to a few steps on the tiny toy world.
TINY_RUN_ARGS = (
    "--toy_profile=tiny",
    "--steps_per_epoch=2",
    "--number_of_epochs=1",
    "--batch_size=4",
    "--max_valid_per_task=2",
    "--max_test_per_task=2",
    "--max_new_tokens=6",
    "--warmup_steps=1",
)


def _run_tiny_recipe(recipe, name, out_dir, cwd=None, extra=(), threads=2):
    """Runs ``recipes/<recipe>/train.py hparams/<name>.yaml`` for a few
    steps on the tiny toy world in a subprocess; returns the process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cmd = [
        sys.executable,
        str(root / "recipes" / recipe / "train.py"),
        f"hparams/{name}.yaml",
        f"--output_folder={out_dir}",
        *TINY_RUN_ARGS,
        *extra,
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    return subprocess.run(
        cmd,
        cwd=cwd or root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="session")
def run_tiny_recipe():
    """``run(recipe, name, out_dir, cwd=None, extra=(), threads=2)``: a
    recipe's hparams file for a few steps on the tiny world (subprocess)."""
    return _run_tiny_recipe


def load_recipe_module(recipe, module="train"):
    """Imports ``recipes/<recipe>/<module>.py`` as its ``train.py`` does.

    ``python recipes/<recipe>/train.py`` runs with the recipe folder first
    on ``sys.path``, so a recipe imports its own helpers by their bare
    names (``from text_prompts import ...``); this puts the folder there
    too and registers the module under a name of its own
    (``<recipe>_<module>``), so that the recipes' ``train`` modules do not
    clash.
    """
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "recipes" / recipe
    name = f"{recipe}_{module}"
    if name in sys.modules:
        return sys.modules[name]
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{module}.py")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded
