"""Tokens/s of KV-cached vs uncached greedy decoding with ``CausalLM``.

Builds a mid-size random Llama (default: hidden 512, 8 layers, vocab 8000)
in a temporary folder, then decodes 64 new tokens for a batch of 8 prompts
of 128 embeddings with ``CausalLM.generate(use_cache=True)`` and
``use_cache=False``, interleaving the two so that both see the same machine
load, and prints tokens/s of each and their ratio. EOS is suppressed
(``min_new_tokens``) so that every run decodes exactly the same number of
tokens.

Usage::

    python benchmarks/generation_cache.py [--repeats 3] [--threads 2]

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers

from audiollm_lobes.llm import CausalLM
from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder


def build_model(folder, hidden, layers, heads, vocab, seed=0):
    """Saves a random Llama of the given size with the tiny toy tokenizer.

    Arguments
    ---------
    folder : pathlib.Path
        Working folder.
    hidden : int
        Hidden size.
    layers : int
        Number of layers.
    heads : int
        Attention heads.
    vocab : int
        Vocabulary size of the model (ids above the tokenizer's are fine:
        the benchmark never decodes text).
    seed : int
        Initialisation seed.

    Returns
    -------
    pathlib.Path
        The model folder.

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.llm import CausalLM
    >>> from pathlib import Path
    >>> folder = build_model(Path(tempfile.mkdtemp()), 16, 1, 2, 64)
    >>> CausalLM(folder).hidden_size
    16
    """
    tiny = make_tiny_lm_folder(folder / "tiny")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny)
    config = transformers.LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3 // 16 * 16,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config)
    out = folder / "model"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def timed_generate(lm, embeds, mask, new_tokens, use_cache):
    """Runs one greedy decoding and returns ``(tokens, seconds)``.

    Arguments
    ---------
    lm : CausalLM
        The model.
    embeds : torch.Tensor
        ``(batch, len, hidden)`` prompt embeddings.
    mask : torch.Tensor
        ``(batch, len)`` mask.
    new_tokens : int
        Exactly this many tokens are generated.
    use_cache : bool
        Use the KV cache.

    Returns
    -------
    tuple
        Generated tokens ``(batch, new_tokens)`` and wall seconds.

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.llm import CausalLM
    >>> from pathlib import Path
    >>> lm = CausalLM(build_model(Path(tempfile.mkdtemp()), 16, 1, 2, 64))
    >>> embeds, mask = torch.randn(2, 3, 16), torch.ones(2, 3).bool()
    >>> cached, _ = timed_generate(lm, embeds, mask, 4, use_cache=True)
    >>> plain, _ = timed_generate(lm, embeds, mask, 4, use_cache=False)
    >>> cached.shape, bool((cached == plain).all())
    (torch.Size([2, 4]), True)
    """
    start = time.perf_counter()
    out = lm.generate(
        embeds,
        mask,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        use_cache=use_cache,
    )
    return out, time.perf_counter() - start


def main(argv=None):
    """Runs the benchmark and prints the table.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    float
        The cached / uncached tokens-per-second ratio (medians).

    Example
    -------
    >>> ratio = main(["--hidden=16", "--layers=1"])  # doctest: +SKIP
    >>> ratio > 1.0  # doctest: +SKIP
    True
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(
            Path(tmp), args.hidden, args.layers, args.heads, args.vocab
        )
        lm = CausalLM(folder)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(4, args.vocab, (args.batch, args.prompt), generator=gen)
    # right-padded prompts of different lengths (the project convention)
    lengths = torch.linspace(args.prompt // 2, args.prompt, args.batch).long()
    mask = torch.arange(args.prompt) < lengths[:, None]
    embeds = lm.embed(ids) * mask.unsqueeze(-1)
    params = sum(p.numel() for p in lm.parameters())
    print(
        f"random Llama: hidden {args.hidden}, {args.layers} layers, vocab "
        f"{args.vocab}, {params / 1e6:.1f}M params; batch {args.batch}, "
        f"prompts of {int(lengths.min())}-{args.prompt} embeddings, "
        f"{args.new_tokens} new tokens, greedy, {args.threads} threads"
    )
    timed_generate(lm, embeds, mask, 4, True)  # warm-up
    times = {True: [], False: []}
    outputs = {}
    for _ in range(args.repeats):
        for use_cache in (True, False):
            out, seconds = timed_generate(
                lm, embeds, mask, args.new_tokens, use_cache
            )
            times[use_cache].append(seconds)
            outputs[use_cache] = out
    total = args.batch * args.new_tokens
    rate = {k: total / statistics.median(v) for k, v in times.items()}
    print(f"{'decoding':<12}{'median s':>10}{'tokens/s':>12}")
    for use_cache, name in ((True, "cached"), (False, "uncached")):
        median = statistics.median(times[use_cache])
        print(f"{name:<12}{median:>10.2f}{rate[use_cache]:>12.1f}")
    ratio = rate[True] / rate[False]
    same = torch.equal(outputs[True], outputs[False])
    print(f"speed-up of the KV cache: {ratio:.1f}x (same tokens: {same})")
    return ratio


if __name__ == "__main__":
    main()
