"""Runs every Wav2Prompt hparams file for a few steps on the tiny toy world
(the CTC ASR of the second cascade too, and a Wav2Prompt run that uses
it), and builds the paper-scale files on the meta device.

Authors
 * audiollm-lobes developers, 2026
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_RUN_ARGS, load_recipe_module

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "Wav2Prompt"
TEST_TASKS = {"asr", "translate_fr", "slu", "spoken_qa", "spoken_query_qa"}
ZERO_SHOT = TEST_TASKS - {"asr"}


def _run(runner, name, out_dir, extra=()):
    proc = runner("Wav2Prompt", name, out_dir, extra=extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out_dir / "summary.json").read_text())


def _check_run(summary, out, system, logged):
    assert summary["system"] == system
    assert set(summary["test"]) == TEST_TASKS
    assert all(v["n"] == 2 for v in summary["test"].values())
    # the cascade covers every zero-shot task, never ASR itself
    assert set(summary["cascade"]) == ZERO_SHOT
    assert all(v["n"] == 2 for v in summary["cascade"].values())
    assert set(summary["baselines"]) == {"slu", "spoken_qa", "spoken_query_qa"}
    assert summary["trainable_parameters"] > 0
    table = (out / "results.md").read_text()
    assert "| cascade (front end ASR) |" in table.splitlines()[4]
    # header + one row per test task
    assert sum(line.startswith("| ") for line in table.splitlines()) == 6
    log = (out / "train_log.txt").read_text()
    for part in logged:
        assert f"train {part}:" in log and f"valid {part}:" in log, part
    for stem in ("test_results", "test_results_cascade"):
        hyps = (out / f"{stem}_hyps.jsonl").read_text().splitlines()
        assert len(hyps) == (10 if stem == "test_results" else 8)
    # only the trainable front end is checkpointed, never the frozen LLM
    ckpts = list((out / "save").glob("CKPT*/trainable.ckpt"))
    assert len(ckpts) == 1
    state = torch.load(ckpts[0], map_location="cpu")
    assert state and all(k.startswith("connector.") for k in state)


@pytest.fixture(scope="module")
def asr_run(tiny_backbones, tmp_path_factory, run_tiny_recipe):
    """One asr.yaml run shared by the tests that need its front end."""
    out = tmp_path_factory.mktemp("w2p") / "asr"
    return out, _run(run_tiny_recipe, "asr", out)


def test_asr_run(asr_run):
    out, summary = asr_run
    _check_run(summary, out, "wav2prompt", ("ce", "mse", "quantity"))
    assert summary["loss_weights"] == {
        "ce": 1.0,
        "mse": 1000.0,
        "quantity": 1.0,
    }
    assert summary["train_tasks"] == ["asr"]
    # validation-only diagnostic: nearest token embedding = transcript's
    log = (out / "train_log.txt").read_text()
    acc = [float(v) for v in re.findall(r"valid token_acc: ([0-9.e+-]+)", log)]
    assert acc and all(0.0 <= a <= 1.0 for a in acc)
    assert "train token_acc" not in log


def test_same_budget_for_the_asr_stage_systems():
    """asr, asr_no_mse and encoder_llm.yaml: same data and step budget."""
    keys = (
        "tasks",
        "steps_per_epoch",
        "number_of_epochs",
        "batch_size",
        "lr",
        "warmup_steps",
        "max_train_per_task",
        "asr_prompt",
        "asr_instruction",
    )
    values = {}
    for name in ("asr", "asr_no_mse", "encoder_llm"):
        text = (RECIPE / "hparams" / f"{name}.yaml").read_text()
        values[name] = {
            key: re.search(rf"^{key}: (.+?)\s*(#.*)?$", text, re.M).group(1)
            for key in keys
        }
    assert values["asr"] == values["asr_no_mse"] == values["encoder_llm"]


def _yaml_values(name, keys):
    text = (RECIPE / "hparams" / f"{name}.yaml").read_text()
    out = {}
    for key in keys:
        found = re.search(rf"^{key}: (.+?)\s*(#.*)?$", text, re.M)
        assert found, (name, key)
        out[key] = found.group(1)
    return out


@pytest.mark.parametrize(
    "ctc, asr", [("ctc_asr", "asr"), ("ctc_asr_paper", "asr_paper")]
)
def test_ctc_asr_has_the_asr_stage_budget(ctc, asr):
    """The cascade's CTC ASR trains on the same data, steps, batch, LR
    schedule and clipping as the Wav2Prompt ASR stage, and on its
    encoder."""
    keys = (
        "data_folder",
        "tasks",
        "max_train_per_task",
        "max_valid_per_task",
        "sample_rate",
        "whisper_source",
        "steps_per_epoch",
        "number_of_epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "warmup_steps",
        "max_grad_norm",
        "dynamic_batching",
    )
    assert _yaml_values(ctc, keys) == _yaml_values(asr, keys)


@pytest.mark.parametrize(
    "name, system, weights, logged",
    [
        (
            "asr_no_mse",
            "wav2prompt_no_mse",
            {"ce": 1.0, "mse": 0.0, "quantity": 1.0},
            ("ce", "mse", "quantity"),  # the MSE is still logged
        ),
        (
            "encoder_llm",
            "encoder_llm",
            {"ce": 1.0, "mse": 0.0, "quantity": 0.0},
            ("ce",),
        ),
    ],
)
def test_other_asr_stage_runs(
    name, system, weights, logged, tiny_backbones, tmp_path, run_tiny_recipe
):
    out = tmp_path / name
    summary = _run(run_tiny_recipe, name, out)
    _check_run(summary, out, system, logged)
    assert summary["loss_weights"] == weights
    if name == "encoder_llm":
        assert "mse" not in (out / "train_log.txt").read_text()


def test_few_shot_run_tunes_the_pretrained_front_end(
    asr_run, tmp_path, run_tiny_recipe
):
    asr_out, asr_summary = asr_run
    out = tmp_path / "few_shot"
    summary = _run(
        run_tiny_recipe,
        "few_shot",
        out,
        # the tiny world's valid manifests hold 8-20 examples: shots are
        # entries 0-2, validation starts after them
        [
            f"--pretrained_frontend={asr_out}",
            "--shots=3",
            "--skip_valid_per_task=3",
        ],
    )
    _check_run(summary, out, "wav2prompt_3shot", ("ce",))
    assert summary["max_train_per_task"] == 3
    assert summary["train_manifest_split"] == "valid"  # unseen audio
    assert set(summary["train_tasks"]) == ZERO_SHOT
    # before tuning, the loaded front end decodes exactly as the asr run
    before = (out / "before_tuning_hyps.jsonl").read_text()
    assert before == (asr_out / "test_results_hyps.jsonl").read_text()
    assert summary["before_tuning"] == asr_summary["test"]
    # tuning changed the front end
    ckpt = next((out / "save").glob("CKPT*/trainable.ckpt"))
    base = next((asr_out / "save").glob("CKPT*/trainable.ckpt"))
    tuned, start = torch.load(ckpt), torch.load(base)
    assert tuned.keys() == start.keys()
    assert any(not torch.equal(tuned[k], start[k]) for k in tuned)

    # one table from several runs
    table_file = tmp_path / "table.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(RECIPE / "compare.py"),
            str(asr_out),
            str(out),
            "--output",
            str(table_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    header = table_file.read_text().splitlines()[0]
    for label in (
        "wav2prompt",
        "cascade (front end ASR)",
        "wav2prompt_3shot (before)",
        "wav2prompt_3shot",
        "majority",
    ):
        assert f"| {label} |" in header, header


def test_few_shot_needs_a_pretrained_front_end(tiny_backbones, tmp_path):
    cmd = [
        sys.executable,
        str(RECIPE / "train.py"),
        "hparams/few_shot.yaml",
        "--toy_profile=tiny",
        f"--output_folder={tmp_path / 'out'}",
        f"--pretrained_frontend={tmp_path / 'nowhere'}",
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode != 0
    assert "pretrained_frontend: no trainable.ckpt" in proc.stderr


def _layer_params(d, ffn):
    """nn.TransformerEncoderLayer: in/out attention proj, 2 linears, 2 LN."""
    attention = 3 * d * d + 3 * d + d * d + d
    feed_forward = d * ffn + ffn + ffn * d + d
    return attention + feed_forward + 4 * d


def test_paper_hparams_on_meta_device(tmp_path):
    """asr_paper.yaml builds without weights; its trainable count is right."""
    from hyperpyyaml import load_hyperpyyaml

    overrides = {
        "data_folder": "unused",
        "llm_source": "unused",
        "whisper_source": "unused",
        "llm": None,  # the frozen backbones are not built here
        "encoder": None,
        "output_folder": str(tmp_path / "out"),
    }
    path = RECIPE / "hparams" / "asr_paper.yaml"
    with torch.device("meta"), open(path, encoding="utf-8") as fin:
        hp = load_hyperpyyaml(fin, overrides)
    prompter = hp["connector"]
    assert next(prompter.parameters()).is_meta
    d_in, d_llm, h, ffn = 1024, 4096, 1024, 4096  # Whisper-medium, BLOOMZ-7B1
    assert (hp["encoder_dim"], hp["llm_dim"]) == (d_in, d_llm)
    assert (hp["hidden_dim"], hp["ffn_dim"]) == (h, ffn)
    assert (hp["pre_layers"], hp["post_layers"]) == (2, 0)
    expected = (
        2 * d_in  # input LayerNorm
        + d_in * h
        + h  # input projection
        + 2 * _layer_params(h, ffn)  # two Transformer layers before the CIF
        + h * h * 3
        + h  # CIF weight predictor: Conv1d(h, h, 3)
        + h
        + 1  # ... then Linear(h, 1)
        + h * d_llm
        + d_llm  # projection to the LLM width
    )
    trainable = sum(p.numel() for p in prompter.parameters() if p.requires_grad)
    assert trainable == expected == 33_590_273
    assert prompter.out_proj.out_features == d_llm
    assert hp["loss_weights"] == {"ce": 1.0, "mse": 100.0, "quantity": 1.0}
    # real-length answers (about 150 tokens for 30 s), a mild penalty
    assert hp["max_new_tokens"] >= 200 and hp["num_beams"] == 5
    assert hp["repetition_penalty"] == 1.1
    assert hp["cascade_asr"] is None


# ------------------------------------------------ the independent cascade
def _run_ctc_asr(out_dir, extra=()):
    """ctc_asr.yaml for a few steps on the tiny world (no LLM, so no
    max_new_tokens among the overrides)."""
    args = [a for a in TINY_RUN_ARGS if not a.startswith("--max_new_tokens")]
    cmd = [
        sys.executable,
        str(RECIPE / "train.py"),
        "hparams/ctc_asr.yaml",
        f"--output_folder={out_dir}",
        *args,
        *extra,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def ctc_run(tiny_backbones, tmp_path_factory):
    """One ctc_asr.yaml run (the cascade's independent ASR)."""
    out = tmp_path_factory.mktemp("w2p") / "ctc_asr"
    return out, _run_ctc_asr(out)


def _whisper(tiny_backbones):
    from audiollm_lobes.encoders import WhisperEncoder

    return WhisperEncoder(str(Path(tiny_backbones) / "whisper"))


def test_ctc_asr_run(ctc_run, tiny_backbones):
    out, summary = ctc_run
    assert summary["system"] == "ctc_asr"
    assert set(summary["test"]) == {"asr"} and summary["test"]["asr"]["n"] == 2
    assert summary["trainable_parameters"] > 0
    log = (out / "train_log.txt").read_text()
    assert "train ctc:" in log and "valid ctc:" in log
    assert "valid asr/wer:" in log and "test asr/wer:" in log
    assert "| ctc_asr |" in (out / "results.md").read_text()
    assert not (out / "backbones.json").exists()  # no LLM in this run
    # its own checkpoint holds the head only
    ckpts = list((out / "save").glob("CKPT*/trainable.ckpt"))
    assert len(ckpts) == 1
    state = torch.load(ckpts[0], map_location="cpu")
    assert state and all(k.startswith("ctc_head.") for k in state)
    # the record a Wav2Prompt run reads: the head, its tokens, the encoder
    ctc_asr = load_recipe_module("Wav2Prompt", "ctc_asr")
    record = json.loads((out / "ctc_asr.json").read_text())
    tokens = (out / record["tokens_file"]).read_text()
    assert tokens.startswith("'<blank>' => 0\n'<unk>' => 1\n")
    assert record["head"]["vocab_size"] == summary["ctc_labels"]
    assert record["encoder_fingerprint"] == ctc_asr.ctc_encoder_fingerprint(
        _whisper(tiny_backbones), 16000
    )


def test_cascade_asr_loads_without_touching_the_random_state(
    ctc_run, tiny_backbones
):
    ctc_asr = load_recipe_module("Wav2Prompt", "ctc_asr")
    out, _ = ctc_run
    encoder = _whisper(tiny_backbones)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    asr = ctc_asr.load_cascade_asr(out, encoder, 16000)
    assert torch.equal(torch.get_rng_state(), before)
    assert not asr.head.training
    assert not any(p.requires_grad for p in asr.head.parameters())
    saved = torch.load(next((out / "save").glob("CKPT*/trainable.ckpt")))
    for name, param in asr.head.named_parameters():
        assert torch.equal(param, saved[f"ctc_head.{name}"]), name


def test_cascade_asr_loads_the_checkpoint_the_run_tested(ctc_run, tmp_path):
    """A newer checkpoint with a higher validation loss (the last epoch
    of a run that peaked earlier) is not the one the cascade uses."""
    from speechbrain.utils.checkpoints import Checkpointer

    ctc_asr = load_recipe_module("Wav2Prompt", "ctc_asr")
    out, _ = ctc_run
    copy = tmp_path / "ctc_run"
    shutil.copytree(out, copy)
    best = Checkpointer(copy / "save").find_checkpoint(min_key="loss")
    worse = Checkpointer(copy / "save").save_checkpoint(
        meta={"loss": best.meta["loss"] + 1.0}, name="later"
    )
    state = torch.load(best.path / "trainable.ckpt")
    torch.save(
        {k: v + 1 for k, v in state.items()}, worse.path / "trainable.ckpt"
    )
    _, checkpoint = ctc_asr.read_cascade_asr(copy)
    assert checkpoint == best.path / "trainable.ckpt"


def test_cascade_asr_refuses_another_encoder_or_folder(
    ctc_run, tiny_backbones, tmp_path
):
    ctc_asr = load_recipe_module("Wav2Prompt", "ctc_asr")
    out, _ = ctc_run
    encoder = _whisper(tiny_backbones)
    with pytest.raises(ValueError, match="another encoder or sample rate"):
        ctc_asr.load_cascade_asr(out, encoder, 8000)
    with torch.no_grad():
        next(encoder.parameters()).view(-1)[0] += 1e-3
    with pytest.raises(ValueError, match="another encoder or sample rate"):
        ctc_asr.load_cascade_asr(out, encoder, 16000)
    with pytest.raises(FileNotFoundError, match="cascade_asr: no ctc_asr"):
        ctc_asr.read_cascade_asr(tmp_path)


def test_cascade_asr_run_leaves_the_front_end_and_its_results_alone(
    asr_run, ctc_run, tmp_path, run_tiny_recipe
):
    """asr.yaml with and without --cascade_asr: the same trained front
    end (bit for bit), the same system and front-end cascade answers; the
    CTC cascade answers every task, its ASR rows being the CTC run's own
    transcripts."""
    asr_out, asr_summary = asr_run
    ctc_out, ctc_summary = ctc_run
    out = tmp_path / "asr_ctc"
    summary = _run(run_tiny_recipe, "asr", out, [f"--cascade_asr={ctc_out}"])
    _check_run(summary, out, "wav2prompt", ("ce", "mse", "quantity"))
    ckpt = torch.load(next((out / "save").glob("CKPT*/trainable.ckpt")))
    base = torch.load(next((asr_out / "save").glob("CKPT*/trainable.ckpt")))
    assert ckpt.keys() == base.keys()
    assert all(torch.equal(ckpt[k], base[k]) for k in ckpt)
    for stem in ("test_results_hyps", "test_results_cascade_hyps"):
        new = (out / f"{stem}.jsonl").read_text()
        assert new == (asr_out / f"{stem}.jsonl").read_text(), stem
    assert summary["test"] == asr_summary["test"]
    assert summary["cascade"] == asr_summary["cascade"]
    assert summary["cascade_asr"] == str(ctc_out)
    assert asr_summary["cascade_ctc"] is None
    # the second cascade: every task, into its own files
    assert set(summary["cascade_ctc"]) == TEST_TASKS
    assert all(v["n"] == 2 for v in summary["cascade_ctc"].values())
    rows = [
        json.loads(line)
        for line in (out / "test_results_cascade_ctc_hyps.jsonl")
        .read_text()
        .splitlines()
    ]
    assert len(rows) == 10
    own = {
        r["id"]: r["hyp"]
        for r in map(
            json.loads,
            (ctc_out / "test_results_hyps.jsonl").read_text().splitlines(),
        )
    }
    asr_rows = {r["id"]: r["hyp"] for r in rows if r["task"] == "asr"}
    assert asr_rows == own
    assert summary["cascade_ctc"]["asr"] == ctc_summary["test"]["asr"]
    assert (out / "test_results_cascade_ctc.json").exists()
    header = (out / "results.md").read_text().splitlines()[4]
    assert "| cascade (front end ASR) | cascade (CTC ASR) |" in header
    # compare.py shows both cascades of the first run, the CTC run too
    proc = subprocess.run(
        [sys.executable, str(RECIPE / "compare.py"), str(out), str(ctc_out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    header = proc.stdout.splitlines()[0]
    for label in ("cascade (front end ASR)", "cascade (CTC ASR)", "ctc_asr"):
        assert f"| {label} |" in header, header


def test_ctc_paper_hparams_on_meta_device(tmp_path):
    """ctc_asr_paper.yaml builds without weights; its head's trainable
    count is right; its training options are those of asr_paper.yaml."""
    from hyperpyyaml import load_hyperpyyaml

    overrides = {
        "data_folder": "unused",
        "whisper_source": "unused",
        "encoder": None,  # the frozen encoder is not built here
        "output_folder": str(tmp_path / "out"),
    }
    path = RECIPE / "hparams" / "ctc_asr_paper.yaml"
    with torch.device("meta"), open(path, encoding="utf-8") as fin:
        hp = load_hyperpyyaml(fin, overrides)
        vocab = 30  # LibriSpeech: 26 letters, apostrophe, space, blank, unk
        head = hp["ctc_head"](vocab_size=vocab)
    assert next(head.parameters()).is_meta
    d_in, h, ffn = 1024, 1024, 4096  # Whisper-medium
    assert (hp["encoder_dim"], hp["ctc_hidden_dim"]) == (d_in, h)
    expected = (
        2 * d_in  # input LayerNorm
        + d_in * h
        + h  # input projection
        + 2 * _layer_params(h, ffn)  # two Transformer layers
        + 2 * h  # output LayerNorm
        + h * vocab
        + vocab  # output layer
    )
    trainable = sum(p.numel() for p in head.parameters() if p.requires_grad)
    assert trainable == expected == 26_276_894
    assert hp["precision"] == "bf16" and hp["num_workers"] > 0
    assert hp["lr_scheduler"].num_training_steps == 5000 * 10
