"""Tests of the task table: built-in tasks and tasks declared in hparams.

Authors
 * audiollm-lobes developers, 2026
"""

import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from audiollm_lobes import metrics
from audiollm_lobes.data import templates
from audiollm_lobes.data.datasets import build_datasets
from audiollm_lobes.data.manifest import ManifestError
from audiollm_lobes.data.tasks import (
    default_task_definitions,
    make_task_metrics,
    task_definitions,
)

BIRD = {
    "metric": "accuracy",
    "instructions": [
        "<audio> Which bird is singing?",
        "Name the bird: <audio>",
    ],
}


def test_defaults_are_the_templates_and_metrics_tables():
    table = default_task_definitions()
    assert tuple(table) == templates.KNOWN_TASKS
    for name, task in table.items():
        assert task.instructions == tuple(templates.AUDIO_INSTRUCTIONS[name])
        assert task.metrics == (metrics.TASK_METRICS[name],)
    assert table["translate_fr"].language == "fr"
    assert table["emotion"].text_instructions == ()
    assert table["slu"].text_instructions == tuple(
        templates.TEXT_INSTRUCTIONS["slu"]
    )
    assert task_definitions(None) == table == task_definitions({})


def test_declared_tasks_are_added_and_built_ins_changed_key_by_key():
    table = task_definitions(
        {
            "bird": dict(BIRD, language="en"),
            "asr": {"metric": ["wer", "cer"]},
            "emotion": None,  # switched off: stays the default
            "zh_caption": {"metric": "bleu", "language": "zh"},
        }
    )
    assert list(table)[-2:] == ["bird", "zh_caption"]
    assert table["bird"].metrics == ("accuracy",)
    assert table["bird"].instructions == tuple(BIRD["instructions"])
    assert (
        table["bird"].sample_instruction(random.Random(1)).count("<audio>") == 1
    )
    assert table["asr"].metrics == ("wer", "cer")
    assert (
        table["asr"].instructions
        == default_task_definitions()["asr"].instructions
    )
    assert table["emotion"] == default_task_definitions()["emotion"]
    with pytest.raises(ValueError, match="'zh_caption' has no instructions"):
        table["zh_caption"].sample_instruction()


@pytest.mark.parametrize(
    "declared, message",
    [
        ({"bird": {"metric": "rouge"}}, "bird.metric: unknown metric 'rouge'"),
        ({"bird": {"metric": []}}, "bird.metric: expected a metric name"),
        ({"bird": {"instructions": ["<audio>"]}}, "a new task needs a metric"),
        (
            {"bird": dict(BIRD, instructions=["<audio>", "Which bird?"])},
            r"bird.instructions\[1\]: 'Which bird\?' holds 0 <audio>",
        ),
        (
            {"bird": dict(BIRD, instructions=["<audio> <audio>"])},
            r"instructions\[0\]: '<audio> <audio>' holds 2 <audio> markers",
        ),
        (
            {"bird": dict(BIRD, instructions="<audio> Which bird?")},
            "bird.instructions: expected a list",
        ),
        (
            {"bird": dict(BIRD, instructions=["<audio> {bird}"])},
            "curly braces",
        ),
        (
            {"bird": dict(BIRD, text_instructions=["Which bird?"])},
            r"text_instructions\[0\]: 'Which bird\?' holds 0 <text>",
        ),
        ({"bird": dict(BIRD, metrics="accuracy")}, r"unknown keys \['metrics'"),
        ({"bird": "accuracy"}, "bird: expected a mapping"),
        ({"my bird": BIRD}, "task name 'my bird' must be"),
        ({"bird": dict(BIRD, language="")}, "bird.language"),
        (["bird"], "task_definitions: expected a mapping"),
    ],
)
def test_bad_declarations_are_named(declared, message):
    with pytest.raises(ValueError, match=message):
        task_definitions(declared)


