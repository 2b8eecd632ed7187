"""Tests of manifest loading/validation and audio reading.

Authors
 * audiollm-lobes developers, 2026
"""

import json
import logging
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from audiollm_lobes.data.audio import (
    AudioError,
    load_audio_or_none,
    read_example_audio,
    read_wav,
)
from audiollm_lobes.data.manifest import (
    ManifestError,
    Problem,
    ValidationReport,
    check_manifests,
    filter_manifest,
    load_manifest,
    validate_manifest,
)


def _write(path, seconds=1.0, rate=16000, channels=1, value=0.1):
    frames = int(round(seconds * rate))
    data = np.full((frames, channels), value, dtype="float32")
    sf.write(str(path), data, rate)
    return str(path)


def _entry(wav, duration=1.0, task="asr", **extra):
    entry = {
        "wav": wav,
        "duration": duration,
        "task": task,
        "instruction": "<audio> Transcribe the speech.",
        "target": "the red cat",
    }
    entry.update(extra)
    return entry


@pytest.fixture
def audio(tmp_path):
    """A folder of good and bad audio files."""
    files = {
        "good": _write(tmp_path / "good.wav"),
        "good2": _write(tmp_path / "good2.wav", seconds=0.5),
        "rate8k": _write(tmp_path / "rate8k.wav", rate=8000),
        "stereo": _write(tmp_path / "stereo.wav", channels=2),
        "zero": _write(tmp_path / "zero.wav", seconds=0.0),
        "missing": str(tmp_path / "missing.wav"),
    }
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    files["empty"] = str(empty)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x01not really a wave file" * 10)
    files["garbage"] = str(garbage)
    return files


def _dump(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


# ----------------------------------------------------------------- loading


def test_load_manifest_formats_placeholders(tmp_path):
    path = _dump(
        tmp_path,
        "m.json",
        {"u1": {"wav": "{data_root}/a.wav", "meta": ["{data_root}/b"]}},
    )
    data = load_manifest(path, {"data_root": "/x"})
    assert data["u1"]["wav"] == "/x/a.wav"
    assert data["u1"]["meta"] == ["/x/b"]


def test_load_manifest_missing_placeholder_names_file_and_key(tmp_path):
    path = _dump(tmp_path, "m.json", {"u1": {"wav": "{data_root}/a.wav"}})
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert path in message and "u1/wav" in message
    assert "data_root" in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"u1": {"wav": "a.wav",}}', "invalid JSON at line 1"),
        ('[{"wav": "a.wav"}]', "top level is a JSON list"),
        ('{"u1": {}, "u1": {}}', "duplicate keys"),
    ],
)
def test_load_manifest_bad_files(tmp_path, text, expected):
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is None


def test_load_manifest_missing_file(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "nope.json")


# -------------------------------------------------------------- validation


def test_report_names_all_bad_ids_and_only_them(tmp_path, audio):
    data = {
        "good1": _entry(audio["good"]),
        "utt_missing": _entry(audio["missing"]),
        "utt_unreadable": _entry(audio["garbage"]),
        "utt_rate": _entry(audio["rate8k"]),
        "utt_task": _entry(audio["good"], task="juggling"),
        "good2": _entry(audio["good2"], duration=0.5),
    }
    path = _dump(tmp_path, "train.json", data)
    report = validate_manifest(path)
    assert not report.ok
    assert report.bad_ids == {
        "utt_missing",
        "utt_unreadable",
        "utt_rate",
        "utt_task",
    }
    text = str(report)
    for eid in report.bad_ids:
        assert f"  {eid}: " in text
    assert "good1" not in text and "good2" not in text
    assert path in text
    assert (
        f"utt_rate: wav: sample rate is 8000 Hz, expected 16000 Hz "
        f"({audio['rate8k']})" in text
    )
    assert f"audio file does not exist ({audio['missing']})" in text
    assert "unknown task 'juggling'" in text
    kinds = {p.example_id: p.kind for p in report.problems}
    assert kinds == {
        "utt_missing": "missing_file",
        "utt_unreadable": "unreadable_audio",
        "utt_rate": "sample_rate",
        "utt_task": "unknown_task",
    }

    # check_manifests with "error": one ManifestError, nothing chained
    with pytest.raises(ManifestError) as info:
        check_manifests([path])
    err = info.value
    assert err.__cause__ is None and err.__context__ is None
    for eid in report.bad_ids:
        assert eid in str(err)

    # and with "skip": the good entries only
    result = check_manifests([path], on_bad_example="skip")
    assert list(result) == [path]
    good = result[path]
    assert list(good) == ["good1", "good2"]
    assert filter_manifest(data, report) == good


