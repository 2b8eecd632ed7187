"""Tests of the toy tokenizer, the toy Llama and its pretraining/evaluation.

Authors
 * audiollm-lobes developers, 2026
"""

import json
import random

import pytest
import sentencepiece as spm
import torch
import transformers

from audiollm_lobes.data import templates
from audiollm_lobes.llm import CausalLM
from audiollm_lobes.toyworld import toy_lm

EN = "cat dog bird fish red blue green big small kitchen garden door".split()
FR = (
    "chat chien oiseau poisson rouge bleu vert grand petit cuisine jardin porte"
)
LEXICON = dict(zip(EN, FR.split()))
ZH = "猫狗鸟鱼红色蓝色绿色大小厨房花园门"

ROUND_TRIP = [
    "the red cat is in the kitchen",
    "le chien bleu dort dans le jardin",
    "红色的猫在厨房里",
    "USER: Translate into French: the big dog\nASSISTANT: le grand chien",
    "  two  spaces and a tab\there",
    "never seen: Ωmega ß ü 龍 42",
]

TINY_CFG = {
    "vocab_size": 400,
    "hidden": 48,
    "layers": 2,
    "heads": 2,
    "kv_heads": 1,
    "intermediate": 96,
    "steps": 150,
    "batch_size": 16,
    "lr": 3e-3,
    "warmup": 5,
    "max_len": 64,
}


def _write_world(root, n_train=400, n_test=40, seed=0):
    """A synthetic text world: a copy task and a word-substitution task."""
    rng = random.Random(seed)
    for split, count in (("train", n_train), ("test", n_test)):
        rows = []
        for i in range(count):
            words = rng.choices(EN, k=rng.randint(2, 4))
            text = " ".join(words)
            if i % 2:
                task, ins = "repeat", f"Repeat the text: {text}"
                target = text
            else:
                task, ins = "translate_fr", f"Translate into French: {text}"
                target = " ".join(LEXICON[w] for w in words)
            rows.append(
                {
                    "id": f"{split}{i}",
                    "task": task,
                    "instruction": ins,
                    "target": target,
                }
            )
        folder = root / "text"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    corpus = list(toy_lm._corpus_lines(root / "text" / "train.jsonl"))
    corpus += list(ROUND_TRIP[:4]) + [ZH]
    (root / "text" / "corpus.txt").write_text(
        "\n".join(corpus) + "\n", encoding="utf-8"
    )
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return _write_world(tmp_path_factory.mktemp("text_world"))


@pytest.fixture(scope="module")
def tokenizer_dir(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    return toy_lm.train_tokenizer(
        world / "text" / "corpus.txt", out, vocab_size=450
    )


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "lm"
    stats = toy_lm.pretrain_lm(world, out, TINY_CFG, seed=0, progress=False)
    return out, stats


# ------------------------------------------------------------ tokenizer
def test_tokenizer_round_trip(tokenizer_dir):
    tok = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    assert isinstance(tok, transformers.LlamaTokenizer)
    for text in ROUND_TRIP:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
    assert (tok.unk_token, tok.bos_token, tok.eos_token, tok.pad_token) == (
        "<unk>",
        "<s>",
        "</s>",
        "<pad>",
    )
    assert (tok.unk_token_id, tok.bos_token_id) == (0, 1)
    assert (tok.eos_token_id, tok.pad_token_id) == (2, 3)


def test_tokenizer_matches_sentencepiece(tokenizer_dir, world):
    """The HF BPE (merges rebuilt from the vocabulary) segments text exactly
    as the sentencepiece model it was converted from."""
    tok = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_dir / "spm.model"))
    lines = list(toy_lm._corpus_lines(world / "text" / "test.jsonl"))
    for text in lines + ROUND_TRIP:
        assert tok.encode(text, add_special_tokens=False) == sp.encode(text)


def test_tokenizer_chinese_and_concatenation(tokenizer_dir):
    tok = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    # every Chinese character of the corpus is one piece (no byte fallback)
    pieces = tok.convert_ids_to_tokens(
        tok.encode("猫狗", add_special_tokens=False)
    )
    assert not any(p.startswith("<0x") for p in pieces)
    # a prompt and an answer starting with a space tokenize as their join
    prompt = templates.split_prompt("Repeat the text: red cat")[0]
    answer = templates.format_target("red cat")
    split = tok.encode(prompt, add_special_tokens=False) + tok.encode(
        answer, add_special_tokens=False
    )
    assert split == tok.encode(prompt + answer, add_special_tokens=False)


def test_tokenizer_errors(tmp_path, world):
    with pytest.raises(ValueError, match="vocab_size=100 is too small"):
        toy_lm.train_tokenizer(
            world / "text" / "corpus.txt", tmp_path / "t", vocab_size=100
        )
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        toy_lm.train_tokenizer(tmp_path / "missing.txt", tmp_path / "t")


# ---------------------------------------------------------------- model
def test_make_llama_loads_everywhere(tokenizer_dir, tmp_path):
    folder = toy_lm.make_llama(
        tokenizer_dir,
        tmp_path / "m",
        hidden=32,
        layers=2,
        heads=4,
        kv_heads=2,
        seed=1,
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    assert isinstance(model, transformers.LlamaForCausalLM)
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers) == (32, 2)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads) == (4, 2)
    assert cfg.intermediate_size == 96  # 8/3 * 32 rounded up to 16
    assert cfg.vocab_size == len(
        transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    )
    assert model.lm_head.weight.data_ptr() == (
        model.model.embed_tokens.weight.data_ptr()
    )
    lm = CausalLM(folder)
    assert lm.hidden_size == 32 and lm.pad_id == 3
    # same seed, same weights
    again = toy_lm.make_llama(
        tokenizer_dir,
        tmp_path / "m2",
        hidden=32,
        layers=2,
        heads=4,
        kv_heads=2,
        seed=1,
    )
    other = transformers.AutoModelForCausalLM.from_pretrained(again)
    for a, b in zip(model.parameters(), other.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="must divide"):
        toy_lm.make_llama(tokenizer_dir, tmp_path / "x", hidden=30, heads=4)


