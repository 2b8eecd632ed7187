"""Tests of manifest loading and validation (audio reading: test_audio.py).

Authors
 * audiollm-lobes developers, 2026
"""

import json
import logging
import os

import numpy as np
import pytest
import soundfile as sf

from audiollm_lobes.data import manifest as manifest_module
from audiollm_lobes.data.manifest import (
    DEFAULT_MAX_AUDIO_SECONDS,
    AudioCheckCache,
    ManifestError,
    Problem,
    ValidationReport,
    check_manifests,
    filter_manifest,
    load_manifest,
    validate_manifest,
)


def _write(path, seconds=1.0, rate=16000, channels=1, value=0.1, **kwargs):
    frames = int(round(seconds * rate))
    data = np.full((frames, channels), value, dtype="float32")
    sf.write(str(path), data, rate, **kwargs)
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
        "silent": _write(tmp_path / "silent.wav", value=0.0),
        "long": _write(tmp_path / "long.wav", seconds=3.0, rate=8000),
        "missing": str(tmp_path / "missing.wav"),
    }
    nan = np.full((16000, 1), 0.1, dtype="float32")
    nan[1234] = np.nan
    files["nan"] = str(tmp_path / "nan.wav")
    sf.write(files["nan"], nan, 16000, subtype="FLOAT")
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
        "utt_nan": _entry(audio["nan"]),
        "utt_task": _entry(audio["good"], task="juggling"),
        "good2": _entry(audio["good2"], duration=0.5),
        "good_8k_stereo": _entry(audio["stereo"]),
        "good_8k": _entry(audio["rate8k"]),
    }
    path = _dump(tmp_path, "train.json", data)
    report = validate_manifest(path)
    assert not report.ok
    assert report.bad_ids == {
        "utt_missing",
        "utt_unreadable",
        "utt_nan",
        "utt_task",
    }
    text = str(report)
    for eid in report.bad_ids:
        assert f"  {eid}: " in text
    assert "good" not in text.replace(audio["good"], "")
    assert path in text
    assert (
        "utt_nan: wav: holds 1 non-finite (NaN/inf) samples, expected "
        f"finite audio ({audio['nan']})" in text
    )
    assert f"audio file does not exist ({audio['missing']})" in text
    assert "unknown task 'juggling'" in text
    kinds = {p.example_id: p.kind for p in report.problems}
    assert kinds == {
        "utt_missing": "missing_file",
        "utt_unreadable": "unreadable_audio",
        "utt_nan": "nonfinite_audio",
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
    assert list(good) == ["good1", "good2", "good_8k_stereo", "good_8k"]
    assert filter_manifest(data, report) == good


def test_empty_and_silent_audio(audio):
    data = {
        "zero": _entry(audio["zero"], duration=0.5),
        "empty_file": _entry(audio["empty"]),
        "silent": _entry(audio["silent"]),
        "stereo": _entry(audio["stereo"]),
    }
    report = validate_manifest(data)
    kinds = {(p.example_id, p.kind) for p in report.problems}
    assert kinds == {
        ("zero", "empty_audio"),
        ("empty_file", "unreadable_audio"),
        ("silent", "silent_audio"),
    }
    assert "is silent (RMS 0.0e+00 < 1e-05), expected a signal" in str(report)
    # header-only checks do not decode: silence and NaN go unnoticed
    data["nan"] = _entry(audio["nan"])
    header = validate_manifest(data, check_audio="header")
    assert header.bad_ids == {"zero", "empty_file"}


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
        "bad_wav2": _entry(audio["good"], wav2=audio["nan"], **base),
        "missing_wav2": _entry(audio["good"], wav2=audio["missing"], **base),
    }
    report = validate_manifest(data)
    assert report.bad_ids == {"wrong", "bad_wav2", "missing_wav2"}
    found = {(p.example_id, p.field, p.kind) for p in report.problems}
    assert ("bad_wav2", "wav2", "nonfinite_audio") in found
    assert ("missing_wav2", "wav2", "missing_file") in found


