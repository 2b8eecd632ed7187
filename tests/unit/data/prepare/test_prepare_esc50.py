"""ESC-50 preparation: 44.1 kHz clips, folds as splits."""

import pytest
from prepare_fixtures import (
    assert_skips_second_time,
    assert_valid,
    read_manifest,
    write_audio,
)

from audiollm_lobes.data.prepare.esc50 import prepare_esc50
from audiollm_lobes.data.prepare.preparation import CorpusError

ROWS = [
    ("1-100032-A-0.wav", 1, 0, "dog"),
    ("2-102414-A-17.wav", 2, 17, "pouring_water"),
    ("4-181286-A-20.wav", 4, 20, "crying_baby"),
    ("5-9032-A-0.wav", 5, 0, "dog"),
]


def make_esc50(root):
    root = root / "ESC-50-master"
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for k, (name, fold, target, category) in enumerate(ROWS):
        write_audio(root / "audio" / name, 0.5, 44100, seed=k)
        lines.append(
            f"{name},{fold},{target},{category},{target == 0},"
            f"{name.split('-')[1]},A"
        )
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    return root


def test_prepare_esc50(tmp_path):
    corpus = make_esc50(tmp_path)
    save = tmp_path / "prepared"
    paths = prepare_esc50(str(tmp_path), str(save))
    assert_valid(paths)
    train = read_manifest(save, "train", "sound_event")
    assert {k: e["target"] for k, e in train.items()} == {
        "esc50_1-100032-A-0": "dog",
        "esc50_2-102414-A-17": "pouring water",
    }
    assert train["esc50_1-100032-A-0"]["esc10"] is True
    assert list(read_manifest(save, "valid", "sound_event")) == [
        "esc50_4-181286-A-20"
    ]
    assert list(read_manifest(save, "test", "sound_event")) == [
        "esc50_5-9032-A-0"
    ]
    assert_skips_second_time(prepare_esc50, save, data_folder=str(corpus))
    paths = prepare_esc50(str(corpus), str(save), test_fold=1, valid_fold=2)
    assert list(read_manifest(save, "test", "sound_event")) == [
        "esc50_1-100032-A-0"
    ]


def test_esc50_missing(tmp_path):
    corpus = make_esc50(tmp_path)
    (corpus / "meta" / "esc50.csv").unlink()
    with pytest.raises(CorpusError, match="meta/esc50.csv"):
        prepare_esc50(str(corpus), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="different folds"):
        prepare_esc50(str(corpus), str(tmp_path / "out"), valid_fold=5)
