"""The toy backbone LLM: a sentencepiece tokenizer and a small Llama.

The toy LLM is a ``LlamaForCausalLM`` pretrained on the *text* versions of
the toy tasks (``<world_root>/text/train.jsonl``), saved as a standard HF
folder so that recipes load it through ``CausalLM(source=folder)``, the
same path a hub checkpoint takes.

Each example is laid out as the recipes lay it out::

    <s> USER: <instruction with the text inline>\\nASSISTANT: <answer></s>

with the cross-entropy on the answer tokens and EOS only.

Command line::

    python -m audiollm_lobes.toyworld.toy_lm eval --lm <dir> --data <jsonl>
    python -m audiollm_lobes.toyworld.toy_lm train --world <root> \\
        --out <dir> --profile small

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from audiollm_lobes.atomic import replace_dir, staging_dir, write_json
from audiollm_lobes.data import templates
from audiollm_lobes.llm import IGNORE_INDEX, CausalLM, pad_ids
from audiollm_lobes.toyworld.training import length_batches, warmup_cosine

#: Model size and training budget of the toy LLM per toy-world profile.
LM_PROFILES = {
    "tiny": {
        "vocab_size": 700,
        "hidden": 96,
        "layers": 2,
        "heads": 2,
        "kv_heads": 2,
        "intermediate": 256,
        "steps": 700,
        "batch_size": 32,
        "lr": 2e-3,
        "warmup": 50,
        "weight_decay": 0.01,
        "adam_beta2": 0.98,
        "max_len": 160,
        "attn_implementation": "eager",
        "bf16_autocast": "auto",
        "prompt_loss_weight": 0.0,
    },
    "small": {
        "vocab_size": 1200,
        "hidden": 256,
        "layers": 4,
        "heads": 4,
        "kv_heads": 4,
        "intermediate": 640,
        "steps": 2600,
        "batch_size": 32,
        "lr": 1e-3,
        "warmup": 100,
        "weight_decay": 0.1,
        "adam_beta2": 0.98,
        "max_len": 192,
        "attn_implementation": "eager",
        "bf16_autocast": "auto",
        "prompt_loss_weight": 0.0,
    },
}

#: Batches per length-sorted chunk in the toy LM's batch order.
LM_BATCH_POOL = 50

SPECIAL_TOKENS = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}

_TINY_CORPUS = [
    "the red cat is in the kitchen",
    "the blue dog sleeps in the garden",
    "bring two green apples to the bedroom",
    "open the door of the living room",
    "le chat rouge est dans la cuisine",
    "le chien bleu dort dans le jardin",
    "apporte deux pommes vertes dans la chambre",
    "红色的猫在厨房里",
    "蓝色的狗在花园里睡觉",
    "把两个绿色的苹果拿到卧室",
    "USER: Repeat the text: the red cat",
    "ASSISTANT: the red cat",
    "USER: Translate into French: the blue dog",
    "ASSISTANT: le chien bleu",
    "USER: Translate into Chinese: the red cat",
    "ASSISTANT: 红色的猫",
]


# ---------------------------------------------------------------- tokenizer
def _corpus_lines(corpus_path):
    """Yields training sentences of a text corpus or a task jsonl."""
    path = Path(corpus_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"tokenizer corpus {path} not found; expected a text file (one "
            "sentence per line) or a task jsonl"
        )
    if path.suffix == ".jsonl":
        for example in read_text_jsonl(path):
            prompt = templates.split_prompt(example["instruction"])[0]
            text = prompt + templates.format_target(example["target"])
            yield from text.split("\n")
    else:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                yield line.rstrip("\n")


def _bpe_merges(vocab, is_mergeable):
    """Derives ranked BPE merges from a sentencepiece BPE vocabulary.

    A piece of id ``i`` that splits into two known pieces gives a merge of
    rank ``i`` (sentencepiece merges the pair whose result has the best
    score, i.e. the lowest id), ties broken by the ids of the two parts.
    """
    ranked = []
    for piece, index in vocab.items():
        if not is_mergeable(index):
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                ranked.append((index, vocab[left], vocab[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def train_tokenizer(
    corpus_path, out_dir, vocab_size=1000, num_threads=2, max_sentences=None
):
    """Trains a byte-fallback sentencepiece BPE and saves a HF tokenizer.

    The saved folder holds ``tokenizer.json`` + ``tokenizer_config.json``
    (a ``LlamaTokenizer`` in transformers' tokenizers backend) and loads with
    ``AutoTokenizer.from_pretrained(out_dir)``; it needs neither
    sentencepiece nor protobuf at load time (the sentencepiece model is kept
    as ``spm.model`` for reference; HF ignores it). Special tokens: ``<unk>`` 0,
    ``<s>`` 1, ``</s>`` 2, ``<pad>`` 3. No text normalisation and no dummy
    prefix, so ``encode(a) + encode(b)`` matches ``encode(a + b)`` whenever
    ``b`` starts a new word with a space; characters outside the vocabulary
    fall back to their UTF-8 bytes.

    Arguments
    ---------
    corpus_path : str or Path
        A text file with one sentence per line, or a task jsonl (lines
        ``{"instruction", "target", ...}``, used as prompt + answer).
    out_dir : str or Path
        Output folder (created).
    vocab_size : int
        Maximum vocabulary size, including 256 byte tokens and the 4
        special tokens (a small corpus may yield fewer pieces).
    num_threads : int
        Sentencepiece training threads.
    max_sentences : int, optional
        Train on at most this many (shuffled) sentences.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Example
    -------
    >>> import tempfile, transformers
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = (tmp / "c.txt").write_text("\\n".join(_TINY_CORPUS))
    >>> tok_dir = train_tokenizer(tmp / "c.txt", tmp / "tok", vocab_size=400)
    >>> tok = transformers.AutoTokenizer.from_pretrained(tok_dir)
    >>> ids = tok.encode("红色的猫 le chat", add_special_tokens=False)
    >>> tok.decode(ids)
    '红色的猫 le chat'
    """
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    lines = [line for line in _corpus_lines(corpus_path) if line.strip()]
    if not lines:
        raise ValueError(f"tokenizer corpus {corpus_path} holds no text")
    chars = {c for line in lines for c in line if not c.isspace()}
    needed = 256 + len(SPECIAL_TOKENS) + len(chars) + 1
    if vocab_size < needed:
        raise ValueError(
            f"vocab_size={vocab_size} is too small for corpus {corpus_path}: "
            f"it needs >= {needed} (256 bytes + 4 special tokens + "
            f"{len(chars)} distinct characters + the space marker)"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        text_path = Path(tmp) / "corpus.txt"
        text_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(text_path),
            model_prefix=str(Path(tmp) / "spm"),
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            model_type="bpe",
            byte_fallback=True,
            character_coverage=1.0,
            split_digits=True,
            add_dummy_prefix=False,
            remove_extra_whitespaces=False,
            normalization_rule_name="identity",
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=3,
            unk_piece=SPECIAL_TOKENS["unk"],
            bos_piece=SPECIAL_TOKENS["bos"],
            eos_piece=SPECIAL_TOKENS["eos"],
            pad_piece=SPECIAL_TOKENS["pad"],
            num_threads=num_threads,
            input_sentence_size=max_sentences or 0,
            shuffle_input_sentence=True,
            minloglevel=2,
        )
        shutil.copyfile(Path(tmp) / "spm.model", out_dir / "spm.model")
    processor = spm.SentencePieceProcessor(
        model_file=str(out_dir / "spm.model")
    )
    vocab = {
        processor.id_to_piece(i): i for i in range(processor.get_piece_size())
    }

    def is_mergeable(index):
        return not (
            processor.is_control(index)
            or processor.is_unknown(index)
            or processor.is_byte(index)
        )

    tokenizer = LlamaTokenizer(
        vocab=vocab,
        merges=_bpe_merges(vocab, is_mergeable),
        add_prefix_space=False,
        unk_token=SPECIAL_TOKENS["unk"],
        bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"],
        pad_token=SPECIAL_TOKENS["pad"],
    )
    tokenizer.save_pretrained(out_dir)
    return out_dir


# -------------------------------------------------------------------- model
def make_llama(
    tokenizer_dir,
    out_dir,
    hidden=256,
    layers=4,
    heads=4,
    intermediate=None,
    kv_heads=None,
    seed=0,
    max_positions=1024,
    tie_embeddings=True,
    init_std=0.02,
):
    """Saves a randomly initialised ``LlamaForCausalLM`` with a tokenizer.

    Arguments
    ---------
    tokenizer_dir : str or Path
        A HF tokenizer folder (e.g. from ``train_tokenizer``).
    out_dir : str or Path
        Output folder, loadable by ``AutoModelForCausalLM.from_pretrained``
        and ``CausalLM``.
    hidden : int
        Hidden size.
    layers : int
        Number of decoder layers.
    heads : int
        Attention heads (must divide ``hidden``).
    intermediate : int, optional
        MLP width (default ``8/3 * hidden`` rounded up to a multiple of 16).
    kv_heads : int, optional
        Key/value heads (default ``heads``).
    seed : int
        Initialisation seed.
    max_positions : int
        ``max_position_embeddings``.
    tie_embeddings : bool
        Share the input embedding and output layer.
    init_std : float
        ``initializer_range`` of the random weights.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Example
    -------
    >>> import tempfile, transformers
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = (tmp / "c.txt").write_text("\\n".join(_TINY_CORPUS))
    >>> tok_dir = train_tokenizer(tmp / "c.txt", tmp / "tok", vocab_size=400)
    >>> folder = make_llama(tok_dir, tmp / "lm", hidden=32, layers=1, heads=2)
    >>> transformers.AutoConfig.from_pretrained(folder).num_hidden_layers
    1
    """
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if hidden % heads:
        raise ValueError(f"heads={heads} must divide hidden={hidden}")
    kv_heads = kv_heads or heads
    if heads % kv_heads:
        raise ValueError(f"kv_heads={kv_heads} must divide heads={heads}")
    if intermediate is None:
        intermediate = int(math.ceil(hidden * 8 / 3 / 16) * 16)
    tokenizer = AutoTokenizer.from_pretrained(
        tokenizer_dir, local_files_only=True
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        initializer_range=init_std,
        tie_word_embeddings=tie_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def make_tiny_lm_folder(out_dir, seed=0, hidden=32, layers=2, heads=2):
    """Makes a very small random Llama + tokenizer folder (for tests).

    The tokenizer is trained on a built-in dozen sentences in English,
    French and Chinese. Takes well under a second.

    Arguments
    ---------
    out_dir : str or Path
        Folder to create; the model goes to ``<out_dir>/lm``.
    seed : int
        Initialisation seed.
    hidden : int
        Hidden size.
    layers : int
        Number of layers.
    heads : int
        Number of attention heads.

    Returns
    -------
    pathlib.Path
        The model folder.

    Example
    -------
    >>> import tempfile, transformers
    >>> folder = make_tiny_lm_folder(tempfile.mkdtemp())
    >>> model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    >>> model.config.hidden_size
    32
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = out_dir / "tiny_corpus.txt"
    corpus.write_text("\n".join(_TINY_CORPUS) + "\n", encoding="utf-8")
    tok_dir = train_tokenizer(corpus, out_dir / "tokenizer", vocab_size=400)
    return make_llama(
        tok_dir,
        out_dir / "lm",
        hidden=hidden,
        layers=layers,
        heads=heads,
        seed=seed,
    )


# --------------------------------------------------------------------- data
def read_text_jsonl(path):
    """Reads and checks a text-task jsonl (``id``, ``task``, ``instruction``,
    ``target`` per line).

    Arguments
    ---------
    path : str or Path
        The jsonl file.

    Returns
    -------
    list of dict
        The examples.

    Example
    -------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.jsonl"
    >>> row = {"id": "0", "task": "repeat", "instruction": "Copy: a b",
    ...        "target": "a b"}
    >>> _ = p.write_text(json.dumps(row) + "\\n")
    >>> read_text_jsonl(p)[0]["target"]
    'a b'
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text task file {path} not found")
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:
                raise ValueError(f"{path}:{number}: not JSON ({err})") from err
            for field in ("task", "instruction", "target"):
                if not isinstance(row.get(field), str):
                    raise ValueError(
                        f"{path}:{number}: field {field!r} must be a string; "
                        f"got {row.get(field)!r}"
                    )
            for marker in (templates.AUDIO_MARKER, templates.TEXT_MARKER):
                if marker in row["instruction"]:
                    raise ValueError(
                        f"{path}:{number}: instruction holds {marker}; text "
                        "tasks must have the text inline"
                    )
            if not row["target"].strip():
                raise ValueError(f"{path}:{number}: empty target")
            rows.append(row)
    if not rows:
        raise ValueError(f"text task file {path} holds no examples")
    return rows


def _prompt_ids(lm, rows):
    prompts = [templates.split_prompt(r["instruction"])[0] for r in rows]
    return lm.encode(prompts, add_bos=True)


def encode_examples(lm, rows):
    """Tokenizes text-task examples as ``BOS prompt answer EOS``.

    Arguments
    ---------
    lm : CausalLM
        Supplies the tokenizer and special ids.
    rows : list of dict
        Examples with ``instruction`` and ``target``.

    Returns
    -------
    list of tuple
        ``(ids, n_prompt)`` per example, where the first ``n_prompt`` ids
        (BOS + prompt) carry no loss.

    Example
    -------
    >>> import tempfile
    >>> lm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
    >>> row = {"instruction": "Repeat the text: the red cat",
    ...        "target": "the red cat"}
    >>> [(ids, n_prompt)] = encode_examples(lm, [row])
    >>> lm.tokenizer.decode(ids[:n_prompt])
    '<s>USER: Repeat the text: the red cat\\nASSISTANT:'
    >>> lm.tokenizer.decode(ids[n_prompt:])
    ' the red cat</s>'
    """
    prompts = _prompt_ids(lm, rows)
    answers = lm.encode(
        [templates.format_target(r["target"]) for r in rows], add_eos=True
    )
    return [(p + a, len(p)) for p, a in zip(prompts, answers)]


def _collate(examples, pad_id):
    tokens, mask = pad_ids([ids for ids, _ in examples], pad_id)
    labels = tokens.masked_fill(~mask, IGNORE_INDEX)
    n_prompt = torch.tensor([n for _, n in examples])
    prompt = torch.arange(tokens.shape[1]) < n_prompt[:, None]
    labels = labels.masked_fill(prompt, IGNORE_INDEX)
    return tokens, mask, labels


# ----------------------------------------------------------------- training
def pretrain_lm(
    world_root,
    out_dir,
    profile_cfg,
    seed=0,
    progress=True,
    tokenizer_dir=None,
    num_threads=2,
):
    """Pretrains the toy Llama on the text tasks of a toy world.

    Reads ``<world_root>/text/train.jsonl``; each example is
    ``BOS + prompt + " " + answer + EOS`` with the prompt from
    ``templates.split_prompt(instruction)[0]`` and the cross-entropy on the
    answer and EOS only. AdamW with linear warmup and cosine decay (to 10 %)
    on random batches. Uses ``num_threads`` CPU threads. The folder is
    written to a temporary sibling and renamed into place, so ``out_dir``
    is either the old model or the complete new one.

    Arguments
    ---------
    world_root : str or Path
        A toy world folder (holding ``text/train.jsonl``).
    out_dir : str or Path
        Where the HF model folder (weights + tokenizer) goes.
    profile_cfg : dict or str
        A value (or key) of ``LM_PROFILES``: ``vocab_size``, ``hidden``,
        ``layers``, ``heads``, ``kv_heads``, ``intermediate``, ``steps``,
        ``batch_size``, ``lr``, ``warmup``, ``weight_decay``,
        ``adam_beta2``, ``max_len`` (longer examples are skipped),
        ``bf16_autocast`` (True, False or ``"auto"``: when the CPU has
        native bf16, ~1.6x faster), ``prompt_loss_weight`` (default 0: CE
        on the answer only), ``attn_implementation`` used for training
        (``"eager"`` is faster than SDPA on these short CPU sequences; the
        saved model works with any). Missing keys take the ``tiny``
        values.
    seed : int
        Seed of the initialisation and the batch order.
    progress : bool
        Print the loss about ten times during training.
    tokenizer_dir : str or Path, optional
        A tokenizer folder from ``train_tokenizer``; default: train one on
        ``train.jsonl`` with ``profile_cfg["vocab_size"]``.
    num_threads : int
        CPU threads while training (restored afterwards); the weights do
        not depend on it.

    Returns
    -------
    dict
        ``params``, ``steps``, ``examples``, ``skipped_too_long``,
        ``train_seconds``, ``train_cpu_seconds``, ``first_loss``,
        ``final_loss`` (mean of the last 5 % of steps),
        ``tokens_per_second``, ``bf16_autocast``, ``config``, ``seed``,
        ``out_dir``.

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.toyworld.world import build_world
    >>> world = build_world("tiny", progress=False)  # doctest: +SKIP
    >>> out = Path(tempfile.mkdtemp()) / "lm"
    >>> stats = pretrain_lm(world, out, "tiny")  # doctest: +SKIP
    >>> stats["steps"], (out / "toy_lm.json").is_file()  # doctest: +SKIP
    (700, True)
    """
    if isinstance(profile_cfg, str):
        if profile_cfg not in LM_PROFILES:
            raise KeyError(
                f"unknown LM profile {profile_cfg!r}; expected one of "
                f"{sorted(LM_PROFILES)}"
            )
        profile_cfg = LM_PROFILES[profile_cfg]
    cfg = dict(LM_PROFILES["tiny"])
    unknown = set(profile_cfg) - set(cfg)
    if unknown:
        raise KeyError(
            f"profile_cfg has unknown keys {sorted(unknown)}; expected some "
            f"of {sorted(cfg)}"
        )
    cfg.update(profile_cfg)
    train_path = Path(world_root) / "text" / "train.jsonl"
    rows = read_text_jsonl(train_path)
    out_dir = Path(out_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        with staging_dir(out_dir) as tmp_dir:
            if tokenizer_dir is None:
                tokenizer_dir = train_tokenizer(
                    train_path, tmp_dir / "tokenizer", cfg["vocab_size"]
                )
            model_dir = make_llama(
                tokenizer_dir,
                tmp_dir / "model",
                hidden=cfg["hidden"],
                layers=cfg["layers"],
                heads=cfg["heads"],
                kv_heads=cfg["kv_heads"],
                intermediate=cfg["intermediate"],
                seed=seed,
                max_positions=max(1024, cfg["max_len"]),
            )
            lm = CausalLM(
                model_dir,
                freeze=False,
                attn_implementation=cfg["attn_implementation"],
            )
            stats = _train(lm, rows, cfg, seed, progress)
            final = tmp_dir / "final"
            lm.model.save_pretrained(final)
            lm.tokenizer.save_pretrained(final)
            stats["config"] = cfg
            stats["seed"] = seed
            write_json(final / "toy_lm.json", stats, indent=2)
            replace_dir(final, out_dir)
    finally:
        torch.set_num_threads(threads)
    stats["out_dir"] = str(out_dir)
    return stats


def _use_bf16(option, lm):
    """Whether to train under CPU bf16 autocast (``"auto"``: when the CPU
    has native bf16 support, where it is ~1.6x faster)."""
    if option != "auto":
        return bool(option)
    if lm.device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _batch_loss(lm, tokens, mask, labels, prompt_weight):
    """Answer CE (``CausalLM.loss``), plus ``prompt_weight`` times the CE
    on the prompt tokens (after BOS) when ``prompt_weight > 0``."""
    embeds = lm.embed(tokens)
    if not prompt_weight:
        return lm.loss(embeds, mask, labels)
    full = tokens.masked_fill(~mask, IGNORE_INDEX)
    full[:, 0] = IGNORE_INDEX
    per_token = lm.loss(embeds, mask, full, reduction="none")
    answer = (labels[:, 1:] != IGNORE_INDEX)[full[:, 1:] != IGNORE_INDEX]
    weights = torch.where(answer, 1.0, prompt_weight)
    return (per_token * weights).sum() / answer.sum().clamp(min=1)


def _train(lm, rows, cfg, seed, progress, on_step=None):
    examples = encode_examples(lm, rows)
    kept = [e for e in examples if len(e[0]) <= cfg["max_len"]]
    if not kept:
        raise ValueError(
            f"every example is longer than max_len={cfg['max_len']} tokens"
        )
    lengths = [len(ids) for ids, _ in kept]
    model = lm.model
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg["weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg["lr"],
        betas=(0.9, cfg["adam_beta2"]),
    )
    steps = cfg["steps"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(cfg["warmup"], steps)
    )
    use_bf16 = _use_bf16(cfg["bf16_autocast"], lm)
    rng = random.Random(seed)
    batches = []
    losses = []
    tokens_seen = 0
    start, cpu_start = time.time(), time.process_time()
    for step in range(steps):
        if not batches:
            batches = length_batches(
                lengths, cfg["batch_size"], rng, LM_BATCH_POOL
            )
        batch = [kept[i] for i in batches.pop()]
        tokens, mask, labels = _collate(batch, lm.pad_id)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            loss = _batch_loss(
                lm, tokens, mask, labels, cfg["prompt_loss_weight"]
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        tokens_seen += int(mask.sum())
        if progress and (step + 1) % max(1, steps // 10) == 0:
            print(
                f"toy LM step {step + 1}/{steps} loss {losses[-1]:.4f} "
                f"({time.time() - start:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        if on_step is not None:
            on_step(step + 1, losses[-1])
    seconds = time.time() - start
    model.eval()
    tail = losses[-max(1, steps // 20) :]
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "steps": steps,
        "examples": len(kept),
        "skipped_too_long": len(examples) - len(kept),
        "train_seconds": seconds,
        "train_cpu_seconds": time.process_time() - cpu_start,
        "first_loss": losses[0],
        "final_loss": sum(tail) / len(tail),
        "tokens_per_second": tokens_seen / max(seconds, 1e-9),
        "bf16_autocast": use_bf16,
    }


# --------------------------------------------------------------- evaluation
def _normalise(text):
    return " ".join(text.split())


def evaluate_lm(
    lm_dir,
    jsonl_path,
    batch_size=64,
    max_new_tokens=None,
    lm=None,
    return_predictions=False,
):
    """Exact match per task of greedy, KV-cached generation on text tasks.

    Arguments
    ---------
    lm_dir : str or Path
        A model folder (ignored when ``lm`` is given).
    jsonl_path : str or Path
        Text-task examples (``task``, ``instruction``, ``target``).
    batch_size : int
        Prompts per ``generate`` call (prompts are sorted by length).
    max_new_tokens : int, optional
        Default: the longest tokenized target + EOS + 2.
    lm : CausalLM, optional
        An already loaded model.
    return_predictions : bool
        Also return the predictions, in file order.

    Returns
    -------
    dict
        ``task -> exact match`` in ``[0, 1]`` (whitespace-normalised string
        equality); with ``return_predictions`` a tuple
        ``(scores, predictions)``.

    Example
    -------
    >>> import tempfile
    >>> lm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
    >>> path = Path(tempfile.mkdtemp()) / "test.jsonl"
    >>> row = {"id": "0", "task": "repeat", "target": "the red cat",
    ...        "instruction": "Repeat the text: the red cat"}
    >>> _ = path.write_text(json.dumps(row) + "\\n")
    >>> evaluate_lm(None, path, lm=lm)  # an untrained LM
    {'repeat': 0.0}
    """
    rows = read_text_jsonl(jsonl_path)
    if lm is None:
        lm = CausalLM(lm_dir)
    prompts = _prompt_ids(lm, rows)
    if max_new_tokens is None:
        answers = lm.encode(
            [templates.format_target(r["target"]) for r in rows]
        )
        max_new_tokens = max(len(a) for a in answers) + 3
    order = sorted(range(len(rows)), key=lambda i: len(prompts[i]))
    predictions = [None] * len(rows)
    for first in range(0, len(order), batch_size):
        index = order[first : first + batch_size]
        tokens, mask = pad_ids([prompts[i] for i in index], lm.pad_id)
        tokens, mask = tokens.to(lm.device), mask.to(lm.device)
        out = lm.generate(lm.embed(tokens), mask, max_new_tokens=max_new_tokens)
        for i, text in zip(index, lm.decode(out)):
            predictions[i] = text
    hits, counts = defaultdict(int), defaultdict(int)
    for row, pred in zip(rows, predictions):
        counts[row["task"]] += 1
        hits[row["task"]] += _normalise(pred) == _normalise(row["target"])
    scores = {task: hits[task] / counts[task] for task in sorted(counts)}
    if return_predictions:
        return scores, predictions
    return scores


def format_scores(scores):
    """Formats ``task -> exact match`` as a small table.

    Arguments
    ---------
    scores : dict
        From ``evaluate_lm``.

    Returns
    -------
    str
        One line per task plus the mean, in percent.

    Example
    -------
    >>> print(format_scores({"repeat": 1.0, "slu": 0.5}))
    task                  exact match
    repeat                     100.0%
    slu                         50.0%
    mean                        75.0%
    """
    lines = [f"{'task':<20}{'exact match':>13}"]
    for task, value in scores.items():
        lines.append(f"{task:<20}{100 * value:>12.1f}%")
    if scores:
        mean = sum(scores.values()) / len(scores)
        lines.append(f"{'mean':<20}{100 * mean:>12.1f}%")
    return "\n".join(lines)


def main(argv=None):
    """Command line: ``eval`` a toy LM on a jsonl, or ``train`` one.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.

    Example
    -------
    >>> from audiollm_lobes.toyworld.__main__ import build
    >>> world, backbones, _ = build("tiny", progress=False)  # doctest: +SKIP
    >>> main(["eval", "--lm", str(backbones / "lm"),  # doctest: +SKIP +ELLIPSIS
    ...       "--data", str(world / "text" / "test.jsonl")])
    task                  exact match
    ...
    0
    """
    parser = argparse.ArgumentParser(description="Toy LM tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="exact match per task")
    ev.add_argument("--lm", required=True, help="model folder")
    ev.add_argument("--data", required=True, help="text-task jsonl")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--max-new-tokens", type=int, default=None)
    tr = sub.add_parser("train", help="pretrain a toy LM on a toy world")
    tr.add_argument("--world", required=True, help="toy world folder")
    tr.add_argument("--out", required=True, help="output model folder")
    tr.add_argument("--profile", default="small", choices=sorted(LM_PROFILES))
    tr.add_argument("--tokenizer", default=None, help="tokenizer folder")
    tr.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.command == "eval":
        start = time.time()
        scores = evaluate_lm(
            args.lm,
            args.data,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
        )
        print(format_scores(scores))
        print(f"({time.time() - start:.1f} s)")
    else:
        stats = pretrain_lm(
            args.world,
            args.out,
            args.profile,
            seed=args.seed,
            tokenizer_dir=args.tokenizer,
        )
        print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
