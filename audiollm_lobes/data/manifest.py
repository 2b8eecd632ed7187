"""Manifest schema, loading and validation.

A manifest is a SpeechBrain-style JSON dict, one entry per example::

    {
      "utt1": {
        "wav": "{data_root}/speech/utt1.wav",
        "duration": 2.31,
        "task": "asr",
        "instruction": "<audio> Transcribe the speech.",
        "target": "the red cat sleeps in the kitchen",
        "speaker": "v3"
      },
      "pair7": {"wav": "...", "wav2": "...", "task": "speaker_verification",
                "...": "..."}
    }

Required fields are ``wav``, ``duration`` (seconds), ``task``,
``instruction`` (exactly one ``<audio>`` marker) and ``target``. Optional:
``start`` / ``stop`` (seconds) read only that segment of ``wav`` (then
``duration`` is the segment's), ``wav2`` a second clip (speaker
verification pairs); other fields are free metadata. Audio may have any
sample rate and channel count (it is downmixed and resampled on reading,
:mod:`audiollm_lobes.data.audio`). String values may hold ``{name}``
placeholders that are filled from ``replacements`` exactly as
SpeechBrain's ``load_data_json`` does (``str.format_map``), so a manifest
can say ``{data_root}``.

Manifests are validated before training (:func:`validate_manifest`,
:func:`check_manifests`): every problem of every entry is collected and
reported together with its example id, then the run stops
(``on_bad_example="error"``) or drops the bad entries (``"skip"``). The
audio is decoded during validation (once per file or segment, with a
progress bar for large manifests) so that undecodable files, non-finite
samples, silent clips (RMS of the mono mix below
:data:`~audiollm_lobes.data.audio.SILENCE_RMS`, i.e. -100 dBFS), segments
outside their file and clips longer than ``max_audio_seconds`` are all
found before training, never in the middle of a run.

Authors
 * audiollm-lobes developers, 2026
"""

import collections
import copy
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from speechbrain.utils.distributed import if_main_process
from tqdm.auto import tqdm

from audiollm_lobes.atomic import write_json
from audiollm_lobes.data import templates
from audiollm_lobes.data.audio import (
    SILENCE_RMS,
    AudioError,
    AudioMeasure,
    measure_audio,
)

logger = logging.getLogger(__name__)

REQUIRED_FIELDS = ("wav", "duration", "task", "instruction", "target")
AUDIO_FIELDS = ("wav", "wav2")
#: Optional bounds (seconds) of the segment of ``wav`` to read.
SEGMENT_FIELDS = ("start", "stop")
#: Default longest audio (s) an example may have, pairs with their gap
#: included: four 30 s Whisper windows (longer clips are encoded window by
#: window, and their audio tokens all reach the LLM). None: no limit.
DEFAULT_MAX_AUDIO_SECONDS = 120.0
#: Manifests with at least this many entries get a progress bar.
PROGRESS_MIN_ENTRIES = 1000
#: How far (s) ``duration`` may be from the audio file's own duration.
DURATION_TOLERANCE = 0.1
#: Most lines shown by ``str(report)``; the full list is ``report.problems``.
MAX_REPORT_LINES = 200
#: Example id used for problems that concern a whole manifest.
MANIFEST_ID = "<manifest>"


class ManifestError(ValueError):
    """A manifest cannot be loaded or holds bad examples.

    Example
    -------
    >>> issubclass(ManifestError, ValueError)
    True
    """


@dataclass(frozen=True)
class Problem:
    """One problem of one manifest entry.

    Arguments
    ---------
    example_id : str
        The id of the entry (``"<manifest>"`` for the manifest as a whole).
    field : str
        The field at fault (``"wav"``, ``"task"``...).
    message : str
        What is wrong and what was expected.
    kind : str
        A short category used to count problems (``"missing_file"``,
        ``"sample_rate"``...).

    Example
    -------
    >>> p = Problem("utt3", "task", "unknown task 'dance'")
    >>> str(p)
    "utt3: task: unknown task 'dance'"
    """

    example_id: str
    field: str
    message: str
    kind: str = "other"

    def __str__(self):
        return f"{self.example_id}: {self.field}: {self.message}"


