#!/usr/bin/env python3
"""Wav2Prompt: speech prompts for a frozen text LLM, trained on ASR only
(Deng, Sun and Woodland, 2024).

A frozen Whisper encoder feeds a CIF prompter that fires one vector per LLM
token of the transcript. Training uses ASR data only: MSE to the frozen
LLM's token embeddings of the transcript, LLM cross-entropy through an ASR
template, and the CIF quantity loss. At test time the prompts replace the
text in the LLM's own text-task templates: zero-shot En->Fr translation,
SLU, spoken QA and spoken-query QA, next to an ASR -> LLM cascade built
from the same model. ``few_shot.yaml`` tunes the front end end-to-end on
N examples per task (LLM frozen); ``encoder_llm.yaml`` is the window
Q-Former baseline; ``asr_no_mse.yaml`` the ablation without the MSE.

To run (from the repo root; the toy world is built on first use)::

    python recipes/Wav2Prompt/train.py hparams/asr.yaml
    python recipes/Wav2Prompt/train.py hparams/few_shot.yaml \\
        --pretrained_frontend=results/Wav2Prompt/asr/1234 --shots=10
    python recipes/Wav2Prompt/compare.py results/Wav2Prompt/*/1234

Authors
 * audiollm-lobes developers, 2026
"""

import logging
import sys
from pathlib import Path

from speechbrain.utils.distributed import run_on_main

from audiollm_lobes.brain import (
    TrainableState,
    count_parameters,
    write_json_atomic,
)
from audiollm_lobes.data.manifest import ManifestError
from audiollm_lobes.recipe_utils import (
    build_datasets,
    load_recipe_hparams,
    train_loader_kwargs,
)
from audiollm_lobes.toyworld.sources import resolve_source
from audiollm_lobes.wav2prompt import (
    add_text_prompt_items,
    comparison_table,
    find_trainable_checkpoint,
    majority_baselines,
)
from audiollm_lobes.wav2prompt_brain import Wav2PromptBrain, check_loss_weights

logger = logging.getLogger(__name__)


def check_backbone_dims(hparams):
    """Stops early when the declared widths do not match the backbones."""
    pairs = (
        ("llm_dim", int(hparams["llm"].hidden_size)),
        ("encoder_dim", int(hparams["encoder"].output_dim)),
    )
    for name, actual in pairs:
        if int(hparams[name]) != actual:
            raise ValueError(
                f"{name}: the hparams say {hparams[name]} but the loaded "
                f"backbone has width {actual}"
            )


def write_run_summary(hparams, summary, n_trainable):
    """Writes ``summary.json`` and ``results.md`` (one comparison table)."""
    out_dir = Path(hparams["output_folder"])
    summary = dict(summary, trainable_parameters=int(n_trainable))
    write_json_atomic(summary, out_dir / "summary.json")
    system = summary["system"]
    columns = [(system, summary["test"]), ("cascade", summary["cascade"])]
    if summary.get("before_tuning"):
        columns.insert(0, (f"{system} (before)", summary["before_tuning"]))
    lines = [
        f"system: {system}",
        f"trainable parameters: {n_trainable:,}",
        f"loss weights: {summary['loss_weights']}",
        "",
        comparison_table(columns, summary.get("baselines")),
    ]
    text = "\n".join(lines) + "\n"
    tmp = out_dir / "results.md.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out_dir / "results.md")
    logger.info("results:\n%s", text)


def main(argv):
    """Trains, then evaluates every test task zero-shot (and the cascade)."""
    hparams, run_opts = load_recipe_hparams(argv, __file__)
    check_backbone_dims(hparams)
    weights = check_loss_weights(hparams["loss_weights"], hparams["connector"])
    pretrained = None
    if hparams.get("pretrained_frontend"):  # checked before the data
        pretrained = find_trainable_checkpoint(hparams["pretrained_frontend"])
    datasets = build_datasets(hparams)
    for split in ("train", "valid", "test"):
        add_text_prompt_items(
            datasets[split],
            datasets["entries"][split],
            hparams["llm"],
            template=hparams["text_template"],
            asr_instruction=hparams["asr_instruction"],
            asr_prompt=hparams.get("asr_prompt", "manifest"),
        )
    brain = Wav2PromptBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    if pretrained is not None:
        logger.info("loading the pretrained front end from %s", pretrained)
        TrainableState({"connector": hparams["connector"]}).load(pretrained)
    n_trainable = count_parameters(brain.modules)
    logger.info("trainable parameters: %d", n_trainable)
    test_opts = hparams["test_dataloader_opts"]
    summary = {"system": hparams["system_name"], "loss_weights": weights}
    if hparams.get("evaluate_before_tuning"):
        summary["before_tuning"], _ = brain.evaluate_zero_shot(
            datasets["test"], test_opts, "before_tuning"
        )
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_kwargs(hparams, datasets["train"]),
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    summary["test"], summary["cascade"] = brain.evaluate_zero_shot(
        datasets["test"], test_opts, "test_results"
    )
    test_tasks = hparams.get("test_tasks") or hparams["tasks"]
    summary["baselines"] = majority_baselines(
        resolve_source(hparams["data_folder"]),
        test_tasks,
        datasets["entries"]["test"],
    )
    summary["train_tasks"] = list(
        hparams.get("train_tasks") or hparams["tasks"]
    )
    summary["max_train_per_task"] = hparams.get("max_train_per_task")
    # few-shot runs read their shots from another split's manifests
    summary["train_manifest_split"] = (
        hparams.get("train_manifest_split") or "train"
    )
    run_on_main(
        write_run_summary,
        kwargs={
            "hparams": hparams,
            "summary": summary,
            "n_trainable": n_trainable,
        },
    )


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except ManifestError as err:
        # one clear report of every bad example, no deep traceback
        sys.exit(f"Wav2Prompt: the data manifests have problems:\n{err}")
    except FileNotFoundError as err:
        sys.exit(f"Wav2Prompt: {err}")
