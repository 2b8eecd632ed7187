"""LibriSQA (spoken QA on LibriSpeech audio) -> ``spoken_qa`` manifests.

LibriSQA pairs LibriSpeech utterances with questions and answers about
what is said; the QA files come from the Hugging Face dataset
``ZihanZhao/LibriSQA``, the audio from LibriSpeech (``train-clean-360``
for train, ``test-clean`` for test). Layout read::

    <data_folder>/LibriSQA-PartI/LibriSQA-PartI-train.json
    <data_folder>/LibriSQA-PartI/LibriSQA-PartI-test.json
    <librispeech_folder>/<subset>/<speaker>/<chapter>/<utt>.flac

Each QA file is a JSON list of objects with the utterance (a path or id
whose last part is ``<speaker>-<chapter>-<utt>``, with or without
``.flac``), the question and the answer. The field names default to
``speech_path``, ``question`` and ``answer``; **they were not checked
against the released files**: set ``audio_field`` / ``question_field`` /
``answer_field`` if yours differ (a missing field is reported with the
fields the file does have). The utterance is looked up by its id in any
subset of ``librispeech_folder``.

Splits: the test file -> test; of the train file a fixed fraction of
examples (by a hash of the id) -> valid, the rest -> train. Ids are
``librisqa_<part>_<utt>_<k>``, ``k`` counting the questions about one
utterance. The instruction holds the question (``<audio> Question:
<question>``) and the entry keeps it in ``question``.

Command line::

    python -m audiollm_lobes.data.prepare.librisqa --data_folder \\
        /corpora/LibriSQA --librispeech_folder /corpora/LibriSpeech \\
        --save_folder /data/prepared

Authors
 * audiollm-lobes developers, 2026
"""

import json
from pathlib import Path

from audiollm_lobes.data.prepare.preparation import (
    CorpusError,
    ManifestSet,
    PreparationError,
    audio_info,
    command_line,
    find_folder,
    listing,
    make_entry,
    require_paths,
    run_preparation,
    stable_fraction,
)

CORPUS = "librisqa"
TASK = "spoken_qa"
PARTS = ("I", "II")


def utterance_id(value):
    """The LibriSpeech utterance id in a path or id.

    Example
    -------
    >>> utterance_id("train-clean-360/14/208/14-208-0000.flac")
    '14-208-0000'
    >>> utterance_id("14-208-0000")
    '14-208-0000'
    """
    name = str(value).replace("\\", "/").rsplit("/", 1)[-1]
    for ext in (".flac", ".wav"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    parts = name.split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(
            f"{value!r} does not name a LibriSpeech utterance "
            "(<speaker>-<chapter>-<utt>)"
        )
    return name


def read_qa(path, fields):
    """Reads a LibriSQA JSON file into ``(utt, question, answer)`` rows.

    Arguments
    ---------
    path : pathlib.Path
        The JSON file (a list of objects).
    fields : tuple of str
        The audio, question and answer field names.

    Returns
    -------
    list of tuple
    """
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise PreparationError(f"{path}: not JSON ({err.msg})") from None
    if isinstance(data, dict):
        data = list(data.values())
    if not isinstance(data, list):
        raise PreparationError(f"{path}: expected a JSON list of objects")
    rows = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise PreparationError(f"{path}: item {index} is not an object")
        absent = [f for f in fields if f not in item]
        if absent:
            raise PreparationError(
                f"{path}: item {index} has no field {absent}; its fields "
                f"are {sorted(item)} (set audio_field / question_field / "
                "answer_field)"
            )
        try:
            utt = utterance_id(item[fields[0]])
        except ValueError as err:
            raise PreparationError(f"{path}: item {index}: {err}") from None
        question = str(item[fields[1]]).strip()
        answer = str(item[fields[2]]).strip()
        if not question or not answer:
            raise PreparationError(
                f"{path}: item {index}: empty question or answer"
            )
        rows.append((utt, question, answer))
    return rows


def index_librispeech(folder):
    """``{utt id: flac path}`` over every subset of a LibriSpeech folder."""
    return {p.stem: p for p in sorted(Path(folder).glob("*/*/*/*.flac"))}


def prepare_librisqa(
    data_folder,
    save_folder,
    librispeech_folder,
    part="I",
    valid_fraction=0.05,
    audio_field="speech_path",
    question_field="question",
    answer_field="answer",
    skip_prep=False,
):
    """Writes ``spoken_qa`` manifests from LibriSQA.

    Arguments
    ---------
    data_folder : str
        The LibriSQA folder holding ``LibriSQA-Part<part>/``.
    save_folder : str
        Where ``manifests/<split>/spoken_qa.json`` go.
    librispeech_folder : str
        The ``LibriSpeech`` folder with the subsets LibriSQA uses.
    part : str
        ``"I"`` (free-form answers) or ``"II"`` (multiple choice).
    valid_fraction : float
        Share of the train file held out for validation.
    audio_field, question_field, answer_field : str
        Field names of the QA objects.
    skip_prep : bool
        Do nothing (the manifests exist).

    Returns
    -------
    dict
        ``{split: {"spoken_qa": path}}``.

    Example
    -------
    >>> prepare_librisqa("/corpora/LibriSQA", "/data/p",
    ...                  "/corpora/LibriSpeech")  # doctest: +SKIP
    """
    if part not in PARTS:
        raise ValueError(f"part is {part!r}, expected one of {PARTS}")
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction is {valid_fraction}, expected [0, 1)")
    root = find_folder(data_folder, "LibriSQA")
    speech = find_folder(librispeech_folder, "LibriSpeech")
    fields = (audio_field, question_field, answer_field)
    folder = f"LibriSQA-Part{part}"
    options = {
        "data_folder": str(root),
        "librispeech_folder": str(speech),
        "part": part,
        "valid_fraction": float(valid_fraction),
        "fields": list(fields),
    }

    def build():
        require_paths(
            "LibriSQA",
            root,
            {
                f"{folder}/{folder}-train.json": "train questions",
                f"{folder}/{folder}-test.json": "test questions",
            },
            hint="The QA files are the Hugging Face dataset "
            "ZihanZhao/LibriSQA.",
        )
        require_paths("LibriSpeech (for LibriSQA)", speech, {})
        flacs = index_librispeech(speech)
        manifests = ManifestSet(CORPUS)
        for name in ("train", "test"):
            rows = read_qa(root / folder / f"{folder}-{name}.json", fields)
            absent = sorted({u for u, _, _ in rows if u not in flacs})
            if absent:
                raise CorpusError(
                    f"LibriSQA {name}: {len(absent)} of the "
                    f"{len({u for u, _, _ in rows})} utterances it uses are "
                    f"not in {speech} (LibriSQA uses train-clean-360 and "
                    f"test-clean):\n{listing(absent)}"
                )
            counts = {}
            for utt, question, answer in rows:
                k = counts.get(utt, 0)
                counts[utt] = k + 1
                eid = f"{CORPUS}_{part}_{utt}_{k}"
                split = name
                if name == "train" and stable_fraction(eid) < valid_fraction:
                    split = "valid"
                entry = make_entry(
                    TASK,
                    eid,
                    flacs[utt],
                    audio_info(flacs[utt]).duration,
                    answer,
                    question=question,
                    utterance=utt,
                )
                manifests.add(split, eid, entry)
        return manifests

    return run_preparation(CORPUS, save_folder, options, build, skip_prep)


if __name__ == "__main__":
    command_line(prepare_librisqa)
