"""Continuous integrate-and-fire (CIF) for Wav2Prompt, and its losses.

CIF (Dong & Xu, 2020) turns a sequence of encoder frames into a shorter
sequence with (about) one vector per text token. A small predictor gives
every frame a weight ``alpha_t`` in ``(0, 1)``. The weights are summed along
time; each time the running sum crosses the threshold ``beta`` one vector is
*fired*: the alpha-weighted sum of the frames integrated since the previous
firing. The frame at which the sum crosses ``beta`` is split: the part of its
weight that fills the current output up to ``beta`` goes to that output, the
rest starts the next one.

How it is computed here
-----------------------
Think of the cumulative weight ``c_t = alpha_1 + ... + alpha_t`` as an axis.
Frame ``t`` covers the interval ``[c_{t-1}, c_t)`` and output ``n``
(0-based) covers ``[n * beta, (n + 1) * beta)``. The weight of frame ``t`` in
output ``n`` is the length of the overlap of the two intervals. This is
exactly the sequential accumulate-and-fire rule above, including the split of
the crossing frame, and it also covers frames whose weight spans several
outputs (possible after target-length scaling or with ``beta < 1``). Each
frame touches only a few consecutive outputs, so the outputs are built with
a handful of ``index_add`` calls over the whole batch at once: no Python
loop over samples and none over time. The cumulative sums are computed in
float64 so that boundaries do not drift on long inputs. Tests check the
result against a plain sequential per-sample loop.

How many vectors come out
-------------------------
* **Without** ``target_lengths`` (inference): ``floor(sum(alpha) / beta)``
  full outputs, plus one *tail* output holding the remainder
  ``r = sum(alpha) - beta * floor(sum(alpha) / beta)`` if
  ``r > tail_threshold * beta`` (``tail_threshold`` is a fraction of
  ``beta``). The tail vector is the alpha-weighted sum of its frames and is
  not renormalised, as in standard CIF. A remainder at or below the
  threshold is dropped.
* **With** ``target_lengths`` (training, or teacher-forced evaluation): the
  weights of each sample are rescaled so that ``sum(alpha) == N * beta``
  and exactly ``N`` vectors come out. After rescaling the sum can miss
  ``N * beta`` only by float rounding; the last output takes whatever
  remains, i.e. its weight is ``beta`` up to rounding and any crumb of weight
  beyond ``N * beta`` is added to it rather than starting an ``N+1``-th
  output.

The prompter
------------
:class:`CIFPrompter` is Wav2Prompt's speech front end around a CIF:
frozen-encoder frames -> LayerNorm -> linear -> optional Transformer
layers -> CIF -> optional Transformer layers over the fired vectors ->
linear to the LLM width, so that it fires one LLM-width vector per token.

Losses
------
* :func:`quantity_loss`: ``mean_b |sum_t alpha_bt - beta * N_b|`` on the
  **unscaled** weights; it teaches the predictor to emit the right number
  of tokens without target lengths (at inference).
* :func:`embedding_mse_loss`: mean squared error between the fired vectors
  and the frozen LLM's token embeddings of the transcript, on valid
  positions only. It uses positive targets only (no negative or contrastive
  tokens), as described for Wav2Prompt.

Authors
 * audiollm-lobes developers, 2026
"""

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "CIF",
    "CIFOutput",
    "cif_integrate",
    "embedding_mse_loss",
    "quantity_loss",
]


class CIFOutput(NamedTuple):
    """What :class:`CIF` returns.

    Attributes
    ----------
    embeddings : torch.Tensor
        Fired vectors, ``(batch, max_fired, output_dim)``; zero where
        ``mask`` is False.
    mask : torch.Tensor
        Boolean ``(batch, max_fired)``, True on fired positions.
    alpha_sum : torch.Tensor
        ``(batch,)`` sum of the **unscaled** weights over valid frames (for
        :func:`quantity_loss`).
    alphas : torch.Tensor
        ``(batch, time)`` unscaled weights, zero on padding frames.

    Example
    -------
    >>> out = CIFOutput(torch.zeros(1, 2, 3), torch.ones(1, 2).bool(),
    ...                 torch.ones(1), torch.ones(1, 4))
    >>> out.embeddings.shape
    torch.Size([1, 2, 3])
    """

    embeddings: torch.Tensor
    mask: torch.Tensor
    alpha_sum: torch.Tensor
    alphas: torch.Tensor


