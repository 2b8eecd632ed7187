"""Runs a recipe's ``main`` as its ``train.py`` does, instrumented for the
tests of multi-process and resumed runs (the recipes are not changed).

    python tests/distributed/recipe_driver.py <Recipe> <dump_dir> <args...>

* After ``fit``, every process saves the trainable parameters of its
  modules to ``<dump_dir>/rank<RANK>.pt`` (names as in ``brain.modules``).
* Every process other than the main one lists in
  ``<dump_dir>/rank<RANK>_writes.txt`` each file it moved into place with
  ``os.replace`` (how ``audiollm_lobes.atomic`` writes every report).
* With ``KILL_AFTER_INTRA_CKPT=n`` in the environment, every process
  SIGKILLs itself right after the n-th intra-epoch checkpoint is saved
  (the save ends with a barrier, so the checkpoint is complete): a run
  killed mid-epoch, at a known step.

Authors
 * audiollm-lobes developers, 2026
"""

import importlib.util
import os
import signal
import sys
from pathlib import Path

import speechbrain as sb
import torch

ROOT = Path(__file__).resolve().parents[2]


def _instrument(dump_dir):
    original_fit = sb.Brain.fit

    def fit(self, *args, **kwargs):
        original_fit(self, *args, **kwargs)
        rank = int(os.environ.get("RANK", 0))
        state = {
            name: param.detach().cpu().clone()
            for name, param in self.modules.named_parameters()
            if param.requires_grad
        }
        dump_dir.mkdir(parents=True, exist_ok=True)
        torch.save(state, dump_dir / f"rank{rank}.pt")

    sb.Brain.fit = fit
    rank = int(os.environ.get("RANK", 0))
    if rank:
        original_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            dump_dir.mkdir(parents=True, exist_ok=True)
            with open(dump_dir / f"rank{rank}_writes.txt", "a") as log:
                log.write(f"{dst}\n")
            return original_replace(src, dst, *args, **kwargs)

        os.replace = replace
    kill_after = int(os.environ.get("KILL_AFTER_INTRA_CKPT", "0"))
    if kill_after:
        original_save = sb.Brain._save_intra_epoch_ckpt
        saved = []

        def save_then_die(self):
            original_save(self)
            saved.append(1)
            if len(saved) == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

        sb.Brain._save_intra_epoch_ckpt = save_then_die


def main():
    recipe, dump_dir, argv = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    folder = ROOT / "recipes" / recipe
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(
        f"{recipe}_train_driven", folder / "train.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _instrument(dump_dir)
    module.main(argv)


if __name__ == "__main__":
    main()
