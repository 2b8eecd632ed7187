"""KV caches for decoding: room reserved up front instead of a copy per step.

HF's ``DynamicCache`` grows each layer by concatenating its whole cache
with the new key/value at every decoding step: a copy of every cached
position (a long audio prefix included) for every layer and every token.
``ReservedCacheLayer`` allocates the positions to come once and writes
each step in place; ``reserved_cache`` builds a cache of them for a model
(keeping the layers HF would make for sliding-window attention; used by
``CausalLM.generate``), and ``cache_keyword`` names the keyword a model's
``forward`` takes the cache under (``cache`` in recent transformers,
``past_key_values`` before). LAL decodes into ``ReservedCacheLayer``s too,
full-attention ones in every layer (it attends through its own masks).

Authors
 * audiollm-lobes developers, 2026
"""

import functools
import inspect

import torch
import transformers
from transformers.cache_utils import DynamicLayer


class ReservedCacheLayer(DynamicLayer):
    """A KV-cache layer that reserves room for the positions to come.

    ``DynamicLayer`` concatenates its whole cache with each new key/value
    (a copy of every cached position at every decoding step, for every
    layer: with 1024 audio tokens in the cache that copy costs as much as
    a good part of the step). This layer allocates ``capacity`` positions
    once, writes each update in place and returns views of the filled
    part, so a step writes one position. It grows (one copy) when an
    update would not fit. For decoding only: writing into the buffer does
    not keep the autograd graph of the keys/values.

    Arguments
    ---------
    capacity : int
        Positions to reserve (audio + prompt + new tokens).

    Example
    -------
    >>> layer = ReservedCacheLayer(capacity=5)
    >>> k, v = layer.update(torch.ones(2, 1, 3, 4), torch.zeros(2, 1, 3, 4))
    >>> k.shape, layer.capacity
    (torch.Size([2, 1, 3, 4]), 5)
    >>> k, v = layer.update(2 * torch.ones(2, 1, 1, 4), torch.ones(2, 1, 1, 4))
    >>> k[0, 0, :, 0].tolist(), layer.get_seq_length()
    ([1.0, 1.0, 1.0, 2.0], 4)
    >>> layer.select_rows(torch.tensor([1, 1, 0]))  # 3 rows from 2
    >>> layer.keys.shape
    torch.Size([3, 1, 4, 4])
    >>> layer.batch_repeat_interleave(2)  # 6 rows, then one more position
    >>> layer.update(torch.ones(6, 1, 1, 4), torch.ones(6, 1, 1, 4))[0].shape
    torch.Size([6, 1, 5, 4])
    """

    def __init__(self, capacity):
        super().__init__()
        self.capacity = int(capacity)
        self._key_buffer = self._value_buffer = None
        self.length = 0

    def lazy_initialization(self, key_states, value_states):
        """Allocates the buffers on the first update."""
        self.device = key_states.device
        self.length = 0
        self._key_buffer = self._value_buffer = None
        self._allocate(
            key_states.shape[0],
            max(self.capacity, key_states.shape[-2]),
            key_states,
            value_states,
        )
        self.is_initialized = True

    def _allocate(self, rows, capacity, key_like, value_like, select=None):
        """New buffers of ``rows`` rows and ``capacity`` positions holding
        the filled part of the old ones (their rows ``select``, if given)."""
        keys = key_like.new_empty(
            (rows, *key_like.shape[1:-2], capacity, key_like.shape[-1])
        )
        values = value_like.new_empty(
            (rows, *value_like.shape[1:-2], capacity, value_like.shape[-1])
        )
        if self._key_buffer is not None and self.length:
            old_k = self._key_buffer[..., : self.length, :]
            old_v = self._value_buffer[..., : self.length, :]
            if select is not None:
                old_k, old_v = old_k[select], old_v[select]
            keys[..., : self.length, :] = old_k
            values[..., : self.length, :] = old_v
        self._key_buffer, self._value_buffer = keys, values
        self.capacity = capacity
        self._set_views()

    def _set_views(self):
        self.keys = self._key_buffer[..., : self.length, :]
        self.values = self._value_buffer[..., : self.length, :]

    def update(self, key_states, value_states, *args, **kwargs):
        """Writes ``(batch, heads, n, head_dim)`` keys/values after the
        cached ones; returns all of them (views of the buffers)."""
        del args, kwargs
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            self._allocate(
                self._key_buffer.shape[0],
                end + max(self.capacity - self.length, 16),
                self._key_buffer,
                self._value_buffer,
            )
        self._key_buffer[..., self.length : end, :] = key_states
        self._value_buffer[..., self.length : end, :] = value_states
        self.length = end
        self._set_views()
        return self.keys, self.values

    def get_seq_length(self):
        """Number of cached positions."""
        return self.length if self.is_initialized else 0

    def select_rows(self, rows, start=None):
        """Row ``i`` becomes the old row ``rows[i]`` (beam search).

        Arguments
        ---------
        rows : torch.LongTensor
            ``(new_rows,)`` indices of the current rows.
        start : int, optional
            When given (same number of rows), only positions from
            ``start`` on are rearranged: the caller guarantees that the
            rows mapped onto each other hold the same earlier positions
            (beams of one sample share their audio and prompt).
        """
        if not self.is_initialized:
            return
        rows = rows.to(self._key_buffer.device)
        same_rows = rows.shape[0] == self._key_buffer.shape[0]
        if start is None or not same_rows:
            self._allocate(
                rows.shape[0],
                self.capacity,
                self._key_buffer,
                self._value_buffer,
                select=rows,
            )
            return
        if start < self.length:
            for buffer in (self._key_buffer, self._value_buffer):
                part = buffer[..., start : self.length, :]
                part.copy_(part[rows])

    def reorder_cache(self, beam_idx):
        """HF's beam reordering: every position of the rows."""
        self.select_rows(beam_idx)

    def batch_repeat_interleave(self, repeats):
        """Repeats each row ``repeats`` times (HF's beam expansion)."""
        if self.is_initialized:
            rows = torch.arange(self._key_buffer.shape[0])
            self.select_rows(rows.repeat_interleave(repeats))

    def batch_select_indices(self, indices):
        """Keeps the rows ``indices``."""
        if self.is_initialized:
            self.select_rows(torch.as_tensor(indices).reshape(-1))

    def reset(self):
        """Drops the buffers."""
        self._key_buffer = self._value_buffer = None
        self.keys = self.values = None
        self.length = 0
        self.is_initialized = False

    def crop(self, tokens_to_remove):
        """Forgets the last ``-tokens_to_remove`` positions."""
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of positions")
        if self.is_initialized:
            self.length = max(self.length + tokens_to_remove, 0)
            self._set_views()


