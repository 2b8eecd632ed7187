"""Tests of the toy world's speech synthesis: resampling, trimming, espeak-ng
arguments, styles and speakers.

Authors
 * audiollm-lobes developers, 2026
"""

import numpy as np
import pytest

from audiollm_lobes.toyworld import speech

# ---------------------------------------------------------------------------
# Speech
# ---------------------------------------------------------------------------


def test_resample_matches_analytic_sine():
    t_in = np.arange(22050) / 22050
    x = np.sin(2 * np.pi * 1000 * t_in).astype(np.float32)
    y = speech.resample(x, 22050, 16000)
    ref = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    assert y.shape == (16000,)
    mid = slice(1000, 15000)  # edges are affected by the filter
    assert np.abs(y[mid] - ref[mid]).max() < 1e-2


def test_trim_silence_hand_example():
    x = np.zeros(32000, dtype=np.float32)
    x[10000:12000] = 0.3
    y = speech.trim_silence(x, 16000, margin=0.05)
    assert len(y) == 2000 + 2 * 800
    assert np.array_equal(speech.trim_silence(np.zeros(5)), np.zeros(5))


def test_espeak_args_and_missing_espeak(monkeypatch):
    args = speech.espeak_args(
        "a < b", speech.SPEAKERS[2], speech.STYLES["sad"], pitch_jitter=-50
    )
    assert args[args.index("-p") + 1] == "0"  # clamped
    assert "a &lt; b" in args[-1]
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        speech.check_espeak()


def test_styles_are_realised_in_the_audio():
    text = "the dog sees two green balls"
    spk = speech.SPEAKERS[0]
    wav = {n: speech.synthesize(text, spk, s) for n, s in speech.STYLES.items()}
    dur = {n: len(w) for n, w in wav.items()}
    rms = {n: float(np.sqrt(np.mean(w**2))) for n, w in wav.items()}
    assert dur["sad"] > 1.2 * dur["neutral"] > 1.2 * dur["happy"]
    assert rms["angry"] > rms["neutral"] > rms["sad"]


def _mean_log_spectrum(wav):
    frames = np.lib.stride_tricks.sliding_window_view(wav, 512)[::256]
    spec = np.abs(np.fft.rfft(frames * np.hanning(512), axis=1))
    return np.log(spec.mean(axis=0) + 1e-6)


def test_speakers_are_distinct_voices():
    text = "one two three four"
    specs = [
        _mean_log_spectrum(speech.synthesize(text, s, speech.STYLES["neutral"]))
        for s in speech.SPEAKERS
    ]
    for i in range(len(specs)):
        for j in range(i):
            # identical voices (a variant silently falling back) give 0
            assert np.abs(specs[i] - specs[j]).mean() > 0.05, (i, j)
