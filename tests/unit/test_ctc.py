"""CTC head, loss, greedy decoding and character tokenizer
(``audiollm_lobes.ctc``), against hand-worked examples and a per-sample
PyTorch reference in float64.

Authors
 * audiollm-lobes developers, 2026
"""

import math

import pytest
import torch
import torch.nn.functional as F

from audiollm_lobes.ctc import (
    BLANK_INDEX,
    UNK_INDEX,
    CTCHead,
    build_char_encoder,
    ctc_greedy_ids,
    ctc_head_loss,
    encode_texts,
    ids_to_text,
    load_char_encoder,
    save_char_encoder,
)


def _mask(lengths, width):
    return torch.arange(width)[None] < torch.tensor(lengths)[:, None]


def test_char_encoder_layout_and_round_trip(tmp_path):
    chars = build_char_encoder(["the cat", "a dog"])
    assert chars.decode_ndim(BLANK_INDEX) == "<blank>"
    assert chars.decode_ndim(UNK_INDEX) == "<unk>"
    labels = [chars.decode_ndim(i) for i in range(2, len(chars))]
    assert labels == sorted(set("the cata dog"))
    save_char_encoder(chars, tmp_path / "chars.txt")
    loaded = load_char_encoder(tmp_path / "chars.txt", len(chars))
    assert loaded.lab2ind == chars.lab2ind
    ids = loaded.encode_sequence(list("a cat"))
    assert ids_to_text(loaded, ids) == "a cat"
    # an unseen character is the unknown label, dropped in the text
    ids = loaded.encode_sequence(list("a zoo"))
    assert ids[2] == UNK_INDEX
    assert ids_to_text(loaded, ids) == "a oo"
    assert len(chars) == 2 + len(set("the cata dog"))
    with pytest.raises(ValueError, match="holds 11 labels; expected 5"):
        load_char_encoder(tmp_path / "chars.txt", 5)


def test_encode_texts_pads_with_blank():
    chars = build_char_encoder(["ab"])
    tokens, mask = encode_texts(chars, ["ab", "", "b"])
    assert tokens.tolist() == [[2, 3], [0, 0], [3, 0]]
    assert mask.tolist() == [[True, True], [False, False], [True, False]]


def test_greedy_decoding_hand_worked():
    """Best label per frame, repeats merged, blanks dropped, padding
    frames ignored; worked out by hand."""
    chars = build_char_encoder(["ab "])  # " ": 2, "a": 3, "b": 4
    _, a, b, sp = BLANK_INDEX, 3, 4, 2
    best = torch.tensor(
        [
            # a a _ a b b _ " " b -> "a" "a" "b" " " "b" (the blank splits
            # the two a's; the repeated b merges)
            [a, a, 0, a, b, b, 0, sp, b],
            # b _ _ b, then 5 padding frames that would add "a"
            [b, 0, 0, b, a, a, 0, a, a],
        ]
    )
    # log-probabilities whose argmax is `best`, not one-hot
    log_probs = torch.full((2, 9, 5), -3.0)
    log_probs.scatter_(2, best[..., None], -0.1)
    mask = _mask([9, 4], 9)
    ids = ctc_greedy_ids(log_probs, mask)
    assert ids == [[a, a, b, sp, b], [b, b]]
    assert [ids_to_text(chars, row) for row in ids] == ["aab b", "bb"]


