"""Tests of the toy world's synthetic sound events, scenes and captions.

Authors
 * audiollm-lobes developers, 2026
"""

import numpy as np
import pytest

from audiollm_lobes.toyworld import sounds

# ---------------------------------------------------------------------------
# Sounds
# ---------------------------------------------------------------------------


def _dominant_freq(x, sr=16000):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)]


def test_sound_events_match_their_definition():
    rng = np.random.default_rng(0)
    for _ in range(5):
        ev = {n: sounds.synth_event(n, rng) for n in sounds.EVENT_CLASSES}
        for x in ev.values():
            assert x.dtype == np.float32 and 0.14 < np.abs(x).max() <= 0.6
        assert 250 <= _dominant_freq(ev["low beep"]) <= 450
        assert 1600 <= _dominant_freq(ev["high beep"]) <= 2600
        assert 800 - 60 <= _dominant_freq(ev["whistle"]) <= 1300 + 60
        assert _dominant_freq(ev["hum"]) < 720
        for name, rising in (("rising chirp", True), ("falling chirp", False)):
            x = ev[name]
            third = len(x) // 3
            f_start = _dominant_freq(x[:third])
            f_end = _dominant_freq(x[-third:])
            assert (
                (f_end > 1.5 * f_start) if rising else (f_start > 1.5 * f_end)
            )

        # noise: flat spectrum (geometric / arithmetic mean) vs a tone
        def flatness(x):
            p = np.abs(np.fft.rfft(x))[10:2000] ** 2 + 1e-12
            return np.exp(np.mean(np.log(p))) / np.mean(p)

        assert flatness(ev["noise burst"]) > 100 * flatness(ev["low beep"])
        clicks = ev["click train"]
        n_peaks = np.sum(
            np.diff((np.abs(clicks) > 0.5 * np.abs(clicks).max()).astype(int))
            == 1
        )
        assert n_peaks >= 2


def test_scene_and_caption():
    rng = np.random.default_rng(3)
    events = sounds.sample_scene_events(rng)
    wav = sounds.make_scene(events, rng)
    assert wav.dtype == np.float32 and np.abs(wav).max() <= 1
    assert sounds.caption(["hum"]) == "a hum"
    assert (
        sounds.caption(["low beep", "whistle", "click train"])
        == "a low beep then a whistle then a click train"
    )
    a = sounds.make_event_clip("hum", np.random.default_rng(5))
    b = sounds.make_event_clip("hum", np.random.default_rng(5))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="unknown sound event"):
        sounds.synth_event("bark", rng)
