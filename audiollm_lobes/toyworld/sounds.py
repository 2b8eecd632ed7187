"""Synthetic non-speech sound events and scenes for the toy world.

Eight event classes, each drawn with random jitter (duration, level,
exact frequency, light background noise) from a ``numpy`` generator:

=============== ==========================================================
class           signal
=============== ==========================================================
low beep        sine 250-450 Hz, 0.2-0.5 s
high beep       sine 1.6-2.6 kHz, 0.15-0.4 s
noise burst     band-limited white noise, decaying, 0.2-0.6 s
rising chirp    log sweep up (300-600 Hz to 1.8-3 kHz), 0.3-0.7 s
falling chirp   log sweep down, 0.3-0.7 s
click train     short clicks at 8-20 per second, 0.3-0.8 s
hum             90-140 Hz with harmonics, 0.5-1.0 s
whistle         sine 800-1300 Hz with 5-8 Hz vibrato, 0.4-0.9 s
=============== ==========================================================

A *scene* is 2 or 3 events of different classes in sequence separated by
short silences, captioned by a fixed grammar:
``"a high beep then a noise burst"``.

Authors
 * audiollm-lobes developers, 2026
"""

import numpy as np

SAMPLE_RATE = 16000

EVENT_CLASSES = (
    "low beep",
    "high beep",
    "noise burst",
    "rising chirp",
    "falling chirp",
    "click train",
    "hum",
    "whistle",
)


def _fade(sig, sample_rate, seconds=0.01):
    n = min(len(sig) // 2, int(seconds * sample_rate))
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n)
        sig[:n] *= ramp
        sig[-n:] *= ramp[::-1]
    return sig


def _sweep(f0, f1, n, sample_rate):
    """Phase of an exponential sweep from f0 to f1 over n samples."""
    t = np.arange(n) / sample_rate
    dur = n / sample_rate
    k = np.log(f1 / f0) / dur
    return 2 * np.pi * f0 * (np.exp(k * t) - 1) / k


def _lowpass_noise(rng, n, cutoff, sample_rate):
    noise = rng.standard_normal(n)
    spec = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    spec[freqs > cutoff] = 0
    out = np.fft.irfft(spec, n)
    return out / (np.abs(out).max() + 1e-9)


def synth_event(name, rng, sample_rate=SAMPLE_RATE):
    """Draws one sound event (no padding, no background noise).

    Arguments
    ---------
    name : str
        One of ``EVENT_CLASSES``.
    rng : numpy.random.Generator
        Random generator for the jitter.
    sample_rate : int
        Sample rate.

    Returns
    -------
    numpy.ndarray
        float32 waveform with peak level in [0.15, 0.6], shape ``(time,)``.

    Example
    -------
    >>> x = synth_event("hum", np.random.default_rng(0))
    >>> 0.5 <= len(x) / SAMPLE_RATE <= 1.0
    True
    """
    if name not in EVENT_CLASSES:
        raise ValueError(
            f"unknown sound event {name!r}; expected one of {EVENT_CLASSES}"
        )
    sr = sample_rate

    def length(lo, hi):
        return int(rng.uniform(lo, hi) * sr)

    if name == "low beep":
        n = length(0.2, 0.5)
        sig = np.sin(2 * np.pi * rng.uniform(250, 450) * np.arange(n) / sr)
    elif name == "high beep":
        n = length(0.15, 0.4)
        sig = np.sin(2 * np.pi * rng.uniform(1600, 2600) * np.arange(n) / sr)
    elif name == "noise burst":
        n = length(0.2, 0.6)
        cutoff = rng.uniform(3000, 7000)
        env = np.exp(-np.arange(n) / (n * rng.uniform(0.3, 0.6)))
        sig = _lowpass_noise(rng, n, cutoff, sr) * env
    elif name in ("rising chirp", "falling chirp"):
        n = length(0.3, 0.7)
        lo, hi = rng.uniform(300, 600), rng.uniform(1800, 3000)
        f0, f1 = (lo, hi) if name == "rising chirp" else (hi, lo)
        sig = np.sin(_sweep(f0, f1, n, sr))
    elif name == "click train":
        n = length(0.3, 0.8)
        rate = rng.uniform(8, 20)
        sig = np.zeros(n)
        click_len = int(0.003 * sr)
        click = rng.standard_normal(click_len) * np.exp(
            -np.arange(click_len) / (0.0008 * sr)
        )
        click /= np.abs(click).max()
        for start in np.arange(0, n - click_len, sr / rate).astype(int):
            sig[start : start + click_len] += click
    elif name == "hum":
        n = length(0.5, 1.0)
        f = rng.uniform(90, 140)
        t = np.arange(n) / sr
        sig = sum(
            np.sin(2 * np.pi * f * h * t + rng.uniform(0, 2 * np.pi)) / h
            for h in range(1, 6)
        )
    else:  # whistle
        n = length(0.4, 0.9)
        f = rng.uniform(800, 1300)
        vib_rate, vib_depth = rng.uniform(5, 8), rng.uniform(20, 50)
        t = np.arange(n) / sr
        inst = f + vib_depth * np.sin(2 * np.pi * vib_rate * t)
        sig = np.sin(2 * np.pi * np.cumsum(inst) / sr)
    sig = np.asarray(sig, dtype=np.float64)
    sig = _fade(sig / (np.abs(sig).max() + 1e-9), sr)
    return (sig * rng.uniform(0.15, 0.6)).astype(np.float32)


