"""Reading the audio of manifest entries: any rate, any channel count.

Files are decoded with ``soundfile`` (libsndfile: wav, flac, ogg/vorbis,
opus and mp3 with libsndfile >= 1.1), averaged over channels to mono and
resampled to the rate the models expect with torchaudio's own resampler
(``torchaudio.functional.resample``, windowed sinc), all at load time, so
a corpus needs no conversion pass. (``torchaudio.load`` is not used: from
torchaudio 2.9 it needs the separate ``torchcodec`` package.)

A manifest entry may read only a segment of its file: ``start`` and
``stop`` (seconds, both optional) cut ``wav`` (e.g. the sentences of a
whole talk); only the segment is decoded (``soundfile`` seeks).
Speaker-verification examples hold two clips (``wav`` and ``wav2``);
:func:`read_example_audio` joins them with a short silence so that the
encoder sees one waveform.

For long runs, :func:`load_audio_or_none` turns a clip that cannot be read
into a logged warning and ``None`` instead of an exception.
:func:`measure_audio` decodes a clip in blocks and returns what manifest
validation checks (non-finite samples, silence, length), without holding
the whole file in memory.

Authors
 * audiollm-lobes developers, 2026
"""

import logging
import math
import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import torch
import torchaudio

logger = logging.getLogger(__name__)

#: Silence inserted between the two clips of a pair, in seconds.
DEFAULT_GAP_SECONDS = 0.3
#: How far (s) ``stop`` may lie past the end of its file; it is then
#: clamped to the end (segment tables rounded to 10 ms).
SEGMENT_TOLERANCE = 0.01
#: A clip whose mono mix has a lower RMS is silent (-100 dBFS; one step of
#: 16-bit audio is 3.05e-5, so only digital silence or near-zero noise).
SILENCE_RMS = 1e-5
#: Frames decoded at a time by :func:`measure_audio`.
BLOCK_FRAMES = 1 << 20
#: Formats that libsndfile (1.2) decodes exactly only in one read from
#: the start: with MP3, a seek or a read ending inside the file changes
#: the first ~3700 samples that follow. Such files are read whole (up to
#: the segment's end) in one call.
SINGLE_READ_FORMATS = frozenset({"MP3"})


class AudioError(ValueError):
    """An audio file exists but cannot be used (unreadable, empty, NaN).

    Arguments
    ---------
    message : str
        What is wrong, starting with the path.
    kind : str
        A short category, as manifest validation counts problems:
        ``"unreadable_audio"``, ``"empty_audio"``, ``"bad_segment"`` or
        ``"nonfinite_audio"``.

    Example
    -------
    >>> err = AudioError("a.wav: segment start is -1 s", "bad_segment")
    >>> isinstance(err, ValueError), err.kind
    (True, 'bad_segment')
    """

    def __init__(self, message, kind="unreadable_audio"):
        super().__init__(message)
        self.kind = kind


def _check_path(path):
    """Raises FileNotFoundError unless ``path`` is an existing file."""
    if not os.path.isfile(path):
        if os.path.exists(path):
            raise FileNotFoundError(f"{path}: is not a file (audio expected)")
        raise FileNotFoundError(f"{path}: audio file does not exist")


def _short_error(err):
    """Returns the first line of an exception message (for reports)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _seconds(value, name, path):
    """Checks an optional segment bound (seconds); returns it or None."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
    ):
        raise AudioError(
            f"{path}: segment {name} is {value!r}, expected a finite number "
            "of seconds",
            "bad_segment",
        )
    return float(value)


