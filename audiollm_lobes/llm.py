"""A frozen Hugging Face causal LM that works on input embeddings.

``CausalLM`` loads any HF causal language model and its tokenizer from a
hub id or a local folder, freezes it, and offers what the audio lobes
need: token embeddings, a forward pass over ``inputs_embeds`` that computes
logits only where they are needed, the next-token loss, and batched,
KV-cached generation from embeddings.

Sequences follow the project convention: contiguous and right-padded, with
a boolean (or 0/1) attention mask ``(batch, len)``; position ids come from
the cumulative sum of the mask (``masks.positions_from_mask``).

The next-token loss (``next_token_loss``) and the token-by-token decoding
loop (``decode_loop``) are functions, shared with the other decoder that
runs on a ``CausalLM``: LAL's ``injection.lal.AttentionOnlyInjector``,
which also uses the wrapper's output layer (``head``) and special ids.

Authors
 * audiollm-lobes developers, 2026
"""

import logging
import os
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
import transformers

from audiollm_lobes.kv_cache import cache_keyword, reserved_cache
from audiollm_lobes.masks import positions_from_mask

#: Label of positions without a target (the default of ``F.cross_entropy``).
IGNORE_INDEX = -100
logger = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}

#: How prompts are laid out: ``plain`` (the project's ``USER: ...
#: ASSISTANT:`` text, ``data.templates``) or ``chat_template`` (the
#: tokenizer's own ``apply_chat_template``, for instruction-tuned LLMs).
PROMPT_FORMATS = ("plain", "chat_template")

#: Content of the assistant turn rendered to find how a chat template
#: wraps an answer (``CausalLM.chat_turn``).
_ANSWER_PROBE = "ANSWER-PROBE-41c7"


class ChatTurn(NamedTuple):
    """How a tokenizer's chat template wraps an assistant answer.

    Attributes
    ----------
    answer_prefix : str
        Text the template writes between the generation prompt and the
        answer (e.g. ``" "`` for Llama-2's ``[/INST]``, usually empty).
    end_id : int
        The token that ends the assistant's turn (``<|im_end|>``,
        ``<|eot_id|>``, ``<|end|>``, ``</s>`` ...): the answer's last
        target token, and one of the ids that stop generation.
    """

    answer_prefix: str
    end_id: int


class LMOutput(NamedTuple):
    """What ``CausalLM.forward`` returns.

    Attributes
    ----------
    hidden_states : torch.Tensor
        Last hidden states, ``(batch, len, hidden)``.
    logits : torch.Tensor or None
        ``(batch, len, vocab)``, or ``(n, vocab)`` when ``logits_at`` was
        given (rows in the row-major order of the ``True`` entries), or
        ``None`` when ``logits_at`` selects nothing.
    past_key_values : object or None
        The HF cache when ``use_cache=True``.
    loss : torch.Tensor or None
        The next-token cross-entropy (float32) when ``labels`` were given;
        ``logits`` are then those of the labelled positions only.
    """

    hidden_states: torch.Tensor
    logits: Optional[torch.Tensor]
    past_key_values: object = None
    loss: Optional[torch.Tensor] = None


def resolve_dtype(dtype):
    """Turns a dtype name into a ``torch.dtype``.

    Arguments
    ---------
    dtype : str or torch.dtype
        ``"float32"``, ``"float16"``, ``"bfloat16"`` (or ``fp32``, ``fp16``,
        ``bf16``), ``"auto"``, or a ``torch.dtype``.

    Returns
    -------
    torch.dtype or str
        The dtype (``"auto"`` is passed through for ``from_pretrained``).

    Example
    -------
    >>> resolve_dtype("bf16")
    torch.bfloat16
    """
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(
            f"dtype {dtype!r} is not supported; expected one of "
            f"{sorted(_DTYPES)}, 'auto' or a torch.dtype"
        )
    return _DTYPES[dtype]


def left_align(inputs_embeds, attention_mask):
    """Moves the valid positions of each row to the right end (left padding).

    Works for any padding pattern (right-padded, left-padded or with
    holes); the order of valid positions is kept. Vectorised: one stable
    sort of the mask and one gather. Columns that are padding in every row
    are dropped.

    Arguments
    ---------
    inputs_embeds : torch.Tensor
        ``(batch, len, dim)``.
    attention_mask : torch.Tensor
        ``(batch, len)`` bool or 0/1.

    Returns
    -------
    embeds : torch.Tensor
        ``(batch, max_valid, dim)``, left-padded with zeros.
    mask : torch.LongTensor
        ``(batch, max_valid)`` 0/1 mask.

    Example
    -------
    >>> x = torch.arange(6.0).view(2, 3, 1)
    >>> e, m = left_align(x, torch.tensor([[1, 1, 0], [1, 1, 1]]))
    >>> e.squeeze(-1)
    tensor([[0., 0., 1.],
            [3., 4., 5.]])
    >>> m
    tensor([[0, 1, 1],
            [1, 1, 1]])
    """
    mask = attention_mask.bool()
    order = torch.sort(mask.int(), dim=1, stable=True).indices
    keep = int(mask.sum(1).max())
    order = order[:, order.shape[1] - keep :]
    new_mask = torch.gather(mask, 1, order)
    index = order.unsqueeze(-1).expand(-1, -1, inputs_embeds.shape[-1])
    embeds = torch.gather(inputs_embeds, 1, index)
    embeds = embeds * new_mask.unsqueeze(-1).to(embeds.dtype)
    return embeds, new_mask.long()


