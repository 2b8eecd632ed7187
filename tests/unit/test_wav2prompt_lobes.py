"""Tests for the Wav2Prompt lobes: CIF prompter, text prompts, loss weights.

Authors
 * audiollm-lobes developers, 2026
"""

import json
from pathlib import Path

import pytest
import torch

from audiollm_lobes.cif import cif_integrate
from audiollm_lobes.data.templates import PROMPT_FORMAT, TEXT_MARKER
from audiollm_lobes.wav2prompt import (
    CIFPrompter,
    split_text_prompt,
    text_instruction,
)
from audiollm_lobes.wav2prompt_brain import check_loss_weights

ZERO_SHOT_TASKS = ["asr", "translate_fr", "slu", "spoken_qa", "spoken_query_qa"]


def test_prompter_without_layers_is_cif_then_projection():
    """pre/post layers 0: LayerNorm -> linear -> CIF -> linear, exactly."""
    torch.manual_seed(0)
    prompter = CIFPrompter(6, 5, hidden_dim=7, weight_predictor="linear")
    prompter.eval()
    x = torch.randn(3, 9, 6)
    mask = torch.arange(9)[None] < torch.tensor([[9], [5], [7]])
    target = torch.tensor([4, 2, 3])
    out = prompter(x, mask, target_lengths=target)

    h = prompter.input_proj(prompter.input_norm(x))
    h = h.masked_fill(~mask[..., None], 0.0)
    alphas = torch.sigmoid(prompter.cif.predictor_out(h).squeeze(-1))
    alphas = alphas * mask
    fired, fired_mask = cif_integrate(h, alphas, target_lengths=target)
    expected = prompter.out_proj(fired) * fired_mask[..., None]
    assert torch.equal(out.mask, fired_mask)
    assert torch.allclose(out.embeddings, expected, atol=1e-6)
    assert torch.allclose(out.alpha_sum, alphas.sum(1), atol=1e-6)


def test_prompter_sample_does_not_depend_on_batch_padding():
    """A sample alone and padded in a batch fires the same vectors."""
    torch.manual_seed(0)
    prompter = CIFPrompter(
        6, 5, hidden_dim=8, pre_layers=1, post_layers=1, num_heads=2
    ).eval()
    long = torch.randn(1, 12, 6)
    short = torch.randn(1, 7, 6)
    batch = torch.cat([long, torch.cat([short, torch.randn(1, 5, 6)], 1)])
    mask = torch.arange(12)[None] < torch.tensor([[12], [7]])
    with torch.no_grad():
        both = prompter(batch, mask)
        alone = prompter(short, torch.ones(1, 7, dtype=torch.bool))
    n = int(alone.mask.sum())
    assert int(both.mask[1].sum()) == n
    assert torch.allclose(
        both.embeddings[1, :n], alone.embeddings[0, :n], atol=1e-5
    )
    assert both.embeddings[1, n:].abs().sum() == 0


def test_prompter_gradients_reach_predictor_through_scaled_cif():
    prompter = CIFPrompter(4, 3, hidden_dim=4)
    out = prompter(
        torch.randn(2, 8, 4),
        torch.ones(2, 8, dtype=torch.bool),
        target_lengths=torch.tensor([3, 5]),
    )
    out.embeddings.pow(2).sum().backward()
    assert prompter.cif.predictor_out.weight.grad.abs().sum() > 0


def test_prompter_rejects_bad_shapes_and_sizes():
    with pytest.raises(ValueError, match="input_dim"):
        CIFPrompter(0, 4)
    with pytest.raises(ValueError, match="num_heads"):
        CIFPrompter(4, 4, hidden_dim=6, pre_layers=1, num_heads=4)
    with pytest.raises(ValueError, match=r"x: expected \(batch, time, 4\)"):
        CIFPrompter(4, 4)(torch.randn(1, 3, 5), torch.ones(1, 3).bool())


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
    from audiollm_lobes.wav2prompt import add_text_prompt_items

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
    from audiollm_lobes.wav2prompt import add_text_prompt_items

    llm = CausalLM(str(Path(tiny_backbones) / "lm"))
    entry = {"task": "asr", "instruction": "<audio> x", "transcript": "a"}
    with pytest.raises(ValueError, match="asr_prompt"):
        add_text_prompt_items(
            DynamicItemDataset({"a": dict(entry)}),
            {"a": entry},
            llm,
            asr_prompt="fixed",
        )
