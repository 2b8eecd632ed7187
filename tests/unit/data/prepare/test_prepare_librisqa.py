"""LibriSQA preparation: QA JSON on LibriSpeech utterances."""

import json

import pytest
from prepare_fixtures import (
    assert_skips_second_time,
    assert_valid,
    read_manifest,
)
from test_prepare_librispeech import make_librispeech

from audiollm_lobes.data.prepare.librisqa import prepare_librisqa
from audiollm_lobes.data.prepare.preparation import (
    CorpusError,
    PreparationError,
    stable_fraction,
)

SUBSETS = {
    "train-clean-360": ("14", "208", ["ONE", "TWO", "THREE"]),
    "test-clean": ("1089", "134686", ["FOUR"]),
}


def make_librisqa(root, train=None):
    speech = make_librispeech(root, SUBSETS)
    part = root / "LibriSQA" / "LibriSQA-PartI"
    part.mkdir(parents=True)
    train = train or [
        {
            "speech_path": f"train-clean-360/14/208/14-208-{n:04d}.flac",
            "question": f"What is said in part {n}?",
            "answer": f"Number {n}.",
        }
        for n in range(3)
    ] + [{"speech_path": "14-208-0000", "question": "Again?", "answer": "Yes."}]
    test = [
        {
            "speech_path": "test-clean/1089/134686/1089-134686-0000.flac",
            "question": "Which number?",
            "answer": "Four.",
        }
    ]
    (part / "LibriSQA-PartI-train.json").write_text(json.dumps(train))
    (part / "LibriSQA-PartI-test.json").write_text(json.dumps(test))
    return root / "LibriSQA", speech


def test_prepare_librisqa(tmp_path):
    qa, speech = make_librisqa(tmp_path)
    save = tmp_path / "prepared"
    options = {"librispeech_folder": str(speech), "valid_fraction": 0.4}
    paths = prepare_librisqa(str(qa), str(save), **options)
    assert_valid(paths)
    test = read_manifest(save, "test", "spoken_qa")
    entry = test["librisqa_I_1089-134686-0000_0"]
    assert entry["target"] == "Four."
    assert entry["question"] == "Which number?"
    assert entry["instruction"].endswith("Question: Which number?")
    assert entry["wav"].endswith("1089-134686-0000.flac")
    ids = set(read_manifest(save, "train", "spoken_qa"))
    valid = set(read_manifest(save, "valid", "spoken_qa"))
    assert ids | valid == {
        "librisqa_I_14-208-0000_0",
        "librisqa_I_14-208-0001_0",
        "librisqa_I_14-208-0002_0",
        "librisqa_I_14-208-0000_1",
    }
    assert all(stable_fraction(k) < 0.4 for k in valid)
    assert_skips_second_time(
        prepare_librisqa, save, data_folder=str(qa), **options
    )


def test_librisqa_problems(tmp_path):
    qa, speech = make_librisqa(
        tmp_path,
        [{"speech_path": "14-208-0009", "question": "Q", "answer": "A"}],
    )
    with pytest.raises(CorpusError, match="14-208-0009"):
        prepare_librisqa(str(qa), str(tmp_path / "o"), str(speech))
    with pytest.raises(PreparationError, match="set audio_field"):
        prepare_librisqa(
            str(qa), str(tmp_path / "o"), str(speech), audio_field="audio"
        )