def reserved_cache(config, capacity):
    """A decoding cache for a model of ``config`` with reserved room.

    The layers are those ``transformers.DynamicCache(config=config)``
    makes, with every plain ``DynamicLayer`` (full attention) replaced by
    a ``ReservedCacheLayer``; sliding-window and other special layers stay
    HF's, so attention is exactly what HF's default cache gives.

    Arguments
    ---------
    config : transformers.PretrainedConfig
        The (text) config of the decoder.
    capacity : int or sequence of int
        Positions to reserve, for every layer or per layer.

    Returns
    -------
    transformers.DynamicCache

    Example
    -------
    >>> config = transformers.LlamaConfig(
    ...     vocab_size=8, hidden_size=8, intermediate_size=8,
    ...     num_hidden_layers=2, num_attention_heads=2,
    ... )
    >>> cache = reserved_cache(config, [5, 9])
    >>> [(type(layer).__name__, layer.capacity) for layer in cache.layers]
    [('ReservedCacheLayer', 5), ('ReservedCacheLayer', 9)]
    """
    cache = transformers.DynamicCache(config=config)
    n_layers = config.num_hidden_layers
    if isinstance(capacity, int):
        capacity = [capacity] * n_layers
    capacity = [int(c) for c in capacity]
    if len(capacity) != n_layers:
        raise ValueError(
            f"capacity must give one value per layer ({n_layers}); got "
            f"{len(capacity)}"
        )
    for i, layer in enumerate(cache.layers):
        if type(layer) is DynamicLayer:
            cache.layers[i] = ReservedCacheLayer(capacity[i])
    return cache


def cache_keyword(model):
    """The keyword under which ``model.forward`` takes a KV cache.

    Arguments
    ---------
    model : torch.nn.Module
        A HF model (``...ForCausalLM`` or its base model).

    Returns
    -------
    str
        ``"cache"`` (recent transformers, where ``past_key_values`` is
        deprecated) or ``"past_key_values"`` (older ones).

    Example
    -------
    >>> config = transformers.LlamaConfig(
    ...     vocab_size=8, hidden_size=8, intermediate_size=8,
    ...     num_hidden_layers=1, num_attention_heads=2,
    ... )
    >>> cache_keyword(transformers.LlamaForCausalLM(config)) in (
    ...     "cache", "past_key_values")
    True
    """
    forward = getattr(model, "forward", model)
    return _keyword_of(getattr(forward, "__func__", forward))


@functools.lru_cache(maxsize=None)
def _keyword_of(function):
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in parameters else "past_key_values"
