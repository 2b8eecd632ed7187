"""LiSTEN's dynamic prompt selection (DPS): a pool of learnable key-value
soft prompts chosen per sample, plus a fixed soft-prompt baseline.

:class:`PromptPool` holds ``pool_size`` keys ``(pool_size, key_dim)`` and
as many values, each one soft token ``(pool_size, llm_dim)``. For every
sample a query ``q`` is pooled from the audio tokens and (optionally) the
instruction embeddings, compared with the keys, and ``k`` values become
soft-prompt tokens ``(batch, k, llm_dim)`` placed before BOS.

Sources. "Paper": LiSTEN (Interspeech 2025) as far as its public
summaries go. "Development code": the first author's early copy of the
LiSTEN code (a SALMONN fork, ``models/prompt_pools.py``). "Later code":
the authors' later public prompt-pool code (a ``PromptPool`` with
``sim_strategy``, ``att_strategy`` and ``residual_strategy``; our search
did not identify its repository). Formulas carry over; the code is ours.

Selectors (``selector=``):

* ``"similarity"`` (paper: the best selector; development code):
  ``s_i = cos(q, key_i)``; the top-k values are returned in decreasing
  score order. Top-k has no gradient, so the keys learn only through the
  key loss.
* ``"attention"`` (later code, ``att_strategy``): weights
  ``a = softmax(q . K^T / sqrt(key_dim))`` over the **whole** pool; in
  training, optional dropout on ``a`` (``attention_dropout``, that code's
  default is 0.1, applied before the top-k as there); the ``k`` largest
  weights pick the entries and each chosen value is multiplied by its raw
  weight, ``prompts_j = a_(j) * value_(j)``, best first (not renormalised:
  the k weights sum to at most 1). The entries "used" (``indices``, usage
  records) are those k. The keys and the query get gradient from the LLM
  loss through the weights. Auxiliary loss ``entropy_loss`` =
  ``mean over batch of -sum_i a_i log(a_i + 1e-8)`` over the whole pool
  (that code's loss of this strategy), returned in
  ``PromptPoolOutput.aux_losses`` with its own weight (the recipe's
  ``aux_loss_weights: {entropy_loss: ...}``). With a positive weight it
  lowers the entropy (sharper attention); that code's comment says
  "encourage balanced attention", which would need a negative weight: we
  keep the formula and leave the sign to the weight. That code's optional
  weight threshold (off by default there) is not implemented.
* ``"residual"`` (later code, ``residual_strategy``): iterative greedy
  selection, ``k`` steps. ``r_0 = q``; at step ``t`` the entry
  ``i_t = argmax_i cos(query_proj(r_t), key_i)`` is chosen (that code
  takes the top-1 of the softmax of the same cosines, the same entry), its
  value is prompt ``t``, and ``r_(t+1) = r_t - value_(i_t)``. The residual
  lives in the space of the values: ``q`` is the mean of LLM-width tokens
  and each value is an LLM-width token, so ``r_t`` is subtracted there
  (before ``query_proj``), and ``query_proj`` (identity when
  ``key_dim == llm_dim``, that code's setting where keys have the LLM
  width) maps each residual to the key space for the comparison. An entry
  may be chosen more than once (that code does not exclude chosen ones);
  the usage records then count it each time. Its loss is the key loss
  over the steps' residual queries (``key_loss="softmax_sum"`` is that
  code's). That code's optional early stop (batch norm of the residual and
  a norm threshold, off by default) is not implemented. ``scores`` holds
  the first step's cosines.
* ``"attention_topk"`` (our reading; this was ``"attention"`` before the
  authors' code was found): the same weights ``a``; top-k; the chosen
  values are multiplied by ``k * a_i / sum_topk(a)`` (renormalised over the
  k, scaled by ``k`` so that equal weights return the values unchanged).
* ``"residual_base"`` (our reading; this was ``"residual"``): a shared
  learnable base prompt ``B`` of ``base_prompt_len`` tokens; the output is
  ``B[:k] + values[top-k]`` (position ``j`` gets the base token ``j`` plus
  the ``j``-th best value) with the selection of ``"similarity"``. Values
  start near zero (N(0, 0.02)) and the base prompt at the mean embedding.

Key losses (``key_loss=``), added to the LLM loss with a weight (LiSTEN's
lambda = 1). Each selected entry ``i_t`` (``t = 1..k``) has a query
``q_t``: the pooled query for every selector except ``"residual"``, whose
``q_t`` is the projected residual of step ``t``. Hats are L2-normalised
vectors.

* ``"distance_mean"`` (default; ``"l2"`` is its former name and still
  accepted): ``mean over batch and t of ||q^_t - key^_(i_t)||``; the
  ``mean_i ||q - k_i||`` of ``docs/design.md`` ("Lobes") on normalised
  vectors (our reading; ``sqrt(2 - 2 cos)``, scale-free and in agreement
  with the cosine ranking).
* ``"distance_sum"`` (our reading): the same distances summed over the k
  selected entries, averaged over the batch (grows with k).
* ``"softmax_sum"`` (development code, its "diversity_loss", and the
  later code's residual loss): ``-mean over batch of sum_t
  softmax_i(cos(q_t, key_i))[i_t]``, the softmax over the whole pool.
* ``"cosine"`` (ours): ``mean(1 - cos(q_t, key_(i_t)))``.
* ``"none"``.

By default the query is detached inside the key loss (``detach_query=
True``, ours), so the key loss moves the keys towards the queries, not the
audio tokens towards the keys; the development code does not detach it
(``detach_query=False``). For ``"residual"`` the pooled query is detached
but the values subtracted from it keep their gradient, as in the later
code.

The number of prompts ``k`` is fixed, or (``stochastic_k``) drawn
uniformly from ``[1, k_max]`` once per training forward from the module's
own seeded generator, with ``k_eval`` in eval mode. ``k_max`` defaults to
``floor(0.4 * pool_size)`` as in the development code.

Usage recording for analysis: ``start_recording()``, then after each
forward ``record(tags)`` with one tag (e.g. the task name) per sample
pairs the tags with that forward's selected indices; ``usage_counts(tag)``
counts how often each pool entry was used; ``stop_recording()`` ends it.

:class:`SoftPrompt` is the baseline: ``num_tokens`` learnable tokens
shared by all inputs, with the same output type.

Authors
 * audiollm-lobes developers, 2026
"""

