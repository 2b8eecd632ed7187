#!/usr/bin/env python3
"""LiSTEN: an audio LLM with dynamic prompt selection (DPS) from a pool of
learnable key/value soft prompts, on a frozen LLM (Mousavi, Gupta et al.,
Interspeech 2025).

Whisper + BEATs features (frozen) -> window-level Q-Former -> audio tokens;
a query (masked mean of audio tokens and instruction embeddings) picks k
soft prompts from the pool; [prompts][BOS][instruction][audio][...][answer]
goes through the frozen LLM. Single-stage multitask training over ASR,
En->Zh translation, emotion, speaker verification, spoken QA and audio
captioning; per-task test metrics, prompt-usage analysis and a k_eval sweep.

To run (from the repo root; the toy world is built on first use)::

    python recipes/LiSTEN/train.py hparams/dps.yaml
    python recipes/LiSTEN/train.py hparams/dps.yaml --selector=attention
    python recipes/LiSTEN/train.py hparams/lora.yaml
    torchrun --nproc_per_node=2 recipes/LiSTEN/train.py hparams/dps.yaml \\
        --distributed_backend=gloo        # DDP (nccl on GPUs)

Authors
 * audiollm-lobes developers, 2026
"""

import logging
import sys

from speechbrain.utils.distributed import run_on_main

from audiollm_lobes.analysis import usage_lines, write_usage_report
from audiollm_lobes.backbone_widths import check_backbone_widths
from audiollm_lobes.brain import AudioLLMBrain
from audiollm_lobes.cli import load_recipe_hparams
from audiollm_lobes.data.datasets import build_datasets, recipe_baselines
from audiollm_lobes.data.manifest import ManifestError
from audiollm_lobes.data.sampling import train_loader_kwargs
from audiollm_lobes.reporting import (
    results_table,
    summary_head,
    write_summary,
)
from audiollm_lobes.trainable import count_parameters

logger = logging.getLogger(__name__)


class LiSTENBrain(AudioLLMBrain):
    """AudioLLMBrain with prompt-usage recording and a k_eval sweep."""

    def evaluate_k_sweep(self, test_set, k_values, loader_kwargs, known=None):
        """Evaluates the test set once per ``k_eval``; returns summaries.

        ``known`` maps a ``k`` already evaluated (the main test, at the
        pool's own ``k_eval``) to its summary, which is reused instead of
        decoding the test set again. The pool's ``k_eval`` is restored.
        Every process evaluates (the main one writes the results).
        """
        pool = self.unwrap("prompt_pool")
        known = known or {}
        original = pool.k_eval
        results = {}
        for k in k_values:
            if int(k) in known:
                results[int(k)] = known[int(k)]
                continue
            pool.k_eval = int(k)
            self.hparams.test_results_name = f"test_results_k{k}"
            self.evaluate(
                test_set, min_key="loss", test_loader_kwargs=loader_kwargs
            )
            results[int(k)] = self.test_summary
        pool.k_eval = original
        return results


def main(argv):
    """Trains, tests, analyses (see the module docstring)."""
    hparams, run_opts = load_recipe_hparams(argv, __file__)
    check_backbone_widths(hparams)
    datasets = build_datasets(hparams)
    brain = LiSTENBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    n_trainable = count_parameters(brain.modules)
    logger.info("trainable parameters: %d", n_trainable)
    hparams["baselines"] = recipe_baselines(hparams, datasets)
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_kwargs(hparams, datasets["train"]),
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    # the pool itself, not its DDP wrapper (which has none of its methods)
    pool = brain.unwrap("prompt_pool")
    recording = pool is not None and hasattr(pool, "start_recording")
    if recording:
        pool.start_recording()
    brain.evaluate(
        datasets["test"],
        min_key="loss",
        test_loader_kwargs=hparams["test_dataloader_opts"],
    )
    summary = {
        "experiment": hparams.get("experiment"),
        "test": brain.test_summary,
        "baselines": hparams["baselines"],
        "trainable_parameters": n_trainable,
    }
    if recording:
        pool.stop_recording()
        # every process recorded the same test set; the main one writes
        summary["usage"] = run_on_main(
            write_usage_report, args=[pool, hparams["output_folder"]]
        )
        k_values = hparams.get("k_eval_sweep") or []
        if k_values:
            summary["k_sweep"] = brain.evaluate_k_sweep(
                datasets["test"],
                k_values,
                hparams["test_dataloader_opts"],
                known={int(pool.k_eval): brain.test_summary},
            )
    run_on_main(
        write_summary,
        args=[hparams["output_folder"], summary, results_lines(summary)],
    )


def results_lines(summary):
    """``results.md``: the test table, the k sweep and the prompt usage.

    Arguments
    ---------
    summary : dict
        ``test``, ``baselines``, ``trainable_parameters`` and optional
        ``k_sweep`` (``{k: per-task metrics}``) and ``usage``.

    Returns
    -------
    list of str
        Markdown lines.

    Example
    -------
    >>> lines = results_lines({"test": {"asr": {"wer": 9.0, "n": 2}},
    ...     "baselines": {}, "trainable_parameters": 10,
    ...     "k_sweep": {1: {"asr": {"wer": 12.0, "n": 2}},
    ...                 2: {"asr": {"wer": 9.0, "n": 2}}}})
    >>> print(lines[-1])
    | task | metric | k=1 | k=2 | n |
    |---|---|---:|---:|---:|
    | asr | wer ↓ | 12.00 | 9.00 | 2 |
    """
    lines = summary_head(
        summary["test"], summary["baselines"], summary["trainable_parameters"]
    )
    sweep = summary.get("k_sweep")
    if sweep:
        ks = sorted(sweep, key=int)
        lines += ["", "k_eval sweep (same trained model):", ""]
        lines.append(results_table([(f"k={k}", sweep[k]) for k in ks]))
    usage = summary.get("usage") or {}
    if usage.get("per_task"):
        lines += ["", "prompt usage on the test set (k = k_eval):", ""]
        lines += usage_lines(usage)
    return lines


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except ManifestError as err:
        # one clear report of every bad example, no deep traceback
        sys.exit(f"LiSTEN: the data manifests have problems:\n{err}")