def segment_frames(frames, rate, start=None, stop=None, path="audio"):
    """Converts a segment in seconds to a frame range of a file.

    Arguments
    ---------
    frames : int
        Frames in the file.
    rate : int
        The file's sample rate in Hz.
    start : float, optional
        Start of the segment in seconds (default 0).
    stop : float, optional
        End of the segment in seconds (default: the end of the file). Up
        to ``SEGMENT_TOLERANCE`` past the end is clamped to the end.
    path : str
        Named in error messages.

    Returns
    -------
    tuple of int
        ``(first, last)``: frames ``[first, last)`` of the file.

    Raises
    ------
    AudioError
        If a bound is not a number, ``start < 0``, ``stop <= start`` or the
        segment ends past the file.

    Example
    -------
    >>> segment_frames(48000, 16000, start=0.5, stop=1.25)
    (8000, 20000)
    >>> segment_frames(48000, 16000, stop=3.005)
    (0, 48000)
    >>> segment_frames(48000, 16000, start=2.0, stop=4.0, path="talk.wav")
    Traceback (most recent call last):
     ...
    audiollm_lobes.data.audio.AudioError: talk.wav: segment 2.000-4.000 s \
ends past the end of the audio (3.000 s)
    """
    start = _seconds(start, "start", path)
    stop = _seconds(stop, "stop", path)
    length = frames / rate
    lo = 0.0 if start is None else start
    hi = length if stop is None else stop
    if lo < 0:
        raise AudioError(
            f"{path}: segment start is {lo:g} s, expected >= 0", "bad_segment"
        )
    if hi <= lo:
        raise AudioError(
            f"{path}: segment {lo:.3f}-{hi:.3f} s is empty "
            "(stop must be after start)",
            "bad_segment",
        )
    if hi > length + SEGMENT_TOLERANCE:
        raise AudioError(
            f"{path}: segment {lo:.3f}-{hi:.3f} s ends past the end of the "
            f"audio ({length:.3f} s)",
            "bad_segment",
        )
    first = min(int(round(lo * rate)), frames)
    last = min(int(round(hi * rate)), frames)
    if last <= first:
        raise AudioError(
            f"{path}: segment {lo:.3f}-{hi:.3f} s holds no sample of the "
            f"audio ({length:.3f} s)",
            "bad_segment",
        )
    return first, last


