"""A CTC ASR head on a frozen encoder, with a character tokenizer.

An ASR that shares no parameter with the other lobes of a run: Wav2Prompt
uses it for an ASR -> LLM cascade independent of its front end (see
``recipes/Wav2Prompt``). A small trainable head maps the frozen encoder's
frames to per-frame log-probabilities over characters and a CTC blank:

    frames (batch, time, input_dim) ─► LayerNorm ─► Linear ─► pre-LN
    Transformer layers ─► LayerNorm ─► Linear ─► log-softmax
    (batch, time, vocab)

trained with the CTC loss (SpeechBrain's ``ctc_loss``) and decoded
greedily (SpeechBrain's ``ctc_greedy_decode``: the best label per frame,
repeats merged, blanks dropped). The frame rate of the encoder is kept
(50 Hz for Whisper): CTC needs at least one frame per label, and speech
has about 15 characters per second.

Tokenizer: characters, in SpeechBrain's ``CTCTextEncoder``: index 0 is
the blank, 1 the unknown label, then the characters seen in the training
transcripts, sorted. Characters need no training, depend on nothing but
the transcripts (not on any LLM's tokenizer), and every character string,
spaces included, round-trips.

Authors
 * audiollm-lobes developers, 2026
"""

from typing import NamedTuple, Optional

import torch
from speechbrain.dataio.encoder import CTCTextEncoder
from speechbrain.decoders import ctc_greedy_decode
from speechbrain.nnet.losses import ctc_loss
from torch import nn

from audiollm_lobes.atomic import replacing

#: Labels of the blank and of characters not seen in training.
BLANK_LABEL = "<blank>"
UNK_LABEL = "<unk>"
#: Their indices in a tokenizer made by :func:`build_char_encoder`.
BLANK_INDEX = 0
UNK_INDEX = 1


def build_char_encoder(texts):
    """A character tokenizer for CTC: blank, unknown, sorted characters.

    Arguments
    ---------
    texts : iterable of str
        Training transcripts.

    Returns
    -------
    speechbrain.dataio.encoder.CTCTextEncoder
        Blank at :data:`BLANK_INDEX`, unknown at :data:`UNK_INDEX`, then
        every character of ``texts`` in sorted order.

    Example
    -------
    >>> chars = build_char_encoder(["ab a", "ba"])
    >>> len(chars), chars.encode_sequence(list("ab a"))
    (5, [3, 4, 2, 3])
    >>> chars.encode_sequence(list("z"))  # unseen: the unknown label
    [1]
    """
    chars = sorted({c for text in texts for c in text})
    encoder = CTCTextEncoder()
    encoder.add_blank(BLANK_LABEL)  # index 0, as the first label
    encoder.add_unk(UNK_LABEL)  # index 1
    encoder.update_from_iterable(chars, sequence_input=False)
    encoder.ignore_len()  # a head is sized by len(encoder)
    return encoder


def save_char_encoder(encoder, path):
    """Writes a tokenizer in SpeechBrain's format, atomically.

    Arguments
    ---------
    encoder : speechbrain.dataio.encoder.CTCTextEncoder
        The tokenizer.
    path : str or Path
        Destination file.

    Example
    -------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "chars.txt"
    >>> save_char_encoder(build_char_encoder(["abc"]), path)
    >>> load_char_encoder(path).encode_sequence(list("cab"))
    [4, 2, 3]
    """
    with replacing(path) as tmp:
        encoder.save(tmp)


def load_char_encoder(path, expected_len=None):
    """Reads a tokenizer written by :func:`save_char_encoder`.

    Arguments
    ---------
    path : str or Path
        The file.
    expected_len : int, optional
        The number of labels it must have (e.g. the output size of the
        head trained with it).

    Returns
    -------
    speechbrain.dataio.encoder.CTCTextEncoder
        The tokenizer.

    Raises
    ------
    ValueError
        When it does not have ``expected_len`` labels.
    """
    encoder = CTCTextEncoder()
    encoder.load(path)
    if expected_len is not None and len(encoder) != expected_len:
        raise ValueError(
            f"{path} holds {len(encoder)} labels; expected {expected_len}"
        )
    encoder.ignore_len()
    return encoder


