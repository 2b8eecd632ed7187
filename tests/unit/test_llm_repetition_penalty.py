"""Repetition penalty of ``llm.decode_loop`` and ``CausalLM.generate``
(HF's definition), against a plain per-step reference: each sample alone,
the whole sequence recomputed at every step by the HF model in float64,
the penalty applied token by token in Python.

Authors
 * audiollm-lobes developers, 2026
"""

import copy

import pytest
import torch
import transformers

from audiollm_lobes.llm import (
    CausalLM,
    RepetitionPenalty,
    apply_repetition_penalty,
    decode_loop,
)


def _penalise(logits, generated, penalty):
    """Per element: a logit of a generated token is divided by the
    penalty when positive, multiplied when negative (once per token)."""
    out = logits.clone()
    for token in set(generated):
        value = out[token].item()
        out[token] = value / penalty if value > 0 else value * penalty
    return out


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=24,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return CausalLM.from_model(transformers.LlamaForCausalLM(config))


def _prompts(lm):
    torch.manual_seed(1)
    ids = torch.randint(3, 24, (4, 7))
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 2:] = False
    mask[3, 6:] = False
    return lm.embed(ids), mask


def _reference(lm, embeds, mask, max_new, penalty, min_new):
    """Greedy decoding of each sample alone, no KV cache, float64."""
    model = copy.deepcopy(lm.model).double()
    eos, pad = lm.eos_ids, lm.pad_id
    rows = []
    for row in range(embeds.shape[0]):
        seq = embeds[row, mask[row]].double()[None]
        generated = []
        for step in range(max_new):
            logits = model(inputs_embeds=seq).logits[0, -1]
            logits = _penalise(logits, generated, penalty)
            if step < min_new:
                logits[eos] = -float("inf")
            token = int(logits.argmax())
            generated.append(token)
            if token in eos:
                break
            new = model.get_input_embeddings()(torch.tensor([[token]]))
            seq = torch.cat([seq, new], 1)
        rows.append(generated)
    width = max(len(r) for r in rows)
    return [r + [pad] * (width - len(r)) for r in rows]


@pytest.mark.parametrize("min_new", [0, 3])
@pytest.mark.parametrize("penalty", [1.0, 1.3, 0.7, 3.0])
def test_generate_matches_the_per_step_reference(lm, penalty, min_new):
    embeds, mask = _prompts(lm)
    expected = _reference(lm, embeds, mask, 10, penalty, min_new)
    for use_cache in (True, False):
        tokens = lm.generate(
            embeds,
            mask,
            max_new_tokens=10,
            use_cache=use_cache,
            repetition_penalty=penalty,
            min_new_tokens=min_new,
        )
        assert tokens.tolist() == expected, (use_cache, penalty)


def test_the_penalty_changes_what_is_decoded(lm):
    """On this random LM the penalty matters (so the test above can
    fail), and a padded batch decodes each prompt as it decodes alone."""
    embeds, mask = _prompts(lm)
    plain = lm.generate(embeds, mask, max_new_tokens=10)
    for penalty in (0.7, 3.0):
        tokens = lm.generate(
            embeds, mask, max_new_tokens=10, repetition_penalty=penalty
        )
        assert not torch.equal(tokens, plain), penalty
        for row in range(4):
            n = int(mask[row].sum())
            alone = lm.generate(
                embeds[row : row + 1, :n],
                mask[row : row + 1, :n],
                max_new_tokens=10,
                repetition_penalty=penalty,
            )
            width = alone.shape[1]
            assert tokens[row, :width].tolist() == alone[0].tolist()


@pytest.mark.filterwarnings("ignore:Passing `repetition_penalty`")
def test_beam_search_takes_the_penalty(lm):
    """On an unpadded prompt HF's own penalty (the ``GenerationConfig``
    field) is the same definition: beam search with ours gives HF's
    beams, and differs from beam search without a penalty."""
    embeds, mask = _prompts(lm)
    embeds, mask = embeds[:1], mask[:1]
    config = transformers.GenerationConfig(
        max_new_tokens=8,
        num_beams=2,
        do_sample=False,
        repetition_penalty=3.0,
        eos_token_id=lm.eos_ids,
        pad_token_id=lm.pad_id,
        bos_token_id=lm.bos_id,
    )
    with torch.no_grad():
        hf = lm.model.generate(
            inputs_embeds=embeds, attention_mask=mask, generation_config=config
        )
    ours = lm.generate(embeds, mask, 8, num_beams=2, repetition_penalty=3.0)
    assert ours.tolist() == hf.tolist()
    assert ours.tolist() != lm.generate(embeds, mask, 8, num_beams=2).tolist()


def test_apply_repetition_penalty_matches_an_element_loop():
    torch.manual_seed(3)
    logits = torch.randn(3, 9, dtype=torch.float64)
    previous = torch.tensor([[1, 1, 4], [0, 8, 3], [5, 5, 5]])
    for penalty in (1.5, 0.5):
        got = apply_repetition_penalty(logits, previous, penalty)
        for row in range(3):
            want = _penalise(logits[row], previous[row].tolist(), penalty)
            torch.testing.assert_close(got[row], want, rtol=0, atol=0)
    # ids past the output layer (e.g. a pad id) are ignored
    got = apply_repetition_penalty(logits, torch.tensor([[12], [2], [9]]), 2.0)
    torch.testing.assert_close(got[0], logits[0], rtol=0, atol=0)
    assert got[1, 2] != logits[1, 2]
    # 1.0 and an empty history leave the logits as they are
    assert apply_repetition_penalty(logits, previous, 1.0) is logits
    assert apply_repetition_penalty(logits, previous[:, :0], 2.0) is logits
    processor = RepetitionPenalty(2.0)
    torch.testing.assert_close(
        processor(previous, logits.clone()),
        apply_repetition_penalty(logits, previous, 2.0),
    )


def test_decode_loop_penalty_hand_worked():
    """Step 2, after token 0: 3.0 / 1.5 = 2.0 < 2.5, token 1. Step 3,
    after tokens 0 and 1: -0.2 * 1.5 = -0.3 for both, below token 2's
    -0.25, token 2 (without the penalty: token 0, 1 and 0)."""

    def scripted():
        steps = iter([[3.0, 2.0, -1.0], [3.0, 2.5, -1.0], [-0.2, -0.2, -0.25]])
        return lambda token: torch.tensor([next(steps)])

    tokens = decode_loop(scripted(), 3, [], 0, repetition_penalty=1.5)
    assert tokens.tolist() == [[0, 1, 2]]
    assert decode_loop(scripted(), 3, [], 0).tolist() == [[0, 0, 0]]


@pytest.mark.parametrize("penalty", [0.0, -1.0])
def test_penalty_must_be_positive(lm, penalty):
    embeds, mask = _prompts(lm)
    with pytest.raises(ValueError, match="repetition_penalty must be > 0"):
        lm.generate(embeds, mask, 2, repetition_penalty=penalty)
    with pytest.raises(ValueError, match="repetition_penalty must be > 0"):
        decode_loop(
            lambda t: torch.zeros(1, 3), 2, [], 0, repetition_penalty=penalty
        )
