"""LAL beam search and its decoding cache against references.

* ``AttentionOnlyInjector.generate(num_beams=N)`` (KV cache expanded to
  the beams, only the new tokens' positions reordered) against a plain
  beam search written another way: one python loop per sample, lists of
  hypotheses, and at every step the whole LAL forward re-run from scratch
  (a fresh audio cache, no KV cache) on every running hypothesis;
* with no LAL layer the injector is the text-only LLM, so its beam search
  must give exactly the tokens of ``CausalLM.generate(num_beams=N)``, i.e.
  of HF transformers' own beam search (over the same reserved cache;
  ``tests/unit/test_kv_cache.py`` checks it against HF's default cache).

The models are float64 so that the cached and uncached logits agree to
~1e-12 and the ranking of hypotheses cannot differ by rounding.
"""

import pytest
import torch
import transformers

from audiollm_lobes.injection.lal import AttentionOnlyInjector, beam_search
from audiollm_lobes.llm import CausalLM

HIDDEN, LAYERS, VOCAB, PAD = 32, 4, 61, 0


@pytest.fixture(autouse=True)
def _one_thread(_few_threads):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(seed=0):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=48,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.25,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=PAD,
    )
    return transformers.LlamaForCausalLM(config).double().eval()


def _perturb(module, seed=1, scale=0.3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            p.add_(scale * noise.to(p.dtype))


def _batch(seed, audio_lens=(5, 2, 0), text_lens=(6, 3, 4)):
    gen = torch.Generator().manual_seed(seed)
    batch, n_audio, n_text = len(audio_lens), max(audio_lens), max(text_lens)
    audio = torch.randn(batch, n_audio, HIDDEN, generator=gen).double()
    text = torch.randn(batch, n_text, HIDDEN, generator=gen).double()
    audio_mask = torch.arange(n_audio)[None] < torch.tensor(audio_lens)[:, None]
    text_mask = torch.arange(n_text)[None] < torch.tensor(text_lens)[:, None]
    # garbage in the padding must not matter
    audio = audio.masked_fill(~audio_mask[..., None], 1e3)
    text = text.masked_fill(~text_mask[..., None], -1e3)
    return audio, audio_mask, text, text_mask


# ------------------------------------------------------------- reference
@torch.no_grad()
def _log_probs_uncached(lal, prompt, audio, audio_mask, tokens):
    """float32 log-probabilities of the next token after ``prompt`` and
    ``tokens``: the full LAL forward, no cache."""
    embed = lal.hf_model.get_input_embeddings()
    seq = prompt
    if tokens:
        new = embed(torch.tensor([tokens])).to(prompt.dtype)
        seq = torch.cat([prompt, new], dim=1)
    mask = torch.ones(seq.shape[:2], dtype=torch.bool)
    logits = lal(seq, mask, audio, audio_mask)[0, -1]
    return torch.log_softmax(logits.float(), dim=-1)


def reference_beam_search(
    lal, audio, audio_mask, text, text_mask, beams, max_new, eos, lp=1.0
):
    """One sample at a time, python lists; scores kept in float32 like
    the batched search (the rules are HF transformers' beam search)."""
    keep = max(2, 1 + len(eos)) * beams
    rows = []
    for b in range(text.shape[0]):
        prompt = text[b : b + 1, : int(text_mask[b].sum())]
        a = None if audio is None else audio[b : b + 1]
        am = None if audio is None else audio_mask[b : b + 1]
        running = [((), torch.tensor(0.0))]
        finished = []  # (normalised score, tokens)
        accepting = True
        for step in range(max_new):
            length = step + 1
            candidates = []
            for tokens, score in running:
                logp = _log_probs_uncached(lal, prompt, a, am, list(tokens))
                total = score + logp
                for v in range(VOCAB):
                    candidates.append(
                        (float(total[v]), tokens + (v,), total[v])
                    )
            candidates.sort(key=lambda c: -c[0])
            top = candidates[:keep]

            def ends(tokens):
                return tokens[-1] in eos or len(tokens) >= max_new

            for rank, (_, tokens, score) in enumerate(top):
                if rank < beams and ends(tokens) and accepting:
                    finished.append((float(score / length**lp), tokens))
            finished = sorted(finished, key=lambda f: -f[0])[:beams]
            running = [(t, s) for _, t, s in top if not ends(t)][:beams]
            if len(finished) == beams and running:
                best = float(running[0][1] / length**lp)
                accepting = accepting and best > finished[-1][0]
            if all(ends(t) for _, t, _ in top) or not accepting:
                break
        rows.append(list(finished[0][1]))
    width = max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (width - len(r)) for r in rows])


# ----------------------------------------------------------------- tests
def _eos(free, kind):
    """EOS ids the model emits: two of them ("few"), or every token of
    steps 1-3 ("many") or 0-5 ("lots") of the greedy outputs (hypotheses
    then end all the time, finished lists fill up, the early-stop rule
    decides, and the ending candidates can outnumber the beams)."""
    if kind == "few":
        return [int(free[0, 1]), int(free[2, 3])]
    steps = slice(1, 4) if kind == "many" else slice(0, 6)
    return sorted(set(free[:, steps].flatten().tolist()))