def encode_texts(encoder, texts):
    """Character ids of several texts, right-padded with the blank.

    Arguments
    ---------
    encoder : speechbrain.dataio.encoder.CTCTextEncoder
        The tokenizer.
    texts : list of str
        The texts.

    Returns
    -------
    tokens : torch.LongTensor
        ``(batch, max_len)``.
    mask : torch.BoolTensor
        ``(batch, max_len)``, True on characters.

    Example
    -------
    >>> tokens, mask = encode_texts(build_char_encoder(["ab"]), ["ab", "b"])
    >>> tokens.tolist(), mask.sum(1).tolist()
    ([[2, 3], [3, 0]], [2, 1])
    """
    ids = [encoder.encode_sequence(list(text)) for text in texts]
    width = max([len(row) for row in ids] + [1])
    tokens = torch.full((len(ids), width), BLANK_INDEX, dtype=torch.long)
    mask = torch.zeros(len(ids), width, dtype=torch.bool)
    for row, seq in enumerate(ids):
        tokens[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = True
    return tokens, mask


def ids_to_text(encoder, ids):
    """The text of decoded ids: characters joined, blanks and unknowns
    dropped, runs of spaces squashed, ends stripped.

    Arguments
    ---------
    encoder : speechbrain.dataio.encoder.CTCTextEncoder
        The tokenizer.
    ids : list of int
        Decoded ids (blanks already removed by the CTC rules).

    Returns
    -------
    str
        The text.

    Example
    -------
    >>> chars = build_char_encoder(["ab a"])  # " ": 2, "a": 3, "b": 4
    >>> ids_to_text(chars, [2, 3, 4, 2, 2, 1, 3, 4, 2])
    'ab ab'
    """
    skip = {BLANK_LABEL, UNK_LABEL}
    labels = [encoder.decode_ndim(int(i)) for i in ids]
    return " ".join("".join(c for c in labels if c not in skip).split())


def _relative(mask):
    """SpeechBrain relative lengths ``(batch,)`` of a ``(batch, len)``
    mask (each row's valid count over ``len``)."""
    width = max(mask.shape[1], 1)
    return mask.long().sum(1).float() / width


def ctc_head_loss(log_probs, mask, targets, target_mask, blank_index=0):
    """CTC loss of per-frame log-probabilities (SpeechBrain's ``ctc_loss``).

    Each sample's negative log-likelihood of its target is divided by the
    target's length, then averaged over the batch (PyTorch's ``"mean"``);
    impossible alignments (fewer frames than the target needs) give 0
    (``zero_infinity``).

    Arguments
    ---------
    log_probs : torch.Tensor
        ``(batch, time, vocab)`` log-probabilities.
    mask : torch.Tensor
        ``(batch, time)`` boolean, True on valid frames (right padding).
    targets : torch.LongTensor
        ``(batch, len)`` label ids, without blanks.
    target_mask : torch.Tensor
        ``(batch, len)`` boolean, True on labels (right padding).
    blank_index : int
        The blank's id.

    Returns
    -------
    torch.Tensor
        Scalar loss (float32).

    Example
    -------
    >>> log_probs = torch.log(torch.tensor([[[0.5, 0.5], [0.5, 0.5]]]))
    >>> loss = ctc_head_loss(log_probs, torch.ones(1, 2).bool(),
    ...                      torch.tensor([[1]]), torch.ones(1, 1).bool())
    >>> round(loss.item(), 4)  # -log(3 paths x 0.25): a-a, a-blank, blank-a
    0.2877
    """
    if log_probs.dim() != 3 or mask.shape != log_probs.shape[:2]:
        raise ValueError(
            "log_probs must be (batch, time, vocab) and mask (batch, time); "
            f"got {tuple(log_probs.shape)} and {tuple(mask.shape)}"
        )
    if targets.shape != target_mask.shape or targets.shape[0] != len(mask):
        raise ValueError(
            "targets and target_mask must both be (batch, len); got "
            f"{tuple(targets.shape)} and {tuple(target_mask.shape)}"
        )
    return ctc_loss(
        log_probs.float(),
        targets,
        _relative(mask.bool()).to(log_probs.device),
        _relative(target_mask.bool()).to(log_probs.device),
        blank_index,
    )


def ctc_greedy_ids(log_probs, mask, blank_index=0):
    """Greedy CTC decoding (SpeechBrain's ``ctc_greedy_decode``).

    Arguments
    ---------
    log_probs : torch.Tensor
        ``(batch, time, vocab)`` (log-)probabilities.
    mask : torch.Tensor
        ``(batch, time)`` boolean, True on valid frames (right padding).
    blank_index : int
        The blank's id.

    Returns
    -------
    list of list of int
        Per sample: the best label of each valid frame, repeats merged,
        blanks removed.

    Example
    -------
    >>> best = torch.tensor([[1, 1, 0, 1, 2, 2], [2, 0, 2, 0, 0, 0]])
    >>> mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]).bool()
    >>> ctc_greedy_ids(torch.nn.functional.one_hot(best, 3).float(), mask)
    [[1, 1, 2], [2, 2]]
    """
    return ctc_greedy_decode(
        log_probs.float(), _relative(mask.bool()), blank_id=blank_index
    )


def greedy_texts(log_probs, mask, encoder, blank_index=0):
    """Greedy transcripts of per-frame log-probabilities:
    :func:`ctc_greedy_ids`, then :func:`ids_to_text`.

    Arguments
    ---------
    log_probs : torch.Tensor
        ``(batch, time, vocab)`` (log-)probabilities.
    mask : torch.Tensor
        ``(batch, time)`` boolean, True on valid frames.
    encoder : speechbrain.dataio.encoder.CTCTextEncoder
        The tokenizer.
    blank_index : int
        The blank's id.

    Returns
    -------
    list of str
        One text per sample.

    Example
    -------
    >>> chars = build_char_encoder(["ab"])  # "a": 2, "b": 3
    >>> best = torch.tensor([[2, 0, 2, 3, 3]])
    >>> greedy_texts(torch.nn.functional.one_hot(best, 4).float(),
    ...              torch.ones(1, 5).bool(), chars)
    ['aab']
    """
    ids = ctc_greedy_ids(log_probs, mask, blank_index)
    return [ids_to_text(encoder, row) for row in ids]


class CTCOutput(NamedTuple):
    """What :class:`CTCHead` returns.

    Attributes
    ----------
    log_probs : torch.Tensor
        ``(batch, time, vocab)`` float32 log-probabilities.
    mask : torch.Tensor
        ``(batch, time)`` boolean, the input mask.
    loss : torch.Tensor or None
        :func:`ctc_head_loss` when targets were given.
    """

    log_probs: torch.Tensor
    mask: torch.Tensor
    loss: Optional[torch.Tensor] = None


class CTCHead(nn.Module):
    """Frames -> per-frame log-probabilities over characters and blank.

    ``LayerNorm(input_dim)`` (frozen encoders' features are not
    normalised) -> ``Linear(input_dim, hidden_dim)`` -> ``num_layers``
    pre-LN Transformer layers attending to valid frames only ->
    ``LayerNorm`` -> ``Linear(hidden_dim, vocab_size)`` -> log-softmax
    (float32). With ``num_layers = 0`` it is a linear probe on the frames.

    Arguments
    ---------
    input_dim : int
        Width of the encoder frames.
    vocab_size : int
        Labels, the blank included (``len(tokenizer)``).
    hidden_dim : int
        Width of the layers.
    num_layers : int
        Transformer layers.
    num_heads : int
        Their attention heads.
    ffn_dim : int, optional
        Their feed-forward width (default ``4 * hidden_dim``).
    dropout : float
        Their dropout.
    blank_index : int
        The blank's id (for the loss and decoding).

    Example
    -------
    >>> head = CTCHead(input_dim=8, vocab_size=5, hidden_dim=16,
    ...                num_layers=1, num_heads=2)
    >>> mask = torch.arange(6)[None] < torch.tensor([[6], [4]])
    >>> out = head(torch.randn(2, 6, 8), mask)
    >>> out.log_probs.shape, round(out.log_probs[0, 0].exp().sum().item(), 4)
    (torch.Size([2, 6, 5]), 1.0)
    >>> out = head(torch.randn(2, 6, 8), mask, torch.tensor([[2, 3], [4, 0]]),
    ...            torch.tensor([[1, 1], [1, 0]]).bool())
    >>> out.loss.shape
    torch.Size([])
    """

    def __init__(
        self,
        input_dim,
        vocab_size,
        hidden_dim=256,
        num_layers=2,
        num_heads=4,
        ffn_dim=None,
        dropout=0.1,
        blank_index=BLANK_INDEX,
    ):
        super().__init__()
        for name, value, low in (
            ("input_dim", input_dim, 1),
            ("vocab_size", vocab_size, 2),
            ("hidden_dim", hidden_dim, 1),
            ("num_heads", num_heads, 1),
            ("num_layers", num_layers, 0),
        ):
            if int(value) != value or value < low:
                raise ValueError(
                    f"CTCHead: {name}={value!r}; expected an int >= {low}"
                )
        if num_layers and hidden_dim % num_heads:
            raise ValueError(
                f"CTCHead: num_heads={num_heads} must divide "
                f"hidden_dim={hidden_dim}"
            )
        if not 0 <= blank_index < vocab_size:
            raise ValueError(
                f"CTCHead: blank_index={blank_index} outside the "
                f"vocabulary of {vocab_size}"
            )
        #: The constructor's arguments (to rebuild the head elsewhere).
        self.arguments = {
            "input_dim": int(input_dim),
            "vocab_size": int(vocab_size),
            "hidden_dim": int(hidden_dim),
            "num_layers": int(num_layers),
            "num_heads": int(num_heads),
            "ffn_dim": int(ffn_dim or 4 * hidden_dim),
            "dropout": float(dropout),
            "blank_index": int(blank_index),
        }
        self.input_dim = int(input_dim)
        self.blank_index = int(blank_index)
        self.input_norm = nn.LayerNorm(input_dim)
        self.input_proj = nn.Linear(input_dim, hidden_dim)
        self.layers = None
        if num_layers:
            layer = nn.TransformerEncoderLayer(
                hidden_dim,
                num_heads,
                self.arguments["ffn_dim"],
                dropout=dropout,
                batch_first=True,
                norm_first=True,
            )
            self.layers = nn.TransformerEncoder(
                layer, num_layers, enable_nested_tensor=False
            )
        self.output_norm = nn.LayerNorm(hidden_dim)
        self.output = nn.Linear(hidden_dim, vocab_size)

    def forward(self, feats, mask, targets=None, target_mask=None):
        """Per-frame log-probabilities (and the CTC loss).

        Arguments
        ---------
        feats : torch.Tensor
            ``(batch, time, input_dim)`` encoder frames.
        mask : torch.Tensor
            ``(batch, time)`` boolean, True on valid frames.
        targets : torch.LongTensor, optional
            ``(batch, len)`` label ids (no blanks): the output then holds
            the :func:`ctc_head_loss`.
        target_mask : torch.Tensor, optional
            ``(batch, len)`` boolean, True on labels (with ``targets``).

        Returns
        -------
        CTCOutput
            ``log_probs``, ``mask``, ``loss``.
        """
        if feats.dim() != 3 or feats.shape[-1] != self.input_dim:
            raise ValueError(
                f"CTCHead: feats: expected (batch, time, {self.input_dim}), "
                f"got shape {tuple(feats.shape)}"
            )
        if mask.shape != feats.shape[:2]:
            raise ValueError(
                f"CTCHead: mask: expected {tuple(feats.shape[:2])}, got "
                f"{tuple(mask.shape)}"
            )
        mask = mask.bool()
        hidden = self.input_proj(self.input_norm(feats))
        if self.layers is not None:
            hidden = self.layers(hidden, src_key_padding_mask=~mask)
        logits = self.output(self.output_norm(hidden))
        log_probs = logits.float().log_softmax(-1)
        loss = None
        if targets is not None:
            if target_mask is None:
                raise ValueError("CTCHead: targets need a target_mask")
            loss = ctc_head_loss(
                log_probs, mask, targets, target_mask, self.blank_index
            )
        return CTCOutput(log_probs, mask, loss)

    @torch.no_grad()
    def transcribe(self, feats, mask, encoder):
        """Greedy transcripts of encoder frames.

        Arguments
        ---------
        feats : torch.Tensor
            ``(batch, time, input_dim)`` encoder frames.
        mask : torch.Tensor
            ``(batch, time)`` boolean, True on valid frames.
        encoder : speechbrain.dataio.encoder.CTCTextEncoder
            The tokenizer the head was trained with.

        Returns
        -------
        list of str
            One text per sample (:func:`ids_to_text`).

        Example
        -------
        >>> chars = build_char_encoder(["ab"])
        >>> head = CTCHead(4, len(chars), hidden_dim=8, num_layers=0)
        >>> texts = head.transcribe(torch.randn(2, 5, 4),
        ...                         torch.ones(2, 5).bool(), chars)
        >>> len(texts), all(set(t) <= set("ab ") for t in texts)
        (2, True)
        """
        out = self(feats, mask)
        return greedy_texts(out.log_probs, out.mask, encoder, self.blank_index)
