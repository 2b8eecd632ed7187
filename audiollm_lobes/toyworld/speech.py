"""Speech synthesis for the toy world with espeak-ng.

*Speakers* are espeak-ng voice + variant pairs with their own base pitch
and speed; *styles* stand for emotions and shift the pitch level, the
pitch range (SSML ``<prosody range=...>``), the speed, the loudness and
the gap between words. Speaker and style are set independently of each
other and of the words, so the words never reveal either.

Audio is synthesised at espeak-ng's rate (22.05 kHz), resampled to
16 kHz mono, trimmed of leading/trailing silence (keeping a short margin)
and written as PCM16 WAV with soundfile.

Authors
 * audiollm-lobes developers, 2026
"""

import io
import math
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from xml.sax.saxutils import escape

import numpy as np

SAMPLE_RATE = 16000
ESPEAK = "espeak-ng"


@dataclass(frozen=True)
class Speaker:
    """A toy speaker: an espeak-ng voice with its own pitch and speed.

    Arguments
    ---------
    name : str
        Speaker id, e.g. ``"spk01"``.
    voice : str
        espeak-ng voice and variant, e.g. ``"en-us+m1"``.
    pitch : int
        Base pitch, 0-99 (espeak-ng ``-p``).
    speed : int
        Base speed in words per minute (espeak-ng ``-s``).

    Example
    -------
    >>> SPEAKERS[0].name
    'spk01'
    """

    name: str
    voice: str
    pitch: int
    speed: int


@dataclass(frozen=True)
class Style:
    """A speaking style standing for an emotion.

    Arguments
    ---------
    name : str
        The emotion word used as target, e.g. ``"happy"``.
    pitch_offset : int
        Added to the speaker's base pitch.
    pitch_range : str
        SSML prosody range: ``x-low``, ``low``, ``medium``, ``high``,
        ``x-high``.
    speed_factor : float
        Multiplies the speaker's speed.
    amplitude : int
        espeak-ng amplitude (``-a``, 0-200, default 100).
    word_gap : int
        Extra pause between words in units of 10 ms (``-g``).

    Example
    -------
    >>> STYLES["sad"].speed_factor < 1
    True
    """

    name: str
    pitch_offset: int
    pitch_range: str
    speed_factor: float
    amplitude: int
    word_gap: int


#: The toy speakers; the first six are used by the ``tiny`` profile and
#: were chosen to differ most (sex, accent, synthesiser).
SPEAKERS = (
    Speaker("spk01", "en-us+m1", 42, 170),
    Speaker("spk02", "en-gb+f3", 62, 175),
    Speaker("spk03", "en-gb-scotland+m3", 30, 160),
    Speaker("spk04", "en-us+f2", 52, 185),
    Speaker("spk05", "en+klatt", 45, 165),
    Speaker("spk06", "en-029+f4", 68, 170),
    Speaker("spk07", "en-us-nyc+m7", 35, 180),
    Speaker("spk08", "en-gb-x-rp+f5", 55, 160),
    Speaker("spk09", "en-gb-x-gbclan+m2", 50, 175),
    Speaker("spk10", "en-us+Andrea", 48, 170),
    Speaker("spk11", "en-gb-x-gbcwmd+m4", 38, 190),
    Speaker("spk12", "en-us+steph", 58, 165),
)

#: The styles, by emotion word.
STYLES = {
    s.name: s
    for s in (
        Style("neutral", 0, "medium", 1.0, 100, 0),
        Style("happy", 16, "x-high", 1.15, 125, 0),
        Style("sad", -14, "x-low", 0.75, 55, 3),
        Style("angry", 6, "high", 1.08, 180, 0),
    )
}


def check_espeak():
    """Returns the path of the espeak-ng executable.

    Returns
    -------
    str
        Path of ``espeak-ng``.

    Raises
    ------
    RuntimeError
        If espeak-ng is not installed, naming the Debian package.

    Example
    -------
    >>> check_espeak().endswith("espeak-ng")
    True
    """
    path = shutil.which(ESPEAK)
    if path is None:
        raise RuntimeError(
            "espeak-ng is needed to synthesise the toy world's speech but was "
            "not found on PATH; install the Debian/Ubuntu package 'espeak-ng' "
            "(sudo apt-get install espeak-ng) or your system's equivalent"
        )
    return path


