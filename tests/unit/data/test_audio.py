"""Tests of audio reading: downmix, resampling, formats, segments, checks.

Authors
 * audiollm-lobes developers, 2026
"""

import logging
import math

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from audiollm_lobes.data.audio import (
    SILENCE_RMS,
    AudioError,
    example_audio_key,
    load_audio_or_none,
    measure_audio,
    read_example_audio,
    read_wav,
    segment_frames,
)

RATES = (8000, 16000, 22050, 44100, 48000)


def _noise(seconds, rate, channels, seed=0):
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * rate))
    return rng.uniform(-0.5, 0.5, (frames, channels)).astype("float32")


def _write(path, data, rate, **kwargs):
    sf.write(str(path), data, rate, **kwargs)
    return str(path)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("channels", [1, 2])
def test_downmix_then_torchaudio_resampler(tmp_path, rate, channels):
    data = _noise(0.5, rate, channels, seed=rate + channels)
    path = _write(tmp_path / "x.wav", data, rate, subtype="FLOAT")
    # downmix: a mean over channels (float64 reference)
    native = read_wav(path, sample_rate=None)
    np.testing.assert_allclose(
        native.numpy(), data.astype(np.float64).mean(axis=1), atol=1e-7
    )
    # resampling: exactly the library's own resampler on the mono mix
    ours = read_wav(path, sample_rate=16000)
    theirs = torchaudio.functional.resample(
        torch.from_numpy(data.T.copy()).mean(dim=0), rate, 16000
    )
    assert ours.dtype == torch.float32
    assert ours.shape == (math.ceil(len(data) * 16000 / rate),)
    assert torch.equal(ours, theirs)


def test_resampled_tone_is_the_tone_at_the_new_rate(tmp_path):
    """Independent of torchaudio: a 1 kHz tone read from 44.1 kHz stereo
    equals the same tone computed at 16 kHz (away from the edges)."""
    t = np.arange(44100) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    path = _write(tmp_path / "tone.wav", np.stack([tone, tone], 1), 44100)
    x = read_wav(path).numpy()
    expected = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    assert x.shape == (16000,)
    np.testing.assert_allclose(x[200:-200], expected[200:-200], atol=2e-3)


@pytest.mark.parametrize(
    "ext, fmt, subtype, rate",
    [
        ("flac", "FLAC", "PCM_16", 44100),
        ("ogg", "OGG", "VORBIS", 22050),
        ("mp3", "MP3", "MPEG_LAYER_III", 48000),
    ],
)
def test_compressed_formats(tmp_path, ext, fmt, subtype, rate):
    t = np.arange(rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32")
    stereo = np.stack([tone, tone], 1)
    path = _write(
        tmp_path / f"x.{ext}", stereo, rate, format=fmt, subtype=subtype
    )
    x = read_wav(path)
    # 1 s of audio (mp3 adds less than one frame of codec padding)
    assert abs(len(x) - 16000) <= 16000 * 0.08
    rms = float(x[2000:-2000].pow(2).mean().sqrt())
    assert abs(rms - 0.3 / math.sqrt(2)) < 0.02
    measure = measure_audio(path)
    assert measure.sample_rate == rate and measure.channels == 2
    assert measure.nonfinite == 0 and not measure.silent
    # a segment is exactly that part of the whole file (libsndfile's MP3
    # decoder is off for ~3700 samples after a seek or a partial read)
    full = read_wav(path, sample_rate=None)
    part = read_wav(path, sample_rate=None, start=0.5, stop=0.75)
    first = int(round(0.5 * rate))
    assert torch.equal(part, full[first : first + len(part)])
    assert len(part) == int(round(0.75 * rate)) - first


def test_segments(tmp_path):
    data = _noise(3.0, 44100, 2, seed=3)
    path = _write(tmp_path / "talk.wav", data, 44100, subtype="FLOAT")
    mono = data.mean(axis=1)
    seg = read_wav(path, sample_rate=None, start=0.5, stop=1.25)
    np.testing.assert_allclose(seg.numpy(), mono[22050:55125], atol=1e-7)
    # resampled: the resampler applied to the segment cut at 44.1 kHz
    seg16 = read_wav(path, start=0.5, stop=1.25)
    theirs = torchaudio.functional.resample(
        torch.from_numpy(data[22050:55125].T.copy()).mean(0), 44100, 16000
    )
    assert torch.equal(seg16, theirs) and len(seg16) == 12000
    # open-ended segments; a stop 5 ms past the end is the end
    assert len(read_wav(path, None, start=2.0)) == 44100
    assert len(read_wav(path, None, stop=1.0)) == 44100
    assert len(read_wav(path, None, start=2.0, stop=3.005)) == 44100
    for start, stop, match in [
        (-0.5, 1.0, "start is -0.5 s, expected >= 0"),
        (1.0, 1.0, "is empty"),
        (2.0, 3.5, "ends past the end of the audio"),
        ("1", 2.0, "expected a finite number"),
    ]:
        with pytest.raises(AudioError, match=match) as info:
            read_wav(path, start=start, stop=stop)
        assert info.value.kind == "bad_segment"
        assert path in str(info.value)
    assert segment_frames(100, 10, 0.04, 0.06) == (0, 1)
    with pytest.raises(AudioError, match="holds no sample"):
        segment_frames(100, 10, 0.01, 0.02)


def test_errors_name_the_file(tmp_path):
    nan = _noise(0.2, 16000, 1)
    nan[5, 0] = np.nan
    nan[7, 0] = np.inf
    path = _write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="holds 2 non-finite") as info:
        read_wav(path)
    assert info.value.kind == "nonfinite_audio" and path in str(info.value)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x01not really a wave file" * 10)
    with pytest.raises(AudioError, match="cannot read audio") as info:
        read_wav(garbage)
    assert str(garbage) in str(info.value)
    assert info.value.kind == "unreadable_audio"
    zero = _write(tmp_path / "zero.wav", np.zeros((0, 1), "float32"), 16000)
    with pytest.raises(AudioError, match="empty") as info:
        read_wav(zero)
    assert info.value.kind == "empty_audio"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_wav(tmp_path / "missing.wav")
    with pytest.raises(FileNotFoundError, match="is not a file"):
        read_wav(tmp_path)


