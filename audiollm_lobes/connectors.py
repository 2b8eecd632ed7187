"""Connectors that turn encoder frames into LLM-width audio tokens.

* :class:`WindowQFormer` -- the SALMONN-style window-level Q-Former used by
  LiSTEN: the frames are cut into windows (default 17 frames, about 0.33 s
  at 50 Hz), a few learnable queries attend to each window through a small
  BERT-like Q-Former, and a linear layer maps the result to the LLM width.
  Unlike SALMONN, padding is masked inside each window and windows holding
  no valid frame are dropped, so a 2 s clip gives 6 tokens, not 88.
* :class:`FrameStackProjector` -- the simple baseline projector (SLAM-LLM
  style): stack ``stack`` consecutive frames and apply Linear-GELU-Linear.
* :class:`PreNormConnector` -- a LayerNorm on the frames in front of any
  connector (frozen-encoder features are not normalised).

Both take features ``(batch, frames, input_dim)`` with a boolean mask
``(batch, frames)`` (True = valid frame) and return tokens
``(batch, tokens, llm_dim)`` with a boolean mask ``(batch, tokens)``. Valid
tokens are packed to the left in their original order, and the token axis
is trimmed to the longest sample, so the output mask is a prefix mask.

Both accept ``output_scale``: when set, every output token is rescaled to
the L2 norm ``output_scale`` (see :func:`scale_to_norm`), which is how the
toolkit matches audio tokens to the scale of the LLM's token embeddings
(pass the mean L2 norm of the embedding rows).

Authors
 * audiollm-lobes developers, 2026
"""

import torch
import torch.nn.functional as F
from torch import nn


def scale_to_norm(x, target_norm):
    """Rescales every vector along the last axis to the L2 norm ``target_norm``.

    ``y = target_norm * x / max(||x||, 1e-12)``: the direction of each
    token is kept and its L2 norm becomes ``target_norm`` (so the mean norm
    does as well). No LayerNorm-style centring and no eps in a variance, so
    the norm is exact even for the tiny outputs of a freshly initialised
    layer.

    Arguments
    ---------
    x : torch.Tensor
        Vectors ``(..., dim)``.
    target_norm : float
        The L2 norm to give every vector, e.g. the mean L2 norm of the
        LLM's token-embedding rows.

    Returns
    -------
    torch.Tensor
        Same shape as ``x``.

    Example
    -------
    >>> y = scale_to_norm(torch.randn(4, 64) * 30, 1.5)
    >>> torch.allclose(y.norm(dim=-1), torch.full((4,), 1.5))
    True
    """
    return F.normalize(x, dim=-1, eps=1e-12) * float(target_norm)


def pack_valid(tokens, valid):
    """Packs the valid tokens of each sample to the left, in order.

    Arguments
    ---------
    tokens : torch.Tensor
        Tokens ``(batch, slots, ...)``.
    valid : torch.Tensor
        Boolean ``(batch, slots)``, True where the slot holds a token to
        keep.

    Returns
    -------
    packed : torch.Tensor
        ``(batch, max_valid, ...)`` with the kept tokens first and zeros
        after them; ``max_valid`` is the largest number of kept tokens in
        the batch.
    mask : torch.Tensor
        Boolean prefix mask ``(batch, max_valid)``.

    Example
    -------
    >>> t = torch.arange(6.0).view(2, 3)
    >>> v = torch.tensor([[False, True, True], [True, False, False]])
    >>> packed, mask = pack_valid(t, v)
    >>> packed
    tensor([[1., 2.],
            [3., 0.]])
    >>> mask
    tensor([[ True,  True],
            [ True, False]])
    """
    if valid.shape != tokens.shape[:2]:
        raise ValueError(
            f"valid has shape {tuple(valid.shape)}; expected the first two "
            f"dims of tokens {tuple(tokens.shape[:2])}"
        )
    return _pack_selected(tokens[valid], valid)


