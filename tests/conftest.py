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


# ------------------------------------------------- tiny HF LLM families
#: The HF causal-LM families every recipe and LAL are tested on.
LLM_FAMILIES = ("llama", "qwen2", "mistral", "phi3")

#: Per family: the tokenizer's special tokens (None: the tokenizer has
#: none), extra special tokens ("added": added tokens marked special but
#: not registered as special tokens, as Llama 3 ships <|eot_id|>), the chat
#: template, whether the input and output embeddings are tied, and the
#: key/value heads (of 4 query heads).
_FAMILY_TOKENIZERS = {
    # Llama 3: no pad token at all, BOS written by the template, turns end
    # with <|eot_id|>
    "llama": {
        "bos": "<s>",
        "eos": "</s>",
        "pad": None,
        "added": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "extra": [],
        "template": (
            "{{ bos_token }}{% for m in messages %}<|start_header_id|>"
            "{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}"
            "<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
            "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
        ),
        "tie": True,
        "kv_heads": 4,
    },
    # Qwen2/2.5 base: no BOS, pad = EOS = <|endoftext|>, ChatML template
    # whose end of turn (<|im_end|>) is not the EOS
    "qwen2": {
        "bos": None,
        "eos": "<|endoftext|>",
        "pad": "<|endoftext|>",
        "extra": ["<|im_start|>", "<|im_end|>"],
        "template": (
            "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
            "{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n"
            "{% endif %}"
        ),
        "tie": True,
        "kv_heads": 2,
    },
    # Mistral: BOS written by the [INST] template itself, no pad token
    "mistral": {
        "bos": "<s>",
        "eos": "</s>",
        "pad": None,
        "extra": [],
        "template": (
            "{{ bos_token }}{% for m in messages %}"
            "{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
            "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}"
            "{% endfor %}"
        ),
        "tie": False,
        "kv_heads": 1,
    },
    # Phi-3: fused qkv_proj / gate_up_proj, <|end|> ends a turn
    "phi3": {
        "bos": "<s>",
        "eos": "<|endoftext|>",
        "pad": "<|endoftext|>",
        "extra": ["<|user|>", "<|assistant|>", "<|end|>"],
        "template": (
            "{% for m in messages %}<|{{ m['role'] }}|>\n"
            "{{ m['content'] }}<|end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
        ),
        "tie": False,
        "kv_heads": 2,
    },
}


def llm_family_config(family, vocab_size, bos_id, eos_id, pad_id, **kw):
    """A small ``transformers`` config of one family (hidden 32, 2 layers,
    4 query heads, GQA except Llama); ``kw`` overrides any field."""
    import transformers

    spec = _FAMILY_TOKENIZERS[family]
    fields = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": spec["kv_heads"],
        "max_position_embeddings": 512,
        "tie_word_embeddings": spec["tie"],
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
    }
    if family == "qwen2":
        fields["use_sliding_window"] = False
    if family == "mistral":
        fields["sliding_window"] = None
    fields.update(kw)
    config_class = {
        "llama": transformers.LlamaConfig,
        "qwen2": transformers.Qwen2Config,
        "mistral": transformers.MistralConfig,
        "phi3": transformers.Phi3Config,
    }[family]
    return config_class(**fields)


def llm_family_model(family, config, seed=0):
    """A randomly initialised ``<Family>ForCausalLM`` of ``config``."""
    import transformers

    model_class = {
        "llama": transformers.LlamaForCausalLM,
        "qwen2": transformers.Qwen2ForCausalLM,
        "mistral": transformers.MistralForCausalLM,
        "phi3": transformers.Phi3ForCausalLM,
    }[family]
    torch.manual_seed(seed)
    return model_class(config).eval()


def build_llm_family(family, toy_tokenizer_json, folder, seed=0):
    """Saves a tiny random checkpoint of ``family`` and its tokenizer in
    ``folder`` (``save_pretrained``), offline: the tokenizer is the toy
    world's BPE, given the family's special tokens and chat template."""
    import tokenizers
    import transformers

    spec = _FAMILY_TOKENIZERS[family]
    backend = tokenizers.Tokenizer.from_file(str(toy_tokenizer_json))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=spec["bos"],
        eos_token=spec["eos"],
        pad_token=spec["pad"],
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
    )
    if spec["extra"]:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": list(spec["extra"])}
        )
    if spec.get("added"):
        tokenizer.add_tokens(
            [tokenizers.AddedToken(t, special=True) for t in spec["added"]]
        )
    if spec["template"]:
        tokenizer.chat_template = spec["template"]
    # real checkpoints pad the embedding table past the tokenizer
    vocab_size = -(-len(tokenizer) // 16) * 16
    config = llm_family_config(
        family,
        vocab_size,
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )
    model = llm_family_model(family, config, seed)
    if family == "phi3":  # like Phi-3: <|end|> also stops generation
        model.generation_config.eos_token_id = [
            tokenizer.eos_token_id,
            tokenizer.convert_tokens_to_ids("<|end|>"),
        ]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def llm_family_folders(tiny_backbones, tmp_path_factory):
    """``{family: folder}``: a tiny random checkpoint + tokenizer of each
    of ``LLM_FAMILIES``, built once per session with ``save_pretrained``."""
    from pathlib import Path

    root = tmp_path_factory.mktemp("llm_families")
    toy_tokenizer = Path(tiny_backbones) / "lm" / "tokenizer.json"
    return {
        family: build_llm_family(family, toy_tokenizer, root / family)
        for family in LLM_FAMILIES
    }
