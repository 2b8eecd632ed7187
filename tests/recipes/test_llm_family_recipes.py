"""Every recipe for two steps with a tiny random Llama, Qwen2, Mistral and
Phi-3 checkpoint as ``--llm_source`` (``conftest.llm_family_folders``):
BOS-less and pad-less tokenizers, tied and untied embeddings, GQA, Phi-3's
fused projections (LAL in PAL's routing), on the tiny toy world.

One hparams file per recipe (LiSTEN dps, PAL pal: PLITS and LAL, Wav2Prompt
asr: CIF, zero-shot prompts and the cascade), kept small: 4 training
examples per task, no torch.compile, no k sweep. The recipes' ``main`` is
called in this process (about 2 s a run, against 7 s or more for a new
interpreter that imports torch, transformers and SpeechBrain again); the
other recipe tests run the same command lines in subprocesses.

Authors
 * audiollm-lobes developers, 2026
"""

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import LLM_FAMILIES, TINY_RUN_ARGS, load_recipe_module

from audiollm_lobes.data.pipeline import make_dataset
from audiollm_lobes.llm import CausalLM

ROOT = Path(__file__).resolve().parents[2]

#: recipe -> (hparams file, test tasks, extra overrides)
RUNS = {
    "LiSTEN": (
        "dps",
        {
            "asr",
            "translate_zh",
            "emotion",
            "speaker_verification",
            "spoken_qa",
            "captioning",
        },
        ["--k_eval_sweep=[]", "--llm_compile_training=False"],
    ),
    "PAL": (
        "pal",
        {"sound_event", "captioning", "spoken_qa", "emotion", "asr"},
        [],
    ),
    "Wav2Prompt": (
        "asr",
        {"asr", "translate_fr", "slu", "spoken_qa", "spoken_query_qa"},
        [],
    ),
}


@pytest.fixture(autouse=True)
def _one_thread(_few_threads):
    """Tiny models: one thread is faster than two on a busy box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_in_process(recipe, name, out, extra=(), cwd=ROOT):
    """``python recipes/<recipe>/train.py hparams/<name>.yaml`` with the
    tiny-run overrides, as a call of the recipe's ``main`` from ``cwd``."""
    module = load_recipe_module(recipe, "train")
    argv = [
        f"hparams/{name}.yaml",
        f"--output_folder={out}",
        *TINY_RUN_ARGS,
        *extra,
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        module.main(argv)


@pytest.mark.parametrize("family", LLM_FAMILIES)
@pytest.mark.parametrize("recipe", sorted(RUNS))
def test_recipe_runs_on_llm_family(
    recipe, family, llm_family_folders, tmp_path
):
    name, tasks, extra = RUNS[recipe]
    folder = llm_family_folders[family]
    out = tmp_path / f"{recipe}_{family}"
    run_in_process(
        recipe,
        name,
        out,
        extra=[f"--llm_source={folder}", "--max_train_per_task=4", *extra],
    )
    # the family's checkpoint was the LLM, not the toy one
    assert f"llm_source: {folder}" in (out / "hyperparams.yaml").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test"]) == tasks
    assert all(v["n"] == 2 for v in summary["test"].values())
    if recipe == "Wav2Prompt":  # the cascade decodes text prompts too
        assert all(v["n"] == 2 for v in summary["cascade"].values())
    # only trainable parameters are checkpointed, never the frozen LLM
    (ckpt,) = (out / "save").glob("CKPT*/trainable.ckpt")
    state = torch.load(ckpt, map_location="cpu")
    assert state and not any(k.startswith("llm.") for k in state)
    assert not any("embed_tokens" in k for k in state)


def test_wav2prompt_runs_with_the_chat_template(llm_family_folders, tmp_path):
    """``prompt_format: chat_template`` end to end (Llama-3-like template:
    its own BOS, ``<|eot_id|>`` ends turns): training prompts, the
    zero-shot text prompts and the cascade's decoding."""
    source = ROOT / "recipes" / "Wav2Prompt" / "hparams" / "asr.yaml"
    text = source.read_text()
    include = "backbones: !include:../../../hparams/backbones/"
    extra = [
        f"--llm_source={llm_family_folders['llama']}",
        "--max_train_per_task=4",
    ]
    if re.search(r"^prompt_format:", text, re.M):  # the recipe exposes it
        cwd, extra = ROOT, extra + ["--prompt_format=chat_template"]
    else:  # hand it to the backbones fragment in a copy of the file
        assert text.count(include) == 1
        text = text.replace(
            include + "llm_whisper.yaml\n",
            f"{include.replace('../../..', str(ROOT))}llm_whisper.yaml\n"
            "    prompt_format: chat_template\n",
        )
        cwd = tmp_path / "recipe"
        (cwd / "hparams").mkdir(parents=True)
        (cwd / "hparams" / "asr.yaml").write_text(text)
    out = tmp_path / "out"
    run_in_process("Wav2Prompt", "asr", out, extra=extra, cwd=cwd)
    folder = llm_family_folders["llama"]
    log = (out / "log.txt").read_text()
    assert f"prompts in the chat_template format of {folder}" in log
    summary = json.loads((out / "summary.json").read_text())
    assert all(v["n"] == 2 for v in summary["test"].values())
    assert all(v["n"] == 2 for v in summary["cascade"].values())


def _chat_ids(tokenizer, content, answer=None):
    """The tokenizer's own tokenization of a user turn (and answer)."""
    turns = [{"role": "user", "content": content}]
    if answer is not None:
        turns.append({"role": "assistant", "content": answer})
    ids = tokenizer.apply_chat_template(
        turns, add_generation_prompt=answer is None, tokenize=True
    )
    return ids if isinstance(ids, list) else ids["input_ids"]


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_wav2prompt_prompts_follow_the_chat_template(
    family, llm_family_folders
):
    """Wav2Prompt's text-task and ASR prompts with ``chat_template``: the
    spliced pieces are the tokenizer's own tokenization of the user turn
    (one BOS at most, the template's), as in the plain format."""
    text_prompts = load_recipe_module("Wav2Prompt", "text_prompts")
    llm = CausalLM(llm_family_folders[family], prompt_format="chat_template")
    tok = llm.tokenizer
    entries = {
        "ex1": {
            "wav": "unused.wav",
            "wav2": "",
            "task": "translate_fr",
            "instruction": "<audio> Translate the speech into French.",
            "target": "le chat",
            "transcript": "the cat is red",
        }
    }
    data = text_prompts.add_text_prompt_items(
        make_dataset(entries, llm), entries, llm, template=0
    )
    with data.output_keys_as(text_prompts.TEXT_PROMPT_KEYS):
        item = {k: v.tolist() for k, v in data[0].items()}
    # "Translate into French: <text>" with the transcript spliced in
    spliced = (
        item["text_before_ids"]
        + item["transcript_ids"]
        + item["text_after_ids"]
    )
    assert spliced == _chat_ids(tok, "Translate into French: the cat is red")
    # the cascade's ASR prompt around the audio (<unk> stands for it)
    asr = item["asr_before_ids"] + [tok.unk_token_id] + item["asr_after_ids"]
    assert asr == _chat_ids(tok, "<unk> Transcribe the speech.")
    bos = tok.bos_token_id
    assert spliced.count(bos) == asr.count(bos) == (family == "llama")