def pad_ids(ids, pad_value):
    """Right-pads lists of token ids into a tensor and a mask.

    Arguments
    ---------
    ids : list of list of int
        Token ids per sample.
    pad_value : int
        Value written at padded positions.

    Returns
    -------
    tokens : torch.LongTensor
        ``(batch, max_len)``.
    mask : torch.BoolTensor
        ``(batch, max_len)``, True at real tokens.

    Example
    -------
    >>> t, m = pad_ids([[5, 6, 7], [8]], pad_value=0)
    >>> t
    tensor([[5, 6, 7],
            [8, 0, 0]])
    >>> m.sum(1)
    tensor([3, 1])
    """
    if len(ids) == 0:
        raise ValueError("pad_ids got an empty batch")
    max_len = max(len(seq) for seq in ids)
    tokens = torch.full((len(ids), max_len), pad_value, dtype=torch.long)
    mask = torch.zeros(len(ids), max_len, dtype=torch.bool)
    for row, seq in enumerate(ids):
        tokens[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = True
    return tokens, mask


def truncate_after_eos(tokens, eos_ids, pad_id):
    """Replaces every token after the first EOS of each row with ``pad_id``.

    Arguments
    ---------
    tokens : torch.LongTensor
        ``(batch, len)`` generated tokens.
    eos_ids : list of int
        Token ids that end a sequence.
    pad_id : int
        Fill value after EOS (the EOS itself is kept).

    Returns
    -------
    torch.LongTensor
        ``(batch, len)``.

    Example
    -------
    >>> truncate_after_eos(torch.tensor([[4, 2, 5, 6], [4, 5, 6, 7]]), [2], 0)
    tensor([[4, 2, 0, 0],
            [4, 5, 6, 7]])
    """
    is_eos = torch.isin(tokens, torch.as_tensor(eos_ids, device=tokens.device))
    after = (is_eos.long().cumsum(1) - is_eos.long()) > 0
    return tokens.masked_fill(after, pad_id)


def next_token_targets(labels, ignore_index=IGNORE_INDEX):
    """Where to compute logits for a next-token loss, and their targets.

    Arguments
    ---------
    labels : torch.LongTensor
        ``(batch, len)``, HF style: the label at ``t`` is the token at
        ``t``, predicted from position ``t - 1``; ``ignore_index`` marks
        positions without a target.
    ignore_index : int
        Label of positions without a target.

    Returns
    -------
    logits_at : torch.BoolTensor
        ``(batch, len)``: the positions whose next token is labelled.
    targets : torch.LongTensor
        ``(n,)`` those next tokens, in the row-major order of
        ``logits_at``.

    Example
    -------
    >>> at, targets = next_token_targets(
    ...     torch.tensor([[-100, -100, 7, 8], [-100, 5, -100, -100]])
    ... )
    >>> at.int().tolist(), targets.tolist()
    ([[0, 1, 1, 0], [1, 0, 0, 0]], [7, 8, 5])
    """
    targets = labels[:, 1:]
    valid = targets != ignore_index
    logits_at = torch.zeros_like(labels, dtype=torch.bool)
    logits_at[:, :-1] = valid
    return logits_at, targets[valid]


def next_token_loss(logits_fn, labels, inputs, reduction="mean"):
    """Next-token cross-entropy, with logits only where labels exist.

    Arguments
    ---------
    logits_fn : callable
        ``logits_fn(logits_at)`` returns the ``(n, vocab)`` logits at the
        ``True`` positions of the ``(batch, len)`` boolean ``logits_at``
        (row-major order).
    labels : torch.LongTensor
        ``(batch, len)``, see ``next_token_targets``.
    inputs : torch.Tensor
        The input embeddings; without any labelled token the loss is
        ``0 * inputs.sum()``, so that it still has a graph.
    reduction : str
        ``"mean"`` over labelled tokens, ``"sum"``, or ``"none"`` (per
        labelled token, in row-major order).

    Returns
    -------
    torch.Tensor
        The loss (float32, cross-entropy computed in float32).

    Example
    -------
    >>> logits = torch.tensor([[[0.0, 9.0], [9.0, 0.0], [0.0, 0.0]]])
    >>> labels = torch.tensor([[-100, 1, 0]])
    >>> loss = next_token_loss(lambda at: logits[at], labels, logits)
    >>> round(loss.item(), 4)
    0.0001
    >>> next_token_loss(None, torch.full((1, 3), -100), logits).item()
    0.0
    """
    logits_at, targets = next_token_targets(labels)
    if targets.numel() == 0:
        return (inputs.sum() * 0.0).float()
    logits = logits_fn(logits_at)
    return F.cross_entropy(logits.float(), targets, reduction=reduction)


def apply_repetition_penalty(logits, previous, penalty):
    """HF's repetition penalty (Keskar et al., 2019, as ``transformers``'
    ``RepetitionPenaltyLogitsProcessor`` applies it).

    The logit of every token that occurs in ``previous`` (once, however
    often it occurs) is divided by ``penalty`` when positive and
    multiplied by it when negative: ``penalty > 1`` makes those tokens
    less likely, ``penalty < 1`` more likely, ``1.0`` changes nothing.
    Ids outside ``logits``' vocabulary (e.g. a pad id past the output
    layer) are ignored.

    Arguments
    ---------
    logits : torch.Tensor
        ``(batch, vocab)`` next-token logits.
    previous : torch.LongTensor
        ``(batch, n)`` the tokens that count (``n`` may be 0).
    penalty : float
        Strictly positive.

    Returns
    -------
    torch.Tensor
        ``(batch, vocab)`` penalised logits (a new tensor; ``logits`` is
        returned as is when nothing changes).

    Example
    -------
    >>> logits = torch.tensor([[2.0, -1.0, 0.5]])
    >>> apply_repetition_penalty(logits, torch.tensor([[0, 1, 0]]), 2.0)
    tensor([[ 1.0000, -2.0000,  0.5000]])
    """
    if not penalty > 0:
        raise ValueError(
            f"repetition_penalty must be > 0 (1.0: none); got {penalty}"
        )
    if penalty == 1.0 or previous is None or previous.shape[-1] == 0:
        return logits
    vocab = logits.shape[-1]
    # one spare column takes the ids the output layer does not have
    padded = F.pad(logits, (0, 1))
    index = previous.to(logits.device).clamp(min=0, max=vocab)
    score = padded.gather(1, index)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return padded.scatter(1, index, score)[:, :vocab]


class RepetitionPenalty(transformers.LogitsProcessor):
    """:func:`apply_repetition_penalty` as an HF logits processor, over
    every id of ``input_ids``.

    ``CausalLM.generate`` decodes from embeddings, so HF's ``input_ids``
    hold the generated tokens only. HF's own processor (the
    ``repetition_penalty`` field of a ``GenerationConfig``) also skips, in
    each row, as many leading tokens as the row's prompt has left padding
    (``prompt_ignore_length``, meant for prompts given as ids): with
    embeddings that exempts generated tokens, so a prompt would decode
    differently alone and in a padded batch. This one does not.

    Arguments
    ---------
    penalty : float
        Strictly positive (1.0: none).

    Example
    -------
    >>> RepetitionPenalty(2.0)(torch.tensor([[1]]), torch.tensor([[1.0, 4.0]]))
    tensor([[1., 2.]])
    """

    def __init__(self, penalty):
        if not penalty > 0:
            raise ValueError(
                f"repetition_penalty must be > 0 (1.0: none); got {penalty}"
            )
        self.penalty = float(penalty)

    def __call__(self, input_ids, scores):
        """Penalised ``(batch, vocab)`` scores."""
        return apply_repetition_penalty(scores, input_ids, self.penalty)


def decode_loop(
    next_logits,
    max_new_tokens,
    eos_ids,
    pad_id,
    pick=None,
    min_new_tokens=0,
    repetition_penalty=1.0,
):
    """Token-by-token decoding with the EOS/pad bookkeeping.

    A sample that has emitted an EOS gets ``pad_id`` from then on; the
    loop stops when every sample has ended or after ``max_new_tokens``.
    ``next_logits`` is only called for tokens that are chosen, so a
    decoder that runs its model inside it never runs an unused step.

    Arguments
    ---------
    next_logits : callable
        ``next_logits(token)`` returns the ``(batch, vocab)`` logits of the
        next token: ``token`` is None at the first step, then the
        ``(batch,)`` tokens just chosen (to be fed to the model).
    max_new_tokens : int
        Maximum number of tokens (>= 1).
    eos_ids : list of int
        Tokens that end a sample (may be empty).
    pad_id : int
        Written after a sample's EOS.
    pick : callable, optional
        ``pick(logits) -> (batch,)`` token ids (default: greedy argmax).
    min_new_tokens : int
        EOS logits are set to ``-inf`` (in place) for the first
        ``min_new_tokens`` steps.
    repetition_penalty : float
        :func:`apply_repetition_penalty` before each pick, over the
        tokens this loop has generated so far in the sample (not the
        prompt, which reaches the model as embeddings); 1.0 (default):
        none, the logits are used as they come.

    Returns
    -------
    torch.LongTensor
        ``(batch, n_new)``; ``n_new < max_new_tokens`` when every sample
        ended early.

    Example
    -------
    >>> script = iter([[0, 2], [2, 1], [1, 1]])  # argmax of each step
    >>> def next_logits(token):
    ...     return torch.nn.functional.one_hot(torch.tensor(next(script)), 3)
    >>> decode_loop(next_logits, 5, eos_ids=[2], pad_id=0)
    tensor([[0, 2],
            [2, 0]])

    A repetition penalty of 1.5 turns the second step's 3.0 for token 0,
    already generated, into 2.0, below token 1's 2.5:

    >>> def scripted(token):
    ...     return torch.tensor([[3.0, 2.0, 0.0]] if token is None
    ...                         else [[3.0, 2.5, 0.0]])
    >>> decode_loop(scripted, 2, [], 0).tolist()
    [[0, 0]]
    >>> decode_loop(scripted, 2, [], 0, repetition_penalty=1.5).tolist()
    [[0, 1]]
    """
    if not repetition_penalty > 0:
        raise ValueError(
            "repetition_penalty must be > 0 (1.0: none); got "
            f"{repetition_penalty}"
        )
    tokens = []
    token = finished = eos = None
    for step in range(max_new_tokens):
        logits = next_logits(token)
        if finished is None:
            eos = torch.as_tensor(eos_ids, dtype=torch.long)
            eos = eos.to(logits.device)
            finished = torch.zeros(
                logits.shape[0], dtype=torch.bool, device=logits.device
            )
        if repetition_penalty != 1.0 and tokens:
            logits = apply_repetition_penalty(
                logits, torch.stack(tokens, 1), repetition_penalty
            )
        if step < min_new_tokens:
            logits[:, eos] = -float("inf")
        token = logits.argmax(-1) if pick is None else pick(logits)
        token = token.masked_fill(finished, pad_id)
        tokens.append(token)
        finished = finished | torch.isin(token, eos)
        if bool(finished.all()):
            break
    return torch.stack(tokens, 1)


#: Keyword names under which HF decoder layers receive the KV cache.
_CACHE_KWARGS = ("cache", "past_key_values", "past_key_value", "layer_past")


def checkpoint_layers(layers):
    """Gradient checkpointing of decoder layers, in any module mode.

    Each layer's ``forward`` is wrapped (on the instance; weights, names
    and the state dict are unchanged) so that a call with gradients
    enabled and no KV cache runs under ``torch.utils.checkpoint``
    (non-reentrant): the layer's activations are dropped after the
    forward and recomputed in the backward pass. Calls without gradients
    or with a cache run the layer as is. Wrapping twice is a no-op.

    Arguments
    ---------
    layers : iterable of torch.nn.Module
        The decoder layers (e.g. ``LlamaModel.layers``); each is called as
        ``layer(hidden (batch, len, hidden), **kwargs)``.

    Example
    -------
    >>> config = transformers.LlamaConfig(
    ...     vocab_size=20, hidden_size=8, intermediate_size=16,
    ...     num_hidden_layers=2, num_attention_heads=2,
    ... )
    >>> model = transformers.LlamaForCausalLM(config).eval()
    >>> embeds = torch.randn(1, 3, 8, requires_grad=True)
    >>> def grad():
    ...     out = model(inputs_embeds=embeds, use_cache=False)
    ...     return torch.autograd.grad(out.logits.sum(), embeds)[0]
    >>> plain = grad()
    >>> checkpoint_layers(model.model.layers)
    >>> again = grad()
    >>> torch.allclose(plain, again, atol=1e-6)
    True
    """
    if layers is None:
        raise ValueError(
            "gradient checkpointing needs the decoder's layers (a "
            "`layers` ModuleList on the HF base model); none found"
        )
    for layer in layers:
        if getattr(layer, "_audiollm_checkpointed", False):
            continue
        layer.forward = _checkpointed_forward(layer.forward)
        layer._audiollm_checkpointed = True


def _checkpointed_forward(forward):
    """``forward`` under ``torch.utils.checkpoint`` when it has a backward
    to save memory for and no KV cache to write into twice."""

    from torch.utils.checkpoint import checkpoint

    def run(*args, **kwargs):
        cached = any(kwargs.get(name) is not None for name in _CACHE_KWARGS)
        if not torch.is_grad_enabled() or cached:
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


class CausalLM(torch.nn.Module):
    """A frozen HF causal LM + tokenizer that runs on input embeddings.

    Arguments
    ---------
    source : str
        A hub id or a local folder holding a model saved with
        ``save_pretrained`` and its tokenizer.
    dtype : str or torch.dtype
        Weight dtype (``"float32"``, ``"bfloat16"``, ``"float16"``,
        ``"auto"``).
    device : str or torch.device, optional
        Where to put the model (default: where ``from_pretrained`` puts it,
        the CPU).
    freeze : bool
        Freeze all weights and keep the model in eval mode (dropout off),
        whatever ``train()`` says.
    attn_implementation : str
        Passed to ``from_pretrained`` (``"sdpa"``, ``"eager"``, ...).
    compile_training : bool
        Run the decoder through ``torch.compile`` (dynamic shapes) in
        training forwards: gradients enabled, no KV cache. Decoding and
        validation stay eager. The first training step pays the
        compilation (tens of seconds on a CPU; PyTorch caches it on disk
        for later runs). Needs a C/C++ compiler on a CPU; if compiling
        fails, a warning is logged and the decoder runs eagerly.
    gradient_checkpointing : bool
        Keep only each decoder layer's input during forwards with
        gradients and without a KV cache (PLITS training), and recompute
        the layer in the backward pass: activation memory of one layer
        instead of all, for about one more forward of the LLM per step.
        Works with the frozen LLM in eval mode (HF's own checkpointing
        only runs in training mode). Forwards that continue from a KV
        cache (LAL's audio keys/values) are not checkpointed: replaying a
        layer would write its keys/values into the cache a second time.
    device_map : str, int, dict, optional
        Passed to ``from_pretrained`` (needs ``accelerate``): load the
        weights straight onto a device instead of the CPU first, e.g.
        ``"cuda"`` (``cuda:$LOCAL_RANK`` under ``torchrun``), which spares
        CPU memory when each of several processes loads a large LLM.
        Exclusive with ``device``. Maps that split the model over several
        devices (``"auto"``) work with this class, not in the recipes,
        whose Brain puts every module on its one device.
    local_files_only : bool, optional
        Default: True when ``source`` is an existing folder, else False.
    trust_remote_code : bool
        Passed to ``from_pretrained``.
    prompt_format : str
        ``"plain"`` (the project's ``USER: ... ASSISTANT:`` text, BOS
        added when the tokenizer has one) or ``"chat_template"`` (the
        tokenizer's own chat template, which writes any BOS itself; its
        end-of-turn token ends answers and stops generation, see
        ``chat_turn``). Read by the data pipelines
        (``data.pipeline.make_dataset``).

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
    >>> folder = make_tiny_lm_folder(tempfile.mkdtemp())
    >>> lm = CausalLM(folder)
    >>> ids = lm.encode(["the cat", "a dog is here"], add_bos=True)
    >>> tokens, mask = pad_ids(ids, lm.pad_id)
    >>> out = lm(lm.embed(tokens), mask)
    >>> out.logits.shape == (2, tokens.shape[1], lm.vocab_size)
    True
    >>> lm.generate(lm.embed(tokens), mask, max_new_tokens=3).shape[0]
    2
    """

    def __init__(
        self,
        source,
        dtype="float32",
        device=None,
        freeze=True,
        attn_implementation="sdpa",
        compile_training=False,
        gradient_checkpointing=False,
        device_map=None,
        local_files_only=None,
        trust_remote_code=False,
        prompt_format="plain",
    ):
        super().__init__()
        if not isinstance(compile_training, bool):
            raise TypeError(
                "CausalLM compile_training (yaml: llm_compile_training) must "
                f"be True or False; got {compile_training!r}"
            )
        if not isinstance(gradient_checkpointing, bool):
            raise TypeError(
                "CausalLM gradient_checkpointing (yaml: "
                "llm_gradient_checkpointing) must be True or False; got "
                f"{gradient_checkpointing!r}"
            )
        if device is not None and device_map is not None:
            raise ValueError(
                f"CausalLM takes device ({device!r}) or device_map "
                f"({device_map!r}), not both"
            )
        load_options = {} if device_map is None else {"device_map": device_map}
        source = str(source)
        if local_files_only is None:
            local_files_only = os.path.isdir(source)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                source,
                local_files_only=local_files_only,
                trust_remote_code=trust_remote_code,
            )
            model = transformers.AutoModelForCausalLM.from_pretrained(
                source,
                dtype=resolve_dtype(dtype),
                attn_implementation=attn_implementation,
                local_files_only=local_files_only,
                trust_remote_code=trust_remote_code,
                **load_options,
            )
        except OSError as err:
            raise OSError(
                f"CausalLM could not load source={source!r} (a hub id or a "
                "folder with config.json, the weights and the tokenizer "
                f"files): {err}"
            ) from err
        if device is not None:
            model.to(device)
        self._wrap(source, model, tokenizer, freeze, compile_training)
        self._set_prompt_format(prompt_format)
        if gradient_checkpointing:
            checkpoint_layers(getattr(self.decoder(), "layers", None))

    def _wrap(self, source, model, tokenizer, freeze, compile_training):
        self.source = source
        self.frozen = freeze
        self.tokenizer = tokenizer
        self.prompt_format = "plain"
        self._chat_turn = None
        self.model = model
        if freeze:
            self.model.requires_grad_(False)
            self.model.eval()
        self._embedding_norm = None
        self.compile_training = compile_training
        # the compiled decoder lives in a plain dict: registered as a
        # submodule it would duplicate every weight in the state dict
        self._compiled = {}

    @classmethod
    def from_model(
        cls, model, tokenizer=None, freeze=True, prompt_format="plain"
    ):
        """Wraps an HF causal LM already in memory (nothing is loaded).

        Without a tokenizer, the special ids come from the model's
        generation config and config (EOS: generation config, else
        config; pad: config, else the first EOS, else 0; BOS: config),
        and ``encode``/``decode``/``embedding_norm`` are unavailable.

        Arguments
        ---------
        model : transformers.PreTrainedModel
            A causal LM (its dtype and device are kept).
        tokenizer : transformers.PreTrainedTokenizerBase, optional
            Its tokenizer.
        freeze : bool
            As in the constructor (applied to ``model`` in place).
        prompt_format : str
            As in the constructor (``chat_template`` needs a tokenizer).

        Returns
        -------
        CausalLM
            The wrapper (``compile_training`` off).

        Example
        -------
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=20, hidden_size=8, intermediate_size=16,
        ...     num_hidden_layers=1, num_attention_heads=2,
        ... )
        >>> lm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> lm.eos_ids, lm.pad_id, lm.vocab_size, lm.model.training
        ([2], 2, 20, False)
        """
        if not isinstance(model, transformers.PreTrainedModel):
            raise TypeError(
                "CausalLM.from_model needs a transformers PreTrainedModel; "
                f"got {type(model).__name__}"
            )
        lm = cls.__new__(cls)
        torch.nn.Module.__init__(lm)
        source = getattr(model, "name_or_path", "") or type(model).__name__
        lm._wrap(source, model, tokenizer, freeze, False)
        lm._set_prompt_format(prompt_format)
        return lm

    def _set_prompt_format(self, prompt_format):
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(
                f"CausalLM prompt_format (yaml: prompt_format) must be one "
                f"of {PROMPT_FORMATS}; got {prompt_format!r}"
            )
        if prompt_format == "chat_template":
            template = getattr(self.tokenizer, "chat_template", None)
            if not template:
                raise ValueError(
                    f"{self.source}: prompt_format='chat_template' needs a "
                    "tokenizer with a chat template (tokenizer.chat_template "
                    "is not set); use prompt_format='plain'"
                )
        self.prompt_format = prompt_format
        if prompt_format == "chat_template":
            _ = self.chat_turn  # fails early on a template it cannot read

    # ------------------------------------------------------------ modes
    def train(self, mode=True):
        """Sets training mode, keeping a frozen LLM in eval mode.

        Arguments
        ---------
        mode : bool
            Training mode for this module.

        Returns
        -------
        CausalLM
            ``self``.

        Example
        -------
        >>> _ = torch.manual_seed(0)
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=20, hidden_size=8, intermediate_size=16,
        ...     num_hidden_layers=1, num_attention_heads=2,
        ... )
        >>> lm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> lm.train().training, lm.model.training
        (True, False)
        """
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    # ------------------------------------------------------- properties
    @property
    def config(self):
        """The HF model config."""
        return self.model.config

    @property
    def device(self):
        """Device of the input embedding table."""
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self):
        """Dtype of the input embedding table."""
        return self.model.get_input_embeddings().weight.dtype

    @property
    def hidden_size(self):
        """Width of the input embeddings."""
        return self.model.get_input_embeddings().weight.shape[1]

    @property
    def vocab_size(self):
        """Number of rows of the output layer (logit size)."""
        return self.model.get_output_embeddings().weight.shape[0]

    @property
    def bos_id(self):
        """BOS token id, or None when the tokenizer has none (e.g. Qwen2)."""
        if self.tokenizer is None:
            return self.config.bos_token_id
        return self.tokenizer.bos_token_id

    @property
    def eos_id(self):
        """EOS token id (tokenizer's, else the generation config's)."""
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if eos is not None:
            return eos
        ids = self.eos_ids
        if not ids:
            raise ValueError(
                f"{self.source}: neither the tokenizer nor the generation "
                "config defines an EOS token"
            )
        return ids[0]

    @property
    def eos_ids(self):
        """All ids that end generation: the tokenizer's EOS, the generation
        config's, and with ``prompt_format="chat_template"`` the template's
        end-of-turn token (``chat_turn.end_id``)."""
        ids = []
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if eos is not None:
            ids.append(eos)
        gen = getattr(self.model, "generation_config", None)
        extra = getattr(gen, "eos_token_id", None) if gen else None
        if extra is None and self.tokenizer is None:
            extra = self.config.eos_token_id
        if isinstance(extra, int):
            extra = [extra]
        if self.prompt_format == "chat_template":
            extra = list(extra or []) + [self.chat_turn.end_id]
        for i in extra or []:
            if i not in ids:
                ids.append(i)
        return ids

    @property
    def answer_end_id(self):
        """The token that ends a target answer: EOS with the plain prompt
        format, the template's end-of-turn token with ``chat_template``
        (both are in ``eos_ids``)."""
        if self.prompt_format == "chat_template":
            return self.chat_turn.end_id
        return self.eos_id

    @property
    def prompt_bos_ids(self):
        """Ids a prompt starts with: ``[BOS]`` with the plain format and a
        tokenizer that has a BOS, else ``[]`` (Qwen2 has none; a chat
        template writes its own BOS into the text)."""
        if self.prompt_format == "chat_template" or self.bos_id is None:
            return []
        return [self.bos_id]

    def render_chat(self, instruction):
        """One user turn rendered by the tokenizer's chat template, with
        the generation prompt (the assistant's answer follows it).

        Arguments
        ---------
        instruction : str
            The user message (may hold an ``<audio>`` marker, kept as is).

        Returns
        -------
        str
            ``tokenizer.apply_chat_template([user turn],
            add_generation_prompt=True, tokenize=False)``.

        Example
        -------
        >>> import tempfile
        >>> from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
        >>> lm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
        >>> lm.tokenizer.chat_template = (
        ...     "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}"
        ...     "{{ eos_token }}{% endfor %}"
        ...     "{% if add_generation_prompt %}<assistant>{% endif %}"
        ... )
        >>> lm.render_chat("<audio> Transcribe.")
        '<user><audio> Transcribe.</s><assistant>'
        """
        self._require_tokenizer("render_chat")
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": instruction}],
            add_generation_prompt=True,
            tokenize=False,
        )

    @property
    def chat_turn(self):
        """How the chat template wraps an answer (``ChatTurn``), found once
        by rendering a probe conversation.

        The answer prefix is the text between the generation prompt and the
        answer; the end-of-turn token is the first special token the
        template writes after the answer (the EOS when it writes none).

        Returns
        -------
        ChatTurn
            ``(answer_prefix, end_id)``.

        Example
        -------
        >>> import tempfile
        >>> from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
        >>> lm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
        >>> lm.tokenizer.chat_template = (
        ...     "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}"
        ...     "{{ eos_token }}{% endfor %}"
        ...     "{% if add_generation_prompt %}[assistant]{% endif %}"
        ... )
        >>> lm.chat_turn == ChatTurn(" ", lm.eos_id)
        True
        """
        if self._chat_turn is not None:
            return self._chat_turn
        self._require_tokenizer("chat_turn")
        user = {"role": "user", "content": "u"}
        answer = {"role": "assistant", "content": _ANSWER_PROBE}
        try:
            prompt = self.render_chat("u")
            full = self.tokenizer.apply_chat_template(
                [user, answer], tokenize=False
            )
        except Exception as err:  # jinja errors, missing template, ...
            raise ValueError(
                f"{self.source}: the tokenizer's chat template cannot render "
                f"a user turn and an assistant answer ({type(err).__name__}: "
                f"{err}); use prompt_format='plain'"
            ) from err
        at = full.find(_ANSWER_PROBE)
        if at < 0:
            raise ValueError(
                f"{self.source}: the chat template does not write the "
                "assistant's answer; use prompt_format='plain'"
            )
        prefix = ""
        if full.startswith(prompt) and len(prompt) <= at:
            prefix = full[len(prompt) : at]
        after = self.encode(full[at + len(_ANSWER_PROBE) :])[0]
        special = set(self.tokenizer.all_special_ids) | {
            i
            for i, token in self.tokenizer.added_tokens_decoder.items()
            if getattr(token, "special", False)
        }
        ends = [i for i in after if i in special]
        end_id = ends[0] if ends else self.eos_id
        self._chat_turn = ChatTurn(prefix, int(end_id))
        return self._chat_turn

    @property
    def pad_id(self):
        """Pad token id (falls back to EOS)."""
        if self.tokenizer is None:
            pad = self.config.pad_token_id
            if pad is None:
                eos = self.eos_ids
                pad = eos[0] if eos else 0
            return int(pad)
        if self.tokenizer.pad_token_id is not None:
            return self.tokenizer.pad_token_id
        return self.eos_id

    def _require_tokenizer(self, what):
        if self.tokenizer is None:
            raise ValueError(
                f"CausalLM.{what} needs a tokenizer; this wrapper of "
                f"{self.source} was made by from_model without one"
            )

    # ------------------------------------------------------- tokenizing
    def encode(self, texts, add_bos=False, add_eos=False):
        """Tokenizes texts without the tokenizer's own special tokens.

        Arguments
        ---------
        texts : list of str or str
            Texts to encode (a single string is treated as a batch of one).
        add_bos : bool
            Prepend BOS (no-op for tokenizers without one).
        add_eos : bool
            Append EOS.

        Returns
        -------
        list of list of int
            One id list per text.

        Example
        -------
        >>> import tempfile
        >>> from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
        >>> lm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
        >>> ids = lm.encode(["the cat", "le chat"], add_bos=True, add_eos=True)
        >>> [(seq[0], seq[-1]) == (lm.bos_id, lm.eos_id) for seq in ids]
        [True, True]
        >>> lm.encode("the cat") == lm.encode(["the cat"])
        True
        """
        self._require_tokenizer("encode")
        if isinstance(texts, str):
            texts = [texts]
        ids = self.tokenizer(list(texts), add_special_tokens=False)
        ids = [list(seq) for seq in ids["input_ids"]]
        if add_bos and self.bos_id is not None:
            ids = [[self.bos_id] + seq for seq in ids]
        if add_eos:
            ids = [seq + [self.eos_id] for seq in ids]
        return ids

    def decode(self, ids, strip=True):
        """Decodes token ids, stopping at the first EOS of each row.

        Arguments
        ---------
        ids : torch.Tensor or list of list of int
            ``(batch, len)`` token ids.
        strip : bool
            Remove leading/trailing whitespace (answers are generated with a
            leading space, see ``templates.format_target``).

        Returns
        -------
        list of str
            One string per row; pads and special tokens are skipped.

        Example
        -------
        >>> import tempfile
        >>> from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
        >>> lm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
        >>> row = lm.encode(["the cat"], add_eos=True)[0] + lm.encode("dog")[0]
        >>> lm.decode(torch.tensor([[lm.pad_id] + row]))
        ['the cat']
        """
        self._require_tokenizer("decode")
        if torch.is_tensor(ids):
            ids = ids.tolist()
        eos = set(self.eos_ids)
        special = set(self.tokenizer.all_special_ids) | {self.pad_id}
        texts = []
        for seq in ids:
            kept = []
            for tok in seq:
                if tok in eos:
                    break
                if tok not in special:
                    kept.append(tok)
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            texts.append(text.strip() if strip else text)
        return texts

    # -------------------------------------------------------- embedding
    def embed(self, ids):
        """Looks ids up in the input embedding table.

        Arguments
        ---------
        ids : torch.LongTensor
            ``(batch, len)`` token ids.

        Returns
        -------
        torch.Tensor
            ``(batch, len, hidden)``.

        Example
        -------
        >>> _ = torch.manual_seed(0)
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=20, hidden_size=8, intermediate_size=16,
        ...     num_hidden_layers=1, num_attention_heads=2,
        ... )
        >>> lm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> embeds = lm.embed(torch.tensor([[1, 5, 6]]))
        >>> table = lm.model.get_input_embeddings().weight
        >>> embeds.shape, torch.equal(embeds[0, 1], table[5])
        (torch.Size([1, 3, 8]), True)
        """
        ids = torch.as_tensor(ids, device=self.device)
        return self.model.get_input_embeddings()(ids)

    def embedding_norm(self):
        """Mean L2 norm of the token embeddings (special tokens excluded).

        Only rows the tokenizer can produce are used (some checkpoints pad
        the table with unused rows). Cached after the first call.

        Returns
        -------
        float
            The mean norm.

        Example
        -------
        >>> import tempfile
        >>> from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
        >>> lm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
        >>> weight = lm.model.get_input_embeddings().weight
        >>> special = lm.tokenizer.all_special_ids
        >>> keep = [i for i in range(len(lm.tokenizer)) if i not in special]
        >>> ref = weight[keep].norm(dim=-1).mean().item()
        >>> abs(lm.embedding_norm() - ref) < 1e-6
        True
        """
        self._require_tokenizer("embedding_norm")
        if self._embedding_norm is None:
            weight = self.model.get_input_embeddings().weight.detach()
            rows = min(len(self.tokenizer), weight.shape[0])
            keep = torch.ones(rows, dtype=torch.bool)
            special = [i for i in self.tokenizer.all_special_ids if i < rows]
            keep[special] = False
            norms = weight[:rows][keep.to(weight.device)].float().norm(dim=-1)
            self._embedding_norm = float(norms.mean())
        return self._embedding_norm

    # ---------------------------------------------------------- forward
    def decoder(self):
        """The HF decoder stack (the model without its output layer).

        Returns
        -------
        torch.nn.Module
            E.g. ``LlamaModel``: takes ``inputs_embeds``, returns
            ``last_hidden_state``.

        Example
        -------
        >>> _ = torch.manual_seed(0)
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=20, hidden_size=8, intermediate_size=16,
        ...     num_hidden_layers=1, num_attention_heads=2,
        ... )
        >>> lm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> lm.decoder() is lm.model.model
        True
        """
        base = getattr(self.model, "model", None)
        if isinstance(base, torch.nn.Module):
            return base
        return self.model.get_decoder()

    def _training_decoder(self):
        """The decoder to run a training forward with (compiled if asked).

        Returns
        -------
        callable
            ``torch.compile(decoder, dynamic=True)`` with
            ``compile_training``, else the decoder itself.
        """
        decoder = self.decoder()
        if not self.compile_training:
            return decoder
        if "decoder" not in self._compiled:
            self._compiled["decoder"] = torch.compile(decoder, dynamic=True)
        return self._compiled["decoder"]

    def _run_decoder(self, use_compiled, **kwargs):
        if not use_compiled:
            return self.decoder()(**kwargs)
        if self._compiled.get("ran"):
            return self._training_decoder()(**kwargs)
        try:  # the first call compiles
            out = self._training_decoder()(**kwargs)
            self._compiled["ran"] = True
            return out
        except Exception as err:  # no compiler, unsupported op, ...
            logger.warning(
                "CausalLM: torch.compile of the decoder failed (%s: %s); "
                "training continues with the eager decoder",
                type(err).__name__,
                str(err).splitlines()[0] if str(err) else "",
            )
            self.compile_training = False
            self._compiled.clear()
            return self.decoder()(**kwargs)

    def head(self, hidden):
        """Logits of hidden states: the output layer, then the model's
        final logit soft-capping if its config has one (e.g. Gemma 2).

        Arguments
        ---------
        hidden : torch.Tensor
            ``(..., hidden)`` last hidden states.

        Returns
        -------
        torch.Tensor
            ``(..., vocab)`` in the model dtype.

        Example
        -------
        >>> _ = torch.manual_seed(0)
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=20, hidden_size=8, intermediate_size=16,
        ...     num_hidden_layers=1, num_attention_heads=2,
        ... )
        >>> lm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> hidden = torch.randn(2, 8)
        >>> torch.equal(lm.head(hidden), lm.model.lm_head(hidden))
        True
        >>> lm.config.final_logit_softcapping = 0.5
        >>> bool(lm.head(100 * hidden).abs().max() <= 0.5)
        True
        """
        logits = self.model.get_output_embeddings()(hidden)
        cap = getattr(self.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def forward(
        self,
        inputs_embeds,
        attention_mask,
        position_ids=None,
        past_key_values=None,
        use_cache=False,
        logits_at=None,
        labels=None,
        reduction="mean",
    ):
        """Runs the LM on embeddings (and its next-token loss with labels).

        Training goes through ``forward`` with ``labels`` (not through
        :meth:`loss`, which calls it): a module wrapped in
        ``DistributedDataParallel`` averages gradients only of what its
        wrapper's ``forward`` computed (see docs/design.md, "Engineering
        rules").

        Arguments
        ---------
        inputs_embeds : torch.Tensor
            ``(batch, len, hidden)`` (cast to the model dtype).
        attention_mask : torch.Tensor
            ``(batch, len)`` bool or 0/1 (with ``past_key_values``:
            ``(batch, past_len + len)``, HF style).
        position_ids : torch.LongTensor, optional
            ``(batch, len)``; default ``cumsum(mask) - 1`` clamped at 0.
        past_key_values : transformers.Cache, optional
            A KV cache to continue from.
        use_cache : bool
            Return the updated KV cache.
        logits_at : torch.BoolTensor, optional
            ``(batch, len)``; compute logits only at these positions,
            returned flattened as ``(n, vocab)``.
        labels : torch.LongTensor, optional
            ``(batch, len)`` aligned with the inputs (HF style: the label
            at ``t`` is the token at ``t``, predicted from position
            ``t - 1``; ``-100`` is ignored): the output then holds the
            ``loss``, and ``logits`` only where a next token is labelled
            (not with ``logits_at``).
        reduction : str
            Of the loss: ``"mean"`` over labelled tokens, ``"sum"``, or
            ``"none"`` (per labelled token, in row-major order).

        Returns
        -------
        LMOutput
            ``hidden_states``, ``logits``, ``past_key_values``, ``loss``.

        Example
        -------
        >>> _ = torch.manual_seed(0)
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=20, hidden_size=8, intermediate_size=16,
        ...     num_hidden_layers=1, num_attention_heads=2,
        ... )
        >>> lm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> embeds = lm.embed(torch.tensor([[1, 5, 6], [1, 7, 0]]))
        >>> mask = torch.tensor([[1, 1, 1], [1, 1, 0]]).bool()
        >>> out = lm(embeds, mask)
        >>> out.logits.shape
        torch.Size([2, 3, 20])
        >>> alone = lm(embeds[1:, :2], mask[1:, :2])  # row 1 without padding
        >>> torch.allclose(alone.logits[0], out.logits[1, :2], atol=1e-6)
        True
        >>> lm(embeds, mask, logits_at=mask).logits.shape
        torch.Size([5, 20])
        >>> labels = torch.tensor([[-100, 5, 6], [-100, 7, -100]])
        >>> out = lm(embeds, mask, labels=labels)
        >>> torch.allclose(out.loss, lm.model(
        ...     inputs_embeds=embeds[:1], labels=labels[:1]).loss * 2 / 3
        ...     + lm.model(inputs_embeds=embeds[1:, :2],
        ...                labels=labels[1:, :2]).loss / 3)
        True
        """
        if inputs_embeds.dim() != 3:
            raise ValueError(
                "inputs_embeds must be (batch, len, hidden); got shape "
                f"{tuple(inputs_embeds.shape)}"
            )
        batch, length = inputs_embeds.shape[:2]
        if (
            attention_mask.dim() != 2
            or attention_mask.shape[0] != batch
            or attention_mask.shape[1] < length
        ):
            raise ValueError(
                f"attention_mask must be (batch={batch}, >= len={length}); "
                f"got shape {tuple(attention_mask.shape)}"
            )
        targets = None
        if labels is not None:
            if logits_at is not None:
                raise ValueError("give labels or logits_at, not both")
            if labels.shape != (batch, length):
                raise ValueError(
                    "labels must be (batch, len) like inputs_embeds[..., 0]; "
                    f"got {tuple(labels.shape)} vs {(batch, length)}"
                )
            logits_at, targets = next_token_targets(labels)
        if position_ids is None:
            position_ids = positions_from_mask(attention_mask, length)
        if inputs_embeds.dtype != self.dtype:
            inputs_embeds = inputs_embeds.to(self.dtype)
        use_compiled = (
            self.compile_training
            and past_key_values is None
            and not use_cache
            and torch.is_grad_enabled()
        )
        out = self._run_decoder(
            use_compiled,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask.long(),
            position_ids=position_ids,
            use_cache=use_cache,
            **{cache_keyword(self.decoder()): past_key_values},
        )
        hidden = out.last_hidden_state
        if logits_at is None:
            logits = self.head(hidden)
        else:
            if logits_at.shape != (batch, length):
                raise ValueError(
                    f"logits_at must be (batch={batch}, len={length}); got "
                    f"shape {tuple(logits_at.shape)}"
                )
            selected = hidden[logits_at.bool()]
            logits = self.head(selected) if selected.shape[0] else None
        cache = out.past_key_values if use_cache else None
        loss = None
        if targets is not None:
            loss = next_token_loss(
                lambda where: logits, labels, hidden, reduction
            )
        return LMOutput(hidden, logits, cache, loss)

    def loss(
        self,
        inputs_embeds,
        attention_mask,
        labels,
        position_ids=None,
        reduction="mean",
    ):
        """Next-token cross-entropy, with logits only where labels exist.

        The loss of ``self(..., labels=labels)`` (see :meth:`forward`).

        Arguments
        ---------
        inputs_embeds : torch.Tensor
            ``(batch, len, hidden)``.
        attention_mask : torch.Tensor
            ``(batch, len)``.
        labels : torch.LongTensor
            ``(batch, len)`` aligned with the inputs (HF style: the label
            at ``t`` is the token at ``t``, predicted from position
            ``t - 1``); ``-100`` is ignored.
        position_ids : torch.LongTensor, optional
            Default from the mask.
        reduction : str
            ``"mean"`` over labelled tokens, ``"sum"``, or ``"none"``
            (per labelled token, in row-major order).

        Returns
        -------
        torch.Tensor
            The loss (float32).

        Example
        -------
        >>> _ = torch.manual_seed(0)
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=20, hidden_size=8, intermediate_size=16,
        ...     num_hidden_layers=1, num_attention_heads=2,
        ... )
        >>> lm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> ids = torch.tensor([[1, 5, 6, 7]])
        >>> labels = torch.tensor([[-100, -100, 6, 7]])
        >>> loss = lm.loss(lm.embed(ids), torch.ones(1, 4).bool(), labels)
        >>> torch.allclose(loss, lm.model(input_ids=ids, labels=labels).loss)
        True
        """
        return self(
            inputs_embeds,
            attention_mask,
            position_ids=position_ids,
            labels=labels,
            reduction=reduction,
        ).loss

    # --------------------------------------------------------- generate
    @torch.no_grad()
    def generate(
        self,
        inputs_embeds,
        attention_mask,
        max_new_tokens=64,
        num_beams=1,
        do_sample=False,
        temperature=1.0,
        top_p=1.0,
        use_cache=True,
        min_new_tokens=0,
        repetition_penalty=1.0,
        **generate_kwargs,
    ):
        """Generates continuations of (right-padded) prompt embeddings.

        The prompts are moved to left padding with one vectorised gather
        (position ids come from the mask, so a prompt decodes the same alone
        or in a padded batch). With ``use_cache=True`` decoding is HF
        ``generate`` with a KV cache that reserves room for the new tokens
        (``kv_cache.reserved_cache``: each step writes one position where
        HF's default cache copies every cached one; same tokens), unless
        ``generate_kwargs`` choose a cache; ``use_cache=False`` runs a plain
        loop that recomputes the whole sequence at every step (greedy or
        sampling; a reference and a benchmark baseline, since HF always
        caches when given ``inputs_embeds``).

        Arguments
        ---------
        inputs_embeds : torch.Tensor
            ``(batch, len, hidden)`` prompt embeddings.
        attention_mask : torch.Tensor
            ``(batch, len)``; any padding side works, right is the
            convention.
        max_new_tokens : int
            Maximum number of generated tokens.
        num_beams : int
            Beam search when > 1 (needs ``use_cache=True``).
        do_sample : bool
            Sample instead of greedy/beam decoding.
        temperature : float
            Sampling temperature (only with ``do_sample``).
        top_p : float
            Nucleus sampling mass (only with ``do_sample``).
        use_cache : bool
            Use the KV cache.
        min_new_tokens : int
            EOS is forbidden before this many tokens.
        repetition_penalty : float
            HF's definition (:func:`apply_repetition_penalty`) over the
            tokens generated so far in the sample (or beam); the prompt
            does not count (it is embeddings, not ids). 1.0 (default):
            none, and decoding is exactly what it is without the option.
            The cached path applies it as :class:`RepetitionPenalty`, not
            through HF's ``repetition_penalty`` field (see there why).
        **generate_kwargs
            More ``transformers.GenerationConfig`` fields (cached path
            only).

        Returns
        -------
        torch.LongTensor
            ``(batch, new_len)`` generated tokens only; after the first EOS
            every token is the pad id.

        Example
        -------
        >>> _ = torch.manual_seed(0)
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=20, hidden_size=8, intermediate_size=16,
        ...     num_hidden_layers=1, num_attention_heads=2,
        ... )
        >>> lm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> embeds = lm.embed(torch.tensor([[1, 5, 6], [1, 7, 0]]))
        >>> mask = torch.tensor([[1, 1, 1], [1, 1, 0]]).bool()
        >>> cached = lm.generate(embeds, mask, max_new_tokens=4)
        >>> cached.shape[0], cached.shape[1] <= 4
        (2, True)
        >>> torch.equal(cached, lm.generate(embeds, mask, 4, use_cache=False))
        True
        """
        if not repetition_penalty > 0:
            raise ValueError(
                "repetition_penalty must be > 0 (1.0: none); got "
                f"{repetition_penalty}"
            )
        if attention_mask.shape != inputs_embeds.shape[:2]:
            raise ValueError(
                "attention_mask must match inputs_embeds[..., 0]; got "
                f"{tuple(attention_mask.shape)} vs "
                f"{tuple(inputs_embeds.shape[:2])}"
            )
        if bool((attention_mask.long().sum(1) == 0).any()):
            raise ValueError("generate got a prompt with no valid position")
        embeds, mask = left_align(inputs_embeds, attention_mask)
        embeds = embeds.to(self.dtype)
        if not use_cache:
            if num_beams > 1 or generate_kwargs:
                raise ValueError(
                    "use_cache=False supports greedy decoding and sampling "
                    "only; got num_beams="
                    f"{num_beams} and options {sorted(generate_kwargs)}"
                )
            return self._generate_uncached(
                embeds,
                mask,
                max_new_tokens,
                do_sample,
                temperature,
                top_p,
                min_new_tokens,
                repetition_penalty,
            )
        options = {
            "max_new_tokens": max_new_tokens,
            "min_new_tokens": min_new_tokens,
            "num_beams": num_beams,
            "do_sample": do_sample,
            "use_cache": True,
            "eos_token_id": self.eos_ids,
            "pad_token_id": self.pad_id,
            "bos_token_id": self.bos_id,
        }
        if do_sample:
            options.update(temperature=temperature, top_p=top_p, top_k=0)
        options.update(generate_kwargs)
        config = transformers.GenerationConfig(**options)
        extra = self._reserved_cache_kwargs(
            embeds.shape[1] + max_new_tokens, generate_kwargs
        )
        if repetition_penalty != 1.0:
            extra["logits_processor"] = transformers.LogitsProcessorList(
                [RepetitionPenalty(repetition_penalty)]
            )
        tokens = self.model.generate(
            inputs_embeds=embeds,
            attention_mask=mask,
            generation_config=config,
            **extra,
        )
        return truncate_after_eos(tokens, self.eos_ids, self.pad_id)

    def _reserved_cache_kwargs(self, capacity, generate_kwargs):
        """``{keyword: cache}`` for HF ``generate``: a cache reserving
        ``capacity`` positions per row (``kv_cache.reserved_cache``; HF's
        default ``DynamicCache`` copies every cached position at every
        step), or nothing when the caller chose a cache itself or the model
        does not decode with HF's dynamic cache."""
        chosen = {"cache", "past_key_values", "cache_implementation"}
        supports = getattr(
            self.model, "_supports_default_dynamic_cache", lambda: True
        )
        if chosen & set(generate_kwargs) or not supports():
            return {}
        config = self.model.config.get_text_config(decoder=True)
        cache = reserved_cache(config, capacity)
        return {cache_keyword(self.model): cache}

    def _generate_uncached(
        self,
        embeds,
        mask,
        max_new_tokens,
        do_sample,
        temperature,
        top_p,
        min_new_tokens,
        repetition_penalty=1.0,
    ):
        """Decoding loop without KV cache on left-padded prompts."""

        def next_logits(token):
            nonlocal embeds, mask
            if token is not None:
                embeds = torch.cat([embeds, self.embed(token[:, None])], 1)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            last = torch.zeros(mask.shape, dtype=torch.bool, device=mask.device)
            last[:, -1] = True
            return self.forward(embeds, mask, logits_at=last).logits.float()

        def sample(logits):
            return sample_top_p(logits / temperature, top_p)

        return decode_loop(
            next_logits,
            max_new_tokens,
            self.eos_ids,
            self.pad_id,
            pick=sample if do_sample else None,
            min_new_tokens=min_new_tokens,
            repetition_penalty=repetition_penalty,
        )


def sample_top_p(logits, top_p=1.0, generator=None):
    """Draws one token per row from the nucleus of ``softmax(logits)``.

    The nucleus is the smallest set of most probable tokens whose mass
    reaches ``top_p`` (at least one token).

    Arguments
    ---------
    logits : torch.Tensor
        ``(batch, vocab)`` (already divided by the temperature).
    top_p : float
        Nucleus mass in ``(0, 1]``.
    generator : torch.Generator, optional
        Random generator.

    Returns
    -------
    torch.LongTensor
        ``(batch,)`` token ids.

    Example
    -------
    >>> logits = torch.tensor([[0.0, 5.0, 0.0], [9.0, 0.0, 0.0]])
    >>> sample_top_p(logits, top_p=0.5)
    tensor([1, 0])
    """
    probs = torch.softmax(logits.float(), -1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(-1, descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs
        sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def token_embeddings(llm):
    """The LLM's input embedding table, detached (for initialisations).

    Arguments
    ---------
    llm : CausalLM
        The wrapped LLM.

    Returns
    -------
    torch.Tensor
        ``(vocab, hidden)``, detached from the frozen weights.

    Example
    -------
    >>> config = transformers.LlamaConfig(
    ...     vocab_size=20, hidden_size=8, intermediate_size=16,
    ...     num_hidden_layers=1, num_attention_heads=2,
    ... )
    >>> model = transformers.LlamaForCausalLM(config)
    >>> table = token_embeddings(CausalLM.from_model(model, freeze=False))
    >>> table.shape, model.lm_head.weight.requires_grad, table.requires_grad
    (torch.Size([20, 8]), True, False)
    """
    return llm.model.get_input_embeddings().weight.detach()


def token_embedding_norm(llm):
    """Mean L2 norm of the LLM's token embeddings (for scale matching).

    Arguments
    ---------
    llm : CausalLM
        The wrapped LLM.

    Returns
    -------
    float
        ``llm.embedding_norm()``.

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
    >>> lm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
    >>> token_embedding_norm(lm) == lm.embedding_norm() > 0
    True
    """
    return llm.embedding_norm()
