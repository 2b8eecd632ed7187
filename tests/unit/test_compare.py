"""``python -m audiollm_lobes.compare`` over seeds: experiment folders are
pooled into mean and range, worked out by hand here."""

import json

import pytest

from audiollm_lobes.compare import comparison, main


def _run(folder, wer, accuracy, k_sweep=None, overlap=None):
    folder.mkdir(parents=True)
    summary = {
        "experiment": folder.parent.name,
        "test": {
            "asr": {"wer": wer, "n": 4},
            "emotion": {"accuracy": accuracy, "n": 4},
        },
        "baselines": {"emotion": 25.0},
        "trainable_parameters": 1000,
    }
    if k_sweep:
        summary["k_sweep"] = k_sweep
    if overlap is not None:
        summary["usage"] = {
            "group_overlap": {"across_groups": overlap},
            "overlap": {
                "asr": {"asr": 1.0, "emotion": overlap},
                "emotion": {"asr": overlap, "emotion": 1.0},
            },
        }
    (folder / "summary.json").write_text(json.dumps(summary))


def test_an_experiment_folder_is_the_mean_and_range_of_its_seeds(
    tmp_path, capsys
):
    for seed, wer, acc, ov in (("1", 30.0, 50.0, 0.2), ("2", 36.0, 75.0, 0.5)):
        sweep = {
            "1": {"asr": {"wer": wer + 10, "n": 4}},
            "4": {"asr": {"wer": wer, "n": 4}},
        }
        _run(tmp_path / "dps" / seed, wer, acc, sweep, ov)
    (tmp_path / "dps" / "3").mkdir()  # an unfinished seed: no summary
    _run(tmp_path / "lora" / "1", 20.0, 100.0)
    out = tmp_path / "table.md"
    assert (
        main([str(tmp_path / "dps"), str(tmp_path / "lora"), "--out", str(out)])
        == 0
    )
    text = capsys.readouterr().out
    assert out.read_text() == text
    # (30 + 36) / 2 = 33, (50 + 75) / 2 = 62.5
    assert "| asr | wer ↓ | 33.00 (30.00–36.00) | 20.00 | 4 | – |" in text
    assert (
        "| emotion | accuracy ↑ | 62.50 (50.00–75.00) | 100.00 | 4 | 25.00 |"
        in text
    )
    assert "| trainable parameters | | 1,000 | 1,000 | | |" in text
    assert "dps: seeds 1, 2; lora: seeds 1." in text
    # the sweep: k=1 is 40 and 46, k=4 is 30 and 36
    assert (
        "| asr | wer ↓ | 43.00 (40.00–46.00) | 33.00 (30.00–36.00) | 4 |"
        in text
    )
    assert "| across_groups | 0.35 (0.20–0.50) |" in text
    assert "| emotion vs the other tasks | 0.35 (0.20–0.50) |" in text


def test_a_single_run_folder_keeps_its_plain_figures(tmp_path):
    _run(tmp_path / "dps" / "1234", 30.0, 50.0)
    text = comparison([tmp_path / "dps" / "1234"])
    assert "| asr | wer ↓ | 30.00 | 4 | – |" in text
    assert "| task | metric | dps |" in text
    assert "mean (min–max)" not in text


def test_a_folder_without_any_finished_run_is_named(tmp_path):
    (tmp_path / "dps" / "1").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="dps"):
        comparison([tmp_path / "dps"])


def test_without_an_experiment_name_the_label_is_the_experiment_folder(
    tmp_path,
):
    for seed in ("1", "2"):
        run = tmp_path / "soft_prompt" / seed
        run.mkdir(parents=True)
        (run / "summary.json").write_text(
            json.dumps({"test": {"asr": {"wer": 10.0, "n": 4}}})
        )
    for path in (
        tmp_path / "soft_prompt",
        tmp_path / "soft_prompt" / "1",
        tmp_path / "soft_prompt" / "1" / "summary.json",
    ):
        text = comparison([path])
        assert text.startswith("| task | metric | soft_prompt |"), path
