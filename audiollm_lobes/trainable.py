"""What a run trains and saves: the trainable parameters of its modules.

Frozen backbones (LLM, encoders) are never copied into checkpoints; only
parameters with ``requires_grad`` are (LoRA weights living inside the LLM
included), plus the extra state of submodules that define one (e.g. the
prompt pool's random generator). SpeechBrain's ``Checkpointer`` saves and
loads a :class:`TrainableState` like any other recoverable.

Authors
 * audiollm-lobes developers, 2026
"""

import logging
from pathlib import Path

import torch
from speechbrain.utils.checkpoints import (
    Checkpointer,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)

from audiollm_lobes.atomic import save_torch

logger = logging.getLogger(__name__)


def count_parameters(module, trainable_only=True):
    """Counts the (trainable) parameters of a module.

    Arguments
    ---------
    module : torch.nn.Module
        Any module.
    trainable_only : bool
        Count only parameters with ``requires_grad``.

    Returns
    -------
    int
        Number of scalar parameters.

    Example
    -------
    >>> count_parameters(torch.nn.Linear(3, 2))
    8
    """
    return sum(
        p.numel()
        for p in module.parameters()
        if p.requires_grad or not trainable_only
    )


@register_checkpoint_hooks
class TrainableState:
    """Checkpoints only the trainable parameters of some modules.

    Frozen backbones (LLM, encoders) are never copied into checkpoints;
    LoRA weights living inside the LLM are (they require grad).

    Arguments
    ---------
    modules : dict or torch.nn.Module
        Modules whose trainable parameters to save.

    Example
    -------
    >>> lin = torch.nn.Linear(2, 2)
    >>> frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    >>> state = TrainableState({"a": lin, "b": frozen})
    >>> sorted(state.state_dict())
    ['a.bias', 'a.weight']
    """

    def __init__(self, modules):
        if isinstance(modules, torch.nn.Module):
            modules = {"module": modules}
        self.modules = modules

    def _extra_state_modules(self):
        """``(key, submodule)`` for every submodule with extra state."""
        base = torch.nn.Module.get_extra_state
        for mod_name, module in self.modules.items():
            if module is None:
                continue
            for sub_name, sub in module.named_modules():
                if type(sub).get_extra_state is not base:
                    prefix = f"{mod_name}.{sub_name}" if sub_name else mod_name
                    yield f"{prefix}._extra_state", sub

    def state_dict(self):
        """Returns the trainable parameters, keyed ``<module>.<name>``,
        and the extra state (``get_extra_state``, e.g. a
        :class:`~audiollm_lobes.prompt_pool.PromptPool`'s random generator)
        of submodules that define one, keyed ``<module>.<sub>._extra_state``.
        """
        out = {}
        for mod_name, module in self.modules.items():
            if module is None:
                continue
            for name, param in module.named_parameters():
                if param.requires_grad:
                    out[f"{mod_name}.{name}"] = param.detach().cpu()
        for key, sub in self._extra_state_modules():
            out[key] = sub.get_extra_state()
        return out

    @mark_as_saver
    def save(self, path):
        """Saves the trainable parameters to ``path``."""
        save_torch(self.state_dict(), path)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Loads trainable parameters (and extra state) saved by ``save``.

        A checkpoint without a submodule's extra state (written before it
        was saved) loads with a warning; the submodule keeps its current
        state.
        """
        del end_of_epoch
        saved = torch.load(path, map_location="cpu")
        self.load_state_dict(saved, source=f"checkpoint {path}")

    def load_state_dict(self, saved, source="the saved state"):
        """Loads a state written by :meth:`state_dict` (e.g. read from an
        export's safetensors file).

        Arguments
        ---------
        saved : dict
            ``{key: tensor}`` (extra states: whatever ``get_extra_state``
            returned).
        source : str
            Names the origin in error messages.

        Raises
        ------
        RuntimeError
            When trainable parameters are missing, or a saved one has
            another shape than the module's (the modules were built on
            other backbones or with other hparams): every mismatch is
            named, with both shapes.
        """
        extra = dict(self._extra_state_modules())
        expected = set(self.state_dict()) - set(extra)
        missing = sorted(expected - set(saved))
        if missing:
            raise RuntimeError(
                f"{source} lacks trainable parameters {missing[:5]}"
            )
        params = {
            f"{mod_name}.{name}": param
            for mod_name, module in self.modules.items()
            if module is not None
            for name, param in module.named_parameters()
        }
        wrong = [
            f"{key}: saved {tuple(saved[key].shape)}, built "
            f"{tuple(params[key].shape)}"
            for key in sorted(expected)
            if tuple(saved[key].shape) != tuple(params[key].shape)
        ]
        if wrong:
            raise RuntimeError(
                f"{source} does not fit the modules built from the hparams "
                f"(other backbones or hparams?): {'; '.join(wrong[:5])}"
            )
        with torch.no_grad():
            for key, param in params.items():
                if key in saved:
                    param.copy_(saved[key].to(param.device))
        for key, sub in extra.items():
            if key in saved:
                sub.set_extra_state(saved[key])
            else:
                logger.warning(
                    "%s has no %s; that state starts afresh", source, key
                )


def find_trainable_checkpoint(path):
    """Finds the ``trainable.ckpt`` of a run (file, save folder or run).

    In a folder, the checkpoint a recipe tests: the one with the lowest
    validation loss recorded by SpeechBrain's ``Checkpointer`` (meta key
    ``loss``), or the newest when none records a loss.

    Arguments
    ---------
    path : str or Path
        A ``trainable.ckpt`` file, or a folder holding
        ``CKPT*/trainable.ckpt`` (directly or under ``save/``).

    Returns
    -------
    Path
        The file.

    Example
    -------
    >>> import tempfile
    >>> save = Path(tempfile.mkdtemp()) / "save"
    >>> for loss in (0.5, 0.2, 0.9):  # the best is not the newest
    ...     ckpt = Checkpointer(save).save_checkpoint(meta={"loss": loss})
    ...     _ = (ckpt.path / "trainable.ckpt").write_bytes(b"")
    >>> best = find_trainable_checkpoint(save.parent)
    >>> Checkpointer(save).find_checkpoint(min_key="loss").meta["loss"]
    0.2
    >>> best.parent == Checkpointer(save).find_checkpoint(min_key="loss").path
    True
    """
    path = Path(path)
    if path.is_file():
        return path
    save = path
    found = sorted(save.glob("CKPT*/trainable.ckpt"))
    if not found:
        save = path / "save"
        found = sorted(save.glob("CKPT*/trainable.ckpt"))
    if not found:
        raise FileNotFoundError(
            f"no trainable.ckpt under {path} (expected the file, or a run "
            "or save folder holding CKPT*/trainable.ckpt)"
        )
    best = Checkpointer(save).find_checkpoint(min_key="loss")
    if best is not None and (best.path / "trainable.ckpt").is_file():
        return best.path / "trainable.ckpt"
    return found[-1]
