"""Two-process CPU DDP runs (``torchrun``, gloo) of every recipe and of
the LoRA baseline on the tiny toy world.

What matters in a multi-process run: after training, the trainable
parameters are identical on both processes (each saw other examples, so
they are equal only if DDP averaged every gradient); the run gets through
checkpoint clean-up, evaluation and reporting without hanging; the
reports are written once, by the main process; a run killed mid-epoch
resumes and ends on the weights of the uninterrupted run.

Each run is ~20-40 s on two cores (one thread per process); see the
report of each test with ``pytest --durations``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("recipe_driver.py")
#: the tiny world, 2 epochs of 2 steps per process (4 x 4 draws / 2),
#: fp32, eager, no precomputation (only the batches' clips are encoded)
BASE_ARGS = (
    "--toy_profile=tiny",
    "--steps_per_epoch=4",
    "--number_of_epochs=2",
    "--batch_size=4",
    "--max_valid_per_task=2",
    "--max_test_per_task=2",
    "--max_new_tokens=4",
    "--warmup_steps=1",
    "--precision=fp32",
    "--distributed_backend=gloo",
    "--ckpt_interval_minutes=0",
)
RUNS = {
    "listen_dps": (
        "LiSTEN",
        "dps",
        (
            "--llm_compile_training=False",
            # each batch encoded in the step (the in-memory cache would
            # encode a clip in another batch after a resume: features
            # equal up to float rounding, not bit for bit); the fused
            # encoder's LayerNorms then train too
            "--cache_encoder_features=False",
            "--k_eval_sweep=[1,16]",
        ),
    ),
    "listen_lora": (
        "LiSTEN",
        "lora",
        ("--llm_compile_training=False", "--precompute_encoder_features=False"),
    ),
    # the LLM tuned with LoRA inside the LAL injector (the paper's setting)
    "pal": (
        "PAL",
        "pal",
        ("--precompute_encoder_features=False", "--llm_finetune=lora"),
    ),
    "wav2prompt": ("Wav2Prompt", "asr", ()),
}


def torchrun(recipe, name, out, extra=(), env=None, timeout=600):
    """``torchrun --nproc_per_node=2`` of a recipe (through the driver)."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(DRIVER),
        recipe,
        str(out / "ranks"),
        f"hparams/{name}.yaml",
        f"--output_folder={out}",
        *BASE_ARGS,
        *extra,
    ]
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run(
        cmd,
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def rank_states(out):
    """The trainable parameters each process held after training."""
    return [
        torch.load(out / "ranks" / f"rank{r}.pt", map_location="cpu")
        for r in (0, 1)
    ]


def assert_same_states(a, b):
    assert a and set(a) == set(b)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"parameters differ: {different[:5]}"


@pytest.fixture(scope="module")
def ddp_runs(tiny_backbones, tmp_path_factory):
    """Each run of ``RUNS`` once per session: ``{key: (proc, out)}``."""
    done = {}

    def run(key):
        if key not in done:
            recipe, name, extra = RUNS[key]
            out = tmp_path_factory.mktemp(key)
            done[key] = (torchrun(recipe, name, out, extra), out)
        return done[key]

    return run


@pytest.mark.parametrize("key", sorted(RUNS))
def test_ddp_run_averages_gradients_and_reports_once(key, ddp_runs):
    proc, out = ddp_runs(key)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    rank0, rank1 = rank_states(out)
    assert_same_states(rank0, rank1)
    # reports are written by the main process only, once
    writes = out / "ranks" / "rank1_writes.txt"
    written = writes.read_text().split() if writes.exists() else []
    assert not [w for w in written if "ranks" not in w], written
    assert log.count("audiollm_lobes.reporting - results:") == 1, log[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "results.md").exists()
    assert summary["trainable_parameters"] > 0
    assert all(v["n"] == 2 for v in summary["test"].values())
    # one checkpoint left after the clean-up of epoch 2 (no hang there)
    assert len(list((out / "save").glob("CKPT*"))) == 1
    if key == "listen_dps":
        # the usage report and the k sweep (k=1 decoded again, k=16 reused)
        assert log.count("audiollm_lobes.brain - test results:") == 2
        assert (out / "prompt_usage.png").exists()
        usage = json.loads((out / "prompt_usage.json").read_text())
        assert set(usage["per_task"]) == set(summary["test"])
        assert set(summary["k_sweep"]) == {"1", "16"}
        assert (out / "test_results_k1.json").exists()
    else:
        assert log.count("audiollm_lobes.brain - test results:") == 1
    if key == "listen_lora":
        assert any("lora_" in k for k in rank0)
    if key == "pal":
        assert any("beats_connector" in k for k in rank0)
        assert any("injector" in k for k in rank0)
        assert any("lora_" in k for k in rank0)
    if key == "wav2prompt":
        assert (out / "test_results_cascade.json").exists()


def test_killed_ddp_run_resumes_on_the_same_weights(ddp_runs, tmp_path):
    """SIGKILL both processes after the 3rd intra-epoch checkpoint (step 1
    of epoch 2), run the same command again: it resumes there and ends on
    the weights of the uninterrupted run."""
    recipe, name, extra = RUNS["listen_dps"]
    extra = (*extra, "--ckpt_interval_steps=1")
    killed = torchrun(
        recipe, name, tmp_path, extra, env={"KILL_AFTER_INTRA_CKPT": "3"}
    )
    assert killed.returncode != 0
    assert not (tmp_path / "ranks").exists()  # killed before fit ended
    resumed = torchrun(recipe, name, tmp_path, extra)
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-4000:]
    assert "Loading a checkpoint" in log
    reference, out = ddp_runs("listen_dps")
    assert reference.returncode == 0
    for mine, theirs in zip(rank_states(tmp_path), rank_states(out)):
        assert_same_states(mine, theirs)