def _pack_selected(values, valid):
    """Places ``values`` (the kept tokens, row-major) packed to the left.

    Arguments
    ---------
    values : torch.Tensor
        ``(kept, ...)``: the kept tokens in row-major order of ``valid``.
    valid : torch.Tensor
        Boolean ``(batch, slots)`` telling where they came from.

    Returns
    -------
    packed : torch.Tensor
        ``(batch, max_valid, ...)``.
    mask : torch.Tensor
        Boolean prefix mask ``(batch, max_valid)``.

    Example
    -------
    >>> v = torch.tensor([[False, True]])
    >>> _pack_selected(torch.tensor([5.0]), v)[0]
    tensor([[5.]])
    """
    batch = valid.shape[0]
    counts = valid.sum(dim=1)
    max_valid = int(counts.max()) if batch > 0 else 0
    packed = values.new_zeros((batch, max_valid) + tuple(values.shape[1:]))
    rows = torch.arange(batch, device=valid.device)[:, None]
    rows = rows.expand_as(valid)[valid]
    slots = (valid.cumsum(dim=1) - 1)[valid]
    packed[rows, slots] = values
    mask = torch.arange(max_valid, device=valid.device)[None, :]
    mask = mask < counts[:, None]
    return packed, mask


def _check_features(x, mask, input_dim, name):
    """Validates ``x (batch, frames, input_dim)`` and its mask.

    Arguments
    ---------
    x : torch.Tensor
        Features.
    mask : torch.Tensor or None
        Boolean mask or None (all valid).
    input_dim : int
        Expected feature size.
    name : str
        Module name for error messages.

    Returns
    -------
    torch.Tensor
        The boolean mask (built when ``mask`` is None).

    Example
    -------
    >>> _check_features(torch.zeros(2, 3, 4), None, 4, "m").shape
    torch.Size([2, 3])
    """
    if x.dim() != 3 or x.shape[-1] != input_dim:
        raise ValueError(
            f"{name}: features have shape {tuple(x.shape)}; expected "
            f"(batch, frames, {input_dim})"
        )
    if x.shape[1] == 0:
        raise ValueError(f"{name}: features hold no frames")
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if mask.shape != x.shape[:2]:
        raise ValueError(
            f"{name}: mask has shape {tuple(mask.shape)}; expected "
            f"(batch, frames) = {tuple(x.shape[:2])}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(
            f"{name}: mask has dtype {mask.dtype}; expected torch.bool "
            "(True = valid frame)"
        )
    return mask


