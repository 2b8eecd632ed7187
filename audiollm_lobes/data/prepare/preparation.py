"""What every preparation script shares.

A preparation script reads a corpus in its official layout and writes
this project's manifests (``docs/data.md``; the schema is in
:mod:`audiollm_lobes.data.manifest`). This module holds the parts common
to all of them:

- **missing or partial corpora** are reported in one
  :class:`CorpusError` that lists every missing folder, metadata file or
  audio file (the first few, and how many) and what was expected;
- **entries**: :func:`make_entry` builds one manifest entry with an
  instruction chosen deterministically from the example id among the
  task's paraphrases (:func:`choose_instruction`); :func:`audio_info`
  reads a file's duration, rate and channels from its header;
- **writing**: :class:`ManifestSet` collects a corpus's entries per split
  and task; :func:`run_preparation` skips when the same preparation was
  already done, otherwise writes each ``manifests/<split>/<task>.json``
  atomically (``audiollm_lobes/atomic.py``), keeping the entries other
  corpora put in the same file, and records what it did in
  ``manifests/.prepared/<corpus>.json`` (written last, so an interrupted
  preparation is redone). It runs on the main process only
  (SpeechBrain's ``run_on_main``);
- **the command line** of every script (:func:`command_line`), made from
  the signature of its ``prepare_<corpus>`` function.

Manifest strings are formatted with ``str.format_map`` when loaded (for
``{data_root}``), so literal braces in corpus text are doubled when
written. Audio paths are written absolute: the corpus stays where it is.

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import collections
import contextlib
import hashlib
import inspect
import json
import logging
import os
import re
import sys
from pathlib import Path

import soundfile as sf
from speechbrain.utils.distributed import run_on_main

from audiollm_lobes.atomic import write_json
from audiollm_lobes.data import templates

logger = logging.getLogger(__name__)

#: Folder of ``save_folder`` holding ``<split>/<task>.json``.
MANIFEST_FOLDER = "manifests"
#: Folder (inside the manifest folder) of the preparation records.
RECORD_FOLDER = ".prepared"
#: How many missing files a message lists by name.
MAX_LISTED = 10
#: Accepted values of ``missing_audio``.
MISSING_AUDIO_CHOICES = ("error", "skip")
_PLACEHOLDER = re.compile(r"<(\w+)>")


class CorpusError(FileNotFoundError):
    """A corpus folder is missing or incomplete (names what is missing).

    Example
    -------
    >>> issubclass(CorpusError, FileNotFoundError)
    True
    """


class PreparationError(ValueError):
    """A corpus file is there but malformed (names the file and line).

    Example
    -------
    >>> issubclass(PreparationError, ValueError)
    True
    """


# ############################ Corpus layout #################################


def find_folder(data_folder, name):
    """Returns ``data_folder/name`` if it exists, else ``data_folder``.

    Users point ``data_folder`` at the corpus folder itself or at the
    folder that holds it (``/corpora`` or ``/corpora/LibriSpeech``).

    Arguments
    ---------
    data_folder : str or os.PathLike
        What the user gave.
    name : str
        The corpus's own top folder name (``"LibriSpeech"``).

    Returns
    -------
    pathlib.Path
        The absolute folder to read.

    Example
    -------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "LibriSpeech").mkdir()
    >>> find_folder(root, "LibriSpeech").name
    'LibriSpeech'
    >>> find_folder(root / "LibriSpeech", "LibriSpeech").name
    'LibriSpeech'
    """
    folder = Path(data_folder).expanduser().absolute()
    inner = folder / name
    return inner if inner.is_dir() else folder


def listing(items, limit=MAX_LISTED):
    """Formats a list of names as indented lines, the first ``limit`` ones.

    Arguments
    ---------
    items : list of str
        Names (paths, ids).
    limit : int
        Most names shown; the rest are counted.

    Returns
    -------
    str
        One ``"  - name"`` line per name shown, plus ``"  ... and N more"``.

    Example
    -------
    >>> print(listing(["a", "b", "c"], limit=2))
      - a
      - b
      ... and 1 more
    """
    items = list(items)
    lines = [f"  - {item}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"  ... and {len(items) - limit} more")
    return "\n".join(lines)


def require_paths(corpus, root, expected, hint=""):
    """Checks that a corpus holds the given files and folders.

    Arguments
    ---------
    corpus : str
        Corpus name, for the message.
    root : str or os.PathLike
        The corpus folder.
    expected : dict
        ``{relative path: what it is}``; a path ending in ``/`` must be a
        folder, any other a file.
    hint : str
        Added to the message (where to get the corpus, which option
        changes the expected layout...).

    Raises
    ------
    CorpusError
        One message listing everything missing, with what was expected.

    Example
    -------
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> require_paths("Toy", root, {"meta/labels.csv": "the labels",
    ...                             "audio/": "the clips"})
    ... # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
     ...
    audiollm_lobes.data.prepare.preparation.CorpusError: Toy corpus at ...
    is incomplete: 2 of 2 expected paths are missing:
      - meta/labels.csv (file: the labels)
      - audio/ (folder: the clips)
    """
    root = Path(root)
    missing = []
    for rel, what in expected.items():
        path = root / rel.rstrip("/")
        is_dir = rel.endswith("/")
        ok = path.is_dir() if is_dir else path.is_file()
        if not ok:
            kind = "folder" if is_dir else "file"
            missing.append(f"{rel} ({kind}: {what})")
    if missing:
        message = (
            f"{corpus} corpus at {root} is incomplete: {len(missing)} of "
            f"{len(expected)} expected paths are missing:\n{listing(missing)}"
        )
        if not root.is_dir():
            message = (
                f"{corpus} corpus folder {root} does not exist; expected "
                f"it to hold:\n{listing(missing)}"
            )
        if hint:
            message += f"\n{hint}"
        raise CorpusError(message)


def check_missing_audio(corpus, missing, total, missing_audio="error"):
    """Reports the audio files named by a corpus's metadata but absent.

    Arguments
    ---------
    corpus : str
        Corpus name, for the message.
    missing : list of str
        The absent files.
    total : int
        How many files the metadata names.
    missing_audio : str
        ``"error"``: any missing file is an error; ``"skip"``: the
        examples are dropped with a warning (all missing is still an
        error).

    Raises
    ------
    CorpusError
        Listing the missing files.

    Example
    -------
    >>> check_missing_audio("Toy", [], 3)
    >>> check_missing_audio("Toy", ["/x/a.wav"], 3, "skip")
    >>> check_missing_audio("Toy", ["/x/a.wav"], 3)
    ... # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
     ...
    audiollm_lobes.data.prepare.preparation.CorpusError: Toy: 1 of the 3
    audio files named by the metadata are missing (missing_audio='skip'
    drops their examples instead):
      - /x/a.wav
    """
    if missing_audio not in MISSING_AUDIO_CHOICES:
        raise ValueError(
            f"missing_audio is {missing_audio!r}, expected one of "
            f"{MISSING_AUDIO_CHOICES}"
        )
    if not missing:
        return
    head = (
        f"{corpus}: {len(missing)} of the {total} audio files named by the "
        "metadata are missing"
    )
    if missing_audio == "error" or len(missing) >= total:
        tail = (
            " (missing_audio='skip' drops their examples instead)"
            if len(missing) < total
            else ""
        )
        raise CorpusError(f"{head}{tail}:\n{listing(missing)}")
    logger.warning(
        "%s; their examples are skipped:\n%s", head, listing(missing)
    )


# ############################## Entries #####################################

AudioInfo = collections.namedtuple(
    "AudioInfo", "duration sample_rate channels frames"
)


def audio_info(path):
    """Reads an audio file's header (any format libsndfile reads: wav,
    flac, mp3 with libsndfile >= 1.1).

    Arguments
    ---------
    path : str or os.PathLike
        The file.

    Returns
    -------
    AudioInfo
        ``(duration in s, sample_rate in Hz, channels, frames)``.

    Raises
    ------
    PreparationError
        If the file cannot be read or holds no sample.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.zeros((441, 2)), 44100)
    >>> audio_info(path)
    AudioInfo(duration=0.01, sample_rate=44100, channels=2, frames=441)
    """
    path = os.fspath(path)
    try:
        with sf.SoundFile(path) as f:
            frames, rate, channels = f.frames, f.samplerate, f.channels
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise PreparationError(
            f"{path}: cannot read the audio header ({first})"
        ) from None
    if frames <= 0 or rate <= 0:
        raise PreparationError(f"{path}: audio is empty (0 samples)")
    return AudioInfo(frames / rate, rate, channels, frames)


def stable_fraction(key):
    """A number in ``[0, 1)`` fixed by a string (same on every machine).

    Used to choose instructions and to hold out validation examples
    deterministically, independently of file order.

    Arguments
    ---------
    key : str
        Any string (an example id).

    Returns
    -------
    float
        From the MD5 digest of ``key``.

    Example
    -------
    >>> stable_fraction("a") == stable_fraction("a")
    True
    >>> 0.0 <= stable_fraction("Ses01F_impro01_F000") < 1.0
    True
    """
    digest = hashlib.md5(key.encode("utf-8")).hexdigest()
    return int(digest[:13], 16) / float(16**13)


def choose_instruction(task, example_id, **fields):
    """The task's paraphrased instruction chosen by the example id.

    Arguments
    ---------
    task : str
        A task of ``templates.AUDIO_INSTRUCTIONS``.
    example_id : str
        The manifest id; the same id always gets the same instruction.
    **fields : str
        Placeholder values (``question=...`` for spoken QA).

    Returns
    -------
    str
        The instruction, with one ``<audio>`` marker.

    Example
    -------
    >>> ins = choose_instruction("asr", "librispeech_1089-134686-0000")
    >>> ins in templates.AUDIO_INSTRUCTIONS["asr"]
    True
    >>> choose_instruction("spoken_qa", "q1", question="who?").count("who?")
    1
    """
    if task not in templates.AUDIO_INSTRUCTIONS:
        raise KeyError(
            f"unknown task {task!r}; expected one of "
            f"{sorted(templates.AUDIO_INSTRUCTIONS)}"
        )
    options = templates.AUDIO_INSTRUCTIONS[task]
    index = int(stable_fraction(f"{task}/{example_id}") * len(options))
    template = options[index]
    needed = [
        name
        for name in _PLACEHOLDER.findall(template)
        if f"<{name}>" != templates.AUDIO_MARKER and name not in fields
    ]
    if needed:
        raise KeyError(
            f"instructions of task {task!r} need the fields {needed} "
            f"(example {example_id!r})"
        )
    instruction = templates.fill(template, **fields)
    return instruction


def make_entry(task, example_id, wav, duration, target, **metadata):
    """One manifest entry, with its instruction chosen by its id.

    Arguments
    ---------
    task : str
        Task name.
    example_id : str
        The manifest id (used to choose the instruction).
    wav : str or os.PathLike
        The audio file (made absolute).
    duration : float
        Seconds of audio the example uses (the segment for ``start`` /
        ``stop``).
    target : str
        The answer.
    **metadata
        Other fields: ``wav2``, ``start``, ``stop``, ``question``,
        ``speaker``... (values of ``None`` are left out). ``question``
        fills the ``<question>`` placeholder of spoken-QA instructions.

    Returns
    -------
    dict
        The entry.

    Example
    -------
    >>> entry = make_entry("sound_event", "esc50_1-100032-A-0", "/c/a.wav",
    ...                    5.0, "dog", fold=1)
    >>> sorted(entry)
    ['duration', 'fold', 'instruction', 'target', 'task', 'wav']
    >>> entry["instruction"].count("<audio>")
    1
    """
    target = str(target).strip()
    if not target:
        raise PreparationError(f"{example_id}: empty target")
    fields = {}
    if "question" in metadata:
        fields["question"] = metadata["question"]
    entry = {"wav": os.path.abspath(os.fspath(wav))}
    for key in ("start", "stop"):
        if metadata.get(key) is not None:
            entry[key] = round(float(metadata.pop(key)), 6)
    entry["duration"] = round(float(duration), 6)
    entry["task"] = task
    entry["instruction"] = choose_instruction(task, example_id, **fields)
    entry["target"] = target
    for key, value in metadata.items():
        if value is None:
            continue
        if key == "wav2":
            value = os.path.abspath(os.fspath(value))
        entry[key] = value
    return entry


def escape_braces(value):
    """Doubles ``{`` and ``}`` in every string of a JSON value.

    Manifest strings are formatted with ``str.format_map`` when loaded, so
    a literal brace in a transcript must be written doubled.

    Arguments
    ---------
    value : object
        A JSON value (dict, list, str, number...).

    Returns
    -------
    object
        A copy with every string escaped.

    Example
    -------
    >>> escape_braces({"target": "a {b}", "n": [1, "}"]})
    {'target': 'a {{b}}', 'n': [1, '}}']}
    """
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    if isinstance(value, dict):
        return {k: escape_braces(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_braces(v) for v in value]
    return value


class ManifestSet:
    """The entries of one corpus, per split and task, before writing.

    Arguments
    ---------
    corpus : str
        Corpus name (stored in every entry as ``corpus``: a task file can
        hold several corpora, and preparing one again replaces only its
        own entries).

    Example
    -------
    >>> manifests = ManifestSet("esc50")
    >>> manifests.add("train", "esc50_a", {"task": "sound_event"})
    >>> manifests.counts()
    {'train': {'sound_event': 1}}
    >>> manifests.add("test", "esc50_a", {"task": "sound_event"})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
     ...
    audiollm_lobes...PreparationError: esc50: example id 'esc50_a' is ...
    """

    def __init__(self, corpus):
        self.corpus = corpus
        self.entries = {}
        self._where = {}

    def add(self, split, example_id, entry):
        """Adds one entry (ids must be unique over all splits and tasks).

        Arguments
        ---------
        split : str
            ``train``, ``valid`` or ``test``.
        example_id : str
            The manifest id.
        entry : dict
            From :func:`make_entry` (its ``task`` names the file).
        """
        task = entry["task"]
        where = f"{split}/{task}"
        if example_id in self._where:
            raise PreparationError(
                f"{self.corpus}: example id {example_id!r} is produced "
                f"twice ({self._where[example_id]} and {where})"
            )
        self._where[example_id] = where
        entry = dict(entry, corpus=self.corpus)
        self.entries.setdefault(split, {}).setdefault(task, {})
        self.entries[split][task][example_id] = entry

    def counts(self):
        """``{split: {task: number of entries}}``."""
        return {
            split: {task: len(e) for task, e in tasks.items()}
            for split, tasks in self.entries.items()
        }

    def __len__(self):
        return len(self._where)


# ############################## Writing #####################################


def manifest_path(save_folder, split, task):
    """``<save_folder>/manifests/<split>/<task>.json``.

    Example
    -------
    >>> str(manifest_path("/d", "train", "asr"))
    '/d/manifests/train/asr.json'
    """
    return Path(save_folder) / MANIFEST_FOLDER / split / f"{task}.json"


def record_path(save_folder, corpus):
    """Where the record of a corpus's preparation is kept.

    Example
    -------
    >>> str(record_path("/d", "esc50"))
    '/d/manifests/.prepared/esc50.json'
    """
    return (
        Path(save_folder) / MANIFEST_FOLDER / RECORD_FOLDER / f"{corpus}.json"
    )


def read_record(save_folder, corpus):
    """The record of an earlier preparation, or None.

    Returns
    -------
    dict or None
        ``{"options": {...}, "outputs": {split: {task: count}}}``.
    """
    path = record_path(save_folder, corpus)
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError):
        logger.warning("ignoring an unreadable preparation record %s", path)
        return None


def _outputs_to_paths(save_folder, outputs):
    return {
        split: {
            task: str(manifest_path(save_folder, split, task)) for task in tasks
        }
        for split, tasks in outputs.items()
    }


def is_prepared(save_folder, corpus, options):
    """True if ``corpus`` was prepared into ``save_folder`` with the same
    options and every manifest file it wrote still exists.

    Arguments
    ---------
    save_folder : str or os.PathLike
        Where the manifests are.
    corpus : str
        Corpus name.
    options : dict
        The preparation's options (JSON values).

    Returns
    -------
    bool

    Example
    -------
    >>> import tempfile
    >>> is_prepared(tempfile.mkdtemp(), "esc50", {})
    False
    """
    record = read_record(save_folder, corpus)
    if record is None or record.get("options") != _jsonable(options):
        return False
    paths = _outputs_to_paths(save_folder, record.get("outputs", {}))
    return all(Path(p).is_file() for t in paths.values() for p in t.values())


def _jsonable(options):
    """Options as they read back from JSON (tuples become lists...)."""
    return json.loads(json.dumps(options, default=str))


def _read_raw(path):
    """A manifest file's entries as stored (placeholders unformatted)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PreparationError(
            f"{path}: existing manifest is not valid JSON ({err}); remove "
            "it or choose another save_folder"
        ) from None
    if not isinstance(data, dict):
        raise PreparationError(f"{path}: existing manifest is not an object")
    return data


