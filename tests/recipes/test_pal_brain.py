"""PALBrain: routing of encoder streams to PLITS / LAL inside the loop.

Every check compares the Brain's output with the same computation done
by hand from the lobes (assemble_plits, AttentionOnlyInjector, CausalLM).
"""

import pytest
import speechbrain as sb
import torch
from conftest import load_recipe_module

from audiollm_lobes.connectors import FrameStackProjector
from audiollm_lobes.encoders import FusedEncoder
from audiollm_lobes.injection import (
    AttentionOnlyInjector,
    assemble_plits,
)
from audiollm_lobes.llm import CausalLM, pad_ids
from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder

PALBrain = load_recipe_module("PAL").PALBrain


@pytest.fixture(autouse=True)
def _one_thread(_few_threads):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _FrameEncoder(torch.nn.Module):
    """Frozen toy encoder: frames of ``hop`` samples through a linear map."""

    frame_rate = 50.0

    def __init__(self, dim, hop, seed):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.output_dim, self.hop = dim, hop
        self.register_buffer("weight", torch.randn(hop, dim, generator=gen))

    def forward(self, wav, wav_lens):
        n = wav.shape[1] // self.hop
        frames = wav[:, : n * self.hop].reshape(wav.shape[0], n, self.hop)
        lens = torch.round(wav_lens * n).long()
        mask = torch.arange(n)[None] < lens[:, None]
        return torch.tanh(frames @ self.weight), mask


class _Batch:
    def __init__(self, **fields):
        self.__dict__.update(fields)

    def to(self, device):
        return self


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    return CausalLM(make_tiny_lm_folder(tmp_path_factory.mktemp("lm")))


def _batch(llm):
    torch.manual_seed(0)
    wavs = torch.randn(3, 640)
    wav_lens = torch.tensor([1.0, 0.5, 0.75])

    def field(texts, **kw):
        ids, mask = pad_ids(llm.encode(texts, **kw), llm.pad_id)
        return ids, mask.float().sum(1) / ids.shape[1]

    return _Batch(
        sig=(wavs, wav_lens),
        audio_key=["a", "b", "c"],
        before_ids=field(["listen", "le chat", "the dog"], add_bos=True),
        after_ids=field(["what is it?", "ok", "and then"]),
        answer_ids=field(["a cat", "le chien", "the"], add_eos=True),
        task=["emotion"] * 3,
        id=["x", "y", "z"],
        target=["a cat", "le chien", "the"],
    )


def _brain(llm, routes, lal_layers="all", cache=False, num_beams=1):
    torch.manual_seed(1)
    dim = llm.hidden_size
    encoder = FusedEncoder(
        {"a": _FrameEncoder(6, 32, 0), "b": _FrameEncoder(4, 40, 1)}
    )
    stream_dims = {"fused": 10, "a": 6, "b": 4}
    connectors = {
        name: FrameStackProjector(stream_dims[name], dim, stack=3)
        for name in routes
    }
    modules = {"encoder": encoder, "llm": llm}
    modules.update({f"conn_{n}": c for n, c in connectors.items()})
    if "lal" in routes.values():
        modules["injector"] = AttentionOnlyInjector(
            llm, dim, lal_layers=lal_layers
        )
    hparams = {
        "routes": routes,
        "connectors": connectors,
        "llm": llm,
        "max_new_tokens": 4,
        "num_beams": num_beams,
        "cache_encoder_features": cache,
    }
    return PALBrain(
        modules=modules,
        hparams=hparams,
        run_opts={"device": "cpu"},
        checkpointer=None,
    )


def _segments(brain, batch):
    return [brain.text_segment(batch, k) for k in ("before_ids", "after_ids")]