class QFormerBlock(nn.Module):
    """One Q-Former layer: self-attention over the queries, cross-attention
    to the frames, then a feed-forward network.

    With ``norm_first=False`` (default, as in BERT/BLIP-2) each sub-layer is
    post-LN: ``h = LayerNorm(h + Dropout(sublayer(h)))``. With
    ``norm_first=True`` it is pre-LN: ``h = h + Dropout(sublayer(LN(h)))``
    (the frames are not normalised; the encoders already apply a LayerNorm
    per stream).

    Arguments
    ---------
    hidden_dim : int
        Width of the queries.
    memory_dim : int
        Width of the frames (the cross-attention keys/values project from
        it directly, as in SALMONN).
    num_heads : int
        Attention heads (must divide ``hidden_dim``).
    ffn_dim : int
        Hidden size of the FFN (GELU).
    dropout : float
        Dropout on attention weights and on each sub-layer output.
    norm_first : bool
        Pre-LN instead of post-LN.

    Example
    -------
    >>> block = QFormerBlock(8, 6, num_heads=2, ffn_dim=16, dropout=0.0)
    >>> q = torch.randn(3, 1, 8)
    >>> frames = torch.randn(3, 5, 6)
    >>> mask = torch.ones(3, 5, dtype=torch.bool)
    >>> block(q, frames, mask).shape
    torch.Size([3, 1, 8])
    """

    def __init__(
        self,
        hidden_dim,
        memory_dim,
        num_heads,
        ffn_dim,
        dropout=0.1,
        norm_first=False,
    ):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = nn.MultiheadAttention(
            hidden_dim, num_heads, dropout=dropout, batch_first=True
        )
        self.cross_attn = nn.MultiheadAttention(
            hidden_dim,
            num_heads,
            dropout=dropout,
            kdim=memory_dim,
            vdim=memory_dim,
            batch_first=True,
        )
        self.ffn = nn.Sequential(
            nn.Linear(hidden_dim, ffn_dim),
            nn.GELU(),
            nn.Linear(ffn_dim, hidden_dim),
        )
        # BERT's LayerNorm eps.
        self.norm_self = nn.LayerNorm(hidden_dim, eps=1e-12)
        self.norm_cross = nn.LayerNorm(hidden_dim, eps=1e-12)
        self.norm_ffn = nn.LayerNorm(hidden_dim, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def _self(self, h):
        out, _ = self.self_attn(h, h, h, need_weights=False)
        return out

    def _cross(self, h, memory, memory_mask):
        out, _ = self.cross_attn(
            h,
            memory,
            memory,
            key_padding_mask=~memory_mask,
            need_weights=False,
        )
        return out

    def forward(self, queries, memory, memory_mask):
        """Runs the block.

        Arguments
        ---------
        queries : torch.Tensor
            ``(batch, queries, hidden_dim)``.
        memory : torch.Tensor
            Frames ``(batch, frames, memory_dim)``.
        memory_mask : torch.Tensor
            Boolean ``(batch, frames)``, True = valid frame. Every row must
            hold at least one valid frame.

        Returns
        -------
        torch.Tensor
            ``(batch, queries, hidden_dim)``.

        Example
        -------
        >>> block = QFormerBlock(4, 4, 1, 8, dropout=0.0)
        >>> m = torch.tensor([[True, False]])
        >>> block(torch.randn(1, 2, 4), torch.randn(1, 2, 4), m).shape
        torch.Size([1, 2, 4])
        """
        h = queries
        if self.norm_first:
            h = h + self.dropout(self._self(self.norm_self(h)))
            h = h + self.dropout(
                self._cross(self.norm_cross(h), memory, memory_mask)
            )
            h = h + self.dropout(self.ffn(self.norm_ffn(h)))
        else:
            h = self.norm_self(h + self.dropout(self._self(h)))
            h = self.norm_cross(
                h + self.dropout(self._cross(h, memory, memory_mask))
            )
            h = self.norm_ffn(h + self.dropout(self.ffn(h)))
        return h


def _bert_init(module, std=0.02):
    """BERT-style init: Linear/attention weights N(0, std), biases 0.

    Arguments
    ---------
    module : torch.nn.Module
        Module whose submodules are initialised in place.
    std : float
        Standard deviation of the weights.

    Example
    -------
    >>> _bert_init(nn.Linear(3, 3))
    """
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.normal_(sub.weight, std=std)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.MultiheadAttention):
            for name in (
                "in_proj_weight",
                "q_proj_weight",
                "k_proj_weight",
                "v_proj_weight",
            ):
                weight = getattr(sub, name, None)
                if weight is not None:
                    nn.init.normal_(weight, std=std)
            if sub.in_proj_bias is not None:
                nn.init.zeros_(sub.in_proj_bias)


