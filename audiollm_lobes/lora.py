"""LoRA on a frozen causal LM, through peft (LiSTEN's LoRA baseline).

``LoRAAdapter`` injects peft LoRA layers into the HF model held by a
``CausalLM`` *in place* (``peft.inject_adapter_in_model``), so the wrapper
keeps calling the same HF modules and nothing else changes: only the LoRA
matrices require grad, they are what ``TrainableState`` checkpoints, and
the frozen base weights are never copied. The adapter's ``train()`` turns
the LoRA dropouts on and off (the frozen LLM itself stays in eval mode).

Defaults follow SALMONN / the LiSTEN development code: r=8, alpha=32,
dropout 0.1 on the attention query and value projections.

Authors
 * audiollm-lobes developers, 2026
"""

import torch
from peft import LoraConfig, inject_adapter_in_model


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
    target_modules : list of str
        Names of the linear layers to adapt (``q_proj``, ``v_proj`` for
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
        target_modules=("q_proj", "v_proj"),
    ):
        super().__init__()
        config = LoraConfig(
            r=int(r),
            lora_alpha=alpha,
            lora_dropout=float(dropout),
            target_modules=list(target_modules),
        )
        model = llm.model
        inject_adapter_in_model(config, model)
        found = False
        for name, param in model.named_parameters():
            is_lora = "lora_" in name
            param.requires_grad_(is_lora)
            found = found or is_lora
        if not found:
            raise ValueError(
                f"LoRAAdapter: no module of the LLM matched target_modules="
                f"{list(target_modules)}"
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