import math
from collections import Counter
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

SELECTORS = (
    "similarity",
    "attention",
    "residual",
    "attention_topk",
    "residual_base",
)
KEY_LOSSES = ("distance_mean", "distance_sum", "softmax_sum", "cosine", "none")
#: Former key-loss names, still accepted.
KEY_LOSS_ALIASES = {"l2": "distance_mean"}
QUERY_SOURCES = ("audio_text", "audio")
#: Added inside the log of the attention selector's entropy (as the
#: authors' later code does).
ENTROPY_EPS = 1e-8


class PromptPoolOutput(NamedTuple):
    """What a prompt lobe returns.

    Attributes
    ----------
    prompts : torch.Tensor
        Soft-prompt tokens ``(batch, k, llm_dim)``.
    prompt_mask : torch.Tensor
        Boolean ``(batch, k)``, True = real prompt (all True here; kept so
        that callers can treat prompts like any masked sequence).
    indices : torch.Tensor
        Selected pool entries ``(batch, k)`` (long), best first.
    scores : torch.Tensor or None
        Selection scores over the whole pool ``(batch, pool_size)``: cosine
        similarities (``similarity``, ``residual_base``; ``residual``: those
        of its first step) or attention weights (``attention``,
        ``attention_topk``); None for :class:`SoftPrompt`.
    key_loss : torch.Tensor
        Scalar auxiliary loss (0 when not applicable).
    aux_losses : dict or None
        Further scalar auxiliary losses by name, each to be added to the
        training loss with its own weight (``aux_loss_weights[name]``):
        ``{"entropy_loss": ...}`` for the ``attention`` selector, ``{}``
        otherwise; None when a lobe gives none.

    Example
    -------
    >>> out = PromptPoolOutput(torch.zeros(1, 2, 4), torch.ones(1, 2),
    ...                        torch.zeros(1, 2), None, torch.tensor(0.0))
    >>> out.prompts.shape, out.aux_losses
    (torch.Size([1, 2, 4]), None)
    """

    prompts: torch.Tensor
    prompt_mask: torch.Tensor
    indices: torch.Tensor
    scores: Optional[torch.Tensor]
    key_loss: torch.Tensor
    aux_losses: Optional[dict] = None