def espeak_args(text, speaker, style, pitch_jitter=0, speed_jitter=1.0):
    """Builds the espeak-ng command line for one utterance.

    Arguments
    ---------
    text : str
        Words to speak.
    speaker : Speaker
        The voice.
    style : Style
        The speaking style.
    pitch_jitter : int
        Added to the pitch (per-utterance variation).
    speed_jitter : float
        Multiplies the speed (per-utterance variation).

    Returns
    -------
    list of str
        Arguments; the audio (WAV) is written to stdout.

    Example
    -------
    >>> args = espeak_args("hello", SPEAKERS[0], STYLES["happy"])
    >>> args[args.index("-p") + 1]
    '58'
    """
    pitch = int(
        np.clip(speaker.pitch + style.pitch_offset + pitch_jitter, 0, 99)
    )
    speed = int(round(speaker.speed * style.speed_factor * speed_jitter))
    speed = int(np.clip(speed, 80, 450))
    ssml = (
        f'<speak><prosody range="{style.pitch_range}">'
        f"{escape(text)}</prosody></speak>"
    )
    return [
        ESPEAK,
        "-z",
        "-m",
        "-v",
        speaker.voice,
        "-p",
        str(pitch),
        "-s",
        str(speed),
        "-a",
        str(style.amplitude),
        "-g",
        str(style.word_gap),
        "--stdout",
        ssml,
    ]


def resample(wav, orig_rate, new_rate=SAMPLE_RATE):
    """Resamples a mono waveform with a polyphase FIR filter.

    Arguments
    ---------
    wav : numpy.ndarray
        Waveform, shape ``(time,)``.
    orig_rate : int
        Its sample rate.
    new_rate : int
        Wanted sample rate.

    Returns
    -------
    numpy.ndarray
        Resampled float32 waveform, shape ``(time * new / orig,)``.

    Example
    -------
    >>> resample(np.zeros(22050, dtype="float32"), 22050).shape
    (16000,)
    """
    wav = np.asarray(wav, dtype=np.float32)
    if orig_rate == new_rate:
        return wav
    from scipy.signal import resample_poly

    g = math.gcd(int(orig_rate), int(new_rate))
    up, down = int(new_rate) // g, int(orig_rate) // g
    taps = _resample_filter(up, down).copy()
    out = resample_poly(wav, up, down, window=taps)
    return out.astype(np.float32)


@lru_cache(maxsize=8)
def _resample_filter(up, down):
    """scipy's default ``resample_poly`` filter, computed once."""
    from scipy.signal import firwin

    max_rate = max(up, down)
    taps = firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    return taps.astype(np.float32)


def trim_silence(wav, sample_rate=SAMPLE_RATE, rel_threshold=0.02, margin=0.05):
    """Cuts leading and trailing silence, keeping a margin.

    Arguments
    ---------
    wav : numpy.ndarray
        Waveform, shape ``(time,)``.
    sample_rate : int
        Its sample rate.
    rel_threshold : float
        Samples below ``rel_threshold * peak`` count as silence.
    margin : float
        Seconds of signal kept on each side of the non-silent part.

    Returns
    -------
    numpy.ndarray
        The trimmed waveform (unchanged if all silent).

    Example
    -------
    >>> x = np.zeros(16000, dtype="float32"); x[8000:8100] = 0.5
    >>> len(trim_silence(x))
    1700
    """
    mag = np.abs(wav)
    peak = mag.max() if mag.size else 0.0
    if peak <= 0:
        return wav
    loud = np.nonzero(mag > rel_threshold * peak)[0]
    pad = int(margin * sample_rate)
    start = max(0, loud[0] - pad)
    end = min(len(wav), loud[-1] + 1 + pad)
    return wav[start:end]