def write_manifests(save_folder, manifests, options, previous=None):
    """Writes a corpus's manifests, keeping other corpora's entries.

    Every file is written atomically. The record of the preparation is
    removed first and written last, so that an interrupted run is redone.

    Arguments
    ---------
    save_folder : str or os.PathLike
        Where ``manifests/`` goes.
    manifests : ManifestSet
        The entries.
    options : dict
        The options recorded (for :func:`is_prepared`).
    previous : dict, optional
        The record of an earlier preparation of the same corpus: its
        entries are removed from files this one no longer writes.

    Returns
    -------
    dict
        ``{split: {task: path}}`` of the files written.
    """
    corpus = manifests.corpus
    record = record_path(save_folder, corpus)
    if record.exists():
        record.unlink()
    touched = {
        (split, task)
        for split, tasks in manifests.entries.items()
        for task in tasks
    }
    stale = set()
    if previous:
        stale = {
            (split, task)
            for split, tasks in previous.get("outputs", {}).items()
            for task in tasks
        } - touched
    for split, task in sorted(touched | stale):
        path = manifest_path(save_folder, split, task)
        kept = {}
        if path.is_file():
            kept = {
                k: v
                for k, v in _read_raw(path).items()
                if not (isinstance(v, dict) and v.get("corpus") == corpus)
            }
        new = manifests.entries.get(split, {}).get(task, {})
        clash = sorted(set(kept) & set(new))
        if clash:
            raise PreparationError(
                f"{path}: ids {clash[:5]} of {corpus} are already used by "
                "another corpus's entries in this file"
            )
        merged = dict(kept)
        merged.update(escape_braces(new))
        if merged:
            write_json(path, merged)
        elif path.is_file():
            path.unlink()
    write_json(
        record,
        {"options": _jsonable(options), "outputs": manifests.counts()},
    )
    return _outputs_to_paths(save_folder, manifests.counts())


