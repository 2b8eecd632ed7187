"""Which manifest entries each recipe split reads (few-shot selection).

Authors
 * audiollm-lobes developers, 2026
"""

import json

import numpy as np
import pytest
import soundfile as sf

from audiollm_lobes.data.datasets import build_datasets
from audiollm_lobes.data.pipeline import load_entries


def _manifest(folder, split, task, n, prefix):
    """Writes ``n`` one-second clips and their manifest; returns the ids."""
    audio = folder / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    entries = {}
    for i in range(n):
        wav = audio / f"{prefix}{i:03d}.wav"
        sf.write(str(wav), np.full(16000, 0.1, dtype="float32"), 16000)
        entries[f"{task}_{split}_{i:03d}"] = {
            "wav": "{data_root}/audio/" + wav.name,
            "duration": 1.0,
            "task": task,
            "instruction": "<audio> Transcribe the speech.",
            "target": f"word {i}",
        }
    path = folder / "manifests" / split / f"{task}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries))
    return list(entries)


@pytest.fixture
def data(tmp_path):
    ids = {}
    for split, n in (("train", 6), ("valid", 8), ("test", 3)):
        ids[split] = _manifest(tmp_path, split, "asr", n, split[:2])
    return tmp_path, ids


def test_skip_then_max_reads_a_window_of_each_manifest(data):
    root, ids = data
    path = str(root / "manifests" / "valid" / "asr.json")
    got = load_entries([path], str(root), skip_per_manifest=2)
    assert list(got) == ids["valid"][2:]
    got = load_entries(
        [path], str(root), skip_per_manifest=2, max_per_manifest=3
    )
    assert list(got) == ids["valid"][2:5]
    # more asked for than remain: what remains, no error
    got = load_entries(
        [path], str(root), skip_per_manifest=6, max_per_manifest=5
    )
    assert list(got) == ids["valid"][6:]


def test_skipping_everything_is_an_error_naming_the_file(data):
    root, _ = data
    path = str(root / "manifests" / "test" / "asr.json")
    with pytest.raises(ValueError, match="test/asr.json.*skip_per_manifest"):
        load_entries([path], str(root), skip_per_manifest=3)


def _hparams(root, **extra):
    hparams = {
        "data_folder": str(root),
        "tasks": ["asr"],
        "llm": object(),  # the pipelines use it lazily
        "sample_rate": 16000,
    }
    hparams.update(extra)
    return hparams


def test_a_split_can_read_another_splits_manifests(data):
    root, ids = data
    out = build_datasets(
        _hparams(
            root,
            train_manifest_split="valid",
            max_train_per_task=3,
            valid_manifest_split="valid",
            skip_valid_per_task=5,
            max_valid_per_task=2,
        )
    )
    assert list(out["entries"]["train"]) == ids["valid"][:3]
    assert list(out["entries"]["valid"]) == ids["valid"][5:7]
    assert list(out["entries"]["test"]) == ids["test"]
    # default: each split reads its own manifests
    out = build_datasets(_hparams(root))
    for split in ("train", "valid", "test"):
        assert list(out["entries"][split]) == ids[split]


def test_overlapping_splits_are_refused(data):
    root, _ = data
    hparams = _hparams(
        root,
        train_manifest_split="valid",
        max_train_per_task=3,
        valid_manifest_split="valid",
        skip_valid_per_task=2,  # entries 2.. overlap the shots 0..2
    )
    with pytest.raises(ValueError, match="valid and train sets share 1"):
        build_datasets(hparams)


def test_instruction_overrides_replace_one_tasks_instructions(data):
    root, ids = data
    _manifest(root, "train", "spoken_qa", 2, "qa")
    path = root / "manifests" / "train" / "spoken_qa.json"
    entries = json.loads(path.read_text())
    for i, entry in enumerate(entries.values()):
        entry["question"] = f"question {i}?"
        entry["instruction"] = f"<audio> Question: question {i}?"
    path.write_text(json.dumps(entries))
    out = build_datasets(
        _hparams(
            root,
            tasks=["asr"],
            train_tasks=["asr", "spoken_qa"],
            instruction_overrides={
                "asr": "Repeat the text: <audio>",
                "spoken_qa": "Read: <audio> Question: <question>",
            },
        )
    )
    got = {k: e["instruction"] for k, e in out["entries"]["train"].items()}
    for split in ("train", "valid", "test"):
        for ex_id in ids[split]:
            assert (
                out["entries"][split][ex_id]["instruction"]
                == "Repeat the text: <audio>"
            )
    assert got["spoken_qa_train_001"] == "Read: <audio> Question: question 1?"
    # without overrides (or with None) the manifests' instructions stay
    out = build_datasets(_hparams(root, instruction_overrides={"asr": None}))
    assert {e["instruction"] for e in out["entries"]["train"].values()} == {
        "<audio> Transcribe the speech."
    }


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"asr": "Repeat the text:"}, "asr: 'Repeat the text:' holds 0"),
        ({"asr": "<audio> <audio>"}, "holds 2 <audio> markers"),
        ({"asrr": "<audio>"}, "asrr: unknown task"),
        (["<audio>"], "expected a mapping"),
        ({"asr": "<audio> <speaker>"}, "no field for a placeholder"),
    ],
)
def test_bad_instruction_overrides_are_named(data, overrides, message):
    root, _ = data
    with pytest.raises(ValueError, match=message):
        build_datasets(_hparams(root, instruction_overrides=overrides))


def _tasks_dataset(counts):
    from speechbrain.dataio.dataset import DynamicItemDataset

    data = {}
    for task, n in counts.items():
        for i in range(n):
            data[f"{task}_{i}"] = {"task": task}
    return DynamicItemDataset(data)


def test_task_sampling_weights_set_each_tasks_share_of_draws():
    from audiollm_lobes.data.sampling import train_loader_kwargs

    train = _tasks_dataset({"asr": 5, "emotion": 50, "captioning": 20})
    weights = {"asr": 2.0, "emotion": 1.0, "captioning": 1.0}
    hparams = {
        "train_dataloader_opts": {"batch_size": 8, "shuffle": True},
        "steps_per_epoch": 1000,
        "seed": 3,
        "task_sampling_weights": weights,
    }
    opts = train_loader_kwargs(hparams, train)
    assert "shuffle" not in opts
    sampler = opts["sampler"]
    draws = list(sampler)
    assert len(draws) == 8000
    tasks = [train.data[train.data_ids[i]]["task"] for i in draws]
    # the shares follow the weights, not the set sizes (5 / 50 / 20)
    for task, share in (("asr", 0.5), ("emotion", 0.25), ("captioning", 0.25)):
        assert abs(tasks.count(task) / len(tasks) - share) < 0.02, task
    # every example of the small task is drawn, and reproducibly
    assert {i for i in draws if i < 5} == set(range(5))
    assert list(train_loader_kwargs(hparams, train)["sampler"]) == draws
    sampler.set_epoch(1)
    assert list(sampler) != draws


@pytest.mark.parametrize(
    "weights, message",
    [
        ({"asr": 1.0}, r"no weight for the training tasks \['emotion'\]"),
        ({"asr": 1.0, "emotion": -1.0}, "expected weights >= 0"),
        ({"asr": 0, "emotion": 0}, "not all zero"),
    ],
)
def test_bad_task_sampling_weights_are_named(weights, message):
    from audiollm_lobes.data.sampling import example_weights

    train = _tasks_dataset({"asr": 2, "emotion": 3})
    with pytest.raises(ValueError, match=message):
        example_weights(train, weights)
