"""Clotho v2 preparation: 44.1 kHz clips, five captions per clip."""

import csv

import pytest
from prepare_fixtures import (
    assert_skips_second_time,
    assert_valid,
    read_manifest,
    write_audio,
)

from audiollm_lobes.data.prepare.clotho import prepare_clotho
from audiollm_lobes.data.prepare.preparation import CorpusError

CLIPS = {
    "development": ["Distorted AM Radio noise.wav", "rain_on_roof.wav"],
    "validation": ["birds.wav"],
    "evaluation": ["car, passing by.wav"],
}


def make_clotho(root):
    for k, (split, files) in enumerate(CLIPS.items()):
        rows = []
        for j, name in enumerate(files):
            write_audio(
                root / f"clotho_audio_{split}" / name, 0.5, 44100, seed=k + j
            )
            rows.append(
                [name]
                + [f"{split} caption {c}, of {name}" for c in range(1, 6)]
            )
        with open(root / f"clotho_captions_{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(
                ["file_name"] + [f"caption_{c}" for c in range(1, 6)]
            )
            writer.writerows(rows)
    return root


def test_prepare_clotho(tmp_path):
    corpus = make_clotho(tmp_path / "clotho")
    save = tmp_path / "prepared"
    paths = prepare_clotho(str(corpus), str(save))
    assert_valid(paths)
    train = read_manifest(save, "train", "captioning")
    assert len(train) == 2 * 5
    entry = train["clotho_Distorted_AM_Radio_noise_3"]
    assert entry["target"] == (
        "development caption 3, of Distorted AM Radio noise.wav"
    )
    assert entry["duration"] == pytest.approx(0.5)
    test = read_manifest(save, "test", "captioning")
    assert list(test) == ["clotho_car,_passing_by"]
    assert len(test["clotho_car,_passing_by"]["references"]) == 5
    assert (
        test["clotho_car,_passing_by"]["target"]
        == (test["clotho_car,_passing_by"]["references"][0])
    )
    assert list(read_manifest(save, "valid", "captioning")) == ["clotho_birds"]
    assert_skips_second_time(prepare_clotho, save, data_folder=str(corpus))


def test_clotho_missing(tmp_path):
    corpus = make_clotho(tmp_path / "clotho")
    (corpus / "clotho_captions_evaluation.csv").unlink()
    (corpus / "clotho_audio_validation" / "birds.wav").unlink()
    with pytest.raises(CorpusError) as err:
        prepare_clotho(str(corpus), str(tmp_path / "out"))
    assert "clotho_captions_evaluation.csv" in str(err.value)
    (corpus / "clotho_captions_evaluation.csv").write_text(
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
    )
    with pytest.raises(CorpusError, match="birds.wav"):
        prepare_clotho(str(corpus), str(tmp_path / "out"))