# ----------------------------------------------------------------- data
def test_read_text_jsonl_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task": "repeat", "instruction": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: field 'target'"):
        toy_lm.read_text_jsonl(bad)
    row = {"task": "repeat", "instruction": "<text> again", "target": "a"}
    bad.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="inline"):
        toy_lm.read_text_jsonl(bad)
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match="not JSON"):
        toy_lm.read_text_jsonl(bad)


def test_encode_examples_layout(trained, world):
    lm = CausalLM(trained[0])
    rows = toy_lm.read_text_jsonl(world / "text" / "test.jsonl")[:3]
    for (ids, n_prompt), row in zip(toy_lm.encode_examples(lm, rows), rows):
        assert ids[0] == lm.bos_id and ids[-1] == lm.eos_id
        prompt = "USER: " + row["instruction"] + "\nASSISTANT:"
        assert lm.tokenizer.decode(ids[1:n_prompt]) == prompt
        assert lm.decode([ids[n_prompt:]]) == [row["target"]]
    tokens, mask, labels = toy_lm._collate(
        toy_lm.encode_examples(lm, rows), lm.pad_id
    )
    for b, (ids, n_prompt) in enumerate(toy_lm.encode_examples(lm, rows)):
        expected = [-100] * n_prompt + ids[n_prompt:]
        expected += [-100] * (tokens.shape[1] - len(ids))
        assert labels[b].tolist() == expected


# ------------------------------------------------------------- training
def test_pretrain_lm_saves_a_model_that_learned(trained, world):
    out, stats = trained
    assert stats["steps"] == TINY_CFG["steps"]
    assert stats["examples"] == 400 and stats["skipped_too_long"] == 0
    assert stats["final_loss"] < 0.4 * stats["first_loss"]
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "tokenizer.json", "toy_lm.json"} <= names
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    saved = json.loads((out / "toy_lm.json").read_text())
    assert saved["config"]["hidden"] == TINY_CFG["hidden"]
    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert model.config.hidden_size == TINY_CFG["hidden"]


def test_pretrain_lm_replaces_and_rejects(world, tmp_path, tokenizer_dir):
    out = tmp_path / "lm"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    cfg = dict(TINY_CFG, steps=2)
    toy_lm.pretrain_lm(
        world, out, cfg, progress=False, tokenizer_dir=tokenizer_dir
    )
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lm"]
    with pytest.raises(KeyError, match="unknown keys"):
        toy_lm.pretrain_lm(world, out, {"hiden": 3}, progress=False)
    with pytest.raises(KeyError, match="unknown LM profile"):
        toy_lm.pretrain_lm(world, out, "huge", progress=False)
    with pytest.raises(FileNotFoundError, match="train.jsonl"):
        toy_lm.pretrain_lm(tmp_path, out, cfg, progress=False)


def test_evaluate_lm_by_hand(trained, world):
    out, _ = trained
    test_path = world / "text" / "test.jsonl"
    scores, preds = toy_lm.evaluate_lm(
        out, test_path, batch_size=7, return_predictions=True
    )
    rows = toy_lm.read_text_jsonl(test_path)
    assert set(scores) == {"repeat", "translate_fr"}
    for task in scores:
        pairs = [(p, r) for p, r in zip(preds, rows) if r["task"] == task]
        hits = sum(p.split() == r["target"].split() for p, r in pairs)
        assert scores[task] == pytest.approx(hits / len(pairs))
    # predictions equal greedy decoding of each prompt alone
    lm = CausalLM(out)
    for pred, row in list(zip(preds, rows))[:4]:
        prompt = templates.split_prompt(row["instruction"])[0]
        ids = torch.tensor(lm.encode(prompt, add_bos=True))
        alone = lm.generate(
            lm.embed(ids), torch.ones_like(ids), max_new_tokens=40
        )
        assert lm.decode(alone) == [pred]


def test_cli_eval_prints_table(trained, world, capsys):
    out, _ = trained
    code = toy_lm.main(
        ["eval", "--lm", str(out), "--data", str(world / "text" / "test.jsonl")]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "repeat" in text and "translate_fr" in text and "mean" in text


def test_batch_loss_prompt_weight_by_hand(trained, world):
    lm = CausalLM(trained[0])
    rows = toy_lm.read_text_jsonl(world / "text" / "test.jsonl")[:4]
    examples = toy_lm.encode_examples(lm, rows)
    tokens, mask, labels = toy_lm._collate(examples, lm.pad_id)
    answer_only = toy_lm._batch_loss(lm, tokens, mask, labels, 0.0)
    assert answer_only.item() == pytest.approx(
        lm.loss(lm.embed(tokens), mask, labels).item()
    )
    got = toy_lm._batch_loss(lm, tokens, mask, labels, 0.3)
    logits = lm(lm.embed(tokens), mask).logits.double()
    total, n_answer = 0.0, 0
    for b, (ids, n_prompt) in enumerate(examples):
        for t in range(1, len(ids)):
            nll = -torch.log_softmax(logits[b, t - 1], -1)[ids[t]].item()
            weight = 1.0 if t >= n_prompt else 0.3
            total += weight * nll
            n_answer += t >= n_prompt
    assert got.item() == pytest.approx(total / n_answer, rel=1e-4)