class ValidationReport:
    """All problems found in one manifest (or several).

    Arguments
    ---------
    problems : list of Problem
        The problems found (any order; grouped by id when printed).
    n_entries : int
        How many entries were checked.
    source : str, optional
        Where the entries came from (the manifest path), for messages.

    Example
    -------
    >>> problem = Problem("b", "target", "is empty", "empty_target")
    >>> report = ValidationReport(
    ...     [problem],
    ...     n_entries=2,
    ...     source="train.json",
    ... )
    >>> report.ok, sorted(report.bad_ids)
    (False, ['b'])
    >>> print(report)  # doctest: +NORMALIZE_WHITESPACE
    Manifest train.json: 1 of 2 entries have problems
    (1 problem: empty_target 1)
      b: target: is empty
    """

    def __init__(self, problems=(), n_entries=0, source=None):
        self.problems = list(problems)
        self.n_entries = n_entries
        self.source = None if source is None else str(source)

    @property
    def ok(self):
        """True when no problem was found."""
        return not self.problems

    @property
    def bad_ids(self):
        """The set of example ids with at least one problem."""
        return {p.example_id for p in self.problems}

    def counts(self):
        """Returns how many problems of each kind were found.

        Returns
        -------
        dict
            ``{kind: count}``, most frequent first.

        Example
        -------
        >>> problem = Problem("a", "wav", "gone", "missing_file")
        >>> ValidationReport([problem]).counts()
        {'missing_file': 1}
        """
        tally = collections.Counter(p.kind for p in self.problems)
        return dict(tally.most_common())

    def format(self, max_lines=MAX_REPORT_LINES):
        """Returns the report as text: a header and one line per problem.

        Arguments
        ---------
        max_lines : int or None
            Most problem lines shown (None: all).

        Returns
        -------
        str
            The report; problems of one id are listed together.

        Example
        -------
        >>> print(ValidationReport([], n_entries=3).format())
        Manifest: all 3 entries are valid
        """
        name = f"Manifest {self.source}" if self.source else "Manifest"
        if self.ok:
            return f"{name}: all {self.n_entries} entries are valid"
        n_bad = len(self.bad_ids - {MANIFEST_ID})
        tally = ", ".join(f"{k} {v}" for k, v in self.counts().items())
        plural = "problem" if len(self.problems) == 1 else "problems"
        lines = [
            f"{name}: {n_bad} of {self.n_entries} entries have problems "
            f"({len(self.problems)} {plural}: {tally})"
        ]
        by_id = {}
        for problem in self.problems:
            by_id.setdefault(problem.example_id, []).append(problem)
        shown = 0
        for group in by_id.values():
            for problem in group:
                if max_lines is not None and shown >= max_lines:
                    rest = len(self.problems) - shown
                    lines.append(
                        f"  ... and {rest} more problems "
                        "(see ValidationReport.problems)"
                    )
                    return "\n".join(lines)
                lines.append(f"  {problem}")
                shown += 1
        return "\n".join(lines)

    def __str__(self):
        return self.format()

    def __repr__(self):
        return (
            f"ValidationReport(n_entries={self.n_entries}, "
            f"problems={len(self.problems)}, source={self.source!r})"
        )

    def raise_if_bad(self):
        """Raises :class:`ManifestError` with the report if anything is bad.

        Example
        -------
        >>> ValidationReport([], n_entries=1).raise_if_bad()
        >>> bad = ValidationReport([Problem("a", "wav", "gone")], 1)
        >>> bad.raise_if_bad()  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        audiollm_lobes.data.manifest.ManifestError: Manifest: 1 of 1 entries
        have problems (1 problem: other 1)
          a: wav: gone
        """
        if not self.ok:
            raise ManifestError(self.format())


def _format_strings(data, replacements, where, failures):
    """Formats all strings of ``data`` in place; records failed keys."""
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, item in items:
        if isinstance(item, (dict, list)):
            _format_strings(item, replacements, where + [key], failures)
        elif isinstance(item, str):
            try:
                data[key] = item.format_map(replacements)
            except (KeyError, IndexError, ValueError) as err:
                failures.append((where + [key], item, err))


