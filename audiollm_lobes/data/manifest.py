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
``instruction`` (exactly one ``<audio>`` marker) and ``target``. ``wav2``
is an optional second clip (speaker-verification pairs); other fields are
free metadata. String values may hold ``{name}`` placeholders that are
filled from ``replacements`` exactly as SpeechBrain's ``load_data_json``
does (``str.format_map``), so a manifest can say ``{data_root}``.

Manifests are validated before training (:func:`validate_manifest`,
:func:`check_manifests`): every problem of every entry is collected and
reported together with its example id, then the run stops
(``on_bad_example="error"``) or drops the bad entries (``"skip"``).

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

import soundfile as sf

from audiollm_lobes.data import templates

logger = logging.getLogger(__name__)

REQUIRED_FIELDS = ("wav", "duration", "task", "instruction", "target")
AUDIO_FIELDS = ("wav", "wav2")
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


_Header = collections.namedtuple("_Header", "frames samplerate channels")


class _AudioInfoCache:
    """Reads audio headers once per path and describes what is wrong."""

    def __init__(self):
        self.cache = {}

    def get(self, path):
        """Returns ``(info, problem_kind, message)`` for a path."""
        if path not in self.cache:
            self.cache[path] = self._read(path)
        return self.cache[path]

    @staticmethod
    def _read(path):
        if not path:
            return None, "missing_file", "is an empty path, expected a file"
        if not os.path.isfile(path):
            if os.path.exists(path):
                return None, "missing_file", f"is not a file ({path})"
            return None, "missing_file", f"audio file does not exist ({path})"
        try:
            # Header only, like soundfile.info but without its formatting
            # of format names (20% faster on 20k files).
            with sf.SoundFile(path) as f:
                info = _Header(f.frames, f.samplerate, f.channels)
        except (sf.SoundFileError, RuntimeError, OSError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            first = first.replace(f"'{path}'", "file")
            return (
                None,
                "unreadable_audio",
                f"cannot read audio: {first} ({path})",
            )
        return info, None, None


def _check_audio(eid, field, path, cache, sample_rate, problems):
    """Checks one audio file; returns its duration in seconds or None."""
    info, kind, message = cache.get(path)
    if info is None:
        problems.append(Problem(eid, field, message, kind))
        return None
    ok = True
    if info.frames <= 0:
        problems.append(
            Problem(
                eid,
                field,
                f"audio is empty (0 samples) ({path})",
                "empty_audio",
            )
        )
        ok = False
    if sample_rate is not None and info.samplerate != sample_rate:
        problems.append(
            Problem(
                eid,
                field,
                f"sample rate is {info.samplerate} Hz, expected "
                f"{sample_rate} Hz ({path})",
                "sample_rate",
            )
        )
        ok = False
    if info.channels != 1:
        problems.append(
            Problem(
                eid,
                field,
                f"has {info.channels} channels, expected mono (1 channel) "
                f"({path})",
                "channels",
            )
        )
        ok = False
    return info.frames / info.samplerate if ok else None


def _is_number(value):
    """True for int/float values that are finite (and not bools)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _check_entry(eid, entry, known, sample_rate, check_audio, gap, cache):
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

    if not check_audio:
        return problems
    lengths = {}
    for field in AUDIO_FIELDS:
        path = entry.get(field)
        if isinstance(path, str) and (path or field == "wav"):
            lengths[field] = _check_audio(
                eid, field, path, cache, sample_rate, problems
            )
    if duration_ok and lengths.get("wav") is not None:
        first = lengths["wav"]
        allowed = {"wav": first}
        if lengths.get("wav2") is not None:
            allowed["wav+wav2"] = first + lengths["wav2"]
            allowed[f"wav + {gap:g} s gap + wav2"] = (
                first + gap + lengths["wav2"]
            )
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
):
    """Checks every entry of a manifest and collects all the problems.

    Checks: required fields (``wav``, ``duration``, ``task``,
    ``instruction``, ``target``) and their types; the task is known; the
    target is not empty; the instruction holds exactly one ``<audio>``
    marker; and, with ``check_audio``, that ``wav`` (and ``wav2`` if given)
    exists, is readable (header only, via ``soundfile``), is not empty,
    is mono at ``sample_rate``, and that ``duration`` agrees with the file
    within 0.1 s. For pairs, ``duration`` may be that of ``wav`` alone, of
    both clips, or of both clips with the ``pair_gap_seconds`` silence
    :func:`~audiollm_lobes.data.audio.read_example_audio` inserts.

    Arguments
    ---------
    path_or_dict : str or os.PathLike or dict
        A manifest file, or already loaded entries.
    known_tasks : iterable of str or None
        Accepted task names (None accepts any).
    sample_rate : int or None
        Expected sample rate in Hz (None accepts any).
    replacements : dict, optional
        Placeholder values, e.g. ``{"data_root": "/data"}`` (applied to a
        copy when a dict is given).
    check_audio : bool
        If False, audio files are not looked at (only fields are checked).
    pair_gap_seconds : float
        Gap between the clips of a pair, for the duration check.

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
    source = None
    if isinstance(path_or_dict, dict):
        data = path_or_dict
        if replacements:
            data = copy.deepcopy(data)
            _apply_replacements(data, replacements, "manifest entries")
    else:
        source = os.fspath(path_or_dict)
        data = load_manifest(source, replacements)
    known = None if known_tasks is None else set(known_tasks)
    cache = _AudioInfoCache()
    problems = []
    if not data:
        problems.append(
            Problem(MANIFEST_ID, "", "holds no entries", "empty_manifest")
        )
    for eid, entry in data.items():
        problems.extend(
            _check_entry(
                eid,
                entry,
                known,
                sample_rate,
                check_audio,
                pair_gap_seconds,
                cache,
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
        )
        report.source = os.fspath(path)
        loaded.append(data)
        reports.append(report)
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
