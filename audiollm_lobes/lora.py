"""LoRA on a frozen causal LM, through peft (LiSTEN's LoRA baseline).

``LoRAAdapter`` injects peft LoRA layers into the HF model held by a
``CausalLM`` *in place* (``peft.inject_adapter_in_model``), so the wrapper
keeps calling the same HF modules and nothing else changes: only the LoRA
matrices require grad, they are what ``TrainableState`` checkpoints, and
the frozen base weights are never copied. The adapter's ``train()`` turns
the LoRA dropouts on and off (the frozen LLM itself stays in eval mode).

Defaults follow SALMONN / the LiSTEN development code: r=8, alpha=32,
dropout 0.1 on the attention query and value projections
(``default_target_modules``: ``q_proj``/``v_proj`` in the Llama layout,
the fused ``qkv_proj`` in Phi-3, which then adapts the keys too).

Authors
 * audiollm-lobes developers, 2026
"""

import torch
from peft import LoraConfig, inject_adapter_in_model

#: Attention projections adapted by default, per layout: the first entry
#: whose modules all exist in the model is used.
DEFAULT_TARGETS = (
    ("q_proj", "v_proj"),  # Llama, Mistral, Qwen2, Gemma, ...
    ("qkv_proj",),  # Phi-3: query, key and value fused in one linear
    ("c_attn",),  # GPT-2: fused as well
)


def _linear_suffixes(model):
    """Last name parts of the model's linear layers (sorted)."""
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear)
        }
    )


def default_target_modules(model):
    """The LoRA target modules for a model's family (see ``DEFAULT_TARGETS``).

    Arguments
    ---------
    model : torch.nn.Module
        The HF causal LM.

    Returns
    -------
    list of str
        Module names for ``peft.LoraConfig(target_modules=...)``.

    Example
    -------
    >>> import transformers
    >>> config = transformers.Phi3Config(
    ...     vocab_size=20, hidden_size=8, intermediate_size=16,
    ...     num_hidden_layers=1, num_attention_heads=2, pad_token_id=0,
    ... )
    >>> default_target_modules(transformers.Phi3ForCausalLM(config))
    ['qkv_proj']
    """
    present = set(_linear_suffixes(model))
    for names in DEFAULT_TARGETS:
        if present.issuperset(names):
            return list(names)
    raise ValueError(
        f"LoRAAdapter: no default target modules for "
        f"{type(model).__name__} (known layouts: {list(DEFAULT_TARGETS)}); "
        f"pass target_modules, e.g. among its linear layers "
        f"{_linear_suffixes(model)}"
    )