def test_empty_audio_and_channels(audio):
    data = {
        "zero": _entry(audio["zero"], duration=0.5),
        "empty_file": _entry(audio["empty"]),
        "stereo": _entry(audio["stereo"]),
    }
    report = validate_manifest(data)
    kinds = {(p.example_id, p.kind) for p in report.problems}
    assert ("zero", "empty_audio") in kinds
    assert ("empty_file", "unreadable_audio") in kinds
    assert ("stereo", "channels") in kinds
    assert "expected mono" in str(report)
    # a zero-frame file does not also get a duration complaint
    assert ("zero", "duration") not in kinds


def test_field_checks_collect_every_problem(audio):
    data = {
        "no_fields": {"wav": audio["good"]},
        "two_markers": _entry(
            audio["good"], instruction="<audio> and <audio> again"
        ),
        "no_marker": _entry(audio["good"], instruction="Transcribe."),
        "empty_target": _entry(audio["good"], target="   "),
        "bad_types": _entry(audio["good"], duration="long", target=3),
        "not_a_dict": ["wav", "a.wav"],
        "ok": _entry(audio["good"]),
    }
    report = validate_manifest(data)
    found = {(p.example_id, p.field, p.kind) for p in report.problems}
    for field in ("duration", "task", "instruction", "target"):
        assert ("no_fields", field, "missing_field") in found
    assert ("two_markers", "instruction", "audio_marker") in found
    assert ("no_marker", "instruction", "audio_marker") in found
    assert ("empty_target", "target", "empty_target") in found
    assert ("bad_types", "duration", "bad_type") in found
    assert ("bad_types", "target", "bad_type") in found
    assert ("not_a_dict", "<entry>", "bad_entry") in found
    assert "ok" not in report.bad_ids
    assert "holds 2 <audio> markers, expected exactly 1" in str(report)


def test_duration_checks(audio):
    data = {
        "close": _entry(audio["good"], duration=1.05),
        "far": _entry(audio["good"], duration=1.5),
    }
    report = validate_manifest(data)
    assert report.bad_ids == {"far"}
    (problem,) = report.problems
    assert problem.field == "duration" and problem.kind == "duration"
    assert "is 1.50 s but the audio lasts 1.00 s (wav)" in problem.message


def test_pairs_check_wav2_and_accept_pair_durations(audio):
    base = {"task": "speaker_verification"}
    data = {
        # duration of wav only, of both clips, of both clips + 0.3 s gap
        "first": _entry(audio["good"], wav2=audio["good2"], **base),
        "both": _entry(
            audio["good"], duration=1.5, wav2=audio["good2"], **base
        ),
        "gap": _entry(audio["good"], duration=1.8, wav2=audio["good2"], **base),
        "wrong": _entry(
            audio["good"], duration=3.0, wav2=audio["good2"], **base
        ),
        "bad_wav2": _entry(audio["good"], wav2=audio["rate8k"], **base),
        "missing_wav2": _entry(audio["good"], wav2=audio["missing"], **base),
    }
    report = validate_manifest(data)
    assert report.bad_ids == {"wrong", "bad_wav2", "missing_wav2"}
    found = {(p.example_id, p.field, p.kind) for p in report.problems}
    assert ("bad_wav2", "wav2", "sample_rate") in found
    assert ("missing_wav2", "wav2", "missing_file") in found


def test_known_tasks_and_rate_can_be_relaxed(audio):
    data = {"x": _entry(audio["rate8k"], task="new_task")}
    assert not validate_manifest(data).ok
    report = validate_manifest(data, known_tasks=None, sample_rate=None)
    assert report.ok, str(report)
    report = validate_manifest(data, known_tasks=["new_task"], sample_rate=8000)
    assert report.ok, str(report)


def test_check_audio_false_skips_files(audio):
    data = {"x": _entry(audio["missing"])}
    assert validate_manifest(data, check_audio=False).ok


def test_dict_input_with_replacements(audio):
    folder, name = os.path.split(audio["good"])
    data = {"x": _entry("{root}/" + name)}
    report = validate_manifest(data, replacements={"root": folder})
    assert report.ok, str(report)
    assert data["x"]["wav"].startswith("{root}")  # input left untouched


def test_empty_manifest_is_a_problem():
    report = validate_manifest({})
    assert not report.ok
    assert "holds no entries" in str(report)