def test_measure_audio_against_numpy(tmp_path):
    data = _noise(2.0, 22050, 2, seed=5)
    data[100, 1] = np.nan
    path = _write(tmp_path / "x.wav", data, 22050, subtype="FLOAT")
    m = measure_audio(path, start=0.0, stop=1.0)
    mono = data[:22050].astype(np.float64).mean(axis=1)
    mono = mono[np.isfinite(mono)]
    assert m.nonfinite == 1 and m.seconds == 1.0 and m.channels == 2
    assert m.rms == pytest.approx(np.sqrt(np.mean(mono**2)), rel=1e-9)
    assert not m.silent
    # a second segment without the NaN; blocks smaller than the clip
    import audiollm_lobes.data.audio as audio_module

    old = audio_module.BLOCK_FRAMES
    audio_module.BLOCK_FRAMES = 1000
    try:
        m2 = measure_audio(path, start=1.0)
    finally:
        audio_module.BLOCK_FRAMES = old
    mono2 = data[22050:].astype(np.float64).mean(axis=1)
    assert m2.nonfinite == 0
    assert m2.rms == pytest.approx(np.sqrt(np.mean(mono2**2)), rel=1e-9)
    # antiphase stereo is silent once downmixed, as the model hears it
    anti = np.stack([data[:, 0], -data[:, 0]], 1)
    anti = np.nan_to_num(anti)
    anti_path = _write(tmp_path / "anti.wav", anti, 22050, subtype="FLOAT")
    m3 = measure_audio(anti_path)
    assert m3.silent and m3.rms < SILENCE_RMS
    header = measure_audio(path, decode=False)
    assert header.rms is None and not header.silent and header.seconds == 2.0


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
    # a segment of wav, then the gap and wav2
    y = read_example_audio(
        {"wav": str(a), "start": 0.001, "stop": 0.005, "wav2": str(b)},
        16000,
        0.0,
    )
    np.testing.assert_array_equal(
        y.numpy(), np.concatenate([first[16:80], second])
    )
    # a single entry, a single path, a list of paths
    assert read_example_audio({"wav": str(a)}).shape == (160,)
    assert read_example_audio(str(b)).shape == (80,)
    z = read_example_audio([str(a), str(b)], gap_seconds=0.0)
    np.testing.assert_array_equal(z.numpy(), np.concatenate([first, second]))
    with pytest.raises(KeyError, match="'wav'"):
        read_example_audio({"wav2": str(a)})


def test_load_audio_or_none_logs_and_returns_none(tmp_path, caplog):
    good = _write(tmp_path / "good.wav", _noise(1.0, 8000, 2), 8000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    with caplog.at_level(logging.WARNING):
        assert load_audio_or_none({"wav": good, "wav2": str(bad)}) is None
    assert str(bad) in caplog.text
    assert load_audio_or_none(good).shape == (16000,)


def test_example_audio_key_tells_segments_apart():
    whole = example_audio_key({"wav": "t.wav", "wav2": ""})
    first = example_audio_key({"wav": "t.wav", "start": 0, "stop": 2.5})
    second = example_audio_key({"wav": "t.wav", "start": 2.5, "stop": 5})
    assert len({whole, first, second}) == 3
    assert whole == "t.wav|"
    assert example_audio_key({"wav": "a", "wav2": "b"}) == "a|b"