def test_pal_routing_matches_hand_assembly(llm):
    """Stream a via PLITS, stream b via LAL: loss and decoding by hand."""
    brain = _brain(llm, {"a": "plits", "b": "lal"})
    batch = _batch(llm)
    out = brain.compute_forward(batch, sb.Stage.TEST)

    _, _, streams = brain.modules.encoder(*batch.sig, return_streams=True)
    a_tok, a_mask = brain.hparams.connectors["a"](*streams["a"])
    b_tok, b_mask = brain.hparams.connectors["b"](*streams["b"])
    (before, bm), (after, am) = _segments(brain, batch)
    answer, ansm = brain.text_segment(batch, "answer_ids")
    seq = assemble_plits(
        llm.embed, before, bm, a_tok, a_mask, after, am, answer, ansm
    )
    injector = brain.modules.injector
    ce = injector.loss(seq.embeds, seq.mask, seq.labels, b_tok, b_mask)
    torch.testing.assert_close(out["ce"], ce, rtol=0, atol=0)
    # the LAL audio really matters (else the check above proves nothing)
    plain = llm.loss(seq.embeds, seq.mask, seq.labels, seq.position_ids)
    assert abs(float((plain - ce).detach())) > 1e-4
    gen = assemble_plits(llm.embed, before, bm, a_tok, a_mask, after, am)
    tokens = injector.generate(b_tok, b_mask, gen.embeds, gen.mask, 4)
    assert out["hyps"] == llm.decode(tokens.tolist())


def test_lal_route_decodes_with_beams(llm):
    """num_beams reaches the injector's beam search (the hypotheses are
    those of AttentionOnlyInjector.generate(num_beams=3) by hand)."""
    brain = _brain(llm, {"a": "plits", "b": "lal"}, num_beams=3)
    batch = _batch(llm)
    out = brain.compute_forward(batch, sb.Stage.TEST)
    _, _, streams = brain.modules.encoder(*batch.sig, return_streams=True)
    a_tok, a_mask = brain.hparams.connectors["a"](*streams["a"])
    b_tok, b_mask = brain.hparams.connectors["b"](*streams["b"])
    (before, bm), (after, am) = _segments(brain, batch)
    gen = assemble_plits(llm.embed, before, bm, a_tok, a_mask, after, am)
    injector = brain.modules.injector
    beams = injector.generate(
        b_tok, b_mask, gen.embeds, gen.mask, 4, num_beams=3
    )
    greedy = injector.generate(b_tok, b_mask, gen.embeds, gen.mask, 4)
    assert out["hyps"] == llm.decode(beams.tolist())
    assert not torch.equal(beams, greedy[:, : beams.shape[1]])


def test_fused_plits_is_the_plain_brain_path(llm):
    brain = _brain(llm, {"fused": "plits"})
    batch = _batch(llm)
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    feats, mask = brain.modules.encoder(*batch.sig)
    tok, tok_mask = brain.hparams.connectors["fused"](feats, mask)
    (before, bm), (after, am) = _segments(brain, batch)
    answer, ansm = brain.text_segment(batch, "answer_ids")
    seq = assemble_plits(
        llm.embed, before, bm, tok, tok_mask, after, am, answer, ansm
    )
    ce = llm.loss(seq.embeds, seq.mask, seq.labels, seq.position_ids)
    torch.testing.assert_close(out["ce"], ce, rtol=0, atol=0)
    assert brain.lal_audio == (None, None)


def test_lal_without_layers_is_the_text_only_llm(llm):
    """routes all to LAL with lal_layers=[]: exactly the text-only LLM."""
    brain = _brain(llm, {"fused": "lal"}, lal_layers=[])
    batch = _batch(llm)
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    (before, bm), (after, am) = _segments(brain, batch)
    answer, ansm = brain.text_segment(batch, "answer_ids")
    empty = torch.zeros(3, 0, llm.hidden_size)
    seq = assemble_plits(
        llm.embed,
        before,
        bm,
        empty,
        torch.zeros(3, 0, dtype=torch.bool),
        after,
        am,
        answer,
        ansm,
    )
    ce = llm.loss(seq.embeds, seq.mask, seq.labels, seq.position_ids)
    torch.testing.assert_close(out["ce"], ce, rtol=1e-6, atol=1e-6)


def test_stream_cache_gives_the_same_features(llm):
    batch = _batch(llm)
    plain = _brain(llm, {"a": "plits", "b": "lal"}, cache=False)
    cached = _brain(llm, {"a": "plits", "b": "lal"}, cache=True)
    ref, _ = plain.encode_audio(batch)
    for _ in range(2):  # fill, then read back
        got, _ = cached.encode_audio(batch)
        assert set(got) == {"a", "b"}
        for name, (feats, mask) in ref.items():
            g_feats, g_mask = got[name]
            n = g_feats.shape[1]
            assert torch.equal(g_mask, mask[:, :n])
            assert not mask[:, n:].any()
            torch.testing.assert_close(g_feats, feats[:, :n])
    assert set(cached.feature_caches["streams"].entries) == {"a", "b", "c"}