def test_task_metrics_score_declared_tasks_with_their_metric():
    stats = make_task_metrics(
        {"bird": BIRD, "zh_caption": {"metric": "bleu", "language": "zh"}}
    )
    stats.append("bird", ["a", "b"], ["Robin.", "wren"], ["robin", "owl"])
    zh = "我们喜欢小猫"
    stats.append("zh_caption", ["c"], [zh], [zh])
    stats.append("asr", ["d"], ["a b"], ["a c"])
    summary = stats.summarize()
    # accuracy normalises case and punctuation; exact_match would not
    assert summary["bird"] == {"accuracy": 50.0, "n": 2}
    # Chinese BLEU tokenises characters: the 13a tokenizer would see one
    # word and give a (smoothed) score, not 100
    assert round(summary["zh_caption"]["bleu"], 6) == 100.0
    assert summary["asr"] == {"wer": 50.0, "n": 1}
    assert stats.metrics_of("unknown") == ("exact_match",)


#: Stands for a CausalLM: the pipelines tokenize lazily.
_LLM = SimpleNamespace(prompt_format="plain")


def _corpus(root):
    """One clip per split for asr and the declared task ``bird``."""
    (root / "audio").mkdir(parents=True)
    wav = root / "audio" / "a.wav"
    sf.write(str(wav), np.full(16000, 0.1, dtype="float32"), 16000)
    for split in ("train", "valid", "test"):
        for task, instruction, target in (
            ("asr", "<audio> Transcribe.", "hello"),
            ("bird", "<audio> Which bird is singing?", "robin"),
        ):
            entry = {
                "wav": "{data_root}/audio/a.wav",
                "duration": 1.0,
                "task": task,
                "instruction": instruction,
                "target": target,
            }
            path = root / "manifests" / split / f"{task}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({f"{task}_{split}": entry}))


def test_build_datasets_accepts_declared_tasks_only(tmp_path):
    _corpus(tmp_path)
    hparams = {
        "data_folder": str(tmp_path),
        "tasks": ["asr", "bird"],
        "llm": _LLM,
    }
    with pytest.raises(ValueError, match="tasks: unknown task 'bird'"):
        build_datasets(hparams)
    hparams["task_definitions"] = {"bird": BIRD}
    out = build_datasets(hparams)
    assert sorted(out["entries"]["test"]) == ["asr_test", "bird_test"]
    # an override of the new task's instruction is accepted too
    hparams["instruction_overrides"] = {"bird": "Name the bird: <audio>"}
    out = build_datasets(hparams)
    assert out["entries"]["train"]["bird_train"]["instruction"] == (
        "Name the bird: <audio>"
    )
    # a manifest with a task that is not declared is a validation problem
    hparams["tasks"] = ["asr"]
    hparams["train_tasks"] = ["asr"]
    (tmp_path / "manifests" / "train" / "asr.json").write_text(
        json.dumps(
            {
                "x": {
                    "wav": "{data_root}/audio/a.wav",
                    "duration": 1.0,
                    "task": "owl",
                    "instruction": "<audio> Hoot?",
                    "target": "hoot",
                }
            }
        )
    )
    with pytest.raises(ManifestError, match="x: task: unknown task 'owl'"):
        build_datasets(hparams)


def test_max_audio_seconds_cannot_be_silently_ignored(tmp_path):
    """Until data.pipeline.load_entries forwards it, asking for another
    limit than the default is an error (not ignored)."""
    import inspect

    from audiollm_lobes.data.pipeline import load_entries

    _corpus(tmp_path)
    hparams = {
        "data_folder": str(tmp_path),
        "tasks": ["asr"],
        "llm": _LLM,
        "max_audio_seconds": 0.5,
    }
    if "max_audio_seconds" in inspect.signature(load_entries).parameters:
        with pytest.raises(ManifestError, match="max_audio_seconds=0.5"):
            build_datasets(hparams)
    else:
        with pytest.raises(ValueError, match="max_audio_seconds=0.5"):
            build_datasets(hparams)
    hparams["max_audio_seconds"] = 120.0
    assert len(build_datasets(hparams)["entries"]["train"]) == 1
