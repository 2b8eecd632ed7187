"""SLURP -> spoken language understanding (intent + slots) manifests.

Layout read (the SLURP repository with its audio archives extracted)::

    <data_folder>/dataset/slurp/train.jsonl, train_synthetic.jsonl,
                                devel.jsonl, test.jsonl
    <data_folder>/slurp_real/<file>.flac      16 kHz
    <data_folder>/slurp_synth/<file>.flac     (train_synthetic only)

A JSONL record holds ``slurp_id``, ``sentence``, ``sentence_annotation``
(slots written ``[type : filler]``), ``intent`` (``<scenario>_<action>``),
``scenario``, ``action`` and ``recordings`` (a list of ``{"file": ...}``).
Each recording is one example, id ``slurp_<slurp_id>_<file stem>``;
splits: train (+ train_synthetic with ``use_synthetic``) -> train, devel
-> valid, test -> test. The target is ``intent=<intent>`` followed by
``<slot type>=<filler>`` for each slot in order (the toy world's format;
fillers keep their spaces), e.g. ``intent=alarm_set time=five am``.

Command line::

    python -m audiollm_lobes.data.prepare.slurp \\
        --data_folder /corpora/slurp --save_folder /data/prepared

Authors
 * audiollm-lobes developers, 2026
"""

import json
import re
from pathlib import Path

from audiollm_lobes.data.prepare.preparation import (
    ManifestSet,
    PreparationError,
    audio_info,
    check_missing_audio,
    command_line,
    make_entry,
    require_paths,
    run_preparation,
)

CORPUS = "slurp"
TASK = "slu"
_SLOT = re.compile(r"\[\s*([^\[\]:]+?)\s*:\s*([^\[\]]*?)\s*\]")


def slu_target(intent, annotation):
    """The target string of a SLURP record.

    Arguments
    ---------
    intent : str
        ``<scenario>_<action>``.
    annotation : str
        The ``sentence_annotation``.

    Returns
    -------
    str
        ``intent=<intent> <type>=<filler> ...``.

    Example
    -------
    >>> slu_target("alarm_set", "wake me up at [time : five am] [date : "
    ...            "tomorrow]")
    'intent=alarm_set time=five am date=tomorrow'
    """
    parts = [f"intent={intent.strip()}"]
    for slot, filler in _SLOT.findall(annotation or ""):
        parts.append(f"{slot.strip().replace(' ', '_')}={filler.strip()}")
    return " ".join(parts)


def read_jsonl(path):
    """Reads a SLURP JSONL file (one record a line).

    Returns
    -------
    list of dict
    """
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise PreparationError(
                    f"{path}:{number}: not a JSON record ({err.msg})"
                ) from None
            absent = [
                k
                for k in ("slurp_id", "intent", "recordings")
                if k not in record
            ]
            if absent:
                raise PreparationError(
                    f"{path}:{number}: record without {absent}"
                )
            records.append(record)
    return records


def prepare_slurp(
    data_folder, save_folder, use_synthetic=False, skip_prep=False
):
    """Writes ``slu`` manifests from SLURP.

    Arguments
    ---------
    data_folder : str
        The folder holding ``dataset/slurp/`` and ``slurp_real/``.
    save_folder : str
        Where ``manifests/<split>/slu.json`` go.
    use_synthetic : bool
        Add ``train_synthetic.jsonl`` (audio in ``slurp_synth/``) to train.
    skip_prep : bool
        Do nothing (the manifests exist).

    Returns
    -------
    dict
        ``{split: {"slu": path}}``.

    Example
    -------
    >>> prepare_slurp("/corpora/slurp", "/data/p")  # doctest: +SKIP
    """
    root = Path(data_folder).expanduser().absolute()
    options = {"data_folder": str(root), "use_synthetic": bool(use_synthetic)}
    files = [
        ("train", "train.jsonl", "slurp_real"),
        ("valid", "devel.jsonl", "slurp_real"),
        ("test", "test.jsonl", "slurp_real"),
    ]
    if use_synthetic:
        files.append(("train", "train_synthetic.jsonl", "slurp_synth"))

    def build():
        expected = {
            f"dataset/slurp/{name}": "annotations" for _, name, _ in files
        }
        for folder in sorted({f for _, _, f in files}):
            expected[f"{folder}/"] = "recordings (*.flac)"
        require_paths(
            "SLURP",
            root,
            expected,
            hint="Clone github.com/pswietojanski/slurp and extract "
            "slurp_real.tar.gz (and slurp_synth.tar.gz) into it.",
        )
        manifests = ManifestSet(CORPUS)
        for split, name, folder in files:
            records = read_jsonl(root / "dataset" / "slurp" / name)
            audio = {
                rec["file"]: root / folder / rec["file"]
                for record in records
                for rec in record["recordings"]
            }
            missing = sorted(str(p) for p in audio.values() if not p.is_file())
            check_missing_audio(f"SLURP {name}", missing, len(audio))
            for record in records:
                target = slu_target(
                    record["intent"], record.get("sentence_annotation", "")
                )
                for rec in record["recordings"]:
                    stem = Path(rec["file"]).stem
                    eid = f"{CORPUS}_{record['slurp_id']}_{stem}"
                    wav = audio[rec["file"]]
                    entry = make_entry(
                        TASK,
                        eid,
                        wav,
                        audio_info(wav).duration,
                        target,
                        transcript=record.get("sentence"),
                        intent=record["intent"],
                        scenario=record.get("scenario"),
                        action=record.get("action"),
                    )
                    manifests.add(split, eid, entry)
        return manifests

    return run_preparation(CORPUS, save_folder, options, build, skip_prep)


if __name__ == "__main__":
    command_line(prepare_slurp)
