"""SLURP preparation: JSONL annotations, one example per recording."""

import json

import pytest
from prepare_fixtures import (
    assert_skips_second_time,
    assert_valid,
    read_manifest,
    write_audio,
)

from audiollm_lobes.data.prepare.preparation import CorpusError
from audiollm_lobes.data.prepare.slurp import prepare_slurp

RECORDS = {
    "train.jsonl": [
        (
            13,
            "wake me up at five am",
            "wake me up at [time : five am]",
            "alarm_set",
            ["audio-1490356700.flac", "audio-1490356700-headset.flac"],
        ),
    ],
    "devel.jsonl": [
        (
            4201,
            "what is the weather",
            "what is the weather",
            "weather_query",
            ["audio-1501751422.flac"],
        ),
    ],
    "test.jsonl": [
        (
            9,
            "play [artist : the beatles] please",
            "play [artist : the beatles] [date : today]",
            "play_music",
            ["audio-1434539848.flac"],
        ),
    ],
    "train_synthetic.jsonl": [
        (
            77,
            "turn off the lights",
            "turn off the lights",
            "iot_hue_lightoff",
            ["synth-1.flac"],
        ),
    ],
}


def make_slurp(root):
    text = root / "dataset" / "slurp"
    text.mkdir(parents=True)
    for k, (name, records) in enumerate(RECORDS.items()):
        lines = []
        for sid, sentence, annotation, intent, files in records:
            scenario, action = intent.split("_", 1)
            folder = "slurp_synth" if "synthetic" in name else "slurp_real"
            for j, file in enumerate(files):
                write_audio(root / folder / file, 0.4, seed=k + j)
            lines.append(
                json.dumps(
                    {
                        "slurp_id": sid,
                        "sentence": sentence,
                        "sentence_annotation": annotation,
                        "intent": intent,
                        "action": action,
                        "scenario": scenario,
                        "recordings": [
                            {
                                "file": f,
                                "wer": 0.0,
                                "ent_wer": 0.0,
                                "status": "correct",
                            }
                            for f in files
                        ],
                    }
                )
            )
        (text / name).write_text("\n".join(lines) + "\n")
    return root


def test_prepare_slurp(tmp_path):
    corpus = make_slurp(tmp_path / "slurp")
    save = tmp_path / "prepared"
    paths = prepare_slurp(str(corpus), str(save))
    assert_valid(paths)
    train = read_manifest(save, "train", "slu")
    assert sorted(train) == [
        "slurp_13_audio-1490356700",
        "slurp_13_audio-1490356700-headset",
    ]
    assert {e["target"] for e in train.values()} == {
        "intent=alarm_set time=five am"
    }
    test = read_manifest(save, "test", "slu")
    assert test["slurp_9_audio-1434539848"]["target"] == (
        "intent=play_music artist=the beatles date=today"
    )
    assert list(read_manifest(save, "valid", "slu")) == [
        "slurp_4201_audio-1501751422"
    ]
    assert_skips_second_time(prepare_slurp, save, data_folder=str(corpus))
    prepare_slurp(str(corpus), str(save), use_synthetic=True)
    assert "slurp_77_synth-1" in read_manifest(save, "train", "slu")


def test_slurp_missing(tmp_path):
    corpus = make_slurp(tmp_path / "slurp")
    (corpus / "dataset" / "slurp" / "devel.jsonl").unlink()
    with pytest.raises(CorpusError) as err:
        prepare_slurp(str(corpus), str(tmp_path / "out"))
    assert "dataset/slurp/devel.jsonl" in str(err.value)
    assert "test.jsonl" not in str(err.value)