class WindowQFormer(nn.Module):
    """Window-level Q-Former connector (SALMONN / LiSTEN).

    The frames are cut into windows of ``window_frames`` frames with stride
    ``stride_frames`` (default: the window, i.e. no overlap). The tail is
    zero-padded to a whole window (never dropped). Windows are folded into
    the batch; ``queries_per_window`` learnable queries (init N(0, 0.02))
    attend to each window through ``num_layers`` :class:`QFormerBlock`
    layers (self-attention over the queries, cross-attention to the
    window's valid frames, FFN), and a linear layer maps them to
    ``llm_dim``. Only windows holding at least one valid frame are run and
    returned: they are packed to the left per sample (see
    :func:`pack_valid`), giving ``(batch, max_valid_windows * queries,
    llm_dim)``.

    Normalisation: with ``norm_first=False`` (default, BERT/BLIP-2) the
    blocks are post-LN and, as in BLIP-2's embedding layer, the queries go
    through a LayerNorm (and dropout) before the first block. With
    ``norm_first=True`` the blocks are pre-LN and a final LayerNorm follows
    the last block. Linear and attention weights use BERT's init
    N(0, 0.02).

    Arguments
    ---------
    input_dim : int
        Width of the input frames (the cross-attention projects from it).
    llm_dim : int
        Width of the LLM's token embeddings.
    hidden_dim : int
        Q-Former width (paper scale: 768).
    num_layers : int
        Q-Former layers (paper: 2).
    num_heads : int
        Attention heads (paper: 12).
    ffn_dim : int
        FFN hidden size (paper: 3072).
    queries_per_window : int
        Learnable queries per window (paper: 1).
    window_frames : int, optional
        Window length in frames. Give this or ``window_seconds``; when both
        are None the window is ``round(frame_rate / 3)`` frames (17 at
        50 Hz, SALMONN's 0.333 s).
    window_seconds : float, optional
        Window length in seconds: ``round(window_seconds * frame_rate)``.
    frame_rate : float
        Frames per second of the input (50.0 for Whisper).
    stride_frames : int, optional
        Hop between windows in frames (default: the window length).
    stride_seconds : float, optional
        Hop in seconds (alternative to ``stride_frames``).
    dropout : float
        Dropout in the Q-Former.
    output_scale : float, optional
        If set, every output token is rescaled to this L2 norm (see
        :func:`scale_to_norm`); pass the mean norm of the LLM's embedding
        rows.
    norm_first : bool
        Pre-LN blocks instead of BERT's post-LN.

    Example
    -------
    >>> qf = WindowQFormer(
    ...     input_dim=16, llm_dim=32, hidden_dim=24, num_layers=1,
    ...     num_heads=2, ffn_dim=48, window_frames=17,
    ... )
    >>> x = torch.randn(2, 100, 16)
    >>> mask = torch.arange(100)[None, :] < torch.tensor([[100], [40]])
    >>> tokens, token_mask = qf(x, mask)
    >>> tokens.shape  # ceil(100 / 17) = 6 windows
    torch.Size([2, 6, 32])
    >>> token_mask.sum(dim=1)  # ceil(40 / 17) = 3
    tensor([6, 3])
    """

    def __init__(
        self,
        input_dim,
        llm_dim,
        hidden_dim=768,
        num_layers=2,
        num_heads=12,
        ffn_dim=3072,
        queries_per_window=1,
        window_frames=None,
        window_seconds=None,
        frame_rate=50.0,
        stride_frames=None,
        stride_seconds=None,
        dropout=0.1,
        output_scale=None,
        norm_first=False,
    ):
        super().__init__()
        for name, value in (
            ("input_dim", input_dim),
            ("llm_dim", llm_dim),
            ("hidden_dim", hidden_dim),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("ffn_dim", ffn_dim),
            ("queries_per_window", queries_per_window),
        ):
            if int(value) != value or value < 1:
                raise ValueError(
                    f"WindowQFormer: {name}={value!r}; expected an int >= 1"
                )
        if hidden_dim % num_heads != 0:
            raise ValueError(
                f"WindowQFormer: num_heads={num_heads} must divide "
                f"hidden_dim={hidden_dim}"
            )
        self.input_dim = input_dim
        self.llm_dim = llm_dim
        self.queries_per_window = queries_per_window
        self.window_frames = self._frames(
            "window", window_frames, window_seconds, frame_rate, 1 / 3
        )
        self.stride_frames = self._frames(
            "stride", stride_frames, stride_seconds, frame_rate, None
        )
        if self.stride_frames is None:
            self.stride_frames = self.window_frames
        if output_scale is not None and not output_scale > 0:
            raise ValueError(
                f"WindowQFormer: output_scale={output_scale!r}; expected a "
                "positive float or None"
            )
        self.output_scale = output_scale
        self.norm_first = norm_first

        self.queries = nn.Parameter(
            torch.randn(queries_per_window, hidden_dim) * 0.02
        )
        if norm_first:
            self.query_norm = nn.Identity()
            self.final_norm = nn.LayerNorm(hidden_dim, eps=1e-12)
        else:
            self.query_norm = nn.LayerNorm(hidden_dim, eps=1e-12)
            self.final_norm = nn.Identity()
        self.query_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            QFormerBlock(
                hidden_dim, input_dim, num_heads, ffn_dim, dropout, norm_first
            )
            for _ in range(num_layers)
        )
        self.proj = nn.Linear(hidden_dim, llm_dim)
        _bert_init(self.blocks)
        _bert_init(self.proj)

    @staticmethod
    def _frames(kind, frames, seconds, frame_rate, default_seconds):
        """Resolves a length given in frames or seconds to frames."""
        if frames is not None and seconds is not None:
            raise ValueError(
                f"WindowQFormer: give {kind}_frames or {kind}_seconds, not both"
            )
        if frames is None:
            if seconds is None:
                seconds = default_seconds
            if seconds is None:
                return None
            if not frame_rate > 0:
                raise ValueError(
                    f"WindowQFormer: frame_rate={frame_rate!r}; expected > 0"
                )
            frames = round(seconds * frame_rate)
        if int(frames) != frames or frames < 1:
            raise ValueError(
                f"WindowQFormer: {kind} of {frames!r} frames; expected an "
                "int >= 1"
            )
        return int(frames)

    def num_windows(self, num_frames):
        """Number of windows cut from ``num_frames`` frames (tail padded).

        Arguments
        ---------
        num_frames : int
            Frames in the sequence.

        Returns
        -------
        int
            ``1 + ceil(max(num_frames - window, 0) / stride)``.

        Example
        -------
        >>> WindowQFormer(4, 4, 4, 1, 1, 4).num_windows(100)
        6
        """
        extra = max(num_frames - self.window_frames, 0)
        return 1 + -(-extra // self.stride_frames)

    def encode_windows(self, frames, frame_mask):
        """Runs the Q-Former on a batch of windows.

        Arguments
        ---------
        frames : torch.Tensor
            ``(windows, window_frames, input_dim)``.
        frame_mask : torch.Tensor
            Boolean ``(windows, window_frames)``, True = valid; each window
            needs at least one valid frame.

        Returns
        -------
        torch.Tensor
            ``(windows, queries_per_window, llm_dim)``.

        Example
        -------
        >>> qf = WindowQFormer(4, 6, 8, 1, 2, 16, window_frames=3)
        >>> m = torch.ones(5, 3, dtype=torch.bool)
        >>> qf.encode_windows(torch.randn(5, 3, 4), m).shape
        torch.Size([5, 1, 6])
        """
        n = frames.shape[0]
        h = self.queries.to(frames.dtype).expand(n, -1, -1)
        h = self.query_dropout(self.query_norm(h))
        for block in self.blocks:
            h = block(h, frames, frame_mask)
        h = self.proj(self.final_norm(h))
        if self.output_scale is not None:
            h = scale_to_norm(h, self.output_scale)
        return h

    def forward(self, x, mask=None):
        """Turns frames into window tokens.

        Arguments
        ---------
        x : torch.Tensor
            Frames ``(batch, frames, input_dim)``.
        mask : torch.Tensor, optional
            Boolean ``(batch, frames)``, True = valid frame (default: all
            valid). Padded frames never reach the attention.

        Returns
        -------
        tokens : torch.Tensor
            ``(batch, max_valid_windows * queries_per_window, llm_dim)``;
            the queries of a window are consecutive.
        token_mask : torch.Tensor
            Boolean prefix mask ``(batch, max_valid_windows *
            queries_per_window)``.

        Example
        -------
        >>> qf = WindowQFormer(4, 6, 8, 1, 2, 16, queries_per_window=2,
        ...                    window_frames=5)
        >>> tokens, m = qf(torch.randn(1, 12, 4))
        >>> tokens.shape, m.shape  # 3 windows x 2 queries
        (torch.Size([1, 6, 6]), torch.Size([1, 6]))
        """
        mask = _check_features(x, mask, self.input_dim, "WindowQFormer")
        batch, num_frames, _ = x.shape
        win, stride = self.window_frames, self.stride_frames
        num_win = self.num_windows(num_frames)
        pad = (num_win - 1) * stride + win - num_frames
        if pad > 0:
            x = F.pad(x, (0, 0, 0, pad))
            mask = F.pad(mask, (0, pad), value=False)
        # Padded frames are zeroed so that non-finite padding cannot leak.
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype))
        # (batch, windows, input_dim, win) -> (batch, windows, win, dim)
        windows = x.unfold(1, win, stride).transpose(2, 3)
        window_masks = mask.unfold(1, win, stride)
        valid = window_masks.any(dim=-1)  # (batch, windows)
        frames = windows[valid]
        frame_mask = window_masks[valid]
        queries = self.queries_per_window
        if frames.shape[0] > 0:
            encoded = self.encode_windows(frames, frame_mask)
        else:
            encoded = x.new_zeros(0, queries, self.llm_dim)
        packed, window_valid = _pack_selected(encoded, valid)
        tokens = packed.reshape(batch, -1, self.llm_dim)
        token_mask = window_valid.repeat_interleave(queries, dim=1)
        return tokens, token_mask


