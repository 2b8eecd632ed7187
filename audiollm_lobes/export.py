"""Export a trained model: one self-contained folder to share.

An export holds what :class:`audiollm_lobes.inference.AudioLLM` needs to
rebuild the model, and nothing of the training run:

=========================  ==============================================
``lobes.safetensors``      the trained parameters (and the lobes' extra
                           state, e.g. the prompt pool's generator), keyed
                           as in the run's checkpoints; read without
                           pickle
``hyperparams.yaml``       the run's hparams (SpeechBrain's resolved copy;
                           its output folder is rewritten on loading)
``train.py`` + helpers     the recipe's code (its ``Brain``)
``backbones.json``         the backbones it expects: sources, widths,
                           tokenizer fingerprint (checked on loading)
``model.json``             what this is: recipe, Brain class, where it
                           came from, the weight names
``lora_adapter/``          when the LLM was tuned with LoRA: the adapter
                           in peft's format (``adapter_config.json`` +
                           ``adapter_model.safetensors``), loadable with
                           ``peft.PeftModel.from_pretrained`` on the base
                           LLM
=========================  ==============================================

The backbones themselves are not copied: they are the published
checkpoints named by their sources (or the toy world's, rebuilt
deterministically). The folder is written in a staging folder and moved
into place, so it is never left half-written.

Command line::

    audiollm-export --model results/LiSTEN/dps/1234 --out exports/dps

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import copy
import datetime
import json
import logging
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from audiollm_lobes.atomic import replace_dir, staging_dir, write_json
from audiollm_lobes.backbone_widths import backbone_signature
from audiollm_lobes.cli import BACKBONES_FILE
from audiollm_lobes.inference import (
    HPARAMS_FILE,
    LOBES_FILE,
    MODEL_INFO_FILE,
    AudioLLM,
    recorded_value,
    relocate_hparams,
)

logger = logging.getLogger(__name__)

#: Version of the export layout (``model.json``'s ``format``).
EXPORT_FORMAT = 1
#: Separates a submodule's extra-state key from its fields in the file.
EXTRA_STATE = "._extra_state"
#: The output folder written into an export's hparams (replaced on load).
EXPORTED_OUTPUT_FOLDER = "exported_model"
#: peft's adapter folder inside an export.
LORA_FOLDER = "lora_adapter"


def flatten_state(state):
    """Tensors only, for safetensors: extra states (dicts of tensors) are
    spread over ``<key>.<field>`` entries.

    Arguments
    ---------
    state : dict
        From :meth:`audiollm_lobes.trainable.TrainableState.state_dict`.

    Returns
    -------
    dict
        ``{name: contiguous tensor}``.

    Example
    -------
    >>> flat = flatten_state({"a.weight": torch.ones(2),
    ...     "pool._extra_state": {"generator": torch.zeros(3)}})
    >>> sorted(flat)
    ['a.weight', 'pool._extra_state.generator']
    >>> sorted(unflatten_state(flat)["pool._extra_state"])
    ['generator']
    """
    flat = {}
    for key, value in state.items():
        if key.endswith(EXTRA_STATE):
            if not isinstance(value, dict) or not all(
                torch.is_tensor(v) for v in value.values()
            ):
                raise TypeError(
                    f"{key}: only extra states made of tensors can be "
                    f"exported, got {type(value).__name__}"
                )
            for field, tensor in value.items():
                flat[f"{key}.{field}"] = tensor.detach().cpu().contiguous()
        else:
            flat[key] = value.detach().cpu().contiguous()
    return flat


def unflatten_state(flat):
    """Inverse of :func:`flatten_state`.

    Arguments
    ---------
    flat : dict
        ``{name: tensor}``.

    Returns
    -------
    dict
        Parameters and extra-state dicts.
    """
    state = {}
    for key, tensor in flat.items():
        if EXTRA_STATE + "." in key:
            owner, field = key.split(EXTRA_STATE + ".", 1)
            state.setdefault(owner + EXTRA_STATE, {})[field] = tensor
        else:
            state[key] = tensor
    return state


def read_lobes(path):
    """The trained state of an export's ``lobes.safetensors`` (no pickle).

    Arguments
    ---------
    path : str or Path
        The file.

    Returns
    -------
    dict
        For :meth:`~audiollm_lobes.trainable.TrainableState.load_state_dict`.
    """
    return unflatten_state(load_file(str(path)))


def lora_models(modules):
    """The LLMs among ``modules`` (or inside them) that carry LoRA layers.

    Arguments
    ---------
    modules : dict
        ``{name: module}`` (e.g. a ``TrainableState``'s); an LLM may be a
        submodule (PAL's injector holds its LLM).

    Returns
    -------
    list of tuple
        ``(qualified name, CausalLM)`` whose HF model has a peft
        ``peft_config``, each LLM once.

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.llm import CausalLM
    >>> from audiollm_lobes.lora import LoRAAdapter
    >>> from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
    >>> llm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
    >>> holder = torch.nn.Module()
    >>> holder.llm = llm
    >>> lora_models({"injector": holder})
    []
    >>> _ = LoRAAdapter(llm, r=2, alpha=4)
    >>> [name for name, _ in lora_models({"injector": holder})]
    ['injector.llm']
    """
    from audiollm_lobes.llm import CausalLM

    found, seen = [], set()
    for name, module in modules.items():
        if module is None:
            continue
        for sub_name, sub in module.named_modules():
            model = getattr(sub, "model", None)
            if (
                isinstance(sub, CausalLM)
                and getattr(model, "peft_config", None)
                and id(sub) not in seen
            ):
                seen.add(id(sub))
                found.append((f"{name}.{sub_name}".rstrip("."), sub))
    return found


def write_peft_adapter(llm, folder, base_model=None):
    """Writes the LoRA layers of a ``CausalLM`` as a peft adapter folder.

    The LoRA layers were injected with ``peft.inject_adapter_in_model``
    (:class:`audiollm_lobes.lora.LoRAAdapter`); the folder is what
    ``PeftModel.save_pretrained`` writes, so
    ``PeftModel.from_pretrained(base_llm, folder)`` adds the same adapter
    to the base model.

    Arguments
    ---------
    llm : audiollm_lobes.llm.CausalLM
        The adapted LLM.
    folder : str or Path
        Created (``adapter_config.json``, ``adapter_model.safetensors``).
    base_model : str, optional
        Recorded as ``base_model_name_or_path`` (default: the LLM's
        source).

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.llm import CausalLM
    >>> from audiollm_lobes.lora import LoRAAdapter
    >>> from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
    >>> llm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
    >>> _ = LoRAAdapter(llm, r=2, alpha=4)
    >>> out = Path(tempfile.mkdtemp())
    >>> write_peft_adapter(llm, out)
    >>> sorted(p.name for p in out.iterdir())
    ['adapter_config.json', 'adapter_model.safetensors']
    """
    from peft import get_peft_model_state_dict

    model = llm.model
    names = sorted(model.peft_config)
    if len(names) != 1:
        raise ValueError(f"expected one LoRA adapter in the LLM, found {names}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(model.peft_config[names[0]])
    config.base_model_name_or_path = str(base_model or llm.source)
    config.task_type = "CAUSAL_LM"
    config.inference_mode = True
    config.save_pretrained(str(folder))
    weights = get_peft_model_state_dict(model, adapter_name=names[0])
    save_file(
        {
            f"base_model.model.{key}": value.detach().cpu().contiguous()
            for key, value in weights.items()
        },
        str(folder / "adapter_model.safetensors"),
        metadata={"format": "pt"},
    )


def export_model(model, out_folder):
    """Writes a loaded model as a self-contained export (see the module).

    Arguments
    ---------
    model : AudioLLM or str or Path
        A loaded model, or a run folder / export to load.
    out_folder : str or Path
        The export's folder (replaced atomically if it exists).

    Returns
    -------
    Path
        ``out_folder``.
    """
    if not isinstance(model, AudioLLM):
        model = AudioLLM.from_folder(model)
    source = model.folder
    out_folder = Path(out_folder)
    state = model.hparams["checkpointer"].recoverables["trainable"]
    flat = flatten_state(state.state_dict())
    text = (source / HPARAMS_FILE).read_text(encoding="utf-8")
    text = relocate_hparams(
        text, {recorded_value(text, "output_folder"): EXPORTED_OUTPUT_FOLDER}
    )
    with staging_dir(out_folder) as tmp:
        save_file(flat, str(tmp / LOBES_FILE), metadata={"format": "pt"})
        (tmp / HPARAMS_FILE).write_text(text, encoding="utf-8")
        for code in sorted(source.glob("*.py")):
            shutil.copy(code, tmp / code.name)
        write_json(tmp / BACKBONES_FILE, backbone_signature(model.hparams))
        adapters = lora_models(state.modules)
        if len(adapters) > 1:
            raise ValueError(
                f"several LLMs carry LoRA layers ({[n for n, _ in adapters]});"
                " an export holds one peft adapter"
            )
        for _, llm in adapters:
            write_peft_adapter(llm, tmp / LORA_FOLDER)
        write_json(
            tmp / MODEL_INFO_FILE,
            {
                "format": EXPORT_FORMAT,
                "brain": type(model.brain).__name__,
                "exported_from": str(source.resolve()),
                "weights_from": model.checkpoint,
                "exported_at": datetime.datetime.now(
                    datetime.timezone.utc
                ).isoformat(timespec="seconds"),
                "trainable": sorted(flat),
                "lora_adapter": LORA_FOLDER if adapters else None,
            },
        )
        replace_dir(tmp, out_folder)
    logger.info("exported %s to %s", source, out_folder)
    return out_folder


def main(argv=None):
    """``audiollm-export --model <run or export> --out <folder>``; returns 0."""
    parser = argparse.ArgumentParser(
        prog="audiollm-export",
        description="Export a trained run as a self-contained folder "
        "(safetensors weights, hparams, recipe code, backbone record, "
        "LoRA as a peft adapter).",
    )
    parser.add_argument("--model", required=True, help="run folder or export")
    parser.add_argument("--out", required=True, help="the export's folder")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        model = AudioLLM.from_folder(args.model, device=args.device)
        out = export_model(model, args.out)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"audiollm-export: {err}") from None
    info = json.loads((out / MODEL_INFO_FILE).read_text(encoding="utf-8"))
    size = (out / LOBES_FILE).stat().st_size
    print(
        f"exported {args.model} -> {out} ({info['brain']}, "
        f"{len(info['trainable'])} tensors, {size / 1e6:.2f} MB"
        + (", LoRA adapter" if info["lora_adapter"] else "")
        + ")"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