def _check_target_lengths(target_lengths, batch, name="target_lengths"):
    """Validates integer token counts of shape ``(batch,)``."""
    if not torch.is_tensor(target_lengths):
        raise TypeError(f"{name}: expected a tensor of shape ({batch},)")
    if target_lengths.shape != (batch,):
        raise ValueError(
            f"{name}: expected shape ({batch},), got "
            f"{tuple(target_lengths.shape)}"
        )
    if target_lengths.is_floating_point():
        if not torch.equal(target_lengths, target_lengths.round()):
            raise ValueError(f"{name}: expected whole token counts")
    if bool((target_lengths < 0).any()):
        raise ValueError(f"{name}: token counts must be >= 0")


def cif_integrate(
    values, alphas, beta=1.0, tail_threshold=0.5, target_lengths=None
):
    """Integrates ``values`` with weights ``alphas`` and fires at ``beta``.

    The core of :class:`CIF`, without the weight predictor. See the module
    docstring for the rule and for how many vectors come out.

    Arguments
    ---------
    values : torch.Tensor
        Frames to integrate, ``(batch, time, dim)``. Padding frames should
        be finite (they get weight zero).
    alphas : torch.Tensor
        Non-negative weights, ``(batch, time)``, zero on padding frames.
    beta : float
        Firing threshold (> 0).
    tail_threshold : float
        Without ``target_lengths``: the remainder after the last full output
        is fired if it exceeds ``tail_threshold * beta``.
    target_lengths : torch.Tensor, optional
        ``(batch,)`` token counts ``N``. If given, each sample's weights are
        rescaled to sum to ``N * beta`` and exactly ``N`` vectors come out.

    Returns
    -------
    fired : torch.Tensor
        ``(batch, max_fired, dim)``, zero on unused positions.
    mask : torch.Tensor
        Boolean ``(batch, max_fired)``, True on fired positions.

    Example
    -------
    >>> h = torch.eye(4).unsqueeze(0)  # frame t is the unit vector e_t
    >>> a = torch.tensor([[0.4, 0.8, 0.5, 0.3]])
    >>> fired, mask = cif_integrate(h, a)
    >>> fired.squeeze(0)
    tensor([[0.4000, 0.6000, 0.0000, 0.0000],
            [0.0000, 0.2000, 0.5000, 0.3000]])
    >>> mask
    tensor([[True, True]])
    """
    if values.dim() != 3:
        raise ValueError(
            "values: expected (batch, time, dim), got shape "
            f"{tuple(values.shape)}"
        )
    batch, time, dim = values.shape
    if alphas.shape != (batch, time):
        raise ValueError(
            f"alphas: expected shape {(batch, time)} to match values, got "
            f"{tuple(alphas.shape)}"
        )
    if not beta > 0:
        raise ValueError(f"beta: expected a positive threshold, got {beta}")
    if not tail_threshold >= 0:
        raise ValueError(f"tail_threshold: expected >= 0, got {tail_threshold}")

    device = values.device
    a = alphas.to(torch.float64)
    if target_lengths is not None:
        _check_target_lengths(target_lengths, batch)
        target = target_lengths.to(device=device, dtype=torch.float64)
        total = a.sum(dim=1)
        if bool(((total <= 0) & (target > 0)).any()):
            raise ValueError(
                "alphas: a sample with target_lengths > 0 has no positive "
                "weight to rescale"
            )
        scale = target * beta / total.clamp_min(torch.finfo(a.dtype).tiny)
        a = a * scale.unsqueeze(1)

    c = a.cumsum(dim=1)  # end of each frame's interval
    c_prev = c - a if time == 0 else F.pad(c[:, :-1], (1, 0))  # its start
    total = c[:, -1] if time > 0 else a.new_zeros(batch)
    if target_lengths is not None:
        counts = target_lengths.to(device=device).round().long()
    else:
        full = torch.floor(total / beta)
        remainder = total - full * beta
        counts = full.long() + (remainder > tail_threshold * beta).long()
    max_fired = int(counts.max()) if batch > 0 else 0

    # Outputs touched by frame t: first[t] .. last[t] (inclusive).
    first = torch.floor(c_prev / beta).long()
    last = torch.ceil(c / beta).long() - 1
    span = int((last - first).max()) + 1 if batch * time > 0 else 1
    span = max(span, 1)

    trash = max_fired  # extra slot for weight that is not fired
    # Flattened (batch * slots, dim) buffer, so that a 1-D index suffices.
    out = values.new_zeros(batch * (max_fired + 1), dim)
    offset = torch.arange(batch, device=device).unsqueeze(1) * (max_fired + 1)
    for k in range(span):
        n = first + k
        lo = torch.maximum(c_prev, n.to(a.dtype) * beta)
        hi = torch.minimum(c, (n + 1).to(a.dtype) * beta)
        weight = (hi - lo).clamp_min(0.0)
        if target_lengths is not None:
            # The last output takes any rounding crumb beyond N * beta.
            idx = torch.minimum(n, (counts - 1).unsqueeze(1))
            idx = torch.where(counts.unsqueeze(1) > 0, idx, trash)
        else:
            idx = torch.where(n < counts.unsqueeze(1), n, trash)
        idx = (idx.clamp(0, trash) + offset).reshape(-1)
        contrib = weight.to(values.dtype).unsqueeze(-1) * values
        out = out.index_add(0, idx, contrib.reshape(-1, dim))
    fired = out.view(batch, max_fired + 1, dim)[:, :max_fired]
    mask = torch.arange(max_fired, device=device) < counts.unsqueeze(1)
    return fired, mask