class FrameStackProjector(nn.Module):
    """Frame-stacking MLP projector (PLITS baseline, SLAM-LLM style).

    ``stack`` consecutive frames are concatenated (the tail is zero-padded
    to a whole group, and padded frames are zeroed), then
    Linear -> GELU -> Linear maps ``stack * input_dim`` to ``llm_dim``. A
    group is valid when it holds at least one valid frame; valid groups are
    packed to the left (see :func:`pack_valid`).

    Arguments
    ---------
    input_dim : int
        Width of the input frames.
    llm_dim : int
        Width of the LLM's token embeddings.
    stack : int
        Frames per output token (SLAM-LLM uses 5).
    hidden_dim : int
        Hidden size of the MLP (SLAM-LLM uses 2048).
    dropout : float
        Dropout after the GELU.
    output_scale : float, optional
        If set, every output token is rescaled to this L2 norm (see
        :func:`scale_to_norm`).

    Example
    -------
    >>> proj = FrameStackProjector(8, 16, stack=4, hidden_dim=32)
    >>> mask = torch.arange(10)[None, :] < torch.tensor([[10], [5]])
    >>> tokens, token_mask = proj(torch.randn(2, 10, 8), mask)
    >>> tokens.shape, token_mask.sum(dim=1).tolist()
    (torch.Size([2, 3, 16]), [3, 2])
    """

    def __init__(
        self,
        input_dim,
        llm_dim,
        stack=5,
        hidden_dim=2048,
        dropout=0.0,
        output_scale=None,
    ):
        super().__init__()
        for name, value in (
            ("input_dim", input_dim),
            ("llm_dim", llm_dim),
            ("stack", stack),
            ("hidden_dim", hidden_dim),
        ):
            if int(value) != value or value < 1:
                raise ValueError(
                    f"FrameStackProjector: {name}={value!r}; expected an "
                    "int >= 1"
                )
        if output_scale is not None and not output_scale > 0:
            raise ValueError(
                f"FrameStackProjector: output_scale={output_scale!r}; "
                "expected a positive float or None"
            )
        self.input_dim = input_dim
        self.llm_dim = llm_dim
        self.stack = stack
        self.output_scale = output_scale
        self.mlp = nn.Sequential(
            nn.Linear(stack * input_dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, llm_dim),
        )

    def forward(self, x, mask=None):
        """Stacks frames and projects them.

        Arguments
        ---------
        x : torch.Tensor
            Frames ``(batch, frames, input_dim)``.
        mask : torch.Tensor, optional
            Boolean ``(batch, frames)``, True = valid (default: all valid).

        Returns
        -------
        tokens : torch.Tensor
            ``(batch, max_valid_groups, llm_dim)``.
        token_mask : torch.Tensor
            Boolean prefix mask ``(batch, max_valid_groups)``.

        Example
        -------
        >>> proj = FrameStackProjector(2, 3, stack=2, hidden_dim=4)
        >>> proj(torch.randn(1, 5, 2))[0].shape
        torch.Size([1, 3, 3])
        """
        mask = _check_features(x, mask, self.input_dim, "FrameStackProjector")
        batch, num_frames, dim = x.shape
        groups = -(-num_frames // self.stack)
        pad = groups * self.stack - num_frames
        if pad > 0:
            x = F.pad(x, (0, 0, 0, pad))
            mask = F.pad(mask, (0, pad), value=False)
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype))
        stacked = x.reshape(batch, groups, self.stack * dim)
        valid = mask.reshape(batch, groups, self.stack).any(dim=-1)
        tokens = self.mlp(stacked)
        if self.output_scale is not None:
            tokens = scale_to_norm(tokens, self.output_scale)
        return pack_valid(tokens, valid)


class PreNormConnector(nn.Module):
    """A LayerNorm on the frames in front of any ``(x, mask)`` connector.

    Arguments
    ---------
    connector : torch.nn.Module
        Maps ``(frames, mask)`` to ``(tokens, token_mask)``.
    input_dim : int
        Width of the frames.

    Example
    -------
    >>> from audiollm_lobes.connectors import WindowQFormer
    >>> qf = WindowQFormer(8, 6, hidden_dim=8, num_layers=1, num_heads=2,
    ...                    ffn_dim=16, window_frames=4)
    >>> conn = PreNormConnector(qf, 8)
    >>> tokens, mask = conn(torch.randn(2, 10, 8), torch.ones(2, 10).bool())
    >>> tokens.shape
    torch.Size([2, 3, 6])
    """

    def __init__(self, connector, input_dim):
        super().__init__()
        self.norm = nn.LayerNorm(input_dim)
        self.connector = connector

    def forward(self, x, mask):
        """Normalises ``x`` ``(batch, time, dim)`` and runs the connector."""
        return self.connector(self.norm(x), mask)