def test_known_tasks_can_be_extended(audio):
    data = {"x": _entry(audio["rate8k"], task="new_task")}
    assert not validate_manifest(data).ok
    assert validate_manifest(data, known_tasks=None).ok
    report = validate_manifest(data, known_tasks=["asr", "new_task"])
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
        {"v1": _entry(audio["nan"]), "v2": _entry(audio["good"])},
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


# ------------------------------------------ decoded checks, segments, length


def test_bad_input_report_lists_every_id(tmp_path, audio):
    """One ManifestError names every bad example of every manifest: NaN,
    silent, too long, undecodable, missing, bad segments, unknown task;
    good clips at other rates and channel counts pass."""
    train = {
        "ok_16k": _entry(audio["good"]),
        "ok_8k_stereo": _entry(audio["stereo"]),
        "ok_segment": _entry(audio["long"], duration=1.5, start=1.0, stop=2.5),
        "nan": _entry(audio["nan"]),
        "silent": _entry(audio["silent"]),
        "too_long": _entry(audio["long"], duration=3.0),
        "undecodable": _entry(audio["garbage"]),
    }
    valid = {
        "ok_valid": _entry(audio["rate8k"]),
        "missing": _entry(audio["missing"]),
        "segment_past_end": _entry(audio["good"], start=0.5, stop=1.5),
        "segment_reversed": _entry(audio["good"], start=0.8, stop=0.2),
        "segment_text": _entry(audio["good"], start="0.5"),
        "unknown_task": _entry(audio["good"], task="juggling"),
    }
    paths = [_dump(tmp_path, "train.json", train)]
    paths.append(_dump(tmp_path, "valid.json", valid))
    with pytest.raises(ManifestError) as info:
        check_manifests(paths, max_audio_seconds=2.5)
    message = str(info.value)
    bad = [k for k in list(train) + list(valid) if not k.startswith("ok_")]
    for eid in bad:
        assert f"  {eid}: " in message, eid
    assert "ok_" not in message
    for expected in (
        "nan: wav: holds 1 non-finite (NaN/inf) samples",
        "silent: wav: is silent",
        "too_long: wav: the audio lasts 3.00 s, longer than "
        "max_audio_seconds=2.5",
        "undecodable: wav: cannot read audio",
        "missing: wav: audio file does not exist",
        "segment_past_end: wav: segment 0.500-1.500 s ends past the end "
        "of the audio (1.000 s)",
        "segment_reversed: wav: segment 0.800-0.200 s is empty",
        "segment_text: start: is '0.5', expected a number of seconds",
        "unknown_task: task: unknown task 'juggling'",
    ):
        assert expected in message, expected
    # the same problems, as kinds, per id
    report = validate_manifest(paths[1])
    kinds = {p.example_id: p.kind for p in report.problems}
    assert kinds == {
        "missing": "missing_file",
        "segment_past_end": "bad_segment",
        "segment_reversed": "bad_segment",
        "segment_text": "bad_segment",
        "unknown_task": "unknown_task",
    }


def test_segment_durations(audio):
    data = {
        "seg": _entry(audio["long"], duration=1.0, start=0.5, stop=1.5),
        "from": _entry(audio["long"], duration=1.0, start=2.0),
        "to": _entry(audio["long"], duration=0.25, stop=0.25),
        "whole_duration": _entry(audio["long"], duration=3.0, start=1.0),
    }
    report = validate_manifest(data)
    assert report.bad_ids == {"whole_duration"}
    (problem,) = report.problems
    assert "is 3.00 s but the audio lasts 2.00 s (segment)" in problem.message