def _background(rng, n):
    level = 10 ** rng.uniform(-3.3, -2.5)  # about -66 to -50 dBFS rms
    return (rng.standard_normal(n) * level).astype(np.float32)


def _silence(rng, lo, hi, sample_rate):
    return np.zeros(int(rng.uniform(lo, hi) * sample_rate), dtype=np.float32)


def make_event_clip(name, rng, sample_rate=SAMPLE_RATE):
    """Makes a single-event clip: silence, the event, silence, plus light
    background noise.

    Arguments
    ---------
    name : str
        One of ``EVENT_CLASSES``.
    rng : numpy.random.Generator
        Random generator.
    sample_rate : int
        Sample rate.

    Returns
    -------
    numpy.ndarray
        float32 waveform, shape ``(time,)``.

    Example
    -------
    >>> x = make_event_clip("high beep", np.random.default_rng(0))
    >>> x.dtype, len(x) > 0.3 * SAMPLE_RATE
    (dtype('float32'), True)
    """
    parts = [
        _silence(rng, 0.05, 0.25, sample_rate),
        synth_event(name, rng, sample_rate),
        _silence(rng, 0.05, 0.25, sample_rate),
    ]
    clip = np.concatenate(parts)
    return np.clip(clip + _background(rng, len(clip)), -1, 1)


def caption(events):
    """Returns the caption of a sequence of events.

    Arguments
    ---------
    events : list of str
        Event classes in time order.

    Returns
    -------
    str
        ``"a <event> then a <event> ..."``.

    Example
    -------
    >>> caption(["high beep", "noise burst"])
    'a high beep then a noise burst'
    """
    if not events:
        raise ValueError("a caption needs at least one event")
    return " then ".join(f"a {e}" for e in events)


def sample_scene_events(rng, min_events=2, max_events=3):
    """Draws the event classes of a scene (no class twice in a row).

    Arguments
    ---------
    rng : numpy.random.Generator
        Random generator.
    min_events : int
        Fewest events.
    max_events : int
        Most events.

    Returns
    -------
    list of str
        Event classes in time order.

    Example
    -------
    >>> ev = sample_scene_events(np.random.default_rng(0))
    >>> 2 <= len(ev) <= 3 and all(a != b for a, b in zip(ev, ev[1:]))
    True
    """
    count = int(rng.integers(min_events, max_events + 1))
    events = []
    while len(events) < count:
        name = EVENT_CLASSES[int(rng.integers(len(EVENT_CLASSES)))]
        if not events or events[-1] != name:
            events.append(name)
    return events


def make_scene(events, rng, sample_rate=SAMPLE_RATE):
    """Makes a scene: the events in sequence with short silences between.

    Arguments
    ---------
    events : list of str
        Event classes in time order.
    rng : numpy.random.Generator
        Random generator.
    sample_rate : int
        Sample rate.

    Returns
    -------
    numpy.ndarray
        float32 waveform, shape ``(time,)``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = make_scene(["hum", "whistle"], rng)
    >>> len(x) > 0.9 * SAMPLE_RATE
    True
    """
    parts = [_silence(rng, 0.05, 0.2, sample_rate)]
    for i, name in enumerate(events):
        if i:
            parts.append(_silence(rng, 0.15, 0.4, sample_rate))
        parts.append(synth_event(name, rng, sample_rate))
    parts.append(_silence(rng, 0.05, 0.2, sample_rate))
    clip = np.concatenate(parts)
    return np.clip(clip + _background(rng, len(clip)), -1, 1)
