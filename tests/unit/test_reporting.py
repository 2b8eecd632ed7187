"""Results tables, majority baselines and summaries (reporting).

Authors
 * audiollm-lobes developers, 2026
"""

import json
import os

from audiollm_lobes.atomic import write_json
from audiollm_lobes.reporting import (
    majority_baselines,
    results_table,
    write_results,
    write_summary,
)


def test_format_table_and_write_results(tmp_path):
    summary = {
        "asr": {"wer": 12.345, "n": 10},
        "speaker_verification": {"accuracy": 80.0, "eer": 15.0, "n": 20},
        "emotion": {"accuracy": float("nan"), "n": 0},
    }
    baselines = {"speaker_verification": 50.0, "emotion": {"accuracy": 25.0}}
    table = results_table([("value", summary)], baselines)
    lines = table.splitlines()
    assert lines[0] == "| task | metric | value | n | majority |"
    assert "| asr | wer ↓ | 12.35 | 10 | – |" in lines
    assert "| speaker_verification | accuracy ↑ | 80.00 | 20 | 50.00 |" in lines
    assert "| speaker_verification | eer ↓ | 15.00 | 20 | – |" in lines
    assert "| emotion | accuracy ↑ | – | 0 | 25.00 |" in lines

    json_path, md_path = write_results(
        summary, tmp_path / "out" / "res.json", baselines
    )
    assert md_path == str(tmp_path / "out" / "res.md")
    data = json.loads(open(json_path, encoding="utf-8").read())
    assert data["results"]["asr"] == {"wer": 12.345, "n": 10}
    assert data["results"]["emotion"]["accuracy"] is None
    assert data["baselines"]["speaker_verification"] == 50.0
    assert open(md_path, encoding="utf-8").read() == table + "\n"
    # no temporary files are left behind; rewriting replaces the file
    write_results({"asr": {"wer": 1.0, "n": 1}}, json_path)
    assert sorted(os.listdir(tmp_path / "out")) == ["res.json", "res.md"]
    assert json.load(open(json_path))["results"]["asr"]["wer"] == 1.0


def test_results_table_columns_rows_and_parameters():
    dps = {
        "asr": {"wer": 10.0, "n": 5},
        "sv": {"accuracy": 60.0, "eer": 30.0, "n": 4},
    }
    lora = {"asr": {"wer": 12.5, "n": 5}, "new": {"bleu": 1.0, "n": 2}}
    lines = results_table(
        [("dps", dps), ("lora", lora)], {"sv": 50.0}, parameters=[10, 2000]
    ).splitlines()
    assert lines[0] == "| task | metric | dps | lora | n | majority |"
    assert lines[1] == "|---|---|---:|---:|---:|---:|"
    assert lines[2:] == [
        "| asr | wer ↓ | 10.00 | 12.50 | 5 | – |",
        "| sv | accuracy ↑ | 60.00 | – | 4 | 50.00 |",
        "| sv | eer ↓ | 30.00 | – | 4 | – |",
        "| new | bleu ↑ | – | 1.00 | 2 | – |",
        "| trainable parameters | | 10 | 2,000 | | |",
    ]
    # every row has as many cells as the header
    assert len({line.count("|") for line in lines}) == 1


def test_majority_baselines_from_the_train_manifests(tmp_path):
    train = {
        "a": {"task": "emotion", "target": "Happy"},
        "b": {"task": "emotion", "target": "happy."},
        "c": {"task": "emotion", "target": "sad"},
        "d": {"task": "slu", "target": "intent: on"},
    }
    for task in ("emotion", "slu"):
        rows = {k: v for k, v in train.items() if v["task"] == task}
        write_json(tmp_path / "manifests" / "train" / f"{task}.json", rows)
    test = {
        "e": {"task": "emotion", "target": "happy"},
        "f": {"task": "emotion", "target": "sad"},
        "g": {"task": "slu", "target": "Intent: on"},  # exact match: case
        "h": {"task": "asr", "target": "hello"},  # WER task: no baseline
        "i": {"task": "spoken_qa", "target": "yes"},  # no train manifest
    }
    # accuracy compares normalised answers ("Happy" == "happy."), exact
    # match does not
    assert majority_baselines(tmp_path, test) == {"emotion": 50.0, "slu": 0.0}


def test_write_summary_is_atomic_and_json_safe(tmp_path):
    write_summary(tmp_path, {"test": {"asr": {"wer": float("nan")}}}, ["x"])
    assert sorted(os.listdir(tmp_path)) == ["results.md", "summary.json"]
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["test"]["asr"]["wer"] is None
    assert (tmp_path / "results.md").read_text() == "x\n"