def test_long_audio_limit(audio):
    data = {"x": _entry(audio["long"], duration=3.0)}
    assert DEFAULT_MAX_AUDIO_SECONDS == 120.0
    assert validate_manifest(data).ok
    assert validate_manifest(data, max_audio_seconds=None).ok
    (problem,) = validate_manifest(data, max_audio_seconds=2.9).problems
    assert problem.kind == "too_long"
    # a pair is as long as what the encoder sees: wav + gap + wav2
    pair = {
        "p": _entry(
            audio["good"],
            wav2=audio["good"],
            task="speaker_verification",
        )
    }
    assert validate_manifest(pair, max_audio_seconds=2.3).ok
    (problem,) = validate_manifest(pair, max_audio_seconds=2.2).problems
    assert "the pair (wav + 0.3 s gap + wav2) lasts 2.30 s" in problem.message
    with pytest.raises(ValueError, match="max_audio_seconds"):
        validate_manifest(data, max_audio_seconds=0)
    with pytest.raises(ValueError, match="check_audio"):
        validate_manifest(data, check_audio="full")


def test_audio_decoded_once_per_clip(tmp_path, audio, monkeypatch):
    calls = []
    real = manifest_module.measure_audio

    def counting(path, start=None, stop=None, decode=True):
        calls.append((path, start, stop))
        return real(path, start, stop, decode=decode)

    monkeypatch.setattr(manifest_module, "measure_audio", counting)
    base = {"task": "speaker_verification"}
    first = {
        "a": _entry(audio["good"], wav2=audio["good2"], **base),
        "b": _entry(audio["good2"], duration=0.5, wav2=audio["good"], **base),
        "s": _entry(audio["long"], duration=1.0, start=0, stop=1),
    }
    second = {"c": _entry(audio["good"]), "d": dict(first["s"])}
    paths = [
        _dump(tmp_path, "1.json", first),
        _dump(tmp_path, "2.json", second),
    ]
    check_manifests(paths)
    assert sorted(calls, key=str) == sorted(
        [
            (audio["good"], None, None),
            (audio["good2"], None, None),
            (audio["long"], 0, 1),
        ],
        key=str,
    )
    cache = AudioCheckCache()
    assert cache.get(audio["good"]) is cache.get(audio["good"])


def test_progress_bar_on_request_and_for_large_manifests(
    audio, capsys, monkeypatch
):
    data = {f"u{i}": _entry(audio["good"]) for i in range(5)}
    validate_manifest(data, source="train.json")
    assert "checking" not in capsys.readouterr().err
    validate_manifest(data, source="train.json", progress=True)
    assert "checking train.json" in capsys.readouterr().err
    monkeypatch.setattr(manifest_module, "PROGRESS_MIN_ENTRIES", 5)
    validate_manifest(data)
    assert "checking manifest" in capsys.readouterr().err
    validate_manifest(data, check_audio=False)
    assert "checking" not in capsys.readouterr().err


def test_audio_checks_are_kept_between_runs(tmp_path, monkeypatch):
    """A second validation decodes only new or changed files."""
    for name in ("a", "b"):
        sf.write(tmp_path / f"{name}.wav", np.sin(np.arange(8000) / 7.0), 16000)
    entries = {
        name: {
            "wav": str(tmp_path / f"{name}.wav"),
            "duration": 0.5,
            "task": "asr",
            "instruction": "<audio> Transcribe.",
            "target": "hi",
        }
        for name in ("a", "b")
    }
    path = tmp_path / "asr.json"
    path.write_text(json.dumps(entries))
    store = tmp_path / "checks.json"
    decoded = []
    real = manifest_module.measure_audio

    def counting(clip, *args, **kwargs):
        decoded.append(os.path.basename(clip))
        return real(clip, *args, **kwargs)

    monkeypatch.setattr(manifest_module, "measure_audio", counting)
    check_manifests([path], audio_check_store=store)
    assert sorted(decoded) == ["a.wav", "b.wav"] and store.is_file()
    decoded.clear()
    check_manifests([path], audio_check_store=store)
    assert decoded == []  # both measures came from the store
    # a changed file is measured again, and its problem is found
    sf.write(tmp_path / "b.wav", np.zeros(8000), 16000)
    os.utime(tmp_path / "b.wav", ns=(1, 1))
    with pytest.raises(ManifestError, match="silent"):
        check_manifests([path], audio_check_store=store)
    assert decoded == ["b.wav"]