@pytest.mark.parametrize(
    "audio_rope,lal_layers,seed,kind,max_new",
    [
        ("none", [1, 3], 0, "few", 6),
        ("prefix", "all", 1, "few", 6),
        ("none", [0, 2], 2, "few", 6),
        ("none", "all", 1, "many", 10),
        ("prefix", [1, 2], 3, "many", 10),
    ],
)
def test_beam_search_equals_the_uncached_reference(
    audio_rope, lal_layers, seed, kind, max_new
):
    model = _model(seed)
    lal = AttentionOnlyInjector(
        CausalLM.from_model(model),
        HIDDEN,
        lal_layers=lal_layers,
        audio_rope=audio_rope,
    ).double()
    _perturb(lal, seed=seed + 1)
    audio, audio_mask, text, text_mask = _batch(seed)
    # EOS ids the model actually emits, so that hypotheses end early
    free = lal.generate(audio, audio_mask, text, text_mask, 6, eos_ids=[])
    eos = _eos(free, kind)
    for beams, lp in ((3, 1.0), (2, 2.0)):
        got = lal.generate(
            audio,
            audio_mask,
            text,
            text_mask,
            max_new,
            eos_ids=eos,
            pad_id=PAD,
            num_beams=beams,
            length_penalty=lp,
        )
        ref = reference_beam_search(
            lal, audio, audio_mask, text, text_mask, beams, max_new, eos, lp
        )
        assert torch.equal(got, ref), (beams, got, ref)
    # not vacuous: beam search differs from greedy somewhere, and some
    # hypothesis ended before max_new_tokens
    greedy = lal.generate(audio, audio_mask, text, text_mask, max_new, eos)
    wide = lal.generate(
        audio, audio_mask, text, text_mask, max_new, eos, PAD, num_beams=4
    )
    assert not torch.equal(greedy, wide[:, : greedy.shape[1]])
    assert bool((wide == PAD).any())


@pytest.mark.parametrize(
    "seed,kind", [(3, "few"), (2, "few"), (6, "many"), (5, "lots")]
)
def test_text_only_beam_search_equals_hf_beam_search(seed, kind):
    """lal_layers=[] is the text-only LLM: the same tokens as HF's beam
    search through ``CausalLM.generate`` (left-padded there). The cases
    were picked so that each rule of the search decides some output (a
    search without the early-stop rule, letting candidates beyond the
    first ``num_beams`` finish, or keeping ``2 * num_beams`` candidates
    whatever the number of EOS ids gives other tokens in one of them)."""
    model = _model(seed)
    llm = CausalLM.from_model(model)
    lal = AttentionOnlyInjector(llm, HIDDEN, lal_layers=[])
    _, _, text, text_mask = _batch(seed, text_lens=(6, 3, 5))
    free = lal.generate(None, None, text, text_mask, 8, eos_ids=[])
    model.generation_config.eos_token_id = _eos(free, kind)
    ended = False
    for beams, lp in ((2, 1.0), (4, 1.0), (3, 2.0), (5, 0.5)):
        hf = llm.generate(
            text, text_mask, 8, num_beams=beams, length_penalty=lp
        )
        got = lal.generate(
            None, None, text, text_mask, 8, num_beams=beams, length_penalty=lp
        )
        assert torch.equal(got, hf), (beams, got, hf)
        ended = ended or bool((hf == llm.pad_id).any())
    assert ended  # a best hypothesis ended early (not vacuous)
    # the audio of a LAL-less injector changes nothing
    audio = torch.randn(3, 4, HIDDEN, dtype=torch.float64)
    again = lal.generate(audio, None, text, text_mask, 8, num_beams=3)
    assert torch.equal(
        again, lal.generate(None, None, text, text_mask, 8, num_beams=3)
    )


def test_sample_decodes_the_same_alone_and_in_a_batch():
    model = _model(4)
    lal = AttentionOnlyInjector(
        CausalLM.from_model(model), HIDDEN, audio_rope="prefix"
    ).double()
    _perturb(lal, seed=5)
    audio, audio_mask, text, text_mask = _batch(4)
    batch = lal.generate(
        audio, audio_mask, text, text_mask, 5, [7], PAD, num_beams=3
    )
    for b in range(3):
        na, nt = int(audio_mask[b].sum()), int(text_mask[b].sum())
        alone = lal.generate(
            audio[b : b + 1, :na],
            audio_mask[b : b + 1, :na],
            text[b : b + 1, :nt],
            text_mask[b : b + 1, :nt],
            5,
            [7],
            PAD,
            num_beams=3,
        )
        n = alone.shape[1]
        assert torch.equal(alone[0], batch[b, :n])
        assert bool((batch[b, n:] == PAD).all())


def test_beam_search_checks_its_arguments():
    with pytest.raises(ValueError, match="num_beams"):
        beam_search(torch.zeros(1, 3), None, 0, 2, [0], 0)
    lal = AttentionOnlyInjector(CausalLM.from_model(_model()), HIDDEN)
    _, _, text, text_mask = _batch(0)
    with pytest.raises(ValueError, match="num_beams"):
        lal.generate(None, None, text, text_mask, 2, num_beams=1.5)