def _apply_replacements(data, replacements, name):
    """Formats all strings of ``data`` in place; raises if any fails."""
    failures = []
    _format_strings(data, dict(replacements or {}), [], failures)
    if not failures:
        return
    given = sorted(replacements or {})
    lines = [
        f"{name}: {len(failures)} strings cannot be formatted with "
        f"replacements {given} (a '{{name}}' placeholder needs "
        "replacements={'name': value}; literal braces must be doubled):"
    ]
    for where, text, err in failures[:20]:
        field = "/".join(str(w) for w in where)
        lines.append(f"  {field}: {text!r} ({type(err).__name__}: {err})")
    if len(failures) > 20:
        lines.append(f"  ... and {len(failures) - 20} more")
    raise ManifestError("\n".join(lines))


def _pairs_hook(duplicates):
    """Builds a JSON object hook that records duplicated keys."""

    def hook(pairs):
        obj = {}
        for key, value in pairs:
            if key in obj:
                duplicates.append(key)
            obj[key] = value
        return obj

    return hook


def load_manifest(path, replacements=None):
    """Loads a JSON manifest and fills ``{placeholders}`` in its strings.

    Arguments
    ---------
    path : str or os.PathLike
        The JSON file.
    replacements : dict, optional
        Values for the placeholders, e.g. ``{"data_root": "/data"}``.

    Returns
    -------
    dict
        ``{example_id: entry}`` with every string formatted.

    Raises
    ------
    ManifestError
        If the file is missing, is not valid JSON, is not a JSON object, has
        duplicate keys, or uses placeholders absent from ``replacements``.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.json")
    >>> with open(path, "w") as f:
    ...     _ = f.write('{"u1": {"wav": "{data_root}/u1.wav"}}')
    >>> load_manifest(path, {"data_root": "/data"})["u1"]["wav"]
    '/data/u1.wav'
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ManifestError(f"manifest {path}: file does not exist")
    duplicates = []
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f, object_pairs_hook=_pairs_hook(duplicates))
    except json.JSONDecodeError as err:
        raise ManifestError(
            f"manifest {path}: invalid JSON at line {err.lineno} column "
            f"{err.colno}: {err.msg}"
        ) from None
    except UnicodeDecodeError as err:
        raise ManifestError(
            f"manifest {path}: not UTF-8 text ({err.reason} at byte "
            f"{err.start})"
        ) from None
    if not isinstance(data, dict):
        raise ManifestError(
            f"manifest {path}: top level is a JSON {type(data).__name__}, "
            "expected an object {example_id: entry}"
        )
    if duplicates:
        shown = ", ".join(repr(k) for k in sorted(set(duplicates))[:20])
        raise ManifestError(
            f"manifest {path}: duplicate keys (later ones would silently "
            f"replace earlier ones): {shown}"
        )
    _apply_replacements(data, replacements, f"manifest {path}")
    return data


class AudioCheckCache:
    """Measures each audio file (or segment) once, for validation.

    Entries often share files (the clips of speaker-verification pairs,
    the segments of one talk read by several manifests); each distinct
    ``(path, start, stop)`` is decoded once per cache. Share one cache
    between the manifests of a run (:func:`check_manifests` does).

    With a ``store`` file, the measures of readable clips are also kept on
    disk, keyed by the file's path, size and modification time, so that
    the next run over a large corpus decodes only files that are new or
    changed (:meth:`save` writes it, atomically). Problems are never
    stored: a clip that failed is checked again.

    Arguments
    ---------
    decode : bool
        Decode the audio (checks non-finite samples and silence) or read
        headers only.
    store : str or os.PathLike, optional
        JSON file of measures from earlier runs (read if it exists).

    Example
    -------
    >>> cache = AudioCheckCache()
    >>> measure, kind, message = cache.get("/no/such.wav")
    >>> measure is None, kind
    (True, 'missing_file')
    """

    def __init__(self, decode=True, store=None):
        self.decode = decode
        self.cache = {}
        self.store = None if store is None else Path(store)
        self.stored = {}
        self.changed = False
        if self.store is not None and self.store.is_file():
            try:
                self.stored = json.loads(self.store.read_text())
            except (OSError, ValueError):
                self.stored = {}  # unreadable: measure again

    def get(self, path, start=None, stop=None):
        """Returns ``(measure, problem_kind, message)`` for a clip.

        Arguments
        ---------
        path : str
            An audio file.
        start, stop : float, optional
            A segment of it, in seconds.

        Returns
        -------
        tuple
            ``(AudioMeasure, None, None)`` if the clip can be read, else
            ``(None, kind, message)`` with the message ending in the path.
        """
        key = (path, start, stop)
        if key not in self.cache:
            self.cache[key] = self._stored_or_measured(path, start, stop)
        return self.cache[key]

    def _store_key(self, path, start, stop):
        """``(key, signature)`` of a clip in the store, or None."""
        try:
            info = os.stat(path)
        except OSError:
            return None
        key = f"{os.path.realpath(path)}|{start}|{stop}|{self.decode}"
        return key, [info.st_size, info.st_mtime_ns]

    def _stored_or_measured(self, path, start, stop):
        found = self._store_key(path, start, stop) if self.store else None
        if found is not None:
            key, signature = found
            kept = self.stored.get(key)
            if kept is not None and kept[0] == signature:
                return AudioMeasure(*kept[1]), None, None
        result = self._measure(path, start, stop)
        if found is not None and result[0] is not None:
            measure = result[0]
            self.stored[found[0]] = [
                found[1],
                [
                    measure.seconds,
                    measure.sample_rate,
                    measure.channels,
                    measure.nonfinite,
                    measure.rms,
                ],
            ]
            self.changed = True
        return result

    def save(self):
        """Writes the store (if any, and if it changed), atomically; in a
        multi-process run only the main process writes."""
        if self.store is not None and self.changed and if_main_process():
            write_json(self.store, self.stored, indent=None)
            self.changed = False

    def _measure(self, path, start, stop):
        if not path:
            return None, "missing_file", "is an empty path, expected a file"
        try:
            measure = measure_audio(path, start, stop, decode=self.decode)
        except FileNotFoundError:
            if os.path.exists(path):
                return None, "missing_file", f"is not a file ({path})"
            return None, "missing_file", f"audio file does not exist ({path})"
        except AudioError as err:
            message = str(err)
            if message.startswith(f"{path}: "):
                message = message[len(path) + 2 :]
            message = message.replace(f"'{path}'", "file")
            return None, err.kind, f"{message} ({path})"
        return measure, None, None


def _check_audio(eid, field, path, cache, problems, start=None, stop=None):
    """Checks one clip; returns its length in seconds or None if bad."""
    measure, kind, message = cache.get(path, start, stop)
    if measure is None:
        problems.append(Problem(eid, field, message, kind))
        return None
    if measure.nonfinite:
        problems.append(
            Problem(
                eid,
                field,
                f"holds {measure.nonfinite} non-finite (NaN/inf) samples, "
                f"expected finite audio ({path})",
                "nonfinite_audio",
            )
        )
        return None
    if measure.silent:
        problems.append(
            Problem(
                eid,
                field,
                f"is silent (RMS {measure.rms:.1e} < {SILENCE_RMS:g}), "
                f"expected a signal ({path})",
                "silent_audio",
            )
        )
        return None
    return measure.seconds


def _segment_bounds(eid, entry, problems):
    """Returns ``(start, stop)`` of an entry, or None if a bound is bad."""
    bounds = []
    ok = True
    for field in SEGMENT_FIELDS:
        value = entry.get(field)
        if value is not None and not (_is_number(value) and value >= 0):
            problems.append(
                Problem(
                    eid,
                    field,
                    f"is {value!r:.40}, expected a number of seconds >= 0 "
                    "(or no field)",
                    "bad_segment",
                )
            )
            ok = False
        bounds.append(value)
    return tuple(bounds) if ok else None


def _is_number(value):
    """True for int/float values that are finite (and not bools)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _check_entry(eid, entry, known, check_audio, gap, cache, max_seconds):
    """Returns the list of problems of one entry."""
    problems = []
    if not isinstance(entry, dict):
        problems.append(
            Problem(
                eid,
                "<entry>",
                f"is a JSON {type(entry).__name__}, expected an object "
                f"with fields {list(REQUIRED_FIELDS)}",
                "bad_entry",
            )
        )
        return problems
    missing = [f for f in REQUIRED_FIELDS if f not in entry]
    for field in missing:
        problems.append(
            Problem(eid, field, "required field is missing", "missing_field")
        )

    for field in ("task", "instruction", "target") + AUDIO_FIELDS:
        if field in entry and not isinstance(entry[field], str):
            if field == "wav2" and entry[field] is None:
                continue
            problems.append(
                Problem(
                    eid,
                    field,
                    f"is a {type(entry[field]).__name__} "
                    f"({entry[field]!r:.60}), expected a string",
                    "bad_type",
                )
            )

    task = entry.get("task")
    if isinstance(task, str) and known is not None and task not in known:
        problems.append(
            Problem(
                eid,
                "task",
                f"unknown task {task!r}, expected one of {sorted(known)}",
                "unknown_task",
            )
        )
    target = entry.get("target")
    if isinstance(target, str) and not target.strip():
        problems.append(
            Problem(
                eid,
                "target",
                "is empty, expected a non-empty string",
                "empty_target",
            )
        )
    instruction = entry.get("instruction")
    if isinstance(instruction, str):
        count = instruction.count(templates.AUDIO_MARKER)
        if count != 1:
            problems.append(
                Problem(
                    eid,
                    "instruction",
                    f"holds {count} {templates.AUDIO_MARKER} markers, "
                    f"expected exactly 1 ({instruction!r:.80})",
                    "audio_marker",
                )
            )
    duration = entry.get("duration")
    duration_ok = False
    if "duration" in entry:
        if not _is_number(duration) or duration <= 0:
            problems.append(
                Problem(
                    eid,
                    "duration",
                    f"is {duration!r:.40}, expected a positive number of "
                    "seconds",
                    "bad_type",
                )
            )
        else:
            duration_ok = True

    segment = _segment_bounds(eid, entry, problems)
    if not check_audio:
        return problems
    lengths = {}
    for field in AUDIO_FIELDS:
        path = entry.get(field)
        if isinstance(path, str) and (path or field == "wav"):
            if field == "wav" and segment is None:
                continue  # bad bounds, already reported
            bounds = segment if field == "wav" else (None, None)
            lengths[field] = _check_audio(
                eid, field, path, cache, problems, *bounds
            )
    first = lengths.get("wav")
    if first is None:
        return problems
    has_wav2 = bool(entry.get("wav2"))
    if has_wav2 and lengths.get("wav2") is None:
        return problems
    second = lengths.get("wav2")
    total = first if second is None else first + gap + second
    if max_seconds is not None and total > max_seconds:
        is_segment = any(v is not None for v in segment)
        what = "the segment" if is_segment else "the audio"
        if second is not None:
            what = f"the pair (wav + {gap:g} s gap + wav2)"
        problems.append(
            Problem(
                eid,
                "wav",
                f"{what} lasts {total:.2f} s, longer than "
                f"max_audio_seconds={max_seconds:g} ({entry['wav']})",
                "too_long",
            )
        )
    if duration_ok:
        what = "segment" if any(v is not None for v in segment) else "wav"
        allowed = {what: first}
        if second is not None:
            allowed[f"{what}+wav2"] = first + second
            allowed[f"{what} + {gap:g} s gap + wav2"] = total
        if all(
            abs(duration - value) > DURATION_TOLERANCE
            for value in allowed.values()
        ):
            lasts = " / ".join(f"{v:.2f} s ({k})" for k, v in allowed.items())
            problems.append(
                Problem(
                    eid,
                    "duration",
                    f"is {duration:.2f} s but the audio lasts {lasts}; "
                    f"expected within {DURATION_TOLERANCE} s "
                    f"({entry['wav']})",
                    "duration",
                )
            )
    return problems