class LoRAAdapter(torch.nn.Module):
    """Adds LoRA matrices to a frozen ``CausalLM``.

    Arguments
    ---------
    llm : audiollm_lobes.llm.CausalLM
        The wrapped LLM (its ``model`` gets the LoRA layers).
    r : int
        LoRA rank.
    alpha : float
        LoRA scaling numerator (scale = alpha / r).
    dropout : float
        Dropout on the LoRA input.
    target_modules : list of str, optional
        Names of the linear layers to adapt (default: per family, see
        ``default_target_modules``; ``q_proj``, ``v_proj`` for
        Llama-family models).

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.llm import CausalLM
    >>> from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
    >>> lm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
    >>> lora = LoRAAdapter(lm, r=2, alpha=4)
    >>> names = [n for n, p in lm.named_parameters() if p.requires_grad]
    >>> all("lora_" in n for n in names) and len(names) > 0
    True
    """

    def __init__(
        self,
        llm,
        r=8,
        alpha=32,
        dropout=0.1,
        target_modules=None,
    ):
        super().__init__()
        model = llm.model
        if target_modules is None:
            target_modules = default_target_modules(model)
        if isinstance(target_modules, str):
            target_modules = [target_modules]
        # plain names must be linear layers (peft also takes full names)
        plain = {t for t in target_modules if t.isidentifier()}
        missing = sorted(plain - set(_linear_suffixes(model)))
        if missing:
            raise ValueError(
                f"LoRAAdapter: target_modules {missing} are not linear "
                f"layers of {type(model).__name__}; its linear layers are "
                f"{_linear_suffixes(model)} (target_modules: null picks the "
                "family's default)"
            )
        config = LoraConfig(
            r=int(r),
            lora_alpha=alpha,
            lora_dropout=float(dropout),
            target_modules=list(target_modules),
        )
        inject_adapter_in_model(config, model)
        found = False
        for name, param in model.named_parameters():
            is_lora = "lora_" in name
            param.requires_grad_(is_lora)
            found = found or is_lora
        if not found:
            raise ValueError(
                f"LoRAAdapter: no module of the LLM matched target_modules="
                f"{list(target_modules)}; its linear layers are "
                f"{_linear_suffixes(model)} (target_modules: null picks the "
                "family's default)"
            )
        # plain list: the dropouts stay registered only inside the LLM
        self._dropouts = [
            m
            for name, m in model.named_modules()
            if "lora_dropout" in name and isinstance(m, torch.nn.Dropout)
        ]
        self.r, self.alpha = int(r), alpha

    def train(self, mode=True):
        """Switches the LoRA dropouts (the base LLM stays in eval mode).

        Arguments
        ---------
        mode : bool
            Training mode.

        Returns
        -------
        LoRAAdapter
            ``self``.
        """
        super().train(mode)
        for module in self._dropouts:
            module.train(mode)
        return self

    def forward(self, *args, **kwargs):
        """Not used: the LoRA layers act inside the LLM's own forward."""
        raise RuntimeError(
            "LoRAAdapter has no forward; call the CausalLM it adapted"
        )


#: What of the LLM trains (the hparam ``llm_finetune``).
FINETUNE_MODES = ("none", "lora")


class FrozenLLM(torch.nn.Module):
    """Stands where a ``LoRAAdapter`` would be when the LLM stays frozen
    (``llm_finetune: none``): a module without parameters, so that the
    hparams list the same ``modules`` in both settings."""

    def forward(self, *args, **kwargs):
        """Not used."""
        raise RuntimeError("FrozenLLM has no forward; the LLM is frozen")


def llm_finetuning(
    llm, mode="none", r=8, alpha=32, dropout=0.1, target_modules=None
):
    """The module that decides what of the LLM trains, by name.

    Arguments
    ---------
    llm : audiollm_lobes.llm.CausalLM
        The LLM (left frozen, or given LoRA layers in place).
    mode : str
        ``"none"`` (a ``FrozenLLM``) or ``"lora"`` (a ``LoRAAdapter``).
    r, alpha, dropout, target_modules
        The ``LoRAAdapter``'s (unused with ``"none"``).

    Returns
    -------
    torch.nn.Module
        ``FrozenLLM`` or ``LoRAAdapter``.

    Example
    -------
    >>> import transformers
    >>> from audiollm_lobes.llm import CausalLM
    >>> config = transformers.LlamaConfig(
    ...     vocab_size=20, hidden_size=8, intermediate_size=16,
    ...     num_hidden_layers=1, num_attention_heads=2,
    ... )
    >>> llm = CausalLM.from_model(transformers.LlamaForCausalLM(config))
    >>> type(llm_finetuning(llm, "none")).__name__
    'FrozenLLM'
    >>> lora = llm_finetuning(llm, "lora", r=2, target_modules=["o_proj"])
    >>> sum(p.numel() for p in llm.parameters() if p.requires_grad)
    32
    """
    if mode not in FINETUNE_MODES:
        raise ValueError(
            f"llm_finetune must be one of {FINETUNE_MODES}; got {mode!r}"
        )
    if mode == "none":
        return FrozenLLM()
    return LoRAAdapter(llm, r, alpha, dropout, target_modules)
