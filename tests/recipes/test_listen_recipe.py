"""Runs every LiSTEN hparams file for a few steps on the tiny toy world."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "LiSTEN"
HPARAMS = ["dps", "dps_attention", "dps_residual", "soft_prompt", "lora"]
TASKS = {
    "asr",
    "translate_zh",
    "emotion",
    "speaker_verification",
    "spoken_qa",
    "captioning",
}


@pytest.mark.parametrize("name", HPARAMS)
def test_listen_hparams_run(name, tiny_backbones, tmp_path, run_tiny_recipe):
    out = tmp_path / name
    # k=16 is the pool's k_eval: the sweep reuses the main test for it
    extra = (
        ["--k_eval_sweep=[1,16]"] if name == "dps" else ["--k_eval_sweep=[]"]
    )
    if name == "dps":  # an instruction override from the command line
        extra.append("--instruction_overrides={asr: 'Repeat: <audio>'}")
    if name == "soft_prompt":  # task-weighted sampling
        extra.append(
            "--task_sampling_weights={asr: 2, translate_zh: 1, emotion: 1, "
            "speaker_verification: 1, spoken_qa: 1, captioning: 1}"
        )
    proc = run_tiny_recipe("LiSTEN", name, out, extra=extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test"]) == TASKS
    for task, values in summary["test"].items():
        assert values["n"] == 2, task
    assert summary["trainable_parameters"] > 0
    assert (out / "results.md").read_text().count("|") > 10
    assert (out / "train_log.txt").exists()
    # only trainable parameters are checkpointed, never the frozen LLM
    ckpts = list((out / "save").glob("CKPT*/trainable.ckpt"))
    assert len(ckpts) == 1
    state = torch.load(ckpts[0], map_location="cpu")
    assert state and not any("embed_tokens" in k for k in state)
    if name == "soft_prompt":
        assert "asr: 2" in (out / "hyperparams.yaml").read_text()
    if name == "lora":
        assert all("lora_" in k for k in state if k.startswith("llm."))
    if name == "dps":
        assert (
            "asr: 'Repeat: <audio>'" in (out / "hyperparams.yaml").read_text()
        )
        assert (out / "prompt_usage.png").exists()
        usage = json.loads((out / "prompt_usage.json").read_text())
        assert set(usage["per_task"]) == TASKS
        assert set(summary["k_sweep"]) == {"1", "16"}
        assert summary["k_sweep"]["16"] == summary["test"]
        assert (out / "test_results_k1.json").exists()
        assert not (out / "test_results_k16.json").exists()


def test_bad_manifest_gives_one_clear_report(tiny_backbones, tmp_path):
    """Missing file, empty wav, wrong rate, unknown task: one report."""
    import numpy as np
    import soundfile as sf

    world = Path(tiny_backbones).parent
    data = tmp_path / "data"
    good = json.loads((world / "manifests" / "train" / "asr.json").read_text())
    items = dict(list(good.items())[:3])
    for split in ("train", "valid", "test"):
        (data / "manifests" / split).mkdir(parents=True)
    (data / "empty.wav").write_bytes(b"")
    sf.write(data / "rate8k.wav", np.zeros(8000, dtype="float32"), 8000)
    template = next(iter(items.values()))
    bad = {
        "bad_missing": dict(template, wav="{data_root}/nowhere.wav"),
        "bad_empty": dict(template, wav="{data_root}/empty.wav"),
        "bad_rate": dict(template, wav="{data_root}/rate8k.wav", duration=1.0),
        "bad_task": dict(template, task="juggling"),
    }
    train = {**items, **bad}
    for entry in items.values():
        entry["wav"] = entry["wav"].replace("{data_root}", str(world))
    for key in ("bad_task",):
        train[key]["wav"] = train[key]["wav"].replace("{data_root}", str(world))
    (data / "manifests" / "train" / "asr.json").write_text(json.dumps(train))
    for split in ("valid", "test"):
        (data / "manifests" / split / "asr.json").write_text(json.dumps(items))
    cmd = [
        sys.executable,
        str(RECIPE / "train.py"),
        "hparams/dps.yaml",
        "--toy_profile=tiny",
        f"--data_folder={data}",
        "--tasks=[asr]",
        f"--output_folder={tmp_path / 'out'}",
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode != 0
    for ex_id in bad:
        assert ex_id in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize(
    "name, override, expected",
    [
        ("dps", None, ("eager", True)),
        ("lora", None, ("eager", True)),
        ("dps", ("sdpa", False), ("sdpa", False)),
    ],
)
def test_llm_attention_and_compile_options_reach_the_model(
    name, override, expected, tiny_backbones, tmp_path
):
    """The toy yamls train the LLM with HF's eager attention and a compiled
    decoder (both faster on a CPU: benchmarks/attention_step.py,
    benchmarks/compile_step.py); each is a one-line swap."""
    from audiollm_lobes.cli import load_recipe_hparams

    path = str(RECIPE / "hparams" / f"{name}.yaml")
    argv = [path, "--toy_profile=tiny", f"--output_folder={tmp_path}"]
    if override:
        argv.append(f"--llm_attn_implementation={override[0]}")
        argv.append(f"--llm_compile_training={override[1]}")
    hparams, _ = load_recipe_hparams(argv, path)
    llm = hparams["llm"]
    assert llm.model.config._attn_implementation == expected[0]
    assert llm.compile_training is expected[1]


def _driven_run(out, extra=(), env=None):
    """LiSTEN dps for 2 epochs x 3 steps on the tiny world, one process,
    one thread, fp32, eager, through ``tests/distributed/recipe_driver.py``
    (which saves the trainable parameters after ``fit``)."""
    driver = ROOT / "tests" / "distributed" / "recipe_driver.py"
    cmd = [
        sys.executable,
        str(driver),
        "LiSTEN",
        str(out / "ranks"),
        "hparams/dps.yaml",
        f"--output_folder={out}",
        "--toy_profile=tiny",
        "--steps_per_epoch=3",
        "--number_of_epochs=2",
        "--batch_size=4",
        "--max_valid_per_task=1",
        "--max_test_per_task=1",
        "--max_new_tokens=2",
        "--warmup_steps=1",
        "--k_eval_sweep=[]",
        "--precision=fp32",
        "--llm_compile_training=False",
        # each batch encoded in its step: after a resume the in-memory
        # feature cache would encode clips in other batches (features
        # equal up to float rounding only)
        "--cache_encoder_features=False",
        *extra,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )


def test_run_killed_mid_epoch_resumes_on_the_same_weights(
    tiny_backbones, tmp_path
):
    """SIGKILL after the 4th intra-epoch checkpoint (step 1 of epoch 2),
    rerun: the final trainable weights equal an uninterrupted run's,
    bit for bit (dropout and the pool's stochastic k draw random numbers,
    so this needs the generator states in the checkpoint)."""
    reference = _driven_run(tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-3000:]
    resumed_out = tmp_path / "resumed"
    intra = ("--ckpt_interval_steps=1", "--ckpt_interval_minutes=0")
    killed = _driven_run(resumed_out, intra, env={"KILL_AFTER_INTRA_CKPT": "4"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = _driven_run(resumed_out, intra)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Loading a checkpoint" in resumed.stdout + resumed.stderr
    ref = torch.load(tmp_path / "reference" / "ranks" / "rank0.pt")
    got = torch.load(resumed_out / "ranks" / "rank0.pt")
    assert ref and set(ref) == set(got)
    assert all(torch.equal(ref[k], got[k]) for k in ref)

    # the resumed epoch's logged training stats are the uninterrupted ones
    def epoch2(out):
        line = [
            ln
            for ln in (out / "train_log.txt").read_text().splitlines()
            if ln.startswith("epoch: 2")
        ][-1]
        return line.split(" - valid")[0].split("train seconds")[0]

    assert epoch2(resumed_out) == epoch2(tmp_path / "reference")