@contextlib.contextmanager
def _save_folder_lock(save_folder):
    """Serialises preparations into one save folder (POSIX file lock)."""
    folder = Path(save_folder) / MANIFEST_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(folder / ".prepare.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _prepare_on_main(corpus, save_folder, options, build):
    with _save_folder_lock(save_folder):
        if is_prepared(save_folder, corpus, options):
            logger.info(
                "%s is already prepared in %s with the same options; skipping",
                corpus,
                save_folder,
            )
            return
        previous = read_record(save_folder, corpus)
        manifests = build()
        if not len(manifests):
            raise PreparationError(
                f"{corpus}: the preparation produced no example"
            )
        write_manifests(save_folder, manifests, options, previous)
        logger.info(
            "%s prepared into %s: %s", corpus, save_folder, manifests.counts()
        )


def run_preparation(corpus, save_folder, options, build, skip_prep=False):
    """Runs a corpus's preparation unless it was done already.

    On the main process only (``run_on_main``; the others wait), under a
    file lock on ``save_folder``.

    Arguments
    ---------
    corpus : str
        Corpus name (the record's name and every entry's ``corpus``).
    save_folder : str or os.PathLike
        Where ``manifests/`` goes.
    options : dict
        The preparation's options (JSON values); a different set of
        options prepares again.
    build : callable
        ``build() -> ManifestSet``: reads the corpus.
    skip_prep : bool
        If True, nothing is done (the manifests are assumed to exist).

    Returns
    -------
    dict
        ``{split: {task: path}}`` of the corpus's manifest files (empty
        with ``skip_prep`` if the corpus was never prepared).

    Example
    -------
    >>> import tempfile
    >>> def build():
    ...     m = ManifestSet("toy")
    ...     m.add("test", "toy_a", make_entry("sound_event", "toy_a",
    ...           "/c/a.wav", 1.0, "dog"))
    ...     return m
    >>> folder = tempfile.mkdtemp()
    >>> paths = run_preparation("toy", folder, {"x": 1}, build)
    >>> list(paths["test"])
    ['sound_event']
    >>> is_prepared(folder, "toy", {"x": 1}), is_prepared(folder, "toy", {})
    (True, False)
    """
    save_folder = Path(save_folder).expanduser().absolute()
    if not skip_prep:
        run_on_main(
            _prepare_on_main, args=[corpus, save_folder, options, build]
        )
    record = read_record(save_folder, corpus)
    if record is None:
        return {}
    return _outputs_to_paths(save_folder, record.get("outputs", {}))


# ############################ Command line ##################################


def _to_bool(text):
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "y", "on"):
        return True
    if value in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _first_paragraph(doc):
    return (inspect.cleandoc(doc or "").split("\n\n") or [""])[0]


