#!/usr/bin/env python3
"""PAL: PLITS vs attention-only LAL vs encoder-aware PAL integration of
audio encoders into a frozen LLM (Alex et al., "PAL: Probing Audio
Encoders via LLMs").

* PLITS (``hparams/plits.yaml``): fused Whisper + BEATs features -> window
  Q-Former -> audio tokens spliced into the LLM input (every layer, FFN
  included).
* LAL (``hparams/lal.yaml``): the same tokens enter only as extra
  attention keys/values of the chosen layers; queries and FFNs see text
  only (``audiollm_lobes.lal.AttentionOnlyInjector``).
* PAL (``hparams/pal.yaml``): per-encoder routing; Whisper tokens (own
  Q-Former) through PLITS, BEATs tokens (own Q-Former) through LAL.

Single-stage multitask training over sound-event classification,
captioning, spoken QA, emotion and ASR with the same step budget for all
three; per-task test metrics, trainable-parameter count, and the measured
train step time and peak memory of the run in ``summary.json`` /
``results.md``.

To run (from the repo root or from this folder; the toy world is built
on first use)::

    python recipes/PAL/train.py hparams/plits.yaml
    python recipes/PAL/train.py hparams/lal.yaml --kv_projection=new
    python recipes/PAL/train.py hparams/pal.yaml

Authors
 * audiollm-lobes developers, 2026
"""

import logging
import sys
from pathlib import Path

from speechbrain.utils.distributed import run_on_main

from audiollm_lobes.brain import count_parameters
from audiollm_lobes.data.manifest import ManifestError
from audiollm_lobes.pal_brain import PALBrain
from audiollm_lobes.recipe_utils import (
    build_datasets,
    load_recipe_hparams,
    task_baselines,
    train_loader_kwargs,
    write_summary,
)

logger = logging.getLogger(__name__)


def efficiency_lines(efficiency):
    """Markdown lines reporting a run's measured step time and memory.

    Arguments
    ---------
    efficiency : dict
        From ``PALBrain.efficiency()``.

    Returns
    -------
    list of str
        Lines to append to ``results.md``.

    Example
    -------
    >>> efficiency_lines({"train_steps": 3, "train_step_seconds_median": 0.5,
    ...     "train_step_seconds_mean": 0.6, "peak_rss_mb": 900.0})[2]
    'train step time: median 0.500 s, mean 0.600 s over 2 steps'
    """
    steps = efficiency["train_steps"]
    timed = max(steps - 1, 1) if steps else 0
    lines = ["", f"train steps: {steps}"]
    if efficiency["train_step_seconds_median"] is not None:
        lines.append(
            "train step time: median "
            f"{efficiency['train_step_seconds_median']:.3f} s, mean "
            f"{efficiency['train_step_seconds_mean']:.3f} s over {timed} "
            f"step{'s' if timed != 1 else ''}"
        )
    if efficiency["peak_rss_mb"] is not None:
        lines.append(
            f"peak RSS after training: {efficiency['peak_rss_mb']:.0f} MiB "
            "(whole process: frozen weights, data and activations)"
        )
    return lines


def write_pal_summary(summary, hparams, n_trainable):
    """``write_summary`` plus the efficiency section of ``results.md``.

    Arguments
    ---------
    summary : dict
        ``{"test": ..., "efficiency": ..., "routes": ...}``.
    hparams : dict
        Loaded hparams.
    n_trainable : int
        Trainable parameters.

    Example
    -------
    >>> write_pal_summary.__name__
    'write_pal_summary'
    """
    write_summary(summary=summary, hparams=hparams, n_trainable=n_trainable)
    out_dir = Path(hparams["output_folder"])
    routes = ", ".join(f"{k} -> {v}" for k, v in summary["routes"].items())
    text = (out_dir / "results.md").read_text()
    text += (
        "\n".join(
            [f"routes: {routes}"] + efficiency_lines(summary["efficiency"])
        )
        + "\n"
    )
    tmp = out_dir / "results.md.tmp"
    tmp.write_text(text)
    tmp.replace(out_dir / "results.md")


def check_declared_shapes(hparams):
    """Checks widths declared in the hparams against the loaded backbones.

    Paper-scale hparams size the trainable lobes from declared widths
    (``llm_dim``, ``<stream>_dim``); this stops early, naming the field,
    when the given checkpoints are of another size. Undeclared widths are
    not checked.

    Arguments
    ---------
    hparams : dict
        Loaded hparams with ``llm`` (``hidden_size``) and ``encoder``
        (``stream_dims``).

    Returns
    -------
    dict
        ``{field: loaded width}`` of the checked fields.

    Example
    -------
    >>> from types import SimpleNamespace as NS
    >>> hp = {"llm": NS(hidden_size=8), "llm_dim": 8,
    ...       "encoder": NS(stream_dims={"whisper": 4}), "whisper_dim": 5}
    >>> check_declared_shapes(hp)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: hparams declare whisper_dim=5 but the loaded backbone has 4...
    >>> check_declared_shapes(dict(hp, whisper_dim=4))
    {'llm_dim': 8, 'whisper_dim': 4}
    """
    loaded = {"llm_dim": hparams["llm"].hidden_size}
    streams = getattr(hparams["encoder"], "stream_dims", None) or {}
    for name, dim in streams.items():
        loaded[f"{name}_dim"] = dim
    checked = {}
    for field, value in loaded.items():
        if field not in hparams:
            continue
        if int(hparams[field]) != int(value):
            raise ValueError(
                f"hparams declare {field}={hparams[field]} but the loaded "
                f"backbone has {value}; override --{field}={value} or give "
                "a matching checkpoint"
            )
        checked[field] = int(value)
    return checked


def main(argv):
    """Trains, tests, writes the summary (see the module docstring)."""
    hparams, run_opts = load_recipe_hparams(argv, __file__)
    check_declared_shapes(hparams)
    datasets = build_datasets(hparams)
    brain = PALBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    n_trainable = count_parameters(brain.modules)
    logger.info("routes: %s", brain.routes)
    logger.info("trainable parameters: %d", n_trainable)
    hparams["baselines"] = task_baselines(datasets)
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_kwargs(hparams, datasets["train"]),
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    efficiency = brain.efficiency()
    logger.info("efficiency: %s", efficiency)
    brain.evaluate(
        datasets["test"],
        min_key="loss",
        test_loader_kwargs=hparams["test_dataloader_opts"],
    )
    summary = {
        "test": brain.test_summary,
        "routes": brain.routes,
        "efficiency": efficiency,
    }
    run_on_main(
        write_pal_summary,
        kwargs={
            "summary": summary,
            "hparams": hparams,
            "n_trainable": n_trainable,
        },
    )


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except ManifestError as err:
        # one clear report of every bad example, no deep traceback
        sys.exit(f"PAL: the data manifests have problems:\n{err}")