def test_loss_hand_worked():
    """T=2, target "a": paths a-a, a-blank, blank-a; T=3, target "aa":
    only a-blank-a (a repeat needs a blank between)."""
    p = torch.tensor([[0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])  # blank, a
    log_probs = p.log()[None]
    two = ctc_head_loss(
        log_probs[:, :2], _mask([2], 2), torch.tensor([[1]]), _mask([1], 1)
    )
    expected = -math.log(0.4 * 0.7 + 0.4 * 0.3 + 0.6 * 0.7) / 1
    assert two.item() == pytest.approx(expected, rel=1e-6)
    three = ctc_head_loss(
        log_probs, _mask([3], 3), torch.tensor([[1, 1]]), _mask([2], 2)
    )
    expected = -math.log(0.4 * 0.3 * 0.5) / 2  # per target label
    assert three.item() == pytest.approx(expected, rel=1e-6)
    # an impossible alignment (2 frames for "aa") counts 0, not inf
    impossible = ctc_head_loss(
        log_probs[:, :2], _mask([2], 2), torch.tensor([[1, 1]]), _mask([2], 2)
    )
    assert impossible.item() == 0.0


def test_head_loss_and_gradients_match_a_per_sample_reference():
    """The padded batch's loss (and its gradients) equal a loop over the
    samples run alone, unpadded, in float64, through ``F.ctc_loss``."""
    torch.manual_seed(0)
    head = CTCHead(6, 7, hidden_dim=8, num_layers=2, num_heads=2).eval()
    lengths, target_lengths = [11, 7, 9], [4, 2, 3]
    feats = torch.randn(3, 11, 6)
    mask = _mask(lengths, 11)
    targets = torch.randint(1, 7, (3, 4))
    target_mask = _mask(target_lengths, 4)
    out = head(feats, mask, targets, target_mask)
    grads = torch.autograd.grad(out.loss, list(head.parameters()))

    ref = CTCHead(6, 7, hidden_dim=8, num_layers=2, num_heads=2).eval()
    ref.load_state_dict(head.state_dict())
    ref.double()
    total = 0.0
    for i, (n, m) in enumerate(zip(lengths, target_lengths)):
        # the head's layers by hand, unpadded, float64 throughout (the
        # head itself takes its log-softmax in float32)
        hidden = ref.input_proj(ref.input_norm(feats[i : i + 1, :n].double()))
        hidden = ref.layers(hidden)
        logits = ref.output(ref.output_norm(hidden))
        log_probs = logits.log_softmax(-1)
        nll = F.ctc_loss(
            log_probs.transpose(0, 1),
            targets[i : i + 1, :m],
            torch.tensor([n]),
            torch.tensor([m]),
            blank=0,
            reduction="sum",
        )
        total = total + nll / m
    reference = total / len(lengths)
    ref_grads = torch.autograd.grad(reference, list(ref.parameters()))
    assert out.loss.item() == pytest.approx(reference.item(), rel=1e-5)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6)


def test_padding_does_not_change_a_sample():
    torch.manual_seed(1)
    head = CTCHead(5, 6, hidden_dim=8, num_layers=1, num_heads=2).eval()
    feats = torch.randn(2, 10, 5)
    mask = _mask([10, 6], 10)
    batched = head(feats, mask).log_probs
    alone = head(feats[1:, :6], mask[1:, :6]).log_probs
    torch.testing.assert_close(batched[1, :6], alone[0])
    assert batched.dtype == torch.float32
    torch.testing.assert_close(
        batched.exp().sum(-1), torch.ones(2, 10), rtol=0, atol=1e-5
    )


def test_transcribe_decodes_what_the_log_probs_say():
    """``transcribe`` = greedy ids of the head's own output, as text."""
    torch.manual_seed(2)
    chars = build_char_encoder(["ab c"])
    head = CTCHead(4, len(chars), hidden_dim=8, num_layers=0).eval()
    with torch.no_grad():  # a head that prefers characters over blank
        head.output.bias[BLANK_INDEX] = -5.0
    feats, mask = torch.randn(2, 8, 4), _mask([8, 5], 8)
    texts = head.transcribe(feats, mask, chars)
    log_probs = head(feats, mask).log_probs
    for row, text in enumerate(texts):
        best = log_probs[row, : int(mask[row].sum())].argmax(-1).tolist()
        merged = [c for j, c in enumerate(best) if j == 0 or c != best[j - 1]]
        labels = [chars.decode_ndim(c) for c in merged if c > UNK_INDEX]
        assert text == " ".join("".join(labels).split())
    assert any(texts)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocab_size": 1}, "vocab_size=1"),
        ({"num_layers": -1}, "num_layers=-1"),
        ({"hidden_dim": 10, "num_heads": 4}, "must divide"),
        ({"blank_index": 9}, "blank_index=9"),
    ],
)
def test_head_checks_its_arguments(kwargs, message):
    args = {"input_dim": 4, "vocab_size": 5, "hidden_dim": 8, "num_heads": 2}
    with pytest.raises(ValueError, match=message):
        CTCHead(**{**args, **kwargs})


def test_head_checks_shapes():
    head = CTCHead(4, 5, hidden_dim=8, num_layers=0)
    with pytest.raises(ValueError, match="feats"):
        head(torch.randn(2, 3, 5), torch.ones(2, 3).bool())
    with pytest.raises(ValueError, match="target_mask"):
        head(torch.randn(2, 3, 4), torch.ones(2, 3).bool(), torch.ones(2, 1))