def command_line(prepare, argv=None):
    """Runs ``prepare`` with options parsed from the command line.

    Every parameter of ``prepare`` becomes ``--<name>``: parameters
    without a default are required; the type follows the default (a
    list default takes several values, a bool one ``true``/``false``).

    Arguments
    ---------
    prepare : callable
        A ``prepare_<corpus>`` function.
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    dict
        What ``prepare`` returns.

    Raises
    ------
    SystemExit
        With the message of a missing or malformed corpus (status 1) or
        of bad options (status 2).

    Example
    -------
    >>> def prepare_toy(data_folder, save_folder, folds=(1, 2), dry=False):
    ...     return data_folder, folds, dry
    >>> command_line(prepare_toy, ["--data_folder", "/c", "--save_folder",
    ...              "/s", "--folds", "3", "4", "--dry", "true"])
    ('/c', [3, 4], True)
    """
    module = prepare.__module__
    spec = getattr(sys.modules.get(module), "__spec__", None)
    if module == "__main__" and spec is not None:
        module = spec.name
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=_first_paragraph(prepare.__doc__)
        + f" See the docstring of {module}.{prepare.__name__} and "
        "docs/data.md.",
    )
    for name, param in inspect.signature(prepare).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        flag = f"--{name}"
        default = param.default
        if default is param.empty:
            parser.add_argument(flag, required=True)
        elif isinstance(default, bool):
            parser.add_argument(
                flag, type=_to_bool, default=default, metavar="true|false"
            )
        elif isinstance(default, (list, tuple)):
            kind = type(default[0]) if default else str
            parser.add_argument(flag, type=kind, nargs="*", default=default)
        elif default is None:
            parser.add_argument(flag, default=None)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return prepare(**vars(args))
    except (CorpusError, PreparationError) as err:
        parser.exit(1, f"{type(err).__name__}: {err}\n")