def validate_manifest(
    path_or_dict,
    known_tasks=templates.KNOWN_TASKS,
    sample_rate=16000,
    replacements=None,
    check_audio=True,
    pair_gap_seconds=0.3,
    max_audio_seconds=DEFAULT_MAX_AUDIO_SECONDS,
    progress=None,
    cache=None,
    source=None,
):
    """Checks every entry of a manifest and collects all the problems.

    Checks: required fields (``wav``, ``duration``, ``task``,
    ``instruction``, ``target``) and their types; the task is known; the
    target is not empty; the instruction holds exactly one ``<audio>``
    marker; ``start``/``stop``, if given, are seconds >= 0. With
    ``check_audio``, that ``wav`` (its segment) and ``wav2`` exist and
    decode; that they hold samples, none of them NaN or infinite, and are
    not silent (RMS of the mono mix below ``SILENCE_RMS``); that the
    segment lies inside its file; that the audio the encoder will see
    (for pairs: ``wav`` + gap + ``wav2``) is at most ``max_audio_seconds``
    long; and that ``duration`` agrees with the audio within 0.1 s. For
    pairs, ``duration`` may be that of ``wav`` alone, of both clips, or of
    both clips with the ``pair_gap_seconds`` silence
    :func:`~audiollm_lobes.data.audio.read_example_audio` inserts. Any
    sample rate and channel count is accepted (audio is downmixed and
    resampled when read).

    Arguments
    ---------
    path_or_dict : str or os.PathLike or dict
        A manifest file, or already loaded entries.
    known_tasks : iterable of str or None
        Accepted task names (None accepts any); see
        :func:`audiollm_lobes.data.tasks.task_definitions` for tasks
        declared in hparams.
    sample_rate : int or None
        The rate the audio will be read at. Accepted for compatibility and
        not checked: every file rate is resampled to it on reading.
    replacements : dict, optional
        Placeholder values, e.g. ``{"data_root": "/data"}`` (applied to a
        copy when a dict is given).
    check_audio : bool or str
        True: decode the audio (every check above). ``"header"``: read
        file headers only (no non-finite or silence check; for corpora too
        large to decode at every start). False: fields only.
    pair_gap_seconds : float
        Gap between the clips of a pair, for the duration checks.
    max_audio_seconds : float or None
        Longest audio an example may have (None: no limit).
    progress : bool or None
        Show a progress bar over the entries; None: when audio is checked
        and the manifest has at least ``PROGRESS_MIN_ENTRIES`` entries.
    cache : AudioCheckCache, optional
        Measurements shared with other calls (each clip decoded once).
    source : str, optional
        Where a dict of entries came from (for the report and the progress
        bar); a manifest file names itself.

    Returns
    -------
    ValidationReport
        All problems found (``report.ok`` is True if none).

    Raises
    ------
    ManifestError
        Only if a manifest file cannot be loaded at all.

    Example
    -------
    >>> data = {
    ...     "good": {"wav": "x.wav", "duration": 1.0, "task": "asr",
    ...              "instruction": "<audio> Transcribe.", "target": "hi"},
    ...     "bad": {"wav": "x.wav", "duration": 1.0, "task": "dance",
    ...             "instruction": "Transcribe.", "target": " "},
    ... }
    >>> report = validate_manifest(data, check_audio=False)
    >>> print(report)  # doctest: +NORMALIZE_WHITESPACE
    Manifest: 1 of 2 entries have problems (3 problems: unknown_task 1,
    empty_target 1, audio_marker 1)
      bad: task: unknown task 'dance', expected one of ['asr', 'captioning',
      'emotion', 'slu', 'sound_event', 'speaker_verification', 'spoken_qa',
      'spoken_query_qa', 'translate_fr', 'translate_zh']
      bad: target: is empty, expected a non-empty string
      bad: instruction: holds 0 <audio> markers, expected exactly 1
      ('Transcribe.')
    """
    if check_audio not in (True, False, "header"):
        raise ValueError(
            f"check_audio is {check_audio!r}, expected True, False or 'header'"
        )
    if max_audio_seconds is not None and not (
        _is_number(max_audio_seconds) and max_audio_seconds > 0
    ):
        raise ValueError(
            f"max_audio_seconds is {max_audio_seconds!r}, expected a "
            "positive number of seconds or None"
        )
    if isinstance(path_or_dict, dict):
        data = path_or_dict
        if replacements:
            data = copy.deepcopy(data)
            _apply_replacements(data, replacements, "manifest entries")
    else:
        source = os.fspath(path_or_dict)
        data = load_manifest(source, replacements)
    known = None if known_tasks is None else set(known_tasks)
    if cache is None:
        cache = AudioCheckCache(decode=check_audio is True)
    problems = []
    if not data:
        problems.append(
            Problem(MANIFEST_ID, "", "holds no entries", "empty_manifest")
        )
    if progress is None:
        progress = bool(check_audio) and len(data) >= PROGRESS_MIN_ENTRIES
    items = tqdm(
        data.items(),
        total=len(data),
        desc=f"checking {source or 'manifest'}",
        unit="entry",
        disable=not progress,
    )
    for eid, entry in items:
        problems.extend(
            _check_entry(
                eid,
                entry,
                known,
                bool(check_audio),
                pair_gap_seconds,
                cache,
                max_audio_seconds,
            )
        )
    return ValidationReport(problems, n_entries=len(data), source=source)