def test_report_text_groups_by_id_and_truncates():
    problems = [
        Problem("a", "wav", "gone", "missing_file"),
        Problem("b", "task", "unknown", "unknown_task"),
        Problem("a", "target", "is empty", "empty_target"),
    ]
    report = ValidationReport(problems, n_entries=5, source="m.json")
    lines = str(report).splitlines()
    assert lines[0].startswith("Manifest m.json: 2 of 5 entries")
    assert lines[1:] == [
        "  a: wav: gone",
        "  a: target: is empty",
        "  b: task: unknown",
    ]
    short = report.format(max_lines=1).splitlines()
    assert short[-1].startswith("  ... and 2 more problems")
    with pytest.raises(ManifestError, match="a: target: is empty"):
        report.raise_if_bad()


def test_check_manifests_several_files(tmp_path, audio, caplog):
    train = _dump(
        tmp_path,
        "train.json",
        {"t1": _entry(audio["good"]), "t2": _entry(audio["missing"])},
    )
    valid = _dump(
        tmp_path,
        "valid.json",
        {"v1": _entry(audio["rate8k"]), "v2": _entry(audio["good"])},
    )
    with pytest.raises(ManifestError) as info:
        check_manifests([train, valid], on_bad_example="error")
    message = str(info.value)
    assert train in message and valid in message
    assert "t2: wav" in message and "v1: wav" in message
    assert "t1:" not in message and "v2:" not in message

    with caplog.at_level(logging.WARNING):
        result = check_manifests([train, valid], on_bad_example="skip")
    good_train, good_valid = result[train], result[valid]
    assert list(good_train) == ["t1"] and list(good_valid) == ["v2"]
    assert "t2: wav" in caplog.text and "v1: wav" in caplog.text


def test_check_manifests_all_bad_or_unloadable(tmp_path, audio):
    bad = _dump(tmp_path, "bad.json", {"b": _entry(audio["missing"])})
    with pytest.raises(ManifestError, match="no valid entry left"):
        check_manifests([bad], on_bad_example="skip")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(ManifestError, match="invalid JSON"):
        check_manifests([str(broken)], on_bad_example="skip")
    with pytest.raises(ValueError, match="on_bad_example"):
        check_manifests([bad], on_bad_example="ignore")


def test_check_manifests_without_problems(tmp_path, audio):
    path = _dump(tmp_path, "m.json", {"a": _entry(audio["good"])})
    result = check_manifests(path)
    assert list(result) == [path]
    assert list(result[path]) == ["a"]


# ------------------------------------------------------------------- audio


def test_read_wav_values_and_errors(audio, tmp_path):
    x = read_wav(audio["good"])
    assert x.dtype == torch.float32 and x.shape == (16000,)
    assert torch.allclose(x, torch.full((16000,), 0.1), atol=1e-4)
    with pytest.raises(AudioError, match="sample rate is 8000 Hz"):
        read_wav(audio["rate8k"])
    with pytest.raises(AudioError, match="expected mono"):
        read_wav(audio["stereo"])
    assert read_wav(audio["stereo"], downmix=True).shape == (16000,)
    with pytest.raises(AudioError, match="cannot read audio") as info:
        read_wav(audio["garbage"])
    assert audio["garbage"] in str(info.value)
    with pytest.raises(AudioError, match="empty"):
        read_wav(audio["zero"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_wav(audio["missing"])
    with pytest.raises(FileNotFoundError, match="is not a file"):
        read_wav(tmp_path)


def test_read_example_audio_pair_has_silent_gap(tmp_path):
    a = tmp_path / "a.wav"
    b = tmp_path / "b.wav"
    first = np.linspace(-0.5, 0.5, 160).astype("float32")
    second = np.linspace(0.25, -0.25, 80).astype("float32")
    sf.write(str(a), first, 16000, subtype="FLOAT")
    sf.write(str(b), second, 16000, subtype="FLOAT")
    x = read_example_audio({"wav": str(a), "wav2": str(b)}, 16000, 0.01)
    expected = np.concatenate([first, np.zeros(160, "float32"), second])
    assert x.shape == (400,)
    np.testing.assert_array_equal(x.numpy(), expected)
    # a single entry, a single path, a list of paths
    assert read_example_audio({"wav": str(a)}).shape == (160,)
    assert read_example_audio(str(b)).shape == (80,)
    y = read_example_audio([str(a), str(b)], gap_seconds=0.0)
    np.testing.assert_array_equal(y.numpy(), np.concatenate([first, second]))
    with pytest.raises(KeyError, match="'wav'"):
        read_example_audio({"wav2": str(a)})


def test_load_audio_or_none_logs_and_returns_none(audio, caplog):
    with caplog.at_level(logging.WARNING):
        assert (
            load_audio_or_none({"wav": audio["good"], "wav2": audio["rate8k"]})
            is None
        )
    assert audio["rate8k"] in caplog.text
    assert load_audio_or_none(audio["good"]).shape == (16000,)