def mean_embedding(value_init, llm_dim, name="value_init"):
    """Returns the mean embedding used to initialise soft prompts.

    Arguments
    ---------
    value_init : torch.Tensor or None
        The LLM's embedding matrix ``(vocab, llm_dim)`` (its row mean is
        used), a single vector ``(llm_dim,)``, or None (zeros).
    llm_dim : int
        Expected width.
    name : str
        Argument name for error messages.

    Returns
    -------
    torch.Tensor
        ``(llm_dim,)`` float32, detached.

    Example
    -------
    >>> mean_embedding(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), 2)
    tensor([2., 3.])
    """
    if value_init is None:
        return torch.zeros(llm_dim)
    value_init = torch.as_tensor(value_init).detach()
    matrix = value_init.dim() == 2 and value_init.shape[1] == llm_dim
    if not matrix and value_init.shape != (llm_dim,):
        raise ValueError(
            f"{name} has shape {tuple(value_init.shape)}; expected the LLM "
            f"embedding matrix (vocab, {llm_dim}) or a vector ({llm_dim},)"
        )
    if value_init.device.type == "meta":
        # Shapes-only construction (e.g. paper-scale configs on "meta").
        return torch.zeros(llm_dim)
    if matrix:
        value_init = value_init.float().mean(dim=0)
    return value_init.float().cpu().clone()


def _noisy(mean, shape, std=0.02):
    """``mean + N(0, std)`` noise of ``shape``, on the default device.

    Arguments
    ---------
    mean : torch.Tensor
        ``(dim,)``.
    shape : tuple
        Output shape ``(rows, dim)``.
    std : float
        Noise standard deviation.

    Returns
    -------
    torch.Tensor
        ``(rows, dim)``.

    Example
    -------
    >>> _noisy(torch.ones(3), (2, 3)).shape
    torch.Size([2, 3])
    """
    noise = torch.randn(shape) * std
    return mean.to(noise.device) + noise


def masked_mean(x, mask):
    """Mean over the valid positions of each sample.

    Arguments
    ---------
    x : torch.Tensor
        ``(batch, time, dim)``.
    mask : torch.Tensor
        Boolean ``(batch, time)``, True = valid.

    Returns
    -------
    torch.Tensor
        ``(batch, dim)``; zeros for a sample with no valid position.

    Example
    -------
    >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])
    >>> masked_mean(x, torch.tensor([[True, True, False]]))
    tensor([[2.]])
    """
    total, count = _masked_sum(x, mask)
    return total / count.clamp(min=1)[:, None]


def _masked_sum(x, mask):
    """Sum and count of the valid positions (padding may hold anything).

    Arguments
    ---------
    x : torch.Tensor
        ``(batch, time, dim)``.
    mask : torch.Tensor
        Boolean ``(batch, time)``.

    Returns
    -------
    total : torch.Tensor
        ``(batch, dim)``.
    count : torch.Tensor
        ``(batch,)`` in ``x``'s dtype.

    Example
    -------
    >>> _masked_sum(torch.ones(1, 2, 1), torch.tensor([[True, False]]))
    (tensor([[1.]]), tensor([1.]))
    """
    x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype))
    return x.sum(dim=1), mask.sum(dim=1).to(x.dtype)


def _check_tokens(x, mask, dim, name):
    """Validates ``(batch, time, dim)`` tokens and returns their mask.

    Arguments
    ---------
    x : torch.Tensor
        Tokens.
    mask : torch.Tensor or None
        Boolean mask ``(batch, time)`` or None (all valid).
    dim : int
        Expected last dimension.
    name : str
        Argument name for error messages.

    Returns
    -------
    torch.Tensor
        Boolean mask.

    Example
    -------
    >>> _check_tokens(torch.zeros(2, 3, 4), None, 4, "audio").shape
    torch.Size([2, 3])
    """
    if x.dim() != 3 or x.shape[-1] != dim:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; expected (batch, time, {dim})"
        )
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if mask.shape != x.shape[:2] or mask.dtype != torch.bool:
        raise ValueError(
            f"{name}_mask has shape {tuple(mask.shape)} and dtype "
            f"{mask.dtype}; expected a torch.bool mask {tuple(x.shape[:2])} "
            "(True = valid)"
        )
    return mask


