"""Per-step learning-rate schedules with SpeechBrain's calling convention.

:class:`WarmupCosineScheduler` raises the learning rate linearly from
``start_lr`` to ``peak_lr`` over ``num_warmup_steps`` optimizer steps,
then lowers it along a half cosine to ``min_lr`` at
``num_training_steps`` (and keeps ``min_lr`` after that). LiSTEN's
development code (after SALMONN) warms up from 1e-6 to 3e-5 over 3000
steps and decays along a cosine to a floor of 1e-5; that code lowers the
rate once per epoch, this scheduler at every optimizer step.

Like SpeechBrain's per-step schedulers it is called once after each
optimizer step, ``scheduler(optimizer)`` (``AudioLLMBrain.
on_fit_batch_end``), and sets the rate of every parameter group. The rate
of step ``s`` (0-based) is :meth:`~WarmupCosineScheduler.lr_at` ``(s)``;
since the first call comes after the first step, create the optimizer
with ``lr = start_lr`` (the rate of step 0) so that every step runs at
its scheduled rate. The step count is checkpointed (SpeechBrain
``Checkpointer`` hooks).

Authors
 * audiollm-lobes developers, 2026
"""

import math

import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)

from audiollm_lobes.atomic import save_torch


@register_checkpoint_hooks
class WarmupCosineScheduler:
    """Linear warm-up, then cosine decay to a floor, per optimizer step.

    With ``W = num_warmup_steps`` and ``T = num_training_steps``, the rate
    of step ``s`` is ``start_lr + (peak_lr - start_lr) * s / W`` for
    ``s < W``, else ``min_lr + (peak_lr - min_lr) * (1 + cos(pi * p)) / 2``
    with ``p = min(1, (s - W) / (T - W))``.

    Arguments
    ---------
    peak_lr : float
        Rate at the end of the warm-up.
    num_warmup_steps : int
        Optimizer steps of the linear warm-up (0: none).
    num_training_steps : int
        Optimizer steps of the whole run; the cosine ends there.
    start_lr : float
        Rate of step 0 (create the optimizer with it).
    min_lr : float
        Floor reached at ``num_training_steps``.

    Example
    -------
    >>> sched = WarmupCosineScheduler(1.0, 2, 6, start_lr=0.0, min_lr=0.0)
    >>> [round(sched.lr_at(s), 4) for s in range(8)]
    [0.0, 0.5, 1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=sched.lr_at(0))
    >>> sched(opt)  # after the first step: (rate used, rate of step 1)
    (0.0, 0.5)
    >>> opt.param_groups[0]["lr"]
    0.5
    """

    def __init__(
        self,
        peak_lr,
        num_warmup_steps,
        num_training_steps,
        start_lr=0.0,
        min_lr=0.0,
    ):
        if int(num_warmup_steps) != num_warmup_steps or num_warmup_steps < 0:
            raise ValueError(
                f"WarmupCosineScheduler: num_warmup_steps="
                f"{num_warmup_steps!r}; expected an int >= 0"
            )
        if (
            int(num_training_steps) != num_training_steps
            or num_training_steps < num_warmup_steps
        ):
            raise ValueError(
                f"WarmupCosineScheduler: num_training_steps="
                f"{num_training_steps!r}; expected an int >= "
                f"num_warmup_steps={num_warmup_steps}"
            )
        for name, value in (
            ("peak_lr", peak_lr),
            ("start_lr", start_lr),
            ("min_lr", min_lr),
        ):
            if not value >= 0:
                raise ValueError(
                    f"WarmupCosineScheduler: {name}={value!r}; expected >= 0"
                )
        self.peak_lr = float(peak_lr)
        self.num_warmup_steps = int(num_warmup_steps)
        self.num_training_steps = int(num_training_steps)
        self.start_lr = float(start_lr)
        self.min_lr = float(min_lr)
        self.current_step = 0

    def lr_at(self, step):
        """The rate of optimizer step ``step`` (0-based).

        Arguments
        ---------
        step : int
            Number of optimizer steps done before this one.

        Returns
        -------
        float
            The learning rate.

        Example
        -------
        >>> sched = WarmupCosineScheduler(3e-5, 3000, 9000, 1e-6, 1e-5)
        >>> [f"{sched.lr_at(s):.3g}" for s in (0, 1500, 3000, 6000, 9000)]
        ['1e-06', '1.55e-05', '3e-05', '2e-05', '1e-05']
        """
        warmup = self.num_warmup_steps
        if step < warmup:
            return self.start_lr + (self.peak_lr - self.start_lr) * (
                step / warmup
            )
        span = self.num_training_steps - warmup
        progress = 1.0 if span == 0 else min(1.0, (step - warmup) / span)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr + (self.peak_lr - self.min_lr) * cosine

    def __call__(self, opt):
        """Counts one optimizer step and sets the rate of the next one.

        Arguments
        ---------
        opt : torch.optim.Optimizer
            Every parameter group gets the new rate.

        Returns
        -------
        current_lr : float
            The rate of the step just done (the first group's).
        lr : float
            The rate of the next step.
        """
        current_lr = opt.param_groups[0]["lr"]
        self.current_step += 1
        lr = self.lr_at(self.current_step)
        for group in opt.param_groups:
            group["lr"] = lr
        return current_lr, lr

    @mark_as_saver
    def save(self, path):
        """Saves the settings and the step count (atomically).

        Arguments
        ---------
        path : str or pathlib.Path
            Where to save.
        """
        save_torch(
            {
                "peak_lr": self.peak_lr,
                "num_warmup_steps": self.num_warmup_steps,
                "num_training_steps": self.num_training_steps,
                "start_lr": self.start_lr,
                "min_lr": self.min_lr,
                "current_step": self.current_step,
            },
            path,
        )

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restores the step count (the settings stay those given to the
        constructor, e.g. by the hparams of the resumed run).

        Arguments
        ---------
        path : str or pathlib.Path
            Where :meth:`save` wrote.
        end_of_epoch : bool
            Unused (the schedule counts steps, not epochs).
        """
        del end_of_epoch
        data = torch.load(path)
        self.current_step = int(data["current_step"])
