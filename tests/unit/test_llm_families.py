"""The LLM wrapper and the prompt pipelines on four HF families.

Tiny random Llama (Llama-3-like tokenizer: no pad token, ``<|eot_id|>``),
Qwen2 (no BOS, pad = EOS, ChatML), Mistral (no pad, ``[INST]`` template
that writes the BOS) and Phi-3 (fused projections, ``<|end|>``)
checkpoints saved with ``save_pretrained`` (``conftest.llm_family_folders``).
References: the plain format's ids as the pipeline wrote them before
prompt formats existed, and the tokenizer's own ``apply_chat_template``
tokenization of the whole conversation.
"""

import pytest
import torch

from audiollm_lobes.data.pipeline import make_dataset
from audiollm_lobes.llm import PROMPT_FORMATS, CausalLM
from audiollm_lobes.lora import LoRAAdapter

FAMILIES = ("llama", "qwen2", "mistral", "phi3")
INSTRUCTION = "<audio> Transcribe the speech."
TARGET = "the cat sat on the mat"


@pytest.fixture(autouse=True)
def _one_thread(_few_threads):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lms(llm_family_folders):
    """``{(family, prompt_format): CausalLM}``."""
    return {
        (family, fmt): CausalLM(llm_family_folders[family], prompt_format=fmt)
        for family in FAMILIES
        for fmt in PROMPT_FORMATS
    }


def _prompt_items(llm, instruction=INSTRUCTION, target=TARGET, **kwargs):
    entries = {
        "ex1": {
            "wav": "unused.wav",
            "wav2": "",
            "task": "asr",
            "instruction": instruction,
            "target": target,
        }
    }
    dataset = make_dataset(entries, llm, **kwargs)
    keys = ["before_ids", "after_ids", "answer_ids"]
    with dataset.output_keys_as(keys):
        item = dataset[0]
    return [item[k].tolist() for k in keys]


