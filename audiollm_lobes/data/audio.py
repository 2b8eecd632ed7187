"""Reading the audio of manifest entries.

All audio is read with ``soundfile`` as float32 mono at the expected sample
rate. Nothing is resampled here: a file at the wrong rate is an error that
names the file (manifest validation reports such files before training,
see :mod:`audiollm_lobes.data.manifest`).

Speaker-verification examples hold two clips (``wav`` and ``wav2``);
:func:`read_example_audio` joins them with a short silence so that the
encoder sees one waveform.

For long runs, :func:`load_audio_or_none` turns a clip that cannot be read
into a logged warning and ``None`` instead of an exception.

Authors
 * audiollm-lobes developers, 2026
"""

import logging
import os

import numpy as np
import soundfile as sf
import torch

logger = logging.getLogger(__name__)

#: Silence inserted between the two clips of a pair, in seconds.
DEFAULT_GAP_SECONDS = 0.3


class AudioError(ValueError):
    """An audio file exists but cannot be used (unreadable, wrong format).

    Example
    -------
    >>> issubclass(AudioError, ValueError)
    True
    """


def read_wav(path, sample_rate=16000, downmix=False):
    """Reads a mono audio file into a float tensor.

    Arguments
    ---------
    path : str or os.PathLike
        The audio file (any format libsndfile reads: wav, flac, ogg...).
    sample_rate : int or None
        The expected sample rate in Hz; ``None`` accepts any rate.
    downmix : bool
        If True, multi-channel audio is averaged to mono; otherwise it is
        an error.

    Returns
    -------
    torch.Tensor
        Float32 samples, shape ``(samples,)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an existing file.
    AudioError
        If the file cannot be decoded, is empty, has the wrong sample rate
        or more than one channel (without ``downmix``).

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> path = os.path.join(tempfile.mkdtemp(), "x.wav")
    >>> sf.write(path, np.zeros(1600, dtype="float32"), 16000)
    >>> read_wav(path).shape
    torch.Size([1600])
    >>> try:
    ...     read_wav(path, sample_rate=8000)
    ... except AudioError as err:
    ...     print(str(err).split(": ", 1)[1])
    sample rate is 16000 Hz, expected 8000 Hz
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        if os.path.exists(path):
            raise FileNotFoundError(f"{path}: is not a file (audio expected)")
        raise FileNotFoundError(f"{path}: audio file does not exist")
    try:
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise AudioError(
            f"{path}: cannot read audio ({_short_error(err)})"
        ) from None
    if sample_rate is not None and rate != sample_rate:
        raise AudioError(
            f"{path}: sample rate is {rate} Hz, expected {sample_rate} Hz"
        )
    channels = samples.shape[1]
    if channels != 1:
        if not downmix:
            raise AudioError(
                f"{path}: has {channels} channels, expected mono (1 channel)"
            )
        samples = samples.mean(axis=1, keepdims=True)
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: audio is empty (0 samples)")
    return torch.from_numpy(np.ascontiguousarray(samples[:, 0]))


def _short_error(err):
    """Returns the first line of an exception message (for reports)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _audio_paths(entry_or_paths):
    """Returns the list of paths held by an entry, a path or a sequence."""
    if isinstance(entry_or_paths, (str, os.PathLike)):
        return [entry_or_paths]
    if isinstance(entry_or_paths, dict):
        if "wav" not in entry_or_paths:
            raise KeyError(
                "manifest entry has no 'wav' field; keys are "
                f"{sorted(entry_or_paths)}"
            )
        paths = [entry_or_paths["wav"]]
        if entry_or_paths.get("wav2"):
            paths.append(entry_or_paths["wav2"])
        return paths
    if isinstance(entry_or_paths, (list, tuple)):
        if not entry_or_paths:
            raise ValueError("no audio paths given (empty list)")
        return list(entry_or_paths)
    raise TypeError(
        "expected a manifest entry (dict with 'wav'), a path or a list of "
        f"paths, got {type(entry_or_paths).__name__}"
    )


def read_example_audio(
    entry_or_paths, sample_rate=16000, gap_seconds=DEFAULT_GAP_SECONDS
):
    """Reads the audio of one example, joining pairs with a silence gap.

    Arguments
    ---------
    entry_or_paths : dict or str or list
        A manifest entry (its ``wav`` and, if present, ``wav2`` are read),
        a single path, or a list of paths (all joined in order).
    sample_rate : int
        The expected sample rate in Hz.
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
    """
    if gap_seconds < 0:
        raise ValueError(f"gap_seconds must be >= 0, got {gap_seconds}")
    clips = [read_wav(p, sample_rate) for p in _audio_paths(entry_or_paths)]
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
        The expected sample rate in Hz.
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