class CIF(nn.Module):
    """Continuous integrate-and-fire lobe (Wav2Prompt's speech prompter).

    Predicts a weight ``alpha_t = sigmoid(w(h_t))`` per frame, integrates
    the frames with :func:`cif_integrate`, and maps the fired vectors to the
    LLM width with a linear layer (applied after integration; since
    integration is linear this equals projecting the frames first, except
    that the bias is added once per output).

    Arguments
    ---------
    input_dim : int
        Width of the encoder frames.
    output_dim : int
        Width of the fired vectors (the LLM embedding size). Must equal
        ``input_dim`` when ``output_proj`` is False.
    beta : float
        Firing threshold (default 1.0).
    weight_predictor : str
        ``"conv"``: Conv1d(kernel ``conv_kernel``, ``hidden_dim`` channels,
        default ``input_dim``) -> ReLU -> Linear(1), as in Dong & Xu (2020).
        ``"linear"``: Linear(1), or Linear(``hidden_dim``) -> ReLU ->
        Linear(1) if ``hidden_dim`` is given. Padding frames are zeroed
        before the convolution, so they never change valid weights.
    conv_kernel : int
        Odd kernel size of the convolution (``"conv"`` only).
    hidden_dim : int, optional
        Hidden width of the weight predictor.
    tail_threshold : float
        At inference, the remainder after the last full output is fired if it
        exceeds ``tail_threshold * beta``.
    output_proj : bool
        Whether to apply ``Linear(input_dim, output_dim)`` to fired vectors.

    Example
    -------
    >>> cif = CIF(input_dim=8, output_dim=6)
    >>> x = torch.randn(2, 10, 8)
    >>> out = cif(x, lengths=torch.tensor([1.0, 0.6]),
    ...           target_lengths=torch.tensor([3, 2]))
    >>> out.embeddings.shape, out.mask.sum(dim=1).tolist()
    (torch.Size([2, 3, 6]), [3, 2])
    >>> quantity_loss(out.alpha_sum, torch.tensor([3, 2])).dim()
    0
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        beta=1.0,
        weight_predictor="conv",
        conv_kernel=3,
        hidden_dim=None,
        tail_threshold=0.5,
        output_proj=True,
    ):
        super().__init__()
        if not beta > 0:
            raise ValueError(f"beta: expected a positive threshold, got {beta}")
        if not tail_threshold >= 0:
            raise ValueError(
                f"tail_threshold: expected >= 0, got {tail_threshold}"
            )
        if weight_predictor not in ("conv", "linear"):
            raise ValueError(
                "weight_predictor: expected 'conv' or 'linear', got "
                f"{weight_predictor!r}"
            )
        if not output_proj and output_dim != input_dim:
            raise ValueError(
                f"output_dim: must equal input_dim ({input_dim}) when "
                f"output_proj is False, got {output_dim}"
            )
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.beta = float(beta)
        self.tail_threshold = float(tail_threshold)
        self.weight_predictor = weight_predictor

        self.predictor_conv = None
        self.predictor_hidden = None
        if weight_predictor == "conv":
            if conv_kernel < 1 or conv_kernel % 2 == 0:
                raise ValueError(
                    f"conv_kernel: expected an odd size >= 1, got {conv_kernel}"
                )
            hidden = hidden_dim or input_dim
            self.predictor_conv = nn.Conv1d(
                input_dim, hidden, conv_kernel, padding=conv_kernel // 2
            )
            self.predictor_out = nn.Linear(hidden, 1)
        elif hidden_dim:
            self.predictor_hidden = nn.Linear(input_dim, hidden_dim)
            self.predictor_out = nn.Linear(hidden_dim, 1)
        else:
            self.predictor_out = nn.Linear(input_dim, 1)
        self.proj = nn.Linear(input_dim, output_dim) if output_proj else None

    def frame_mask(self, x, lengths=None):
        """Boolean mask of valid frames from SpeechBrain relative lengths.

        Arguments
        ---------
        x : torch.Tensor
            Frames, ``(batch, time, input_dim)``.
        lengths : torch.Tensor, optional
            ``(batch,)`` relative lengths in ``[0, 1]``; None means all
            frames are valid.

        Returns
        -------
        torch.Tensor
            Boolean ``(batch, time)``.

        Example
        -------
        >>> CIF(4, 4).frame_mask(torch.zeros(2, 4, 4),
        ...                      torch.tensor([1.0, 0.5])).tolist()
        [[True, True, True, True], [True, True, False, False]]
        """
        batch, time = x.shape[:2]
        if lengths is None:
            return torch.ones(batch, time, dtype=torch.bool, device=x.device)
        if lengths.shape != (batch,):
            raise ValueError(
                f"lengths: expected relative lengths of shape ({batch},), "
                f"got {tuple(lengths.shape)}"
            )
        if bool(((lengths < 0) | (lengths > 1)).any()):
            raise ValueError("lengths: relative lengths must be in [0, 1]")
        abs_len = torch.round(lengths.to(x.device, torch.float64) * time)
        return torch.arange(time, device=x.device) < abs_len.unsqueeze(1)

    def predict_alphas(self, x, mask):
        """Per-frame weights ``sigmoid(w(h_t))``, zero on padding.

        Arguments
        ---------
        x : torch.Tensor
            Frames, ``(batch, time, input_dim)``.
        mask : torch.Tensor
            Boolean ``(batch, time)``, True on valid frames.

        Returns
        -------
        torch.Tensor
            ``(batch, time)`` weights in ``(0, 1)`` on valid frames.

        Example
        -------
        >>> cif = CIF(4, 4)
        >>> mask = torch.tensor([[True, True, False]])
        >>> a = cif.predict_alphas(torch.randn(1, 3, 4), mask)
        >>> a.shape, float(a[0, 2].detach())
        (torch.Size([1, 3]), 0.0)
        """
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        if self.predictor_conv is not None:
            hid = self.predictor_conv(x.transpose(1, 2)).transpose(1, 2)
            hid = torch.relu(hid)
        elif self.predictor_hidden is not None:
            hid = torch.relu(self.predictor_hidden(x))
        else:
            hid = x
        alphas = torch.sigmoid(self.predictor_out(hid).squeeze(-1))
        return alphas * mask.to(alphas.dtype)

    def forward(self, x, lengths=None, target_lengths=None, mask=None):
        """Fires label-level vectors from encoder frames.

        Arguments
        ---------
        x : torch.Tensor
            Encoder frames, ``(batch, time, input_dim)``.
        lengths : torch.Tensor, optional
            ``(batch,)`` SpeechBrain relative lengths of ``x``.
        target_lengths : torch.Tensor, optional
            ``(batch,)`` number of target tokens ``N``. When given (training),
            the weights are rescaled to sum to ``N * beta`` and exactly
            ``N`` vectors are fired per sample; otherwise the tail rule
            applies (see the module docstring).
        mask : torch.Tensor, optional
            Boolean ``(batch, time)``, True on valid frames; an alternative
            to ``lengths`` (give one or neither).

        Returns
        -------
        CIFOutput
            ``embeddings`` ``(batch, max_fired, output_dim)``, ``mask``
            ``(batch, max_fired)``, ``alpha_sum`` ``(batch,)`` (unscaled)
            and ``alphas`` ``(batch, time)`` (unscaled).

        Example
        -------
        >>> cif = CIF(4, 5, weight_predictor="linear")
        >>> out = cif(torch.randn(3, 7, 4))
        >>> out.embeddings.shape[0], out.embeddings.shape[2]
        (3, 5)
        >>> valid = torch.tensor([[True] * 7, [True] * 3 + [False] * 4,
        ...                       [True] * 7])
        >>> cif(torch.randn(3, 7, 4), mask=valid).alphas[1, 3:].abs().sum()
        tensor(0., grad_fn=<SumBackward0>)
        """
        if x.dim() != 3 or x.shape[-1] != self.input_dim:
            raise ValueError(
                f"x: expected (batch, time, {self.input_dim}), got shape "
                f"{tuple(x.shape)}"
            )
        if mask is None:
            mask = self.frame_mask(x, lengths)
        elif lengths is not None:
            raise ValueError("lengths, mask: give one of them, not both")
        elif mask.shape != x.shape[:2]:
            raise ValueError(
                f"mask: expected shape {tuple(x.shape[:2])}, got "
                f"{tuple(mask.shape)}"
            )
        else:
            mask = mask.to(device=x.device, dtype=torch.bool)
        if x.shape[0] > 0 and not bool(mask.any(dim=1).all()):
            raise ValueError("lengths: every sample needs at least one frame")
        alphas = self.predict_alphas(x, mask)
        values = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        fired, fired_mask = cif_integrate(
            values,
            alphas,
            beta=self.beta,
            tail_threshold=self.tail_threshold,
            target_lengths=target_lengths,
        )
        if self.proj is not None:
            fired = self.proj(fired)
            fired = fired * fired_mask.unsqueeze(-1).to(fired.dtype)
        return CIFOutput(fired, fired_mask, alphas.sum(dim=1), alphas)

    def extra_repr(self):
        """Summary shown by ``print(module)``.

        Returns
        -------
        str
            The threshold settings and predictor type.

        Example
        -------
        >>> "beta=1.0" in CIF(4, 4).extra_repr()
        True
        """
        return (
            f"beta={self.beta}, tail_threshold={self.tail_threshold}, "
            f"weight_predictor={self.weight_predictor!r}"
        )


def _transformer(width, layers, heads, ffn_dim, dropout):
    """A pre-LN ``nn.TransformerEncoder`` or None when ``layers == 0``."""
    if layers == 0:
        return None
    layer = nn.TransformerEncoderLayer(
        width,
        heads,
        ffn_dim,
        dropout=dropout,
        batch_first=True,
        norm_first=True,
    )
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class CIFPrompter(nn.Module):
    """Speech prompter: frames -> one LLM-width vector per text token.

    ``LayerNorm(input_dim)`` (the frozen encoder's features are not
    normalised) -> ``Linear(input_dim, hidden_dim)`` -> ``pre_layers``
    Transformer layers over the frames -> CIF (weights from a conv or
    linear predictor, threshold ``beta``) -> ``post_layers`` Transformer
    layers over the fired vectors -> ``Linear(hidden_dim, llm_dim)``.
    With ``pre_layers = post_layers = 0`` it is a plain CIF with an output
    projection. All layers attend only to valid positions.

    Arguments
    ---------
    input_dim : int
        Width of the encoder frames.
    llm_dim : int
        Width of the LLM's token embeddings.
    hidden_dim : int
        Width of the layers around the CIF.
    pre_layers : int
        Transformer layers before the CIF (over frames).
    post_layers : int
        Transformer layers after the CIF (over fired vectors).
    num_heads : int
        Attention heads of those layers.
    ffn_dim : int, optional
        Their feed-forward width (default ``4 * hidden_dim``).
    dropout : float
        Their dropout.
    beta : float
        CIF firing threshold.
    weight_predictor : str
        ``"conv"`` or ``"linear"`` (see :class:`~audiollm_lobes.cif.CIF`).
    conv_kernel : int
        Kernel of the conv weight predictor.
    tail_threshold : float
        Fraction of ``beta`` above which the remainder fires at inference.

    Example
    -------
    >>> prompter = CIFPrompter(input_dim=8, llm_dim=6, hidden_dim=16,
    ...                        pre_layers=1, post_layers=1, num_heads=2)
    >>> x = torch.randn(2, 12, 8)
    >>> mask = torch.arange(12)[None] < torch.tensor([[12], [7]])
    >>> out = prompter(x, mask, target_lengths=torch.tensor([4, 2]))
    >>> out.embeddings.shape, out.mask.sum(1).tolist()
    (torch.Size([2, 4, 6]), [4, 2])
    >>> out.alpha_sum.shape
    torch.Size([2])
    """

    def __init__(
        self,
        input_dim,
        llm_dim,
        hidden_dim=256,
        pre_layers=0,
        post_layers=0,
        num_heads=4,
        ffn_dim=None,
        dropout=0.1,
        beta=1.0,
        weight_predictor="conv",
        conv_kernel=3,
        tail_threshold=0.5,
    ):
        super().__init__()
        for name, value in (
            ("input_dim", input_dim),
            ("llm_dim", llm_dim),
            ("hidden_dim", hidden_dim),
            ("num_heads", num_heads),
        ):
            if int(value) != value or value < 1:
                raise ValueError(
                    f"CIFPrompter: {name}={value!r}; expected an int >= 1"
                )
        for name, value in (
            ("pre_layers", pre_layers),
            ("post_layers", post_layers),
        ):
            if int(value) != value or value < 0:
                raise ValueError(
                    f"CIFPrompter: {name}={value!r}; expected an int >= 0"
                )
        if (pre_layers or post_layers) and hidden_dim % num_heads:
            raise ValueError(
                f"CIFPrompter: num_heads={num_heads} must divide "
                f"hidden_dim={hidden_dim}"
            )
        ffn_dim = ffn_dim or 4 * hidden_dim
        self.input_dim = input_dim
        self.llm_dim = llm_dim
        self.input_norm = nn.LayerNorm(input_dim)
        self.input_proj = nn.Linear(input_dim, hidden_dim)
        self.pre = _transformer(
            hidden_dim, pre_layers, num_heads, ffn_dim, dropout
        )
        self.cif = CIF(
            hidden_dim,
            hidden_dim,
            beta=beta,
            weight_predictor=weight_predictor,
            conv_kernel=conv_kernel,
            tail_threshold=tail_threshold,
            output_proj=False,
        )
        self.post = _transformer(
            hidden_dim, post_layers, num_heads, ffn_dim, dropout
        )
        self.out_proj = nn.Linear(hidden_dim, llm_dim)

    @property
    def beta(self):
        """The CIF firing threshold."""
        return self.cif.beta

    def forward(self, x, mask, target_lengths=None):
        """Fires label-level prompt vectors from encoder frames.

        Arguments
        ---------
        x : torch.Tensor
            Frames, ``(batch, time, input_dim)``.
        mask : torch.Tensor
            Boolean ``(batch, time)``, True on valid frames.
        target_lengths : torch.Tensor, optional
            ``(batch,)`` token counts; when given (training) the CIF is
            scaled to fire exactly that many vectors.

        Returns
        -------
        CIFOutput
            ``embeddings`` ``(batch, n, llm_dim)`` (zero where ``mask`` is
            False), ``mask`` ``(batch, n)``, unscaled ``alpha_sum``
            ``(batch,)`` and ``alphas`` ``(batch, time)``.

        Example
        -------
        >>> prompter = CIFPrompter(4, 5, hidden_dim=8)
        >>> out = prompter(torch.randn(1, 6, 4), torch.ones(1, 6).bool())
        >>> out.embeddings.shape[-1]
        5
        """
        if x.dim() != 3 or x.shape[-1] != self.input_dim:
            raise ValueError(
                f"CIFPrompter: x: expected (batch, time, {self.input_dim}), "
                f"got shape {tuple(x.shape)}"
            )
        mask = mask.bool()
        h = self.input_proj(self.input_norm(x))
        if self.pre is not None:
            h = self.pre(h, src_key_padding_mask=~mask)
        out = self.cif(h, target_lengths=target_lengths, mask=mask)
        fired, fired_mask = out.embeddings, out.mask
        if self.post is not None and fired.shape[1] > 0:
            # a row with nothing fired attends to a dummy slot, then is zeroed
            safe = fired_mask.clone()
            safe[:, 0] = True
            fired = self.post(fired, src_key_padding_mask=~safe)
        emb = self.out_proj(fired) * fired_mask.unsqueeze(-1).to(fired.dtype)
        return CIFOutput(emb, fired_mask, out.alpha_sum, out.alphas)


def quantity_loss(alpha_sum, target_lengths, beta=1.0):
    """CIF quantity loss ``mean_b |alpha_sum_b - beta * N_b|``.

    Uses the **unscaled** weight sums (``CIFOutput.alpha_sum``), so the
    predictor learns to fire the right number of times without being told
    the target length.

    Arguments
    ---------
    alpha_sum : torch.Tensor
        ``(batch,)`` sums of the unscaled weights.
    target_lengths : torch.Tensor
        ``(batch,)`` target token counts ``N``.
    beta : float
        Firing threshold of the CIF (1.0 gives ``|sum(alpha) - N|``).

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Example
    -------
    >>> quantity_loss(torch.tensor([2.5, 4.0]), torch.tensor([3, 3]))
    tensor(0.7500)
    """
    if alpha_sum.dim() != 1:
        raise ValueError(
            f"alpha_sum: expected shape (batch,), got {tuple(alpha_sum.shape)}"
        )
    _check_target_lengths(target_lengths, alpha_sum.shape[0])
    target = target_lengths.to(alpha_sum.device, alpha_sum.dtype)
    return (alpha_sum - beta * target).abs().mean()


def _check_cif_mask(cif_out, cif_mask):
    """Raises a clear error when ``cif_mask`` is not ``cif_out``'s
    ``(batch, n_fired)``."""
    if cif_mask.shape != cif_out.shape[:2]:
        raise ValueError(
            f"cif_mask: expected shape {tuple(cif_out.shape[:2])}, got "
            f"{tuple(cif_mask.shape)}"
        )


def embedding_mse_loss(cif_out, cif_mask, target_embeddings, target_mask):
    """MSE between fired vectors and target token embeddings.

    The loss is averaged over every feature of every position that is valid
    in **both** masks (positive targets only: no negative tokens). If the
    two sequences differ in length (e.g. at inference, without target-length
    scaling), position ``n`` of one is compared with position ``n`` of the
    other and the extra positions are ignored. With no valid position the
    loss is zero (and still part of the graph).

    Arguments
    ---------
    cif_out : torch.Tensor
        ``(batch, n_fired, dim)`` fired vectors.
    cif_mask : torch.Tensor
        Boolean ``(batch, n_fired)``.
    target_embeddings : torch.Tensor
        ``(batch, n_tokens, dim)`` LLM token embeddings of the transcript.
    target_mask : torch.Tensor
        Boolean ``(batch, n_tokens)``.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Example
    -------
    >>> out = torch.tensor([[[1.0, 1.0], [9.0, 9.0]]])
    >>> tgt = torch.tensor([[[0.0, 1.0], [5.0, 5.0]]])
    >>> m_out = torch.tensor([[True, True]])
    >>> m_tgt = torch.tensor([[True, False]])
    >>> embedding_mse_loss(out, m_out, tgt, m_tgt)
    tensor(0.5000)
    """
    if cif_out.dim() != 3 or target_embeddings.dim() != 3:
        raise ValueError(
            "cif_out, target_embeddings: expected (batch, length, dim), got "
            f"{tuple(cif_out.shape)} and {tuple(target_embeddings.shape)}"
        )
    if (
        cif_out.shape[0] != target_embeddings.shape[0]
        or cif_out.shape[2] != target_embeddings.shape[2]
    ):
        raise ValueError(
            "target_embeddings: batch and dim must match cif_out "
            f"{tuple(cif_out.shape)}, got {tuple(target_embeddings.shape)}"
        )
    _check_cif_mask(cif_out, cif_mask)
    if target_mask.shape != target_embeddings.shape[:2]:
        raise ValueError(
            f"target_mask: expected shape "
            f"{tuple(target_embeddings.shape[:2])}, got "
            f"{tuple(target_mask.shape)}"
        )
    n = min(cif_out.shape[1], target_embeddings.shape[1])
    valid = cif_mask[:, :n].bool() & target_mask[:, :n].bool()
    diff = cif_out[:, :n] - target_embeddings[:, :n].to(cif_out.dtype)
    sq = diff.pow(2).sum(dim=-1) * valid.to(diff.dtype)
    denom = valid.sum() * cif_out.shape[2]
    return sq.sum() / denom.clamp_min(1).to(sq.dtype)


def nearest_token_accuracy(cif_out, cif_mask, embedding_table, target_ids):
    """Share of fired vectors whose nearest token embedding is the target.

    A diagnostic of how text-like the speech prompts are: each fired vector
    is matched to the row of ``embedding_table`` at the smallest Euclidean
    distance, and counted as correct when that row is the transcript's
    token at the same position. Only positions valid in both ``cif_mask``
    and ``target_ids`` (ids >= 0) count; with none the result is 0.

    Arguments
    ---------
    cif_out : torch.Tensor
        ``(batch, n_fired, dim)`` fired vectors.
    cif_mask : torch.Tensor
        Boolean ``(batch, n_fired)``.
    embedding_table : torch.Tensor
        ``(vocab, dim)`` LLM input embeddings.
    target_ids : torch.Tensor
        ``(batch, n_tokens)`` transcript token ids, ``-1`` where padded.

    Returns
    -------
    torch.Tensor
        Scalar accuracy in ``[0, 1]``.

    Example
    -------
    >>> table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> out = torch.tensor([[[0.9, 0.1], [0.2, 0.1], [0.0, 0.0]]])
    >>> mask = torch.tensor([[True, True, True]])
    >>> nearest_token_accuracy(out, mask, table, torch.tensor([[1, 2, -1]]))
    tensor(0.5000)
    """
    if cif_out.dim() != 3 or target_ids.dim() != 2:
        raise ValueError(
            "cif_out, target_ids: expected (batch, length, dim) and "
            f"(batch, length), got {tuple(cif_out.shape)} and "
            f"{tuple(target_ids.shape)}"
        )
    if embedding_table.dim() != 2 or (
        embedding_table.shape[1] != cif_out.shape[2]
    ):
        raise ValueError(
            f"embedding_table: expected (vocab, {cif_out.shape[2]}), got "
            f"{tuple(embedding_table.shape)}"
        )
    _check_cif_mask(cif_out, cif_mask)
    n = min(cif_out.shape[1], target_ids.shape[1])
    vectors = cif_out[:, :n].detach().to(embedding_table.dtype)
    table = embedding_table.detach()
    # ||v - e||^2 = ||v||^2 - 2 v.e + ||e||^2; ||v||^2 is the same per row
    dist = table.pow(2).sum(-1) - 2 * vectors @ table.T
    nearest = dist.argmin(-1)
    targets = target_ids[:, :n]
    valid = cif_mask[:, :n].bool() & (targets >= 0)
    correct = (nearest == targets) & valid
    return correct.sum().float() / valid.sum().clamp_min(1).float()