class PromptPool(nn.Module):
    """Pool of learnable key-value soft prompts with per-sample selection.

    See the module docstring for the selectors, the key losses, their
    sources and the stochastic number of prompts.

    Arguments
    ---------
    llm_dim : int
        Width of the LLM's token embeddings (and of each value).
    pool_size : int
        Number of key-value pairs (LiSTEN: 30).
    key_dim : int, optional
        Width of the keys (default ``llm_dim``). When it differs, a
        trainable ``query_proj`` Linear maps the query to it.
    selector : str
        ``"similarity"``, ``"attention"``, ``"residual"`` (the authors'),
        ``"attention_topk"`` or ``"residual_base"`` (our readings).
    k : int, optional
        Fixed number of prompts. Give either ``k`` or use ``stochastic_k``.
    k_max : int, optional
        Largest stochastic k (default ``max(1, floor(0.4 * pool_size))``).
    stochastic_k : bool, optional
        Draw k uniformly from ``[1, k_max]`` at each training forward.
        Default: True when ``k`` is None, else False.
    k_eval : int, optional
        k in eval mode (default ``k_max`` when stochastic, else ``k``).
    key_loss : str
        ``"distance_mean"`` (distance of L2-normalised vectors, averaged;
        ``"l2"`` is accepted for it), ``"distance_sum"`` (summed over the
        selected entries), ``"softmax_sum"`` (the development code's),
        ``"cosine"`` (``1 - cos``) or ``"none"``.
    query_source : str
        ``"audio_text"``: masked mean over the valid audio tokens and the
        valid instruction embeddings together; ``"audio"``: audio only.
    value_init : torch.Tensor, optional
        LLM embedding matrix ``(vocab, llm_dim)`` (or its mean vector);
        values start at its mean plus N(0, 0.02) noise (at N(0, 0.02) when
        None).
    base_prompt_len : int, optional
        Length of the ``residual_base`` selector's base prompt (default:
        the largest k it can be asked for, ``max(k or k_max, k_eval)``).
    detach_query : bool
        Detach the query inside the key loss.
    attention_dropout : float
        Dropout probability on the ``attention`` selector's weights in
        training (before its top-k and its entropy, as in the authors'
        code; drawn from torch's global generator). Default 0.
    seed : int, optional
        Seed of the generator drawing the stochastic k (default: drawn
        from torch's global generator, so ``torch.manual_seed`` or
        SpeechBrain's ``seed_everything`` before construction makes the
        draws reproducible).

    Example
    -------
    >>> pool = PromptPool(llm_dim=8, pool_size=10, seed=0)
    >>> audio = torch.randn(2, 5, 8)
    >>> text = torch.randn(2, 3, 8)
    >>> out = pool(audio, text=text)
    >>> 1 <= out.prompts.shape[1] <= 4  # k_max = floor(0.4 * 10)
    True
    >>> _ = pool.eval()
    >>> pool(audio, text=text).indices.shape  # k_eval = k_max
    torch.Size([2, 4])
    """

    def __init__(
        self,
        llm_dim,
        pool_size=30,
        key_dim=None,
        selector="similarity",
        k=None,
        k_max=None,
        stochastic_k=None,
        k_eval=None,
        key_loss="distance_mean",
        query_source="audio_text",
        value_init=None,
        base_prompt_len=None,
        detach_query=True,
        attention_dropout=0.0,
        seed=None,
    ):
        super().__init__()
        if int(llm_dim) != llm_dim or llm_dim < 1:
            raise ValueError(f"PromptPool: llm_dim={llm_dim!r}; expected >= 1")
        if int(pool_size) != pool_size or pool_size < 1:
            raise ValueError(
                f"PromptPool: pool_size={pool_size!r}; expected an int >= 1"
            )
        key_dim = llm_dim if key_dim is None else key_dim
        if int(key_dim) != key_dim or key_dim < 1:
            raise ValueError(f"PromptPool: key_dim={key_dim!r}; expected >= 1")
        key_loss = KEY_LOSS_ALIASES.get(key_loss, key_loss)
        for name, value, allowed in (
            ("selector", selector, SELECTORS),
            ("key_loss", key_loss, KEY_LOSSES),
            ("query_source", query_source, QUERY_SOURCES),
        ):
            if value not in allowed:
                raise ValueError(
                    f"PromptPool: {name}={value!r}; expected one of {allowed}"
                )
        if not 0.0 <= attention_dropout < 1.0:
            raise ValueError(
                f"PromptPool: attention_dropout={attention_dropout!r}; "
                "expected a probability in [0, 1)"
            )
        if attention_dropout and selector != "attention":
            raise ValueError(
                "PromptPool: attention_dropout is only used by the "
                f"'attention' selector, not {selector!r}"
            )
        if stochastic_k is None:
            stochastic_k = k is None
        if stochastic_k and k is not None:
            raise ValueError(
                "PromptPool: give a fixed k or stochastic_k=True, not both"
            )
        if not stochastic_k and k is None:
            raise ValueError(
                "PromptPool: stochastic_k=False needs a fixed k (an int)"
            )
        if k_max is None:
            k_max = max(1, int(0.4 * pool_size))
        self._check_k("k_max", k_max, pool_size)
        if k is not None:
            self._check_k("k", k, pool_size)
        if k_eval is None:
            k_eval = k_max if stochastic_k else k
        self._check_k("k_eval", k_eval, pool_size)

        self.llm_dim = llm_dim
        self.pool_size = pool_size
        self.key_dim = key_dim
        self.selector = selector
        self.k = k
        self.k_max = k_max
        self.stochastic_k = stochastic_k
        self.k_eval = k_eval
        self.key_loss_type = key_loss
        self.query_source = query_source
        self.detach_query = detach_query
        self.attention_dropout = float(attention_dropout)
        self.last_k = None

        if seed is None:
            # drawn from torch's global generator, so that a seeded run
            # (``seed_everything``) draws the same ks every time
            seed = int(torch.randint(2**62, (1,), device="cpu").item())
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)

        mean = mean_embedding(value_init, llm_dim)
        # Keys as in the authors' code: N(0, 1) * 0.01.
        self.keys = nn.Parameter(torch.randn(pool_size, key_dim) * 0.01)
        if selector == "residual_base":
            if base_prompt_len is None:
                base_prompt_len = max(k if k is not None else k_max, k_eval)
            if int(base_prompt_len) != base_prompt_len or base_prompt_len < 1:
                raise ValueError(
                    f"PromptPool: base_prompt_len={base_prompt_len!r}; "
                    "expected an int >= 1"
                )
            self.base_prompt = nn.Parameter(
                _noisy(mean, (base_prompt_len, llm_dim))
            )
            self.values = nn.Parameter(torch.randn(pool_size, llm_dim) * 0.02)
        else:
            if base_prompt_len is not None:
                raise ValueError(
                    "PromptPool: base_prompt_len is only used by the "
                    "residual_base selector"
                )
            self.base_prompt = None
            self.values = nn.Parameter(_noisy(mean, (pool_size, llm_dim)))
        if key_dim != llm_dim:
            self.query_proj = nn.Linear(llm_dim, key_dim)
        else:
            self.query_proj = nn.Identity()

        self.recording = False
        self.records = []
        self._last_indices = None

    @staticmethod
    def _check_k(name, value, pool_size):
        """Checks that ``1 <= value <= pool_size``."""
        if int(value) != value or not 1 <= value <= pool_size:
            raise ValueError(
                f"PromptPool: {name}={value!r}; expected an int in "
                f"[1, pool_size={pool_size}]"
            )

    def extra_repr(self):
        """Summary shown by ``print(module)``."""
        return (
            f"pool_size={self.pool_size}, llm_dim={self.llm_dim}, "
            f"key_dim={self.key_dim}, selector={self.selector}, k={self.k}, "
            f"k_max={self.k_max}, stochastic_k={self.stochastic_k}, "
            f"k_eval={self.k_eval}, key_loss={self.key_loss_type}, "
            f"attention_dropout={self.attention_dropout}"
        )

    def get_extra_state(self):
        """The stochastic-k generator's state, saved with the module.

        ``state_dict()`` (and :class:`audiollm_lobes.brain.TrainableState`)
        include it, so a run resumed from a checkpoint draws the same ks as
        an uninterrupted one.

        Returns
        -------
        dict
            ``{"generator": ByteTensor}``.

        Example
        -------
        >>> pool = PromptPool(4, pool_size=5, seed=0)
        >>> "_extra_state" in pool.state_dict()
        True
        """
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state):
        """Restores the generator state saved by :meth:`get_extra_state`.

        Arguments
        ---------
        state : dict
            ``{"generator": ByteTensor}``.
        """
        if not isinstance(state, dict) or "generator" not in state:
            raise ValueError(
                "PromptPool: extra state must be a dict with a 'generator' "
                f"entry, got {type(state).__name__}"
            )
        self.generator.set_state(state["generator"].cpu())

    def current_k(self, k=None):
        """Returns the number of prompts for the next forward.

        Arguments
        ---------
        k : int, optional
            Explicit k (e.g. for a k_eval sweep); overrides everything.

        Returns
        -------
        int
            ``k`` if given; in eval mode ``k_eval``; in training mode a
            uniform draw from ``[1, k_max]`` (stochastic) or the fixed k.

        Example
        -------
        >>> PromptPool(4, pool_size=5, k=2).current_k()
        2
        """
        if k is not None:
            self._check_k("k", k, self.pool_size)
            return int(k)
        if not self.training:
            return int(self.k_eval)
        if self.stochastic_k:
            draw = torch.randint(
                1, self.k_max + 1, (1,), generator=self.generator
            )
            return int(draw)
        return int(self.k)

    def query(self, audio, audio_mask=None, text=None, text_mask=None):
        """Pools the selection query (before ``query_proj``).

        Arguments
        ---------
        audio : torch.Tensor
            Audio tokens ``(batch, time, llm_dim)``.
        audio_mask : torch.Tensor, optional
            Boolean ``(batch, time)``, True = valid.
        text : torch.Tensor, optional
            Instruction embeddings ``(batch, tokens, llm_dim)``; needed
            when ``query_source == "audio_text"``.
        text_mask : torch.Tensor, optional
            Boolean ``(batch, tokens)``, True = valid.

        Returns
        -------
        torch.Tensor
            ``(batch, llm_dim)``: the mean over all valid audio (and text)
            positions; padding is excluded.

        Example
        -------
        >>> pool = PromptPool(1, pool_size=2, k=1)
        >>> audio = torch.tensor([[[1.0], [5.0]]])
        >>> text = torch.tensor([[[3.0]]])
        >>> pool.query(audio, torch.tensor([[True, False]]), text)
        tensor([[2.]])
        """
        audio_mask = _check_tokens(audio, audio_mask, self.llm_dim, "audio")
        total, count = _masked_sum(audio, audio_mask)
        if self.query_source == "audio_text":
            if text is None:
                raise ValueError(
                    "PromptPool: query_source='audio_text' needs the "
                    "instruction embeddings (text=...); pass them or use "
                    "query_source='audio'"
                )
            text_mask = _check_tokens(text, text_mask, self.llm_dim, "text")
            if text.shape[0] != audio.shape[0]:
                raise ValueError(
                    f"PromptPool: text has batch size {text.shape[0]}; "
                    f"expected {audio.shape[0]} (as audio)"
                )
            text_total, text_count = _masked_sum(
                text.to(audio.dtype), text_mask
            )
            total = total + text_total
            count = count + text_count
        return total / count.clamp(min=1)[:, None]

    def forward(
        self, audio, audio_mask=None, text=None, text_mask=None, k=None
    ):
        """Selects soft prompts for each sample.

        Arguments
        ---------
        audio : torch.Tensor
            Audio tokens ``(batch, time, llm_dim)``.
        audio_mask : torch.Tensor, optional
            Boolean ``(batch, time)``, True = valid.
        text : torch.Tensor, optional
            Instruction embeddings ``(batch, tokens, llm_dim)``.
        text_mask : torch.Tensor, optional
            Boolean ``(batch, tokens)``, True = valid.
        k : int, optional
            Explicit number of prompts (overrides the train/eval rule).

        Returns
        -------
        PromptPoolOutput
            Prompts ``(batch, k, llm_dim)`` and the rest.

        Example
        -------
        >>> pool = PromptPool(6, pool_size=8, k=3, selector="attention",
        ...                   query_source="audio")
        >>> out = pool(torch.randn(2, 4, 6))
        >>> out.prompts.shape, out.scores.shape, list(out.aux_losses)
        (torch.Size([2, 3, 6]), torch.Size([2, 8]), ['entropy_loss'])
        >>> pool = PromptPool(6, pool_size=8, k=3, selector="residual",
        ...                   query_source="audio")
        >>> out = pool(torch.randn(2, 4, 6))
        >>> out.prompts.shape, out.indices.shape
        (torch.Size([2, 3, 6]), torch.Size([2, 3]))
        """
        k = self.current_k(k)
        self.last_k = k
        query = self.query(audio, audio_mask, text, text_mask)
        query = query.to(self.keys.dtype)  # (batch, llm_dim)
        aux_losses = {}
        if self.selector == "residual":
            indices, scores = self._residual_indices(query, k)
            prompts = self.values[indices]  # (batch, k, llm_dim)
            # r_t = q - (values chosen before step t), in the values' space
            before = prompts.cumsum(dim=1) - prompts
            if self.detach_query:
                query = query.detach()
            loss_queries = self.query_proj(query[:, None, :] - before)
        else:
            projected = self.query_proj(query)  # (batch, key_dim)
            prompts, indices, scores = self._select(projected, k, aux_losses)
            loss_queries = projected[:, None, :]
            if self.detach_query:
                loss_queries = loss_queries.detach()
        key_loss = self._key_loss(loss_queries, indices)
        self._last_indices = indices.detach()
        prompt_mask = torch.ones(
            indices.shape, dtype=torch.bool, device=indices.device
        )
        return PromptPoolOutput(
            prompts, prompt_mask, indices, scores, key_loss, aux_losses
        )

    def _select(self, query, k, aux_losses):
        """The selectors with one query per sample (all but ``residual``).

        Arguments
        ---------
        query : torch.Tensor
            Projected query ``(batch, key_dim)``.
        k : int
            Number of prompts.
        aux_losses : dict
            Filled with the selector's auxiliary losses.

        Returns
        -------
        prompts : torch.Tensor
            ``(batch, k, llm_dim)``.
        indices : torch.Tensor
            ``(batch, k)``, best first.
        scores : torch.Tensor
            ``(batch, pool_size)``.
        """
        keys = self.keys
        if self.selector in ("attention", "attention_topk"):
            logits = query @ keys.t() / math.sqrt(self.key_dim)
            scores = logits.softmax(dim=-1)
            if self.selector == "attention" and self.training:
                scores = self._drop_weights(scores)
        else:
            scores = F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).t()
        top_scores, indices = scores.topk(k, dim=-1)
        prompts = self.values[indices]  # (batch, k, llm_dim)
        if self.selector == "attention":
            prompts = prompts * top_scores[..., None]
            plogp = scores * torch.log(scores + ENTROPY_EPS)
            aux_losses["entropy_loss"] = -plogp.sum(dim=-1).mean()
        elif self.selector == "attention_topk":
            weights = top_scores / top_scores.sum(dim=-1, keepdim=True)
            prompts = prompts * (k * weights)[..., None]
        elif self.selector == "residual_base":
            if k > self.base_prompt.shape[0]:
                raise ValueError(
                    f"PromptPool: k={k} exceeds base_prompt_len="
                    f"{self.base_prompt.shape[0]} of the residual_base "
                    "selector"
                )
            prompts = self.base_prompt[:k] + prompts
        return prompts, indices, scores

    def _drop_weights(self, weights):
        """Dropout on attention weights ``(batch, pool_size)``: each is
        zeroed with probability ``attention_dropout`` (a uniform draw from
        torch's global generator below it), the others scaled by
        ``1 / (1 - attention_dropout)``."""
        p = self.attention_dropout
        if p == 0.0:
            return weights
        keep = torch.rand(weights.shape, device=weights.device) >= p
        return weights * keep.to(weights.dtype) / (1.0 - p)

    def _residual_indices(self, query, k):
        """Greedy residual selection (no gradient: the choice is discrete).

        Arguments
        ---------
        query : torch.Tensor
            Pooled query ``(batch, llm_dim)``, before ``query_proj``.
        k : int
            Number of steps.

        Returns
        -------
        indices : torch.Tensor
            ``(batch, k)``: the entry chosen at each step.
        scores : torch.Tensor
            ``(batch, pool_size)``: the first step's cosines.
        """
        with torch.no_grad():
            keys = F.normalize(self.keys, dim=-1)
            total = torch.zeros_like(query)
            indices, scores = [], None
            for _ in range(k):
                residual = self.query_proj(query - total)
                step = F.normalize(residual, dim=-1) @ keys.t()
                scores = step if scores is None else scores
                index = step.argmax(dim=-1)
                indices.append(index)
                total = total + self.values[index]
        return torch.stack(indices, dim=1), scores

    def _key_loss(self, queries, indices):
        """Key loss of the selected entries; see the module docstring.

        Arguments
        ---------
        queries : torch.Tensor
            ``(batch, 1, key_dim)`` (one query for all entries) or
            ``(batch, k, key_dim)`` (one per entry, ``residual``).
        indices : torch.Tensor
            Selected entries ``(batch, k)``.

        Returns
        -------
        torch.Tensor
            Scalar.
        """
        if self.key_loss_type == "none":
            return self.keys.new_zeros(())
        q = F.normalize(queries, dim=-1)
        if self.key_loss_type == "softmax_sum":
            cos = q @ F.normalize(self.keys, dim=-1).t()  # (batch, 1|k, P)
            probs = cos.softmax(dim=-1).expand(-1, indices.shape[1], -1)
            chosen = probs.gather(-1, indices[..., None]).squeeze(-1)
            return -chosen.sum(dim=1).mean()
        keys = F.normalize(self.keys[indices], dim=-1)  # (batch, k, key_dim)
        if self.key_loss_type == "cosine":
            return (1.0 - (q * keys).sum(dim=-1)).mean()
        distance = (q - keys).norm(dim=-1)  # (batch, k)
        if self.key_loss_type == "distance_sum":
            return distance.sum(dim=1).mean()
        return distance.mean()

    def start_recording(self, reset=True):
        """Starts recording which indices each sample uses.

        Arguments
        ---------
        reset : bool
            Clear earlier records.

        Example
        -------
        >>> pool = PromptPool(4, pool_size=5, k=2)
        >>> pool.start_recording()
        >>> pool.recording
        True
        """
        if reset:
            self.records = []
        self.recording = True

    def stop_recording(self):
        """Stops recording (the records are kept).

        Example
        -------
        >>> pool = PromptPool(4, pool_size=5, k=2)
        >>> pool.start_recording(); pool.stop_recording(); pool.recording
        False
        """
        self.recording = False

    def record(self, tags):
        """Pairs per-sample tags with the indices of the latest forward.

        Does nothing unless recording. Each sample adds one record
        ``(tag, indices)`` to ``self.records``, with ``indices`` a tuple of
        ints (best first).

        Arguments
        ---------
        tags : list of str
            One tag per sample of the latest forward (e.g. task names).

        Example
        -------
        >>> pool = PromptPool(4, pool_size=5, k=2).eval()
        >>> pool.start_recording()
        >>> _ = pool(torch.randn(3, 2, 4), text=torch.randn(3, 1, 4))
        >>> pool.record(["asr", "asr", "emotion"])
        >>> int(pool.usage_counts("asr").sum())  # 2 samples x k = 2
        4
        """
        if not self.recording:
            return
        if self._last_indices is None:
            raise RuntimeError(
                "PromptPool.record: no forward has run yet; call it after "
                "the forward whose selections it should record"
            )
        indices = self._last_indices.cpu().tolist()
        tags = list(tags)
        if len(tags) != len(indices):
            raise ValueError(
                f"PromptPool.record: got {len(tags)} tags; expected one per "
                f"sample of the latest forward ({len(indices)})"
            )
        for tag, row in zip(tags, indices):
            self.records.append((tag, tuple(row)))

    def usage_counts(self, tag=None):
        """Counts how often each pool entry was selected.

        Arguments
        ---------
        tag : str, optional
            Only count records with this tag (default: all records).

        Returns
        -------
        torch.Tensor
            ``(pool_size,)`` long counts.

        Example
        -------
        >>> pool = PromptPool(4, pool_size=3, k=1)
        >>> pool.records = [("a", (2,)), ("b", (0,)), ("a", (2,))]
        >>> pool.usage_counts("a")
        tensor([0, 0, 2])
        """
        counter = Counter()
        for record_tag, row in self.records:
            if tag is None or record_tag == tag:
                counter.update(row)
        counts = torch.zeros(self.pool_size, dtype=torch.long)
        for index, count in counter.items():
            counts[index] = count
        return counts


