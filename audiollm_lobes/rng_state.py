"""What a checkpoint needs so that a resumed run draws the same random
numbers: the generator states of every process.

SpeechBrain's ``Checkpointer`` saves the trainable parameters, optimizer,
scheduler, epoch counter and data-loader position, but not the random
generators; dropout masks (and anything else drawn from the global
generators) after a resume would differ from those of the uninterrupted
run. :class:`RNGState` is a recoverable holding, for every process of a
(possibly distributed) run, the torch CPU generator, the CUDA generators
(when CUDA is available), numpy's global generator and Python's
``random``. Register it in a recipe's checkpointer (``recoverables:``
``rng: !new:audiollm_lobes.rng_state.RNGState``).

When it is restored matters. A checkpoint at the end of an epoch is
restored at once. A checkpoint saved inside an epoch is restored at once
too, and again by :meth:`RNGState.apply_pending`, which
``AudioLLMBrain`` calls at the start of the first training step after
the resume: between the two, re-entering the epoch draws from the global
generator (the data loader's base seed) where the uninterrupted run did
not, since its loader was already iterating. Generators owned by modules
(e.g. the prompt pool's) travel with the trainable state instead
(``trainable.TrainableState``, extra state).

Data-loader worker processes (``num_workers > 0``) are seeded by PyTorch
from the global generator when an epoch starts, so their seeds follow
from the restored states at every epoch boundary; a worker's position
inside an epoch is not saved, so a pipeline that draws random numbers in
workers would not resume mid-epoch exactly (the recipes' pipelines draw
none).

Authors
 * audiollm-lobes developers, 2026
"""

import logging
import random

import numpy as np
import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.distributed import if_main_process

from audiollm_lobes.atomic import save_torch

logger = logging.getLogger(__name__)


def _world():
    """``(rank, world_size)`` of this process (``(0, 1)`` alone)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def capture_rng_states():
    """The random generator states of this process.

    Returns
    -------
    dict
        ``torch`` (CPU ``ByteTensor``), ``cuda`` (list of states, empty
        without CUDA), ``numpy`` (``np.random.get_state()`` as plain
        Python values) and ``python`` (``random.getstate()``).

    Example
    -------
    >>> state = capture_rng_states()
    >>> a = (torch.rand(2), np.random.rand(), random.random())
    >>> restore_rng_states(state)
    >>> b = (torch.rand(2), np.random.rand(), random.random())
    >>> torch.equal(a[0], b[0]) and a[1:] == b[1:]
    True
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": (
            torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        ),
        "numpy": (kind, keys.tolist(), int(pos), int(has_gauss), cached),
        "python": random.getstate(),
    }


def restore_rng_states(state):
    """Sets this process's generators to a ``capture_rng_states`` result.

    Arguments
    ---------
    state : dict
        From :func:`capture_rng_states`. CUDA states are restored when
        CUDA is available and the state holds one per device.

    Example
    -------
    >>> state = capture_rng_states()
    >>> first = torch.randn(3)
    >>> restore_rng_states(state)
    >>> torch.equal(torch.randn(3), first)
    True
    """
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        if len(cuda) != torch.cuda.device_count():
            logger.warning(
                "RNGState: %d saved CUDA generator states for %d devices; "
                "the CUDA generators start afresh",
                len(cuda),
                torch.cuda.device_count(),
            )
        else:
            torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(
        (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
    )
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


class RNGState:
    """Checkpoints the random generator states of every process.

    Saving runs on every process (each sends its states to the main one,
    which writes a single file); loading gives each process its own
    states back (see the module docstring for when). A checkpoint written
    by a different number of processes restores nothing, with a warning:
    that run cannot be continued draw for draw anyway.

    Example
    -------
    >>> import tempfile, os
    >>> rng = RNGState()
    >>> path = os.path.join(tempfile.mkdtemp(), "rng.ckpt")
    >>> rng.save(path)
    >>> expected = torch.rand(4)
    >>> rng.load(path, end_of_epoch=False)
    >>> torch.equal(torch.rand(4), expected)
    True
    >>> _ = torch.rand(1)  # e.g. the data loader's base seed
    >>> rng.apply_pending()  # the intra-epoch state, once more
    >>> torch.equal(torch.rand(4), expected)
    True
    """

    def __init__(self):
        self.pending = None

    @mark_as_saver
    def save(self, path):
        """Gathers every process's states; the main process writes them."""
        _, world_size = _world()
        states = [capture_rng_states()]
        if world_size > 1:
            states = [None] * world_size
            torch.distributed.all_gather_object(states, capture_rng_states())
        if if_main_process():
            save_torch({"world_size": world_size, "states": states}, path)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restores this process's states (see the module docstring)."""
        saved = torch.load(path, map_location="cpu", weights_only=False)
        rank, world_size = _world()
        if saved.get("world_size") != world_size:
            logger.warning(
                "RNGState: %s was saved by %s processes, this run has %d; "
                "the random generators are not restored",
                path,
                saved.get("world_size"),
                world_size,
            )
            self.pending = None
            return
        state = saved["states"][rank]
        restore_rng_states(state)
        self.pending = None if end_of_epoch else state

    def apply_pending(self):
        """Restores an intra-epoch checkpoint's states once more (no-op
        unless one was just loaded); call it before the first training
        step after a resume."""
        if self.pending is not None:
            restore_rng_states(self.pending)
            self.pending = None


# every process runs the saver (it gathers the states of all of them)
register_checkpoint_hooks(RNGState, save_on_main_only=False)