def synthesize(text, speaker, style, pitch_jitter=0, speed_jitter=1.0):
    """Speaks ``text`` with espeak-ng and returns 16 kHz audio.

    Arguments
    ---------
    text : str
        Words to speak.
    speaker : Speaker
        The voice.
    style : Style
        The speaking style.
    pitch_jitter : int
        Added to the pitch.
    speed_jitter : float
        Multiplies the speed.

    Returns
    -------
    numpy.ndarray
        float32 waveform in [-1, 1] at 16 kHz, shape ``(time,)``.

    Example
    -------
    >>> wav = synthesize("one two", SPEAKERS[0], STYLES["neutral"])
    >>> 0.3 < len(wav) / SAMPLE_RATE < 2.0
    True
    """
    import soundfile as sf

    check_espeak()
    args = espeak_args(text, speaker, style, pitch_jitter, speed_jitter)
    proc = subprocess.run(args, capture_output=True)
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(
            f"espeak-ng failed (exit {proc.returncode}) on {text!r} with "
            f"voice {speaker.voice!r}: {err or 'no audio produced'}"
        )
    try:
        wav, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    except RuntimeError as e:
        raise RuntimeError(
            f"could not read espeak-ng's audio for {text!r} with voice "
            f"{speaker.voice!r}: {e}; espeak-ng said: {err}"
        ) from e
    if wav.ndim > 1:
        wav = wav.mean(axis=1)
    wav = trim_silence(resample(wav, rate), SAMPLE_RATE)
    if wav.size == 0:
        raise RuntimeError(f"espeak-ng produced no audio for {text!r}")
    return np.clip(wav, -1.0, 1.0)


def write_wav(path, wav, sample_rate=SAMPLE_RATE):
    """Writes a mono waveform as 16-bit PCM WAV.

    Arguments
    ---------
    path : str or Path
        Output file.
    wav : numpy.ndarray
        Waveform in [-1, 1], shape ``(time,)``.
    sample_rate : int
        Sample rate.

    Returns
    -------
    float
        Duration in seconds.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.wav")
    >>> write_wav(p, np.zeros(8000, dtype="float32"))
    0.5
    """
    import soundfile as sf

    wav = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    sf.write(str(path), wav, sample_rate, subtype="PCM_16")
    return len(wav) / sample_rate


@dataclass(frozen=True)
class SpeechJob:
    """One utterance to synthesise and write.

    Arguments
    ---------
    text : str
        Words to speak.
    speaker : Speaker
        The voice.
    style : Style
        The speaking style.
    path : str
        Output WAV file.
    pitch_jitter : int
        Added to the pitch.
    speed_jitter : float
        Multiplies the speed.

    Example
    -------
    >>> SpeechJob("hi", SPEAKERS[0], STYLES["sad"], "/tmp/x.wav").style.name
    'sad'
    """

    text: str
    speaker: Speaker
    style: Style
    path: str
    pitch_jitter: int = 0
    speed_jitter: float = 1.0


def _run_job(job):
    wav = synthesize(
        job.text, job.speaker, job.style, job.pitch_jitter, job.speed_jitter
    )
    return write_wav(job.path, wav)


def synthesize_many(jobs, num_workers=2, progress=None):
    """Synthesises and writes many utterances in parallel.

    espeak-ng runs in subprocesses, so threads are enough to keep
    ``num_workers`` cores busy.

    Arguments
    ---------
    jobs : list of SpeechJob
        The utterances.
    num_workers : int
        Number of parallel espeak-ng processes.
    progress : callable, optional
        Called with 1 after each finished utterance (e.g. ``bar.update``).

    Returns
    -------
    list of float
        Durations in seconds, in the order of ``jobs``.

    Example
    -------
    >>> synthesize_many([])
    []
    """
    if not jobs:
        return []
    check_espeak()
    durations = [None] * len(jobs)
    pool = ThreadPoolExecutor(max_workers=max(1, num_workers))
    try:
        futures = {pool.submit(_run_job, job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            durations[futures[future]] = future.result()
            if progress is not None:
                progress(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return durations