def filter_manifest(data, report):
    """Returns the entries of ``data`` that have no problem in ``report``.

    Arguments
    ---------
    data : dict
        ``{example_id: entry}``.
    report : ValidationReport
        The report of ``data``.

    Returns
    -------
    dict
        A new dict without the bad ids (order kept).

    Example
    -------
    >>> report = ValidationReport([Problem("b", "wav", "gone")], 2)
    >>> filter_manifest({"a": {}, "b": {}}, report)
    {'a': {}}
    """
    bad = report.bad_ids
    return {k: v for k, v in data.items() if k not in bad}


def check_manifests(
    paths,
    on_bad_example="error",
    known_tasks=templates.KNOWN_TASKS,
    sample_rate=16000,
    replacements=None,
    check_audio=True,
    pair_gap_seconds=0.3,
    max_audio_seconds=DEFAULT_MAX_AUDIO_SECONDS,
    progress=None,
    audio_check_store=None,
):
    """Loads and validates several manifests before a run.

    Arguments
    ---------
    paths : list of (str or os.PathLike)
        Manifest files (a single path is accepted too).
    on_bad_example : str
        ``"error"``: raise one :class:`ManifestError` listing every problem
        of every file. ``"skip"``: log a warning with the reports and drop
        the bad entries (a file left with no entry is still an error).
    known_tasks, sample_rate, replacements, check_audio, pair_gap_seconds
        As for :func:`validate_manifest`.
    max_audio_seconds, progress
        As for :func:`validate_manifest`. Audio shared by several files is
        decoded once.
    audio_check_store : str or os.PathLike, optional
        A JSON file keeping the measures of readable clips between runs
        (see :class:`AudioCheckCache`): a later run decodes only new or
        changed files.

    Returns
    -------
    dict
        ``{path: entries}``: the (good) entries of each file, keyed by the
        path as given (``os.fspath``), in the order of ``paths``.

    Raises
    ------
    ManifestError
        If a file cannot be loaded, or with ``"error"`` if any entry is bad.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.json")
    >>> entry = {"wav": "x.wav", "duration": 1.0, "task": "asr",
    ...          "instruction": "<audio> Transcribe.", "target": "hi"}
    >>> with open(path, "w") as f:
    ...     json.dump({"a": entry, "b": dict(entry, task="?")}, f)
    >>> good = check_manifests([path], "skip", check_audio=False)
    >>> list(good[path])
    ['a']
    """
    if on_bad_example not in ("error", "skip"):
        raise ValueError(
            f"on_bad_example is {on_bad_example!r}, expected 'error' or 'skip'"
        )
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    loaded, reports, load_errors = [], [], []
    cache = AudioCheckCache(decode=check_audio is True, store=audio_check_store)
    for path in paths:
        try:
            data = load_manifest(path, replacements)
        except ManifestError as err:
            load_errors.append(str(err))
            loaded.append(None)
            reports.append(None)
            continue
        report = validate_manifest(
            data,
            known_tasks=known_tasks,
            sample_rate=sample_rate,
            check_audio=check_audio,
            pair_gap_seconds=pair_gap_seconds,
            max_audio_seconds=max_audio_seconds,
            progress=progress,
            cache=cache,
            source=os.fspath(path),
        )
        loaded.append(data)
        reports.append(report)
    cache.save()
    bad_reports = [r for r in reports if r is not None and not r.ok]
    if on_bad_example == "error":
        if load_errors or bad_reports:
            parts = load_errors + [r.format() for r in bad_reports]
            raise ManifestError(
                "bad manifests (set on_bad_example: skip to drop bad "
                "examples instead):\n" + "\n".join(parts)
            )
        return {r.source: data for r, data in zip(reports, loaded)}
    if load_errors:
        raise ManifestError("\n".join(load_errors))
    out = {}
    for data, report in zip(loaded, reports):
        good = filter_manifest(data, report)
        if not report.ok:
            logger.warning(
                "skipping %d of %d examples (on_bad_example: skip)\n%s",
                len(data) - len(good),
                len(data),
                report.format(),
            )
        if not good:
            raise ManifestError(
                f"manifest {report.source}: no valid entry left after "
                f"skipping bad examples\n{report.format()}"
            )
        out[report.source] = good
    return out