def _hf_ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_the_checkpoints_cover_the_layouts(lms):
    """The fixture holds what the families are chosen for."""
    tied, gqa = {}, {}
    for family in FAMILIES:
        model = lms[family, "plain"].model
        tied[family] = (
            model.get_output_embeddings().weight
            is model.get_input_embeddings().weight
        )
        cfg = model.config
        gqa[family] = cfg.num_key_value_heads < cfg.num_attention_heads
    assert tied == {
        "llama": True,
        "qwen2": True,
        "mistral": False,
        "phi3": False,
    }
    assert gqa == {"llama": False, "qwen2": True, "mistral": True, "phi3": True}
    tokenizers = {f: lms[f, "plain"].tokenizer for f in FAMILIES}
    assert tokenizers["qwen2"].bos_token_id is None
    assert tokenizers["llama"].pad_token_id is None
    assert tokenizers["mistral"].pad_token_id is None
    assert hasattr(
        lms["phi3", "plain"].model.model.layers[0].self_attn, "qkv_proj"
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_special_ids(lms, family):
    lm = lms[family, "plain"]
    tok = lm.tokenizer
    bos = tok.bos_token_id
    assert lm.prompt_bos_ids == ([] if bos is None else [bos])
    # a tokenizer without a pad token pads with EOS
    pad = tok.pad_token_id
    assert lm.pad_id == (tok.eos_token_id if pad is None else pad)
    assert lm.answer_end_id == tok.eos_token_id
    assert tok.eos_token_id in lm.eos_ids


@pytest.mark.parametrize("family", FAMILIES)
def test_plain_prompt_ids_are_the_pipelines_old_ids(lms, family):
    """``plain``: ``[BOS] + "USER: "``, the rest of the prompt, ``" " +
    answer + EOS``, as before prompt formats (and without a BOS when the
    tokenizer has none, which used to crash)."""
    lm = lms[family, "plain"]
    tok = lm.tokenizer
    before, after, answer = _prompt_items(lm)
    bos = [] if tok.bos_token_id is None else [tok.bos_token_id]
    assert before == bos + _hf_ids(tok, "USER: ")
    assert after == _hf_ids(tok, " Transcribe the speech.\nASSISTANT:")
    assert answer == _hf_ids(tok, " " + TARGET) + [tok.eos_token_id]


def test_plain_ids_of_the_toy_lm_are_unchanged(tiny_backbones):
    lm = CausalLM(str(tiny_backbones / "lm"))
    before, after, answer = _prompt_items(lm, "Listen: <audio> Question: why?")
    old = lm.encode(["USER: Listen: ", " Question: why?\nASSISTANT:"])
    assert before == [lm.bos_id] + old[0]
    assert after == old[1]
    assert answer == lm.encode(" " + TARGET)[0] + [lm.eos_id]


@pytest.mark.parametrize("family", FAMILIES)
def test_chat_template_ids_are_the_tokenizers_own(lms, family):
    """``chat_template``: before + [audio] + after + answer is the
    tokenizer's own tokenization of the conversation (user turn with the
    audio where the marker is, assistant answer), up to what the template
    writes after the end-of-turn token. The audio stands as ``<unk>``, a
    special token that splits the text where the marker splits it."""
    lm = lms[family, "chat_template"]
    tok = lm.tokenizer
    before, after, answer = _prompt_items(lm)
    conversation = [
        {"role": "user", "content": INSTRUCTION.replace("<audio>", "<unk>")},
        {"role": "assistant", "content": TARGET},
    ]
    reference = tok.apply_chat_template(conversation, tokenize=True)
    if not isinstance(reference, list):  # a BatchEncoding
        reference = reference["input_ids"]
    ours = before + [tok.unk_token_id] + after + answer
    assert ours == reference[: len(ours)], (
        tok.convert_ids_to_tokens(ours),
        tok.convert_ids_to_tokens(reference),
    )
    assert tok.decode(reference[len(ours) :]).strip() == ""
    # one BOS at most: the template's own (Llama, Mistral), never added
    assert ours.count(tok.bos_token_id) == (family in ("llama", "mistral"))
    assert answer[-1] == lm.answer_end_id == lm.chat_turn.end_id
    end_token = {
        "llama": "<|eot_id|>",
        "qwen2": "<|im_end|>",
        "mistral": "</s>",
        "phi3": "<|end|>",
    }[family]
    assert tok.convert_ids_to_tokens(lm.answer_end_id) == end_token


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("use_cache", [True, False])
def test_end_of_turn_stops_generation(lms, family, use_cache):
    """With ``chat_template`` the end-of-turn token ends a sample, whether
    or not the tokenizer or generation config call it EOS."""
    chat, plain = lms[family, "chat_template"], lms[family, "plain"]
    end_id = chat.chat_turn.end_id
    assert end_id in chat.eos_ids
    before, after, _ = _prompt_items(chat)
    prompt = torch.tensor([before + after])

    def favour_end(module, args, logits):  # the model always ends a turn
        logits = logits.clone()
        logits[..., end_id] += 1e4
        return logits

    handles = [
        lm.model.get_output_embeddings().register_forward_hook(favour_end)
        for lm in (chat, plain)
    ]
    try:
        mask = torch.ones_like(prompt, dtype=torch.bool)
        out = chat.generate(chat.embed(prompt), mask, 5, use_cache=use_cache)
        plain_out = plain.generate(
            plain.embed(prompt), mask, 5, use_cache=use_cache
        )
    finally:
        for handle in handles:
            handle.remove()
    assert out.tolist() == [[end_id]]
    assert chat.decode(out) == [""]
    # the plain format stops on it only if the checkpoint calls it EOS
    stops = end_id in plain.eos_ids
    assert plain_out.shape[1] == (1 if stops else 5)
    assert stops == (family in ("mistral", "phi3"))


def test_prompt_format_errors(lms, tiny_backbones, llm_family_folders):
    with pytest.raises(ValueError, match="prompt_format.*must be one of"):
        CausalLM(llm_family_folders["qwen2"], prompt_format="chatml")
    with pytest.raises(ValueError, match="needs a tokenizer with a chat"):
        CausalLM(str(tiny_backbones / "lm"), prompt_format="chat_template")
    with pytest.raises(ValueError, match="differs from the LLM's"):
        _prompt_items(lms["qwen2", "plain"], prompt_format="chat_template")
    # the same format given twice is fine
    assert _prompt_items(lms["qwen2", "plain"], prompt_format="plain")


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_default_targets_per_family(llm_family_folders, family):
    lm = CausalLM(llm_family_folders[family])
    LoRAAdapter(lm, r=2, alpha=4)
    names = [n for n, p in lm.named_parameters() if p.requires_grad]
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names}
    expected = {"qkv_proj"} if family == "phi3" else {"q_proj", "v_proj"}
    assert adapted == expected
    assert all("lora_" in n for n in names)
    # the adapted LLM still runs and its LoRA matrices get gradients
    ids = torch.tensor([[5, 6, 7, 8]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    lm(lm.embed(ids), mask).logits.sum().backward()
    grads = [p.grad for n, p in lm.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_lora_names_the_fused_layout(llm_family_folders):
    lm = CausalLM(llm_family_folders["phi3"])
    with pytest.raises(ValueError, match=r"\['q_proj', 'v_proj'\].*qkv_proj"):
        LoRAAdapter(lm, target_modules=["q_proj", "v_proj"])