class SoftPrompt(nn.Module):
    """Fixed soft prompt: ``num_tokens`` learnable tokens for every input.

    The tokens start at the mean LLM embedding plus N(0, 0.02) noise.

    Arguments
    ---------
    llm_dim : int
        Width of the LLM's token embeddings.
    num_tokens : int
        Prompt length (the authors' baseline uses 20).
    value_init : torch.Tensor, optional
        LLM embedding matrix ``(vocab, llm_dim)`` or its mean vector.

    Example
    -------
    >>> sp = SoftPrompt(8, num_tokens=3)
    >>> out = sp(torch.randn(2, 5, 8))
    >>> out.prompts.shape, float(out.key_loss)
    (torch.Size([2, 3, 8]), 0.0)
    """

    def __init__(self, llm_dim, num_tokens=20, value_init=None):
        super().__init__()
        if int(num_tokens) != num_tokens or num_tokens < 1:
            raise ValueError(
                f"SoftPrompt: num_tokens={num_tokens!r}; expected an int >= 1"
            )
        self.llm_dim = llm_dim
        self.num_tokens = num_tokens
        mean = mean_embedding(value_init, llm_dim)
        self.values = nn.Parameter(_noisy(mean, (num_tokens, llm_dim)))

    def forward(
        self, audio, audio_mask=None, text=None, text_mask=None, k=None
    ):
        """Returns the same prompt for every sample.

        Arguments
        ---------
        audio : torch.Tensor
            Audio tokens ``(batch, time, llm_dim)``; only the batch size and
            device are used.
        audio_mask : torch.Tensor, optional
            Ignored (same signature as :class:`PromptPool`).
        text : torch.Tensor, optional
            Ignored.
        text_mask : torch.Tensor, optional
            Ignored.
        k : int, optional
            Ignored; must be None or ``num_tokens``.

        Returns
        -------
        PromptPoolOutput
            ``prompts (batch, num_tokens, llm_dim)``, indices
            ``0..num_tokens-1``, ``scores`` None, ``key_loss`` 0.

        Example
        -------
        >>> SoftPrompt(4, 2)(torch.zeros(1, 3, 4)).indices
        tensor([[0, 1]])
        """
        if k is not None and k != self.num_tokens:
            raise ValueError(
                f"SoftPrompt: k={k!r}; a fixed soft prompt always has "
                f"{self.num_tokens} tokens"
            )
        batch = audio.shape[0]
        prompts = self.values[None].expand(batch, -1, -1)
        indices = torch.arange(self.num_tokens, device=self.values.device)
        indices = indices[None].expand(batch, -1)
        mask = torch.ones(
            (batch, self.num_tokens), dtype=torch.bool, device=indices.device
        )
        key_loss = self.values.new_zeros(())
        return PromptPoolOutput(prompts, mask, indices, None, key_loss)
