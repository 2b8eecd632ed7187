"""A trained model used after training: run folders, exports, the CLI.

Each recipe trains a few steps on the tiny toy world; its run folder and
its export (loaded in a fresh process, through ``audiollm-generate``)
must answer the test examples token for token as the recipe's own test
did. Then: one clip alone, in a batch of other clips, and at another
sample rate gives the same answer; wrong or missing backbones are refused
when loading, naming both sides.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from audiollm_lobes.data.audio import read_wav
from audiollm_lobes.inference import AudioLLM, ModelFolderError

#: (recipe, hparams file, extra overrides): every method, LoRA included.
RUNS = {
    "dps": ("LiSTEN", "dps", ["--k_eval_sweep=[]"]),
    "lora": ("LiSTEN", "lora", []),
    "pal": ("PAL", "pal", []),
    # LoRA inside the LAL injector: the peft adapter of a nested LLM
    "pal_lora": ("PAL", "lal", ["--llm_finetune=lora"]),
    "wav2prompt": ("Wav2Prompt", "asr", []),
}

#: Test tasks of each recipe (in the order the recipe reads them).
TEST_TASKS = {
    "LiSTEN": [
        "asr",
        "translate_zh",
        "emotion",
        "speaker_verification",
        "spoken_qa",
        "captioning",
    ],
    "PAL": ["sound_event", "captioning", "spoken_qa", "emotion", "asr"],
    "Wav2Prompt": [
        "asr",
        "translate_fr",
        "slu",
        "spoken_qa",
        "spoken_query_qa",
    ],
}


@pytest.fixture(scope="module")
def trained_runs(tiny_backbones, tmp_path_factory, run_tiny_recipe):
    """``{name: run folder}`` of a few-step run of each recipe."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, (recipe, hparams, extra) in RUNS.items():
        folder = root / name
        proc = run_tiny_recipe(recipe, hparams, folder, extra=extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[name] = folder
    return out


def _recipe_hyps(run):
    lines = (run / "test_results_hyps.jsonl").read_text().splitlines()
    return {row["id"]: row["hyp"] for row in map(json.loads, lines)}


def _test_manifests(world, name):
    tasks = TEST_TASKS[RUNS[name][0]]
    return [str(world / "manifests" / "test" / f"{t}.json") for t in tasks]


def _generate_cli(args):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    cmd = [sys.executable, "-m", "audiollm_lobes.generate", *args]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("name", sorted(RUNS))
def test_run_folder_and_fresh_export_answer_as_the_recipe_test(
    name, trained_runs, tiny_world, tmp_path
):
    run = trained_runs[name]
    expected = _recipe_hyps(run)
    assert len(expected) >= 8
    manifests = _test_manifests(Path(tiny_world), name)
    # the run folder, in this process
    model = AudioLLM.from_folder(run)
    rows = model.generate_manifest(manifests, max_per_manifest=2)
    assert {r["id"]: r["hyp"] for r in rows} == expected
    # the export, in a fresh process, through the command line
    export = tmp_path / "export"
    model.export(export)
    assert (export / "lobes.safetensors").is_file()
    assert not list(export.glob("*.ckpt")) and not (export / "save").exists()
    out = tmp_path / "answers.jsonl"
    _generate_cli(
        ["--model", str(export), "--manifest", *manifests]
        + ["--max_per_manifest", "2", "--out", str(out), "--noprogressbar"]
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["id"]: r["hyp"] for r in rows} == expected
    info = json.loads((export / "model.json").read_text())
    assert (info["lora_adapter"] is not None) == ("lora" in name)


def test_export_needs_no_run_folder_and_no_pickle(
    trained_runs, tiny_world, tmp_path, monkeypatch
):
    export = tmp_path / "export"
    AudioLLM.from_folder(trained_runs["dps"]).export(export)
    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(export, moved)
    shutil.rmtree(export)

    loaded = []
    torch_load = torch.load

    def spy(path, *args, **kwargs):
        loaded.append(str(path))
        return torch_load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    model = AudioLLM.from_folder(moved)
    # the backbones load as they do (BEATs ships a .pt); nothing of the
    # export goes through pickle
    assert not [p for p in loaded if str(moved) in p], loaded
    wav = Path(tiny_world) / "audio" / "test" / "st00000.wav"
    assert isinstance(model.generate(str(wav), task="asr"), str)


def _clips(world, n):
    folder = Path(world) / "audio" / "test"
    return sorted(str(p) for p in folder.glob("st*.wav"))[:n]


@pytest.mark.parametrize("name", ["dps", "pal", "wav2prompt"])
def test_alone_in_a_batch_and_at_another_rate_gives_the_same_answer(
    name, trained_runs, tiny_world, tmp_path
):
    model = AudioLLM.from_folder(trained_runs[name])
    clips = _clips(tiny_world, 5)
    lengths = [sf.info(c).frames for c in clips]
    assert len(set(lengths)) == len(lengths)  # mixed lengths: padding
    task = "asr"
    alone = [model.generate(c, task=task) for c in clips]
    batched = model.generate(clips, task=task, batch_size=len(clips))
    assert batched == alone
    assert len(set(alone)) > 1, "answers should depend on the audio"
    # the first clip at 44.1 kHz stereo, and the same file resampled to the
    # model's rate by the front door beforehand
    wav, rate = sf.read(clips[0], dtype="float32")
    resampled = torchaudio.functional.resample(
        torch.from_numpy(wav), rate, 44100
    )
    stereo = torch.stack([resampled, 0.5 * resampled], 1).numpy()
    high = tmp_path / "high.wav"
    sf.write(high, stereo, 44100, subtype="FLOAT")
    pre = tmp_path / "pre.wav"
    sf.write(
        pre,
        read_wav(high, model.sample_rate).numpy(),
        model.sample_rate,
        subtype="FLOAT",
    )
    from_file = model.generate(str(high), task=task)
    assert from_file == model.generate(str(pre), task=task)
    # a waveform array at its own rate: the same front door
    assert model.generate(stereo.T, task=task, sample_rate=44100) == from_file


def test_cli_answers_one_line_per_file(trained_runs, tiny_world):
    clips = _clips(tiny_world, 2)
    out = _generate_cli(
        ["--model", str(trained_runs["dps"]), "--audio", *clips]
        + ["--instruction", "Transcribe the speech."]
    )
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == clips
    model = AudioLLM.from_folder(trained_runs["dps"])
    answers = model.generate(clips, "<audio> Transcribe the speech.")
    assert [line.split("\t", 1)[1] for line in lines] == answers


def _other_lm(tiny_backbones, tmp_path, add_token=False, hidden=None):
    """A copy of the tiny toy LM with another vocabulary, or a random LM
    of another width with the same tokenizer."""
    import transformers

    source = Path(tiny_backbones) / "lm"
    out = tmp_path / "other_lm"
    if add_token:
        shutil.copytree(source, out)
        tok = transformers.AutoTokenizer.from_pretrained(out)
        tok.add_tokens(["<extra_token>"])
        tok.save_pretrained(out)
        return out
    config = transformers.AutoConfig.from_pretrained(source)
    config.hidden_size = hidden
    config.intermediate_size = hidden * 2
    config.head_dim = hidden // config.num_attention_heads
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


def test_a_backbone_of_another_width_is_refused_naming_both(
    trained_runs, tiny_backbones, tmp_path
):
    run = trained_runs["dps"]
    trained = json.loads((run / "backbones.json").read_text())
    width = trained["widths"]["llm_dim"]
    other = _other_lm(tiny_backbones, tmp_path, hidden=width * 2)
    with pytest.raises(ValueError) as err:
        AudioLLM.from_folder(run, sources={"llm_source": str(other)})
    message = str(err.value)
    assert f"llm_dim: trained with {width}" in message
    assert f"loaded {width * 2}" in message
    assert str(other) in message and "toy://tiny/lm" in message


def test_a_tokenizer_of_another_vocabulary_is_refused(
    trained_runs, tiny_backbones, tmp_path
):
    other = _other_lm(tiny_backbones, tmp_path, add_token=True)
    with pytest.raises(ValueError) as err:
        AudioLLM.from_folder(
            trained_runs["dps"], sources={"llm_source": str(other)}
        )
    message = str(err.value)
    assert "tokenizer" in message and "vocab_size" in message
    assert str(other) in message and "toy://tiny/lm" in message


def test_a_missing_backbone_is_refused_at_load_time(trained_runs, tmp_path):
    missing = tmp_path / "no_such_lm"
    with pytest.raises(ModelFolderError) as err:
        AudioLLM.from_folder(
            trained_runs["wav2prompt"], sources={"llm_source": str(missing)}
        )
    message = str(err.value)
    assert str(missing) in message and "llm_source" in message


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(ModelFolderError, match="hyperparams.yaml"):
        AudioLLM.from_folder(tmp_path)


def test_decoding_options_reach_the_llm_for_one_call(trained_runs, tiny_world):
    model = AudioLLM.from_folder(trained_runs["dps"])
    llm = model.brain.llm
    seen = []
    generate = llm.generate

    def spy(*args, **kwargs):
        seen.append((kwargs["num_beams"], kwargs["max_new_tokens"]))
        return generate(*args, **kwargs)

    llm.generate = spy
    clip = _clips(tiny_world, 1)[0]
    model.generate(clip, task="asr", num_beams=3, max_new_tokens=4)
    model.generate(clip, task="asr")
    assert seen == [(3, 4), (1, model.hparams["max_new_tokens"])]


def test_waveforms_of_successive_calls_are_not_mixed_up(
    trained_runs, tiny_world
):
    model = AudioLLM.from_folder(trained_runs["dps"])
    clips = _clips(tiny_world, 3)
    from_files = [model.generate(c, task="asr") for c in clips]
    assert len(set(from_files)) > 1
    for clip, expected in zip(clips, from_files):
        wav, rate = sf.read(clip, dtype="float32")
        assert model.generate(wav, task="asr", sample_rate=rate) == expected


def test_bad_audio_inputs_fail_before_decoding_naming_the_input(
    trained_runs, tiny_world, tmp_path
):
    model = AudioLLM.from_folder(trained_runs["dps"])
    bad = tmp_path / "nan.wav"
    samples = np.full(1600, 0.1, dtype="float32")
    samples[100] = np.nan
    sf.write(bad, samples, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"input 0: .*nan.wav.* 1 non-finite"):
        model.generate(str(bad), task="asr")
    limit = model.hparams["max_audio_seconds"]
    long = tmp_path / "long.wav"
    sf.write(long, np.full(int((limit + 1) * 8000), 0.1, "float32"), 8000)
    with pytest.raises(ValueError, match="input 1: .*max_audio_seconds"):
        model.generate([_clips(tiny_world, 1)[0], str(long)], task="asr")
