"""Wav2Prompt recipe helpers: text-task prompts and loss weights.

Authors
 * audiollm-lobes developers, 2026
"""

import json
from pathlib import Path

import pytest
import torch
from conftest import load_recipe_module

from audiollm_lobes.cif import CIFPrompter
from audiollm_lobes.data.templates import PROMPT_FORMAT, TEXT_MARKER

text_prompts = load_recipe_module("Wav2Prompt", "text_prompts")
check_loss_weights = load_recipe_module("Wav2Prompt").check_loss_weights
split_text_prompt = text_prompts.split_text_prompt
text_instruction = text_prompts.text_instruction
add_text_prompt_items = text_prompts.add_text_prompt_items

ZERO_SHOT_TASKS = ["asr", "translate_fr", "slu", "spoken_qa", "spoken_query_qa"]


def test_loss_weights_are_checked():
    prompter = CIFPrompter(4, 4, hidden_dim=4)
    with pytest.raises(ValueError, match="unknown names"):
        check_loss_weights({"mse": 1.0, "kl": 1.0}, prompter)
    with pytest.raises(ValueError, match="not all zero"):
        check_loss_weights({"ce": 0.0}, prompter)
    with pytest.raises(ValueError, match="loss_weights.quantity"):
        check_loss_weights({"ce": 1, "quantity": 1}, torch.nn.Linear(2, 2))


def test_text_instruction_errors_name_the_field():
    with pytest.raises(ValueError, match="has no text version"):
        text_instruction({"task": "emotion"}, "e1")
    with pytest.raises(ValueError, match="'question'"):
        text_instruction({"task": "spoken_qa"}, "q1", template=0)
    with pytest.raises(ValueError, match="text_template"):
        text_instruction({"task": "slu"}, "s1", template=7)


def test_hash_template_is_stable_and_varied():
    ids = [f"x{i}" for i in range(30)]
    first = [text_instruction({"task": "slu"}, i) for i in ids]
    again = [text_instruction({"task": "slu"}, i) for i in ids]
    assert first == again
    assert len(set(first)) > 1


def test_spliced_text_matches_the_pretraining_tokenisation(tiny_backbones):
    """[before][" " + transcript][after] == the full text prompt's tokens.

    This is what makes the cascade the LM's own text task and what the CIF
    vectors stand in for: splicing must not change the tokenisation.
    """
    from audiollm_lobes.llm import CausalLM

    llm = CausalLM(str(Path(tiny_backbones) / "lm"))
    world = Path(tiny_backbones).parent
    checked = 0
    for task in ZERO_SHOT_TASKS:
        path = world / "manifests" / "test" / f"{task}.json"
        entries = json.loads(path.read_text())
        for ex_id, entry in list(entries.items())[:5]:
            instruction = text_instruction(entry, ex_id)
            before, after = split_text_prompt(instruction)
            ids = llm.encode([before, " " + entry["transcript"], after])
            full = PROMPT_FORMAT.replace(
                "<instruction>",
                instruction.replace(TEXT_MARKER, entry["transcript"]),
            )
            assert ids[0] + ids[1] + ids[2] == llm.encode(full)[0], full
            checked += 1
    assert checked == 5 * len(ZERO_SHOT_TASKS)


@pytest.mark.parametrize("asr_prompt", ["manifest", "instruction"])
def test_asr_prompt_items(asr_prompt, tiny_backbones):
    """``asr_prompt="instruction"``: every example gets the fixed ASR prompt,
    split so that [prompt][" " + transcript] tokenises like the text task;
    ``"manifest"``: ASR examples keep their own spoken-task instruction."""
    from speechbrain.dataio.dataset import DynamicItemDataset

    from audiollm_lobes.llm import CausalLM

    llm = CausalLM(str(Path(tiny_backbones) / "lm"))
    entries = {
        "a": {
            "task": "asr",
            "instruction": "<audio> Write down what is said.",
            "transcript": "the pink keys are in the attic",
        },
        "b": {
            "task": "translate_fr",
            "instruction": "<audio> Say this in French.",
            "transcript": "the frog has eight cups",
        },
    }
    data = DynamicItemDataset({k: dict(v) for k, v in entries.items()})
    add_text_prompt_items(
        data,
        entries,
        llm,
        asr_instruction="Repeat the text: <audio>",
        asr_prompt=asr_prompt,
    )
    data.set_output_keys(["id", "asr_before_ids", "asr_after_ids"])
    bos = [llm.bos_id]
    for item in data:
        transcript = entries[item["id"]]["transcript"]
        got = (
            item["asr_before_ids"].tolist()
            + llm.encode([" " + transcript])[0]
            + item["asr_after_ids"].tolist()
        )
        if asr_prompt == "manifest":
            # split at <audio> as in the other recipes: the manifest's
            # instruction for ASR examples, asr_instruction for the others
            before, after = llm.encode(
                ["USER: ", " Write down what is said.\nASSISTANT:"]
                if item["id"] == "a"
                else ["USER: Repeat the text: ", "\nASSISTANT:"]
            )
            assert item["asr_before_ids"].tolist() == bos + before
            assert item["asr_after_ids"].tolist() == after
            continue
        text = "USER: Repeat the text: " + transcript + "\nASSISTANT:"
        assert got == bos + llm.encode([text])[0], item["id"]


def test_asr_prompt_is_checked(tiny_backbones):
    from speechbrain.dataio.dataset import DynamicItemDataset

    from audiollm_lobes.llm import CausalLM

    llm = CausalLM(str(Path(tiny_backbones) / "lm"))
    entry = {"task": "asr", "instruction": "<audio> x", "transcript": "a"}
    with pytest.raises(ValueError, match="asr_prompt"):
        add_text_prompt_items(
            DynamicItemDataset({"a": dict(entry)}),
            {"a": entry},
            llm,
            asr_prompt="fixed",
        )


def test_decoding_options_reach_the_llm():
    """``max_new_tokens``, ``num_beams`` and ``repetition_penalty`` of the
    hparams reach every ``llm.generate`` of the recipe (system and both
    cascades decode through ``Wav2PromptBrain.generate``)."""
    from types import SimpleNamespace

    train = load_recipe_module("Wav2Prompt")
    calls = []

    class RecordingLLM:
        def generate(self, embeds, mask, **options):
            calls.append(options)
            return torch.zeros(len(embeds), 1, dtype=torch.long)

        def decode(self, ids):
            return ["answer"] * len(ids)

    values = {"max_new_tokens": 7, "num_beams": 2, "repetition_penalty": 1.1}
    brain = SimpleNamespace(
        llm=RecordingLLM(), _hp=lambda name, default=None: values[name]
    )
    seq = SimpleNamespace(embeds=torch.zeros(1, 2, 4), mask=torch.ones(1, 2))
    assert train.Wav2PromptBrain.generate(brain, seq) == ["answer"]
    assert calls == [values]
    # without the option: no penalty (1.0)
    calls.clear()
    brain._hp = lambda name, default=None: default
    train.Wav2PromptBrain.generate(brain, seq)
    assert calls[0]["repetition_penalty"] == 1.0


def test_cascade_labels_agree_between_the_run_and_compare():
    train = load_recipe_module("Wav2Prompt")
    compare = load_recipe_module("Wav2Prompt", "compare")
    assert dict(compare.CASCADES) == {
        "cascade": train.CASCADE_LABEL,
        "cascade_ctc": train.CASCADE_CTC_LABEL,
    }


def test_ctc_asr_doctests():
    """``ctc_asr.py``'s examples run (the recipe helper of the CTC ASR)."""
    import doctest

    module = load_recipe_module("Wav2Prompt", "ctc_asr")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
