"""LAL: audio that enters a frozen LLM only as attention keys and values.

PAL (Alex et al., "Probing Audio Encoders via LLMs") contrasts three ways
of feeding audio tokens to a frozen causal LM:

* **PLITS**: the audio tokens are spliced into the input embeddings and go
  through every layer (``plits.assemble_plits``);
* **LAL**: the audio tokens never form queries and never pass through a
  feed-forward block. In each chosen layer they only add keys and values,
  so the text queries attend over ``[audio K/V ; text K/V]`` (all valid
  audio visible, text causal among itself);
* **PAL**: a per-encoder choice between the two (``pal.PALRouter``).

The paper's equations were not available, so what follows is our
reconstruction (``docs/design.md``, "LAL" section). For each layer ``l``
in ``lal_layers`` the audio tokens ``A`` become

* ``kv_projection="shared"`` (default): ``X = norm_l(A @ M_l^T + b_l)``
  with a trainable per-layer map ``M_l`` (initialised at the identity) and
  the layer's own frozen input RMSNorm ``norm_l``; the keys/values are the
  frozen ``k_proj(X)``, ``v_proj(X)`` (plus the layer's frozen ``k_norm``
  when the architecture has one). The mapped audio is thus treated like a
  hidden state of that layer that skips the queries and the FFN.
* ``kv_projection="new"``: trainable per-layer ``K = A @ W_K'^T``,
  ``V = A @ W_V'^T`` (copied from the frozen ``k_proj``/``v_proj`` at
  initialisation when the shapes allow it).

Rotary positions (``audio_rope``): ``"none"`` leaves audio keys unrotated
and starts text positions at 0 (so ``lal_layers=[]`` is exactly the
text-only LLM); ``"prefix"`` rotates the audio keys at positions
``0..Na-1`` and the text positions continue after the sample's audio, as
if the audio had been prepended (like PLITS positions).

Mechanism: the per-layer audio keys/values are written once into a
``transformers.DynamicCache`` (with gradients enabled during training), and
the text goes through the unmodified HF model on top of that cache, so
decoding simply continues from it. Layers outside ``lal_layers`` hold no
audio at all in the cache. Because layers then see different key lengths
and audio padding differs per sample, every layer gets its own explicit
4-D boolean mask: a small attention function registered with
``transformers.AttentionInterface`` picks the mask of ``module.layer_idx``
and runs HF's SDPA attention. The model's attention implementation is
switched to it only for the duration of an injector call. The injector
runs on a ``CausalLM``: its output layer (``CausalLM.head``), its special
ids, and the loss and decoding loop it shares (``llm.next_token_loss``,
``llm.decode_loop``); only the text pass over the audio cache is its own.

Decoding (``LALDecoding``) writes into ``kv_cache.ReservedCacheLayer``
caches that hold room for the new tokens (HF's ``DynamicCache`` would copy
every cached position, audio included, at every step) and reads its per-layer
masks as views of one key mask; beam search (``beam_search``, HF's rules)
expands the cache to the beams once and then rewrites only the new
tokens' positions when beams are reordered.

The LLM may train through LoRA adapters (``llm_finetune="lora"``,
``audiollm_lobes.lora``): the audio keys/values then go through the
adapted projections like the text's, and the injector holds the LLM as a
submodule so that its ``forward`` covers the LoRA weights.

Supported families: decoder-only HF models with the Llama layout
(``model.layers[i].self_attn.{k_proj, v_proj}``, ``input_layernorm``,
rotate-half RoPE), e.g. Llama, Mistral, Qwen2, Qwen3, and Phi-3, whose
fused ``qkv_proj`` is sliced to its key and value rows
(``frozen_kv_rows``); sliding-window layer types and logit soft-capping
in attention are rejected, and a window a config declares without layer
types (Phi-3-mini's 2047, Mistral-7B-v0.1's 4096) is not applied: LAL's
caches are full-attention layers and its masks cover every position.
Tested against a float64 reference on tiny
Llama, Qwen2, Mistral and Phi-3 models
(``tests/unit/injection/test_lal_families.py``).

Authors
 * audiollm-lobes developers, 2026
"""

import contextlib

import torch
import transformers
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from audiollm_lobes.kv_cache import ReservedCacheLayer, cache_keyword
from audiollm_lobes.llm import CausalLM, decode_loop, next_token_loss
from audiollm_lobes.masks import positions_from_mask

#: Name under which the per-layer-mask attention is registered.
LAL_ATTENTION = "audiollm_lobes_lal"

KV_PROJECTIONS = ("shared", "new")
AUDIO_ROPE = ("none", "prefix")
#: How the LLM itself trains under LAL (see ``AttentionOnlyInjector``).
LLM_FINETUNE = ("none", "lora")


def lal_attention_forward(
    module,
    query,
    key,
    value,
    attention_mask,
    lal_layer_masks=None,
    **kwargs,
):
    """HF attention function that takes a different mask in every layer.

    Registered with ``transformers.AttentionInterface`` as
    ``LAL_ATTENTION``. When ``lal_layer_masks`` is passed through the
    model's forward kwargs, the mask of ``module.layer_idx`` replaces the
    model-wide ``attention_mask``; the attention itself is HF's SDPA one.

    Arguments
    ---------
    module : torch.nn.Module
        The HF attention module (gives ``layer_idx``, ``scaling``, GQA
        groups).
    query : torch.Tensor
        ``(batch, heads, q_len, head_dim)``.
    key : torch.Tensor
        ``(batch, kv_heads, kv_len, head_dim)``.
    value : torch.Tensor
        ``(batch, kv_heads, kv_len, head_dim)``.
    attention_mask : torch.Tensor or None
        The model-wide mask (used when ``lal_layer_masks`` is None).
    lal_layer_masks : sequence of torch.Tensor, optional
        One boolean ``(batch, 1, q_len, kv_len_l)`` mask per layer, True
        where attention is allowed.
    **kwargs
        Passed on to the SDPA attention (``scaling``, ``dropout``, ...).

    Returns
    -------
    output : torch.Tensor
        ``(batch, q_len, heads, head_dim)``.
    weights : None
        SDPA does not return attention weights.

    Example
    -------
    >>> class Attn(torch.nn.Module):
    ...     layer_idx, num_key_value_groups, is_causal = 1, 1, True
    >>> q = k = v = torch.randn(1, 2, 3, 4)
    >>> masks = [None, torch.ones(1, 1, 3, 3, dtype=torch.bool)]
    >>> out, _ = lal_attention_forward(Attn(), q, k, v, None, masks)
    >>> out.shape
    torch.Size([1, 3, 2, 4])
    """
    if lal_layer_masks is not None:
        attention_mask = lal_layer_masks[module.layer_idx]
        if attention_mask.shape[-1] != key.shape[-2]:
            raise RuntimeError(
                f"layer {module.layer_idx}: mask covers "
                f"{attention_mask.shape[-1]} keys but the cache holds "
                f"{key.shape[-2]} (LAL needs the KV cache in every layer; "
                "gradient checkpointing that drops it is not supported)"
            )
    return sdpa_attention_forward(
        module, query, key, value, attention_mask, **kwargs
    )


