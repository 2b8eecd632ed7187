"""What all preparations share: several corpora in one folder, the
command line, interrupted runs, entries."""

import json
import runpy
import sys

import pytest
from prepare_fixtures import read_manifest, stamps
from test_prepare_audiocaps import make_audiocaps
from test_prepare_clotho import make_clotho
from test_prepare_esc50 import make_esc50

from audiollm_lobes.data.prepare import CORPORA
from audiollm_lobes.data.prepare import preparation as prep
from audiollm_lobes.data.prepare.audiocaps import prepare_audiocaps
from audiollm_lobes.data.prepare.clotho import prepare_clotho
from audiollm_lobes.data.prepare.esc50 import prepare_esc50


def test_every_corpus_has_a_prepare_function():
    import importlib

    for name in CORPORA:
        module = importlib.import_module(f"audiollm_lobes.data.prepare.{name}")
        prepare = getattr(module, f"prepare_{name}")
        params = list(prep.inspect.signature(prepare).parameters)
        assert params[:2] == ["data_folder", "save_folder"], name
        assert params[-1] == "skip_prep", name


def test_two_corpora_share_a_task_file(tmp_path):
    save = tmp_path / "prepared"
    clotho = make_clotho(tmp_path / "clotho")
    audiocaps = make_audiocaps(tmp_path / "audiocaps")
    prepare_clotho(str(clotho), str(save))
    prepare_audiocaps(str(audiocaps), str(save))
    train = read_manifest(save, "train", "captioning")
    assert {e["corpus"] for e in train.values()} == {"clotho", "audiocaps"}
    n_clotho = sum(e["corpus"] == "clotho" for e in train.values())
    # preparing one again (other options) replaces only its own entries
    prepare_audiocaps(
        str(audiocaps),
        str(save),
        missing_audio="skip",
        extension=".wav",
        file_name="youtube_id",
        audio_folder=str(audiocaps / "audio"),
    )
    prepare_clotho(str(clotho), str(save))  # unchanged: skipped
    (clotho / "clotho_audio_development" / "rain_on_roof.wav").unlink()
    rows = (clotho / "clotho_captions_development.csv").read_text()
    (clotho / "clotho_captions_development.csv").write_text(
        "\n".join(r for r in rows.splitlines() if "rain_on_roof" not in r)
    )
    prep.record_path(save, "clotho").unlink()  # as if interrupted
    prepare_clotho(str(clotho), str(save))
    train = read_manifest(save, "train", "captioning")
    assert sum(e["corpus"] == "clotho" for e in train.values()) == n_clotho - 5
    assert sum(e["corpus"] == "audiocaps" for e in train.values()) == 1


def test_skip_prep_and_stale_files(tmp_path):
    save = tmp_path / "prepared"
    esc = make_esc50(tmp_path)
    assert prepare_esc50(str(esc), str(save), skip_prep=True) == {}
    assert not (save / "manifests" / "train").exists()
    prepare_esc50(str(esc), str(save))
    before = stamps(save)
    prepare_esc50(str(tmp_path / "elsewhere"), str(save), skip_prep=True)
    assert stamps(save) == before
    # a split the new options no longer produce loses this corpus's entries
    (esc / "audio" / "4-181286-A-20.wav").unlink()
    rows = (esc / "meta" / "esc50.csv").read_text().splitlines()
    (esc / "meta" / "esc50.csv").write_text("\n".join(rows[:-2] + rows[-1:]))
    prepare_esc50(str(esc), str(save), valid_fold=3)
    assert not prep.manifest_path(save, "valid", "sound_event").exists()
    record = json.loads(prep.record_path(save, "esc50").read_text())
    assert sorted(record["outputs"]) == ["test", "train"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_command_line(tmp_path, monkeypatch):
    esc = make_esc50(tmp_path)
    save = tmp_path / "prepared"
    argv = [
        "esc50",
        "--data_folder",
        str(esc),
        "--save_folder",
        str(save),
        "--test_fold",
        "1",
        "--valid_fold",
        "2",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_module("audiollm_lobes.data.prepare.esc50", run_name="__main__")
    assert list(read_manifest(save, "test", "sound_event")) == [
        "esc50_1-100032-A-0"
    ]
    with pytest.raises(SystemExit) as err:  # --save_folder is required
        prep.command_line(prepare_esc50, ["--data_folder", str(esc)])
    assert err.value.code == 2
    missing = ["--data_folder", str(tmp_path / "no")]
    missing += ["--save_folder", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as err:  # one message, no traceback
        prep.command_line(prepare_esc50, missing)
    assert err.value.code == 1


def test_entries_and_instructions():
    entry = prep.make_entry(
        "spoken_qa",
        "q1",
        "/c/a.flac",
        1.0,
        " yes ",
        question="who?",
        start=0.5,
        stop=1.5,
        speaker=None,
    )
    assert entry["target"] == "yes" and "speaker" not in entry
    assert (entry["start"], entry["stop"]) == (0.5, 1.5)
    assert entry["instruction"].count("<audio>") == 1
    assert "who?" in entry["instruction"]
    with pytest.raises(KeyError, match="question"):
        prep.make_entry("spoken_qa", "q1", "/c/a.flac", 1.0, "yes")
    with pytest.raises(prep.PreparationError, match="empty target"):
        prep.make_entry("asr", "u1", "/c/a.flac", 1.0, "  ")
    # the choice depends on the id only, and spreads over the paraphrases
    chosen = {prep.choose_instruction("asr", f"utt{n}") for n in range(200)}
    assert chosen == set(prep.templates.AUDIO_INSTRUCTIONS["asr"])
    assert prep.choose_instruction("asr", "u7") == prep.choose_instruction(
        "asr", "u7"
    )


def test_unreadable_audio_is_named(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(prep.PreparationError, match="bad.wav"):
        prep.audio_info(bad)