def _read_blocks(f, first, last, block_frames, exact=True):
    """Yields frames ``[first, last)`` of an open ``soundfile.SoundFile``.

    Blocks of ``(frames, channels)`` float32, at most ``block_frames``
    long, except for ``SINGLE_READ_FORMATS`` with ``exact`` (one read from
    the start). Without ``exact``, memory stays bounded for every format
    but MP3 samples near block starts are approximate.
    """
    if exact and f.format in SINGLE_READ_FORMATS:
        yield f.read(last, dtype="float32", always_2d=True)[first:]
        return
    if first:
        f.seek(first)
    left = last - first
    while left > 0:
        block = f.read(min(left, block_frames), dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            return
        left -= block.shape[0]
        yield block


def read_wav(path, sample_rate=16000, start=None, stop=None):
    """Reads an audio file (or a segment of it) as mono at ``sample_rate``.

    Multi-channel audio is averaged over its channels; audio at another
    rate is resampled with ``torchaudio.functional.resample`` (the
    segment is cut at the file's own rate first).

    Arguments
    ---------
    path : str or os.PathLike
        The audio file (any format libsndfile reads: wav, flac, ogg, mp3).
    sample_rate : int or None
        The rate to return, in Hz; ``None`` keeps the file's rate.
    start : float, optional
        Start of the segment to read, in seconds of the file.
    stop : float, optional
        End of the segment to read, in seconds of the file.

    Returns
    -------
    torch.Tensor
        Float32 samples, shape ``(samples,)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an existing file.
    AudioError
        If the file cannot be decoded, is empty, holds non-finite samples
        or the segment lies outside it.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> path = os.path.join(tempfile.mkdtemp(), "x.wav")
    >>> stereo = np.random.default_rng(0).uniform(-0.5, 0.5, (8000, 2))
    >>> sf.write(path, stereo, 8000)
    >>> read_wav(path).shape  # 1 s of stereo at 8 kHz, as 16 kHz mono
    torch.Size([16000])
    >>> read_wav(path, sample_rate=None, start=0.25, stop=0.5).shape
    torch.Size([2000])
    """
    path = os.fspath(path)
    _check_path(path)
    try:
        with sf.SoundFile(path) as f:
            rate = f.samplerate
            if start is None and stop is None:
                first, last = 0, f.frames
            else:
                first, last = segment_frames(f.frames, rate, start, stop, path)
            blocks = list(_read_blocks(f, first, last, max(last - first, 1)))
            samples = (
                np.concatenate(blocks)
                if blocks
                else np.zeros((0, f.channels), dtype="float32")
            )
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise AudioError(
            f"{path}: cannot read audio ({_short_error(err)})"
        ) from None
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: audio is empty (0 samples)", "empty_audio")
    wav = torch.from_numpy(np.ascontiguousarray(samples.T))
    wav = wav.mean(dim=0) if wav.shape[0] > 1 else wav[0]
    if not bool(torch.isfinite(wav).all()):
        bad = int((~torch.isfinite(wav)).sum())
        raise AudioError(
            f"{path}: holds {bad} non-finite (NaN/inf) samples",
            "nonfinite_audio",
        )
    if sample_rate is not None and rate != sample_rate:
        wav = torchaudio.functional.resample(wav, rate, int(sample_rate))
    return wav


@dataclass(frozen=True)
class AudioMeasure:
    """What :func:`measure_audio` found in a clip (or segment).

    Arguments
    ---------
    seconds : float
        Length of the clip or segment.
    sample_rate : int
        The file's rate in Hz.
    channels : int
        The file's channel count.
    nonfinite : int
        Number of NaN/inf samples (all channels).
    rms : float or None
        Root mean square of the mono mix over the finite frames (NaN
        when no frame is finite; None when only the header was read).

    Example
    -------
    >>> m = AudioMeasure(2.0, 16000, 1, 0, 0.0)
    >>> m.silent, m.seconds
    (True, 2.0)
    """

    seconds: float
    sample_rate: int
    channels: int
    nonfinite: int
    rms: float

    @property
    def silent(self):
        """True when the decoded mono mix's RMS is below ``SILENCE_RMS``."""
        return self.rms is not None and self.rms < SILENCE_RMS


def measure_audio(path, start=None, stop=None, decode=True):
    """Decodes a clip (or a segment) in blocks and measures it.

    The mono mix is the mean over channels, as :func:`read_wav` reads it.
    Memory stays bounded (``BLOCK_FRAMES`` frames at a time), so whole
    talks can be checked (for MP3 the samples just after a block start are
    approximate: libsndfile's MP3 seeking is not sample-exact).

    Arguments
    ---------
    path : str or os.PathLike
        An audio file.
    start, stop : float, optional
        A segment in seconds, as for :func:`read_wav`.
    decode : bool
        If False, only the header is read (``nonfinite`` 0, ``rms`` None).

    Returns
    -------
    AudioMeasure
        Length, rate, channels, non-finite count and RMS.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an existing file.
    AudioError
        If the file cannot be decoded, holds no frame, or the segment lies
        outside it.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> path = os.path.join(tempfile.mkdtemp(), "x.wav")
    >>> x = np.full((44100, 2), 0.5, dtype="float32")
    >>> x[10, 1] = np.nan
    >>> sf.write(path, x, 44100, subtype="FLOAT")
    >>> m = measure_audio(path, stop=0.5)
    >>> m.seconds, m.channels, m.nonfinite, round(m.rms, 3)
    (0.5, 2, 1, 0.5)
    """
    path = os.fspath(path)
    _check_path(path)
    total = 0.0
    nonfinite = 0
    frames_used = 0
    try:
        with sf.SoundFile(path) as f:
            rate, channels = f.samplerate, f.channels
            if f.frames <= 0:
                raise AudioError(
                    f"{path}: audio is empty (0 samples)", "empty_audio"
                )
            first, last = segment_frames(f.frames, rate, start, stop, path)
            # Bounded memory: MP3 samples near block starts are approximate,
            # which cannot hide NaN or turn a signal into silence.
            blocks = _read_blocks(f, first, last, BLOCK_FRAMES, exact=False)
            for block in blocks if decode else ():
                finite = np.isfinite(block)
                bad = block.size - int(np.count_nonzero(finite))
                if bad:
                    nonfinite += bad
                    block = block[finite.all(axis=1)]
                if block.shape[1] == 1:
                    mono = block[:, 0].astype(np.float64)
                else:
                    mono = block.mean(axis=1, dtype=np.float64)
                total += float(np.dot(mono, mono))
                frames_used += block.shape[0]
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise AudioError(
            f"{path}: cannot read audio ({_short_error(err)})"
        ) from None
    rms = math.sqrt(total / frames_used) if frames_used else math.nan
    if not decode:
        rms = None
    return AudioMeasure(
        seconds=(last - first) / rate,
        sample_rate=rate,
        channels=channels,
        nonfinite=nonfinite,
        rms=rms,
    )


def _audio_parts(entry_or_paths):
    """Returns ``[(path, start, stop)]`` of an entry, a path or a list."""
    if isinstance(entry_or_paths, (str, os.PathLike)):
        return [(entry_or_paths, None, None)]
    if isinstance(entry_or_paths, dict):
        if "wav" not in entry_or_paths:
            raise KeyError(
                "manifest entry has no 'wav' field; keys are "
                f"{sorted(entry_or_paths)}"
            )
        parts = [
            (
                entry_or_paths["wav"],
                entry_or_paths.get("start"),
                entry_or_paths.get("stop"),
            )
        ]
        if entry_or_paths.get("wav2"):
            parts.append((entry_or_paths["wav2"], None, None))
        return parts
    if isinstance(entry_or_paths, (list, tuple)):
        if not entry_or_paths:
            raise ValueError("no audio paths given (empty list)")
        return [(path, None, None) for path in entry_or_paths]
    raise TypeError(
        "expected a manifest entry (dict with 'wav'), a path or a list of "
        f"paths, got {type(entry_or_paths).__name__}"
    )


def example_audio_key(entry):
    """A string naming exactly the audio an entry reads (cache key).

    Arguments
    ---------
    entry : dict
        A manifest entry: ``wav``, optional ``start``/``stop``, ``wav2``.

    Returns
    -------
    str
        ``"<wav>|<wav2>"``, with ``@<start>:<stop>`` after ``<wav>`` when
        the entry reads a segment, so that two segments of one file never
        share a key.

    Example
    -------
    >>> example_audio_key({"wav": "a.wav", "wav2": ""})
    'a.wav|'
    >>> example_audio_key({"wav": "talk.wav", "start": 1.5, "stop": 3})
    'talk.wav@1.5:3|'
    """
    key = os.fspath(entry["wav"])
    start, stop = entry.get("start"), entry.get("stop")
    if start is not None or stop is not None:
        lo = "" if start is None else f"{start:g}"
        hi = "" if stop is None else f"{stop:g}"
        key += f"@{lo}:{hi}"
    return f"{key}|{entry.get('wav2') or ''}"


def read_example_audio(
    entry_or_paths, sample_rate=16000, gap_seconds=DEFAULT_GAP_SECONDS
):
    """Reads the audio of one example, joining pairs with a silence gap.

    Arguments
    ---------
    entry_or_paths : dict or str or list
        A manifest entry (its ``wav``, cut to ``start``/``stop`` if given,
        and, if present, ``wav2`` are read), a single path, or a list of
        paths (all joined in order).
    sample_rate : int
        The rate to return in Hz (every clip is resampled to it).
    gap_seconds : float
        Silence inserted between consecutive clips.

    Returns
    -------
    torch.Tensor
        Float32 samples, shape ``(samples,)``.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> folder = tempfile.mkdtemp()
    >>> a, b = os.path.join(folder, "a.wav"), os.path.join(folder, "b.wav")
    >>> sf.write(a, np.ones(100, dtype="float32") * 0.5, 1000)
    >>> sf.write(b, np.ones(50, dtype="float32") * 0.5, 1000)
    >>> x = read_example_audio({"wav": a, "wav2": b}, 1000, gap_seconds=0.01)
    >>> x.shape, float(x[100:110].abs().sum())
    (torch.Size([160]), 0.0)
    >>> read_example_audio({"wav": a, "start": 0.02, "stop": 0.05}, 1000).shape
    torch.Size([30])
    """
    if gap_seconds < 0:
        raise ValueError(f"gap_seconds must be >= 0, got {gap_seconds}")
    clips = [
        read_wav(path, sample_rate, start, stop)
        for path, start, stop in _audio_parts(entry_or_paths)
    ]
    if len(clips) == 1:
        return clips[0]
    gap = torch.zeros(int(round(gap_seconds * sample_rate)))
    parts = [clips[0]]
    for clip in clips[1:]:
        parts.extend([gap, clip])
    return torch.cat(parts)


def load_audio_or_none(
    entry_or_paths, sample_rate=16000, gap_seconds=DEFAULT_GAP_SECONDS
):
    """Like :func:`read_example_audio`, but logs and returns None on failure.

    Manifests are validated before training, yet a file can still go bad
    during a run of several days (a network mount dropping out, a file
    rewritten while training). Use this function in the data pipeline of
    long runs (``on_bad_example: skip``) so that one bad clip costs one
    example rather than the run: the collate function (or the Brain's
    batch hook) must then drop the examples whose audio is ``None`` before
    padding. With ``on_bad_example: error`` use :func:`read_example_audio`,
    which raises.

    Arguments
    ---------
    entry_or_paths : dict or str or list
        As for :func:`read_example_audio`.
    sample_rate : int
        The rate to return in Hz.
    gap_seconds : float
        Silence inserted between consecutive clips.

    Returns
    -------
    torch.Tensor or None
        The samples, shape ``(samples,)``, or None if any clip could not
        be read (a warning naming the file and the reason is logged).

    Example
    -------
    >>> load_audio_or_none("/no/such/file.wav") is None
    True
    """
    if gap_seconds < 0:
        raise ValueError(f"gap_seconds must be >= 0, got {gap_seconds}")
    try:
        return read_example_audio(entry_or_paths, sample_rate, gap_seconds)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        logger.warning("skipping example with bad audio: %s", err)
        return None