transformers.AttentionInterface.register(LAL_ATTENTION, lal_attention_forward)


def rotate_half(x):
    """Rotary helper: ``[x1, x2] -> [-x2, x1]`` on the last dimension.

    Arguments
    ---------
    x : torch.Tensor
        ``(..., head_dim)`` with an even ``head_dim``.

    Returns
    -------
    torch.Tensor
        Same shape.

    Example
    -------
    >>> rotate_half(torch.tensor([1.0, 2.0, 3.0, 4.0])).tolist()
    [-3.0, -4.0, 1.0, 2.0]
    """
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def text_attention_mask(text_mask):
    """Causal self-attention mask of right-padded text, padding excluded.

    Every query may see itself, so padded rows are never empty (an empty
    row would give NaN in SDPA and spread through masked values).

    Arguments
    ---------
    text_mask : torch.Tensor
        ``(batch, len)`` boolean or 0/1.

    Returns
    -------
    torch.BoolTensor
        ``(batch, 1, len, len)``, True where query ``i`` may see key ``j``.

    Example
    -------
    >>> m = text_attention_mask(torch.tensor([[1, 1, 0]]))
    >>> m[0, 0].int().tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    text_mask = text_mask.bool()
    length = text_mask.shape[1]
    ones = torch.ones(length, length, dtype=torch.bool, device=text_mask.device)
    allowed = ones.tril()[None] & text_mask[:, None, :]
    allowed = allowed | torch.eye(
        length, dtype=torch.bool, device=text_mask.device
    )
    return allowed[:, None]


def _zero_padding(audio, audio_mask):
    """Zeroes padded audio tokens (once; a no-op when nothing is padded)."""
    if bool(audio_mask.all()):
        return audio
    return audio.masked_fill(~audio_mask[..., None], 0.0)


def _is_linear(module):
    return isinstance(module, torch.nn.Module) and hasattr(
        module, "out_features"
    )


def frozen_kv_rows(layer, config):
    """Where a decoder layer's frozen key/value projections live.

    Arguments
    ---------
    layer : torch.nn.Module
        A decoder layer (``self_attn``, ``input_layernorm``).
    config : transformers.PretrainedConfig
        The model config (head counts).

    Returns
    -------
    attn : torch.nn.Module
        The layer's ``self_attn``.
    rows : tuple of slice or None
        None for separate ``k_proj`` / ``v_proj`` (Llama layout); for a
        fused ``qkv_proj`` (Phi-3: ``[queries; keys; values]`` rows), the
        ``(key_rows, value_rows)`` of its weight.

    Example
    -------
    >>> config = transformers.Phi3Config(
    ...     vocab_size=8, hidden_size=8, intermediate_size=8,
    ...     num_hidden_layers=1, num_attention_heads=2,
    ...     num_key_value_heads=1, pad_token_id=0,
    ... )
    >>> model = transformers.Phi3ForCausalLM(config)
    >>> frozen_kv_rows(model.model.layers[0], config)[1]
    (slice(8, 12, None), slice(12, 16, None))
    """
    attn = getattr(layer, "self_attn", None)
    if attn is None:
        raise ValueError(
            f"{type(layer).__name__} has no `self_attn`; LAL needs the "
            "Llama layout (self_attn.k_proj / v_proj or a fused qkv_proj, "
            "input_layernorm)"
        )
    if getattr(layer, "input_layernorm", None) is None:
        raise ValueError(
            f"{type(layer).__name__} has no `input_layernorm`; LAL needs "
            "the Llama layout"
        )
    if _is_linear(getattr(attn, "k_proj", None)) and _is_linear(
        getattr(attn, "v_proj", None)
    ):
        return attn, None
    fused = getattr(attn, "qkv_proj", None)
    if not _is_linear(fused):
        raise ValueError(
            f"{type(attn).__name__} has neither linear `k_proj` / `v_proj` "
            "nor a fused `qkv_proj`; LAL cannot find its key/value "
            "projections"
        )
    head_dim = attn.head_dim
    q_size = config.num_attention_heads * head_dim
    kv_heads = getattr(config, "num_key_value_heads", None)
    kv_size = (kv_heads or config.num_attention_heads) * head_dim
    if fused.out_features != q_size + 2 * kv_size:
        raise ValueError(
            f"{type(attn).__name__}.qkv_proj has {fused.out_features} "
            f"outputs; expected queries + keys + values = {q_size} + "
            f"2 * {kv_size} from the config's head counts"
        )
    keys = slice(q_size, q_size + kv_size)
    values = slice(q_size + kv_size, q_size + 2 * kv_size)
    return attn, (keys, values)


def _frozen_kv_params(attn, rows, which):
    """``(weight, bias)`` of the frozen key (``which=0``) or value (1)
    projection; bias may be None."""
    if rows is None:
        proj = attn.k_proj if which == 0 else attn.v_proj
        return proj.weight, proj.bias
    fused = attn.qkv_proj
    bias = None if fused.bias is None else fused.bias[rows[which]]
    return fused.weight[rows[which]], bias


class AttentionOnlyInjector(torch.nn.Module):
    """LAL: audio tokens as extra keys/values of chosen frozen-LLM layers.

    Only the per-layer audio maps (``shared``) or K/V projections (``new``)
    are parameters of this module; with ``llm_finetune="none"`` the LLM is
    kept outside the module tree (it is neither trained nor saved with this
    module's ``state_dict``), with ``"lora"`` it is the submodule ``llm``.

    Arguments
    ---------
    llm : CausalLM
        The frozen causal LM (an HF model in memory is wrapped with
        ``CausalLM.from_model``).
    audio_dim : int
        Width of the audio tokens.
    lal_layers : str or list of int
        ``"all"`` or the indices of the layers that receive audio
        (``[]`` gives the text-only LLM).
    kv_projection : str
        ``"shared"`` (trainable map + the layer's frozen norm and k/v
        projections) or ``"new"`` (trainable K/V projections).
    audio_rope : str
        ``"none"`` (audio keys unrotated, text positions from 0) or
        ``"prefix"`` (audio keys at positions ``0..Na-1``, text after).
    first_layer : int
        Inject only into the layers of ``lal_layers`` from this index on
        (``0``: all of them), as the later version of the paper does.
    llm_finetune : str
        ``"none"``: every LLM parameter is frozen and the LLM stays outside
        this module. ``"lora"``: the LLM trains through its own trainable
        parameters (LoRA adapters injected by
        ``audiollm_lobes.lora.LoRAAdapter``, before or after this module
        is built; this module leaves ``requires_grad`` as it finds it) and
        is registered as the submodule ``llm``, so that this module's
        ``forward``, which computes the whole loss, covers them: DDP then
        averages their gradients with the maps', ``TrainableState`` saves
        them (under ``injector.llm.``), and they are counted once. The
        audio keys/values go through the layer's (adapted) ``k_proj`` /
        ``v_proj`` like the text ones (``kv_projection="shared"``).

    Example
    -------
    >>> config = transformers.LlamaConfig(
    ...     vocab_size=20, hidden_size=16, intermediate_size=32,
    ...     num_hidden_layers=2, num_attention_heads=2,
    ...     num_key_value_heads=1,
    ... )
    >>> llm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
    >>> lal = AttentionOnlyInjector(llm, audio_dim=16, lal_layers=[1])
    >>> audio, audio_mask = torch.randn(2, 5, 16), torch.ones(2, 5).bool()
    >>> text = llm.embed(torch.tensor([[1, 2], [3, 0]]))
    >>> text_mask = torch.tensor([[1, 1], [1, 0]]).bool()
    >>> lal(text, text_mask, audio, audio_mask).shape
    torch.Size([2, 2, 20])
    >>> lal.generate(audio, audio_mask, text, text_mask, 3, eos_ids=[]).shape
    torch.Size([2, 3])
    >>> [name for name, _ in lal.named_parameters()]
    ['maps.1.weight', 'maps.1.bias']
    >>> AttentionOnlyInjector(llm, 16, first_layer=1).lal_layers
    [1]
    """

    def __init__(
        self,
        llm,
        audio_dim,
        lal_layers="all",
        kv_projection="shared",
        audio_rope="none",
        first_layer=0,
        llm_finetune="none",
    ):
        super().__init__()
        if not isinstance(llm, CausalLM):
            raise TypeError(
                "llm must be a CausalLM (wrap a transformers PreTrainedModel "
                f"with CausalLM.from_model); got {type(llm).__name__}"
            )
        if llm_finetune not in LLM_FINETUNE:
            raise ValueError(
                f"llm_finetune must be one of {LLM_FINETUNE}; got "
                f"{llm_finetune!r}"
            )
        self.llm_finetune = llm_finetune
        if llm_finetune == "none":
            # Not a submodule: the frozen LLM is neither saved nor trained
            # here.
            self.__dict__["llm"] = llm
        else:
            # A submodule: its trainable (LoRA) weights train, are averaged
            # under DDP and are saved with this module's.
            self.add_module("llm", llm)
        hf = llm.model
        config = hf.config
        decoder = self._decoder()
        layers = getattr(decoder, "layers", None)
        if layers is None:
            raise ValueError(
                f"{type(decoder).__name__} has no `layers`; LAL needs a "
                "decoder-only model with the Llama layout"
            )
        num_layers = len(layers)
        layer_types = getattr(config, "layer_types", None) or []
        if any(t != "full_attention" for t in layer_types):
            raise NotImplementedError(
                "LAL supports full-attention layers only; this model has "
                f"layer types {sorted(set(layer_types))}"
            )
        if getattr(config, "attn_logit_softcapping", None):
            raise NotImplementedError(
                "LAL runs SDPA attention, which has no logit soft-capping"
            )
        if kv_projection not in KV_PROJECTIONS:
            raise ValueError(
                f"kv_projection must be one of {KV_PROJECTIONS}; got "
                f"{kv_projection!r}"
            )
        if audio_rope not in AUDIO_ROPE:
            raise ValueError(
                f"audio_rope must be one of {AUDIO_ROPE}; got {audio_rope!r}"
            )
        if not isinstance(audio_dim, int) or audio_dim <= 0:
            raise ValueError(
                f"audio_dim must be a positive int; got {audio_dim!r}"
            )
        if (
            not isinstance(first_layer, int)
            or isinstance(first_layer, bool)
            or not 0 <= first_layer < max(num_layers, 1)
        ):
            raise ValueError(
                f"first_layer must be a layer index in 0..{num_layers - 1}; "
                f"got {first_layer!r}"
            )
        chosen = self._parse_layers(lal_layers, num_layers)
        self.lal_layers = [i for i in chosen if i >= first_layer]
        if chosen and not self.lal_layers:
            raise ValueError(
                f"lal_layers {chosen} has no layer from first_layer="
                f"{first_layer} on (lal_layers: [] for the text-only LLM)"
            )
        self.first_layer = first_layer
        self.num_layers = num_layers
        self.audio_dim = audio_dim
        self.kv_projection = kv_projection
        self.audio_rope = audio_rope
        if llm_finetune == "none":
            hf.requires_grad_(False)

        weight = hf.get_input_embeddings().weight
        device = weight.device
        hidden = weight.shape[1]
        self.maps = torch.nn.ModuleDict()
        self.k_maps = torch.nn.ModuleDict()
        self.v_maps = torch.nn.ModuleDict()
        # per LAL layer: None (k_proj / v_proj) or the qkv_proj rows
        self._kv_rows = {}
        for idx in self.lal_layers:
            attn, rows = frozen_kv_rows(layers[idx], config)
            self._kv_rows[idx] = rows
            if kv_projection == "shared":
                lin = torch.nn.Linear(audio_dim, hidden, device=device)
                with torch.no_grad():
                    lin.weight.copy_(torch.eye(hidden, audio_dim))
                    lin.bias.zero_()
                self.maps[str(idx)] = lin
            else:
                for which, table in enumerate((self.k_maps, self.v_maps)):
                    weight, bias = _frozen_kv_params(attn, rows, which)
                    lin = torch.nn.Linear(
                        audio_dim,
                        weight.shape[0],
                        bias=bias is not None,
                        device=device,
                    )
                    if weight.shape[1] == audio_dim:
                        with torch.no_grad():
                            lin.weight.copy_(weight.float())
                            if bias is not None:
                                lin.bias.copy_(bias.float())
                    table[str(idx)] = lin

    # ----------------------------------------------------------- helpers
    @staticmethod
    def _parse_layers(lal_layers, num_layers):
        if lal_layers == "all":
            return list(range(num_layers))
        if isinstance(lal_layers, str) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in lal_layers
        ):
            raise ValueError(
                "lal_layers must be 'all' or a list of layer indices; got "
                f"{lal_layers!r}"
            )
        bad = [i for i in lal_layers if not 0 <= i < num_layers]
        if bad:
            raise ValueError(
                f"lal_layers {bad} out of range: the LLM has {num_layers} "
                "layers (indices 0..{})".format(num_layers - 1)
            )
        return sorted(set(lal_layers))

    def _decoder(self):
        return self.llm.decoder()

    @property
    def hf_model(self):
        """The HF model of the wrapped ``CausalLM``."""
        return self.llm.model

    @property
    def llm_dtype(self):
        """Dtype of the LLM weights."""
        return self.llm.dtype

    @contextlib.contextmanager
    def _lal_attention(self):
        configs = {id(self.hf_model.config): self.hf_model.config}
        for layer in self._decoder().layers:
            cfg = getattr(layer.self_attn, "config", None)
            if cfg is not None:
                configs[id(cfg)] = cfg
        saved = [(cfg, cfg._attn_implementation) for cfg in configs.values()]
        for cfg, _ in saved:
            cfg._attn_implementation = LAL_ATTENTION
        try:
            yield
        finally:
            for cfg, impl in saved:
                cfg._attn_implementation = impl

    def _check_audio(self, audio, audio_mask):
        if audio is None:
            return None, None
        if audio.dim() != 3 or audio.shape[-1] != self.audio_dim:
            raise ValueError(
                f"audio must be (batch, n_audio, audio_dim={self.audio_dim}); "
                f"got shape {tuple(audio.shape)}"
            )
        if audio_mask is None:
            audio_mask = torch.ones(
                audio.shape[:2], dtype=torch.bool, device=audio.device
            )
        if audio_mask.shape != audio.shape[:2]:
            raise ValueError(
                f"audio_mask must be {tuple(audio.shape[:2])} like "
                f"audio[..., 0]; got {tuple(audio_mask.shape)}"
            )
        return audio, audio_mask.bool()

    @staticmethod
    def _check_text(text_embeds, text_mask):
        if text_embeds.dim() != 3:
            raise ValueError(
                "text_embeds must be (batch, len, hidden); got shape "
                f"{tuple(text_embeds.shape)}"
            )
        if text_mask.shape != text_embeds.shape[:2]:
            raise ValueError(
                f"text_mask must be {tuple(text_embeds.shape[:2])} like "
                f"text_embeds[..., 0]; got {tuple(text_mask.shape)}"
            )
        if bool((text_mask.long().sum(1) == 0).any()):
            raise ValueError("text_mask has a sample without any valid token")
        return text_mask.bool()

    def _rotate(self, keys, positions):
        rotary = getattr(self._decoder(), "rotary_emb", None)
        if rotary is None:
            raise NotImplementedError(
                "audio_rope='prefix' needs the decoder's `rotary_emb`"
            )
        cos, sin = rotary(keys, positions)
        if cos.shape[-1] != keys.shape[-1]:
            raise NotImplementedError(
                "audio_rope='prefix' supports full-width rotary embeddings "
                f"only (rotary dim {cos.shape[-1]}, head dim {keys.shape[-1]})"
            )
        cos, sin = cos[:, None], sin[:, None]
        return keys * cos + rotate_half(keys) * sin

    def audio_key_values(self, audio, audio_mask, layer_idx):
        """Audio keys and values of one LAL layer.

        Arguments
        ---------
        audio : torch.Tensor
            ``(batch, n_audio, audio_dim)``.
        audio_mask : torch.Tensor
            ``(batch, n_audio)`` boolean; padded tokens are zeroed.
        layer_idx : int
            A layer of ``lal_layers``.

        Returns
        -------
        keys : torch.Tensor
            ``(batch, kv_heads, n_audio, head_dim)`` (rotated when
            ``audio_rope="prefix"``).
        values : torch.Tensor
            ``(batch, kv_heads, n_audio, head_dim)``.

        Example
        -------
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=8, hidden_size=8, intermediate_size=8,
        ...     num_hidden_layers=1, num_attention_heads=2,
        ...     num_key_value_heads=1,
        ... )
        >>> llm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> lal = AttentionOnlyInjector(llm, audio_dim=8)
        >>> k, v = lal.audio_key_values(
        ...     torch.randn(3, 5, 8), torch.ones(3, 5).bool(), 0
        ... )
        >>> k.shape, v.shape
        (torch.Size([3, 1, 5, 4]), torch.Size([3, 1, 5, 4]))
        """
        if layer_idx not in self.lal_layers:
            raise ValueError(f"layer {layer_idx} is not in lal_layers")
        layer = self._decoder().layers[layer_idx]
        attn = layer.self_attn
        dtype = self.llm_dtype
        key = str(layer_idx)
        batch, n_audio = audio.shape[:2]
        x = _zero_padding(audio, audio_mask)
        if self.kv_projection == "shared":
            lin = self.maps[key]
            hidden = lin(x.to(lin.weight.dtype)).to(dtype)
            hidden = layer.input_layernorm(hidden)
            rows = self._kv_rows[layer_idx]
            if rows is None:
                keys, values = attn.k_proj(hidden), attn.v_proj(hidden)
            elif type(attn.qkv_proj) is torch.nn.Linear:
                # plain fused qkv_proj: only its key and value rows
                keys, values = (
                    torch.nn.functional.linear(
                        hidden, *_frozen_kv_params(attn, rows, which)
                    )
                    for which in (0, 1)
                )
            else:  # adapted (e.g. LoRA) qkv_proj: its key and value outputs
                fused = attn.qkv_proj(hidden)
                keys, values = fused[..., rows[0]], fused[..., rows[1]]
        else:
            k_lin, v_lin = self.k_maps[key], self.v_maps[key]
            x = x.to(k_lin.weight.dtype)
            keys, values = k_lin(x).to(dtype), v_lin(x).to(dtype)
        head_dim = attn.head_dim
        keys = keys.view(batch, n_audio, keys.shape[-1] // head_dim, head_dim)
        values = values.view(
            batch, n_audio, values.shape[-1] // head_dim, head_dim
        )
        k_norm = getattr(attn, "k_norm", None)
        if k_norm is not None:
            if k_norm.weight.shape[0] == head_dim:
                keys = k_norm(keys)
            else:
                keys = k_norm(keys.flatten(2)).view_as(keys)
        keys, values = keys.transpose(1, 2), values.transpose(1, 2)
        if self.audio_rope == "prefix":
            keys = self._rotate(keys, positions_from_mask(audio_mask))
        return keys, values

    # -------------------------------------------------------- public API
    def build_cache(self, audio, audio_mask=None, room=None):
        """Writes the audio keys/values of every LAL layer into a new cache.

        Runs with gradients when they are enabled (training), so the cache
        entries stay attached to the trainable maps.

        Arguments
        ---------
        audio : torch.Tensor
            ``(batch, n_audio, audio_dim)`` audio tokens.
        audio_mask : torch.Tensor, optional
            ``(batch, n_audio)`` boolean, True at real tokens (default: all).
        room : int, optional
            For decoding (no gradients): the number of text positions
            (prompt and new tokens) the cache will receive; each layer then
            reserves them up front (``ReservedCacheLayer``) instead of
            concatenating its whole cache at every step.

        Returns
        -------
        cache : transformers.DynamicCache
            Layers in ``lal_layers`` hold ``n_audio`` audio slots; the other
            layers hold nothing.
        audio_attention_mask : torch.BoolTensor
            ``(batch, n_audio)``: which audio slots may be attended.

        Example
        -------
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=8, hidden_size=8, intermediate_size=8,
        ...     num_hidden_layers=2, num_attention_heads=2,
        ... )
        >>> llm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> lal = AttentionOnlyInjector(llm, 8, lal_layers=[1])
        >>> cache, mask = lal.build_cache(torch.randn(2, 4, 8))
        >>> [cache.get_seq_length(i) for i in range(2)], mask.shape
        ([0, 4], torch.Size([2, 4]))
        """
        audio, audio_mask = self._check_audio(audio, audio_mask)
        # full-attention layers whatever the config says: LAL attends
        # through its own masks, and a sliding-window layer (which HF makes
        # when a config declares a window, e.g. Phi-3-mini) would drop the
        # oldest positions, audio first
        if room is None:
            layers = [DynamicLayer() for _ in range(self.num_layers)]
        else:
            n_audio = 0 if audio is None else audio.shape[1]
            lal = set(self.lal_layers)
            layers = [
                ReservedCacheLayer(room + (n_audio if i in lal else 0))
                for i in range(self.num_layers)
            ]
        cache = transformers.DynamicCache()
        cache.layers = layers
        if audio is None:
            return cache, None
        audio = _zero_padding(audio, audio_mask)
        for idx in self.lal_layers:
            keys, values = self.audio_key_values(audio, audio_mask, idx)
            cache.update(keys, values, idx)
        return cache, audio_mask

    def text_positions(self, text_mask, audio_mask=None):
        """Position ids of right-padded text after (or without) the audio.

        Arguments
        ---------
        text_mask : torch.Tensor
            ``(batch, len)`` boolean.
        audio_mask : torch.Tensor, optional
            ``(batch, n_audio)``; with ``audio_rope="prefix"`` the text of
            each sample starts after its number of valid audio tokens.

        Returns
        -------
        torch.LongTensor
            ``(batch, len)``.

        Example
        -------
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=8, hidden_size=8, intermediate_size=8,
        ...     num_hidden_layers=1, num_attention_heads=2,
        ... )
        >>> llm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> lal = AttentionOnlyInjector(llm, 8, audio_rope="prefix")
        >>> am = torch.tensor([[1, 1, 1], [1, 0, 0]]).bool()
        >>> tm = torch.tensor([[1, 1], [1, 0]]).bool()
        >>> lal.text_positions(tm, am).tolist()
        [[3, 4], [1, 1]]
        """
        positions = positions_from_mask(text_mask)
        if self.audio_rope == "prefix" and audio_mask is not None:
            positions = positions + audio_mask.long().sum(1, keepdim=True)
        return positions

    def _layer_masks(self, audio_mask, key_mask_text, query_block):
        """Per-layer boolean masks ``(batch, 1, q, kv_l)``."""
        batch, _, q_len, _ = query_block.shape
        no_audio = query_block
        if audio_mask is None or not self.lal_layers:
            return [no_audio] * self.num_layers
        audio_part = audio_mask[:, None, None, :].expand(
            batch, 1, q_len, audio_mask.shape[1]
        )
        with_audio = torch.cat([audio_part, query_block], dim=-1)
        lal = set(self.lal_layers)
        return [
            with_audio if i in lal else no_audio for i in range(self.num_layers)
        ]

    def _run(self, embeds, masks, positions, cache):
        with self._lal_attention():
            decoder = self._decoder()
            out = decoder(
                inputs_embeds=embeds,
                attention_mask=masks[0],
                position_ids=positions,
                use_cache=True,
                lal_layer_masks=masks,
                **{cache_keyword(decoder): cache},
            )
        return out.last_hidden_state

    def forward(
        self,
        text_embeds,
        text_mask,
        audio=None,
        audio_mask=None,
        logits_at=None,
        labels=None,
        reduction="mean",
    ):
        """Logits of the text with the audio injected as keys/values, or
        with ``labels`` the next-token loss.

        Training goes through ``forward`` with ``labels`` (:meth:`loss`
        calls it): a module wrapped in ``DistributedDataParallel`` averages
        gradients only of what its wrapper's ``forward`` computed (see
        docs/design.md, "Engineering rules").

        Arguments
        ---------
        text_embeds : torch.Tensor
            ``(batch, len, hidden)`` right-padded text embeddings (may hold
            PLITS audio tokens too, see ``PALRouter``).
        text_mask : torch.Tensor
            ``(batch, len)`` boolean.
        audio : torch.Tensor, optional
            ``(batch, n_audio, audio_dim)`` LAL audio tokens (None: text
            only).
        audio_mask : torch.Tensor, optional
            ``(batch, n_audio)``.
        logits_at : torch.Tensor, optional
            ``(batch, len)`` boolean; compute logits only there, returned
            flattened as ``(n, vocab)``.
        labels : torch.LongTensor, optional
            ``(batch, len)``, HF style (the label at ``t`` is the token at
            ``t``, predicted from ``t - 1``; ``-100`` is ignored); then the
            loss is returned instead of logits (not with ``logits_at``).
        reduction : str
            Of the loss: ``"mean"``, ``"sum"`` or ``"none"`` (row-major
            labelled tokens).

        Returns
        -------
        torch.Tensor
            ``(batch, len, vocab)`` logits, or ``(n, vocab)``; with
            ``labels``, the loss (float32).

        Example
        -------
        >>> _ = torch.manual_seed(0)
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=20, hidden_size=16, intermediate_size=32,
        ...     num_hidden_layers=2, num_attention_heads=2,
        ... )
        >>> llm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> text = llm.embed(torch.tensor([[1, 5, 6], [1, 7, 0]]))
        >>> text_mask = torch.tensor([[1, 1, 1], [1, 1, 0]]).bool()
        >>> audio, audio_mask = torch.randn(2, 4, 16), torch.ones(2, 4).bool()
        >>> lal = AttentionOnlyInjector(llm, audio_dim=16)
        >>> logits = lal(text, text_mask, audio, audio_mask)[text_mask]
        >>> plain = llm(text, text_mask).logits[text_mask]
        >>> torch.allclose(lal(text, text_mask)[text_mask], plain, atol=1e-6)
        True
        >>> torch.allclose(logits, plain, atol=1e-3)  # the audio is heard
        False
        >>> lal(text, text_mask, audio, audio_mask, logits_at=text_mask).shape
        torch.Size([5, 20])
        >>> labels = torch.tensor([[-100, 5, 6], [-100, 7, -100]])
        >>> loss = lal(text, text_mask, audio, audio_mask, labels=labels)
        >>> targets = torch.tensor([5, 6, 7])
        >>> at = torch.tensor([[1, 1, 0], [1, 0, 0]]).bool()
        >>> ref = torch.nn.functional.cross_entropy(
        ...     lal(text, text_mask, audio, audio_mask, logits_at=at), targets)
        >>> torch.allclose(loss, ref)
        True
        """
        text_mask = self._check_text(text_embeds, text_mask)
        audio, audio_mask = self._check_audio(audio, audio_mask)
        if audio is not None and audio.shape[0] != text_embeds.shape[0]:
            raise ValueError(
                f"audio batch {audio.shape[0]} != text batch "
                f"{text_embeds.shape[0]}"
            )
        if labels is not None:
            if logits_at is not None:
                raise ValueError("give labels or logits_at, not both")
            if labels.shape != text_mask.shape:
                raise ValueError(
                    f"labels must be {tuple(text_mask.shape)} like "
                    f"text_mask; got {tuple(labels.shape)}"
                )
        cache, audio_mask = self.build_cache(audio, audio_mask)
        masks = self._layer_masks(
            audio_mask, text_mask, text_attention_mask(text_mask)
        )
        positions = self.text_positions(text_mask, audio_mask)
        hidden = self._run(
            text_embeds.to(self.llm_dtype), masks, positions, cache
        )
        if labels is not None:
            # without a labelled token the zero loss still spans every
            # trainable map (DDP expects each to get a gradient)
            return next_token_loss(
                lambda where: self.llm.head(hidden[where]),
                labels,
                hidden,
                reduction,
            )
        if logits_at is None:
            return self.llm.head(hidden)
        if logits_at.shape != text_mask.shape:
            raise ValueError(
                f"logits_at must be {tuple(text_mask.shape)}; got "
                f"{tuple(logits_at.shape)}"
            )
        return self.llm.head(hidden[logits_at.bool()])

    def loss(
        self,
        text_embeds,
        text_mask,
        labels,
        audio=None,
        audio_mask=None,
        reduction="mean",
    ):
        """Next-token cross-entropy on the labelled text positions.

        Arguments
        ---------
        text_embeds : torch.Tensor
            ``(batch, len, hidden)`` right-padded.
        text_mask : torch.Tensor
            ``(batch, len)``.
        labels : torch.LongTensor
            ``(batch, len)``, HF style: the label at ``t`` is the token at
            ``t``, predicted from ``t - 1``; ``-100`` is ignored.
        audio : torch.Tensor, optional
            ``(batch, n_audio, audio_dim)``.
        audio_mask : torch.Tensor, optional
            ``(batch, n_audio)``.
        reduction : str
            ``"mean"``, ``"sum"`` or ``"none"`` (row-major labelled tokens).

        Returns
        -------
        torch.Tensor
            The loss (float32).

        Example
        -------
        >>> _ = torch.manual_seed(0)
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=20, hidden_size=16, intermediate_size=32,
        ...     num_hidden_layers=2, num_attention_heads=2,
        ... )
        >>> llm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> text = llm.embed(torch.tensor([[1, 5, 6], [1, 7, 0]]))
        >>> text_mask = torch.tensor([[1, 1, 1], [1, 1, 0]]).bool()
        >>> audio, audio_mask = torch.randn(2, 4, 16), torch.ones(2, 4).bool()
        >>> labels = torch.tensor([[-100, 5, 6], [-100, 7, -100]])
        >>> lal = AttentionOnlyInjector(llm, audio_dim=16, lal_layers=[])
        >>> loss = lal.loss(text, text_mask, labels, audio, audio_mask)
        >>> torch.allclose(loss, llm.loss(text, text_mask, labels))
        True
        """
        return self(
            text_embeds,
            text_mask,
            audio,
            audio_mask,
            labels=labels,
            reduction=reduction,
        )

    @torch.no_grad()
    def generate(
        self,
        audio,
        audio_mask,
        text_embeds,
        text_mask,
        max_new_tokens=64,
        eos_ids=None,
        pad_id=None,
        num_beams=1,
        length_penalty=1.0,
    ):
        """Greedy or beam decoding continuing from the audio KV cache.

        The right-padded prompts stay where they are in the cache; each new
        token is appended after the longest prompt, its position continues
        the sample's own positions and the prompt padding is masked, so a
        sample decodes the same alone or in a batch. The cache reserves
        room for every new token up front (``ReservedCacheLayer``) and the
        per-layer masks are views of one preallocated key mask, so a step
        costs the model's one-token forward and nothing per cached
        position besides attention.

        With ``num_beams > 1``, beam search (``beam_search``: the rules of
        ``CausalLM.generate(num_beams=...)``, i.e. HF transformers' beam
        search with ``length_penalty`` and ``early_stopping=False``). The
        prompt is encoded once per sample; the cache is then expanded to
        the beams, and reordering the beams rewrites only their generated
        positions (the audio and prompt are the same for all the beams of
        a sample).

        Arguments
        ---------
        audio : torch.Tensor or None
            ``(batch, n_audio, audio_dim)``.
        audio_mask : torch.Tensor or None
            ``(batch, n_audio)``.
        text_embeds : torch.Tensor
            ``(batch, len, hidden)`` right-padded prompt embeddings.
        text_mask : torch.Tensor
            ``(batch, len)``.
        max_new_tokens : int
            Maximum number of generated tokens.
        eos_ids : list of int, optional
            Tokens that end a sample (default: the LLM's ``eos_ids``).
        pad_id : int, optional
            Written after EOS (default: the LLM's ``pad_id``).
        num_beams : int
            1: greedy; more: beam search.
        length_penalty : float
            Beam search: a finished hypothesis scores its summed
            log-probabilities over ``length ** length_penalty``.

        Returns
        -------
        torch.LongTensor
            ``(batch, n_new)`` new tokens; EOS is kept, then ``pad_id``.
            ``n_new < max_new_tokens`` when every sample ended early.

        Example
        -------
        >>> _ = torch.manual_seed(0)
        >>> config = transformers.LlamaConfig(
        ...     vocab_size=20, hidden_size=16, intermediate_size=32,
        ...     num_hidden_layers=2, num_attention_heads=2,
        ... )
        >>> llm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
        >>> text = llm.embed(torch.tensor([[1, 5, 6], [1, 7, 0]]))
        >>> text_mask = torch.tensor([[1, 1, 1], [1, 1, 0]]).bool()
        >>> audio, audio_mask = torch.randn(2, 4, 16), torch.ones(2, 4).bool()
        >>> lal = AttentionOnlyInjector(llm, audio_dim=16)
        >>> out = lal.generate(audio, audio_mask, text, text_mask, 4)
        >>> out.shape[0], out.shape[1] <= 4
        (2, True)
        >>> alone = lal.generate(
        ...     audio[1:], None, text[1:, :2], text_mask[1:, :2], 4
        ... )
        >>> torch.equal(alone[0], out[1, : alone.shape[1]])  # padding: no-op
        True
        >>> beams = lal.generate(audio, audio_mask, text, text_mask, 4,
        ...                      num_beams=3)
        >>> beams.shape[0], beams.shape[1] <= 4
        (2, True)
        """
        eos_ids = self.llm.eos_ids if eos_ids is None else eos_ids
        eos_ids = [eos_ids] if isinstance(eos_ids, int) else list(eos_ids)
        pad_id = self.llm.pad_id if pad_id is None else int(pad_id)
        if max_new_tokens < 1:
            raise ValueError(
                f"max_new_tokens must be >= 1; got {max_new_tokens}"
            )
        if int(num_beams) != num_beams or num_beams < 1:
            raise ValueError(f"num_beams must be an int >= 1; got {num_beams}")
        with self._lal_attention():
            decoding = LALDecoding(
                self, audio, audio_mask, text_embeds, text_mask, max_new_tokens
            )
            if num_beams == 1:
                return decode_loop(
                    lambda token: (
                        decoding.first_logits
                        if token is None
                        else decoding.step(token)
                    ),
                    max_new_tokens,
                    eos_ids,
                    pad_id,
                )

            def advance(rows, tokens):
                decoding.select_rows(rows)
                return decoding.step(tokens)

            return beam_search(
                decoding.first_logits,
                advance,
                int(num_beams),
                max_new_tokens,
                eos_ids,
                pad_id,
                length_penalty=length_penalty,
            )


class LALDecoding:
    """A LAL decoding state: the prompts encoded over the audio cache, then
    one token per row and step (no gradients).

    Positions of the cache: ``[audio][prompt (right-padded)][new tokens]``
    in the layers of ``lal_layers``, ``[prompt][new tokens]`` in the
    others. One boolean key mask ``(rows, n_audio + len + max_new_tokens)``
    (valid audio, the prompt mask, then True) is written once; a step's
    per-layer masks are views of it, so no mask is built per step.

    Arguments
    ---------
    lal : AttentionOnlyInjector
        The injector (its LLM decodes).
    audio : torch.Tensor or None
        ``(batch, n_audio, audio_dim)``.
    audio_mask : torch.Tensor or None
        ``(batch, n_audio)``.
    text_embeds : torch.Tensor
        ``(batch, len, hidden)`` right-padded prompts.
    text_mask : torch.Tensor
        ``(batch, len)``.
    max_new_tokens : int
        Room reserved for new tokens.

    Attributes
    ----------
    first_logits : torch.Tensor
        ``(batch, vocab)`` logits of the first new token.

    Example
    -------
    >>> _ = torch.manual_seed(0)
    >>> config = transformers.LlamaConfig(
    ...     vocab_size=20, hidden_size=16, intermediate_size=32,
    ...     num_hidden_layers=2, num_attention_heads=2,
    ... )
    >>> llm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
    >>> lal = AttentionOnlyInjector(llm, audio_dim=16, lal_layers=[1])
    >>> text = llm.embed(torch.tensor([[1, 5, 6], [1, 7, 0]]))
    >>> text_mask = torch.tensor([[1, 1, 1], [1, 1, 0]]).bool()
    >>> audio = torch.randn(2, 4, 16)
    >>> state = LALDecoding(lal, audio, None, text, text_mask, 3)
    >>> state.first_logits.shape
    torch.Size([2, 20])
    >>> state.step(state.first_logits.argmax(-1)).shape
    torch.Size([2, 20])
    >>> [state.cache.get_seq_length(i) for i in range(2)]  # 3 + 1 and 4 + 4
    [4, 8]
    """

    def __init__(
        self, lal, audio, audio_mask, text_embeds, text_mask, max_new_tokens
    ):
        self.lal = lal
        text_mask = lal._check_text(text_embeds, text_mask)
        audio, audio_mask = lal._check_audio(audio, audio_mask)
        if audio is not None and audio.shape[0] != text_embeds.shape[0]:
            raise ValueError(
                f"audio batch {audio.shape[0]} != text batch "
                f"{text_embeds.shape[0]}"
            )
        batch, length = text_mask.shape
        device = text_embeds.device
        self.cache, audio_mask = lal.build_cache(
            audio, audio_mask, room=length + max_new_tokens
        )
        self.n_audio = 0 if audio_mask is None else audio_mask.shape[1]
        self.prompt_length = length
        self.new_tokens = 0
        self.key_mask = torch.ones(
            batch,
            self.n_audio + length + max_new_tokens,
            dtype=torch.bool,
            device=device,
        )
        if audio_mask is not None:
            self.key_mask[:, : self.n_audio] = audio_mask
        self.key_mask[:, self.n_audio : self.n_audio + length] = text_mask
        lal_set = set(lal.lal_layers) if audio_mask is not None else set()
        self.with_audio = [i in lal_set for i in range(lal.num_layers)]
        positions = lal.text_positions(text_mask, audio_mask)
        masks = lal._layer_masks(
            audio_mask, text_mask, text_attention_mask(text_mask)
        )
        hidden = lal._run(
            text_embeds.to(lal.llm_dtype), masks, positions, self.cache
        )
        rows = torch.arange(batch, device=device)
        last = text_mask.long().sum(1) - 1
        self.positions = positions[rows, last]
        self.first_logits = lal.llm.head(hidden[rows, last])

    def step(self, tokens):
        """Feeds one token per row; returns the next logits.

        Arguments
        ---------
        tokens : torch.LongTensor
            ``(rows,)``.

        Returns
        -------
        torch.Tensor
            ``(rows, vocab)``.
        """
        self.new_tokens += 1
        self.positions = self.positions + 1
        end = self.n_audio + self.prompt_length + self.new_tokens
        full = self.key_mask[:, None, None, :end]
        text_only = self.key_mask[:, None, None, self.n_audio : end]
        masks = [full if audio else text_only for audio in self.with_audio]
        hidden = self.lal._run(
            self.lal.llm.embed(tokens[:, None]),
            masks,
            self.positions[:, None],
            self.cache,
        )
        return self.lal.llm.head(hidden[:, -1])

    def select_rows(self, rows):
        """Row ``i`` of the state becomes the old row ``rows[i]``.

        A change of the number of rows (the expansion of each sample into
        its beams) copies the whole cache; a rearrangement of as many rows
        copies only the new tokens' positions, since beam search maps the
        beams of a sample onto each other and they share the audio and
        the prompt.

        Arguments
        ---------
        rows : torch.LongTensor
            ``(new_rows,)``.
        """
        rows = rows.to(self.key_mask.device)
        self.key_mask = self.key_mask[rows]
        self.positions = self.positions[rows]
        for idx, layer in enumerate(self.cache.layers):
            start = self.prompt_length
            if self.with_audio[idx]:
                start += self.n_audio
            layer.select_rows(rows, start)


def beam_search(
    first_logits,
    advance,
    num_beams,
    max_new_tokens,
    eos_ids,
    pad_id,
    length_penalty=1.0,
):
    """Beam search over a decoder that can rearrange its rows.

    The rules are those of HF transformers' beam search (what
    ``CausalLM.generate(num_beams=...)`` runs, with ``early_stopping=False``):
    per sample, ``num_beams`` running hypotheses scored by their summed
    float32 log-probabilities; at each step the best
    ``max(2, 1 + len(eos_ids)) * num_beams`` continuations are taken; a
    continuation that ends (an EOS, or ``max_new_tokens`` reached) among the
    first ``num_beams`` of them joins the finished hypotheses with the score
    ``sum / length ** length_penalty`` (the ``num_beams`` best are kept),
    the best ``num_beams`` that do not end keep running; a sample stops
    accepting hypotheses once it has ``num_beams`` finished ones and its
    best running score over the current length does not beat the worst of
    them; decoding stops when no sample accepts any more, or at
    ``max_new_tokens``. The best finished hypothesis of each sample is
    returned.

    Arguments
    ---------
    first_logits : torch.Tensor
        ``(batch, vocab)`` logits of the first new token.
    advance : callable
        ``advance(rows, tokens) -> (batch * num_beams, vocab)``: the
        decoder first makes its row ``i`` a copy of its row ``rows[i]``
        (the first call turns ``batch`` rows into ``batch * num_beams``,
        sample-major; later calls only move beams within a sample), then
        feeds ``tokens[i]`` to row ``i`` and returns the next logits.
    num_beams : int
        Beams per sample (>= 1).
    max_new_tokens : int
        Maximum number of tokens.
    eos_ids : list of int
        Tokens that end a hypothesis (may be empty).
    pad_id : int
        Written after a hypothesis's end.
    length_penalty : float
        Exponent of the length normalisation.

    Returns
    -------
    torch.LongTensor
        ``(batch, n_new)`` best hypothesis per sample (EOS kept, then
        ``pad_id``); ``n_new`` is the longest of them.

    Example
    -------
    Token 1 is likelier first, but token 2 leads to a likelier sentence:

    >>> table = torch.log(torch.tensor([
    ...     [0.1, 0.5, 0.4],  # first token
    ...     [0.4, 0.3, 0.3],  # after 1: EOS (0) at best 0.4
    ...     [0.9, 0.05, 0.05],  # after 2: EOS at 0.9
    ... ]))
    >>> def advance(rows, tokens):
    ...     return table[tokens.clamp(max=2)]
    >>> beam_search(table[:1], advance, 2, 3, eos_ids=[0], pad_id=0)
    tensor([[2, 0]])
    >>> greedy = table[:1].argmax(-1)
    >>> greedy.item(), advance(None, greedy).argmax(-1).item()
    (1, 0)
    """
    if num_beams < 1 or max_new_tokens < 1:
        raise ValueError(
            f"num_beams and max_new_tokens must be >= 1; got {num_beams} "
            f"and {max_new_tokens}"
        )
    batch, vocab = first_logits.shape
    device = first_logits.device
    beams = num_beams
    keep = max(2, 1 + len(eos_ids)) * beams
    eos = torch.as_tensor(list(eos_ids), dtype=torch.long, device=device)
    neg = -1.0e9
    can_finish = torch.arange(keep, device=device) < beams
    sample_rows = torch.arange(batch, device=device)[:, None] * beams
    # running hypotheses: only beam 0 is live at first (the others would
    # repeat it)
    run_scores = torch.zeros(batch, beams, device=device)
    run_scores[:, 1:] = neg
    run_tokens = torch.zeros(batch, beams, 0, dtype=torch.long, device=device)
    done_tokens = torch.full(
        (batch, beams, max_new_tokens), pad_id, dtype=torch.long, device=device
    )
    done_scores = torch.full((batch, beams), neg, device=device)
    done_lengths = torch.zeros(batch, beams, dtype=torch.long, device=device)
    is_done = torch.zeros(batch, beams, dtype=torch.bool, device=device)
    accepting = torch.ones(batch, dtype=torch.bool, device=device)
    log_probs = torch.log_softmax(first_logits.float(), dim=-1)
    log_probs = log_probs[:, None, :].expand(batch, beams, vocab)
    for step in range(max_new_tokens):
        length = step + 1
        total = (log_probs + run_scores[..., None]).reshape(batch, -1)
        top, index = total.topk(keep, dim=1)
        source, token = index // vocab, index % vocab
        hyps = torch.cat(
            [
                run_tokens.gather(
                    1, source[..., None].expand(-1, -1, run_tokens.shape[2])
                ),
                token[..., None],
            ],
            dim=2,
        )
        ends = torch.isin(token, eos) | (length >= max_new_tokens)
        # finished hypotheses: merge the new ones, keep the best
        new_done = ends & can_finish & accepting[:, None]
        new_scores = (top / length**length_penalty).masked_fill(~new_done, neg)
        padded = torch.full(
            (batch, keep, max_new_tokens),
            pad_id,
            dtype=torch.long,
            device=device,
        )
        padded[..., :length] = hyps
        merged = torch.cat([done_scores, new_scores], dim=1)
        best = merged.topk(beams, dim=1).indices
        done_scores = merged.gather(1, best)
        done_tokens = torch.cat([done_tokens, padded], 1).gather(
            1, best[..., None].expand(-1, -1, max_new_tokens)
        )
        lengths = torch.full_like(token, length)
        done_lengths = torch.cat([done_lengths, lengths], 1).gather(1, best)
        is_done = torch.cat([is_done, new_done], 1).gather(1, best)
        # running hypotheses: the best that did not end
        alive = top.masked_fill(ends, neg)
        chosen = alive.topk(beams, dim=1).indices
        run_scores = alive.gather(1, chosen)
        run_tokens = hyps.gather(
            1, chosen[..., None].expand(-1, -1, hyps.shape[2])
        )
        # can a running hypothesis still beat the worst finished one?
        worst = done_scores.min(1, keepdim=True).values.expand(-1, beams)
        worst = worst.masked_fill(~is_done, neg)
        best_run = run_scores[:, :1] / (length**length_penalty)
        accepting = accepting & (best_run > worst).any(1)
        if bool(ends.all()) or not bool(accepting.any()):
            break
        rows = source.gather(1, chosen)
        rows = sample_rows // beams if step == 0 else rows + sample_rows
        logits = advance(
            rows.expand(batch, beams).reshape(-1),
            run_tokens[..., -1].reshape(-1),
        )
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        log_probs = log_probs.view(batch, beams, vocab)
    width = int(done_lengths[:, 0].max())
    return done_tokens[:, 0, :width]
