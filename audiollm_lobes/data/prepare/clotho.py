"""Clotho v2 -> captioning manifests.

Layout read (the Zenodo release, archives extracted in one folder)::

    clotho_audio_development/<file>.wav      44.1 kHz mono, 15-30 s
    clotho_audio_validation/<file>.wav
    clotho_audio_evaluation/<file>.wav
    clotho_captions_development.csv          file_name, caption_1 .. caption_5
    clotho_captions_validation.csv
    clotho_captions_evaluation.csv

Splits: development -> train, validation -> valid, evaluation -> test.
Training has one entry per caption (``clotho_<file stem>_<k>``, k = 1..5);
valid and test have one entry per clip (``clotho_<file stem>``) whose
``target`` is the first caption and ``references`` all five, for
multi-reference metrics.

Command line::

    python -m audiollm_lobes.data.prepare.clotho \\
        --data_folder /corpora/clotho --save_folder /data/prepared

Authors
 * audiollm-lobes developers, 2026
"""

import csv
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

CORPUS = "clotho"
TASK = "captioning"
#: Clotho split -> manifest split.
SPLITS = {"development": "train", "validation": "valid", "evaluation": "test"}
N_CAPTIONS = 5


def read_captions(path):
    """Reads a Clotho captions CSV.

    Arguments
    ---------
    path : str or os.PathLike
        ``clotho_captions_<split>.csv``.

    Returns
    -------
    dict
        ``{file_name: [caption_1, ..., caption_5]}`` (empty captions left
        out).

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "c.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("file_name,caption_1,caption_2,caption_3,caption_4,"
    ...                 "caption_5\\n"
    ...                 'a.wav,"Rain falls, softly.",b,c,d,e\\n')
    >>> read_captions(path)["a.wav"][0]
    'Rain falls, softly.'
    """
    columns = ["file_name"] + [f"caption_{k}" for k in range(1, 6)]
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise PreparationError(
                f"{path}: missing columns {missing}; the header is "
                f"{reader.fieldnames}"
            )
        out = {}
        for row in reader:
            captions = [
                row[f"caption_{k}"].strip()
                for k in range(1, N_CAPTIONS + 1)
                if (row[f"caption_{k}"] or "").strip()
            ]
            if not captions:
                raise PreparationError(
                    f"{path}: {row['file_name']} has no caption"
                )
            out[row["file_name"]] = captions
    return out


def prepare_clotho(data_folder, save_folder, skip_prep=False):
    """Writes ``captioning`` manifests from Clotho v2.

    Arguments
    ---------
    data_folder : str
        The folder holding ``clotho_audio_*`` and ``clotho_captions_*.csv``.
    save_folder : str
        Where ``manifests/<split>/captioning.json`` go.
    skip_prep : bool
        Do nothing (the manifests exist).

    Returns
    -------
    dict
        ``{split: {"captioning": path}}``.

    Example
    -------
    >>> prepare_clotho("/corpora/clotho", "/data/prepared")  # doctest: +SKIP
    """
    root = Path(data_folder).expanduser().absolute()
    options = {"data_folder": str(root)}

    def build():
        expected = {}
        for name in SPLITS:
            expected[f"clotho_audio_{name}/"] = f"{name} clips"
            expected[f"clotho_captions_{name}.csv"] = f"{name} captions"
        require_paths(
            "Clotho",
            root,
            expected,
            hint="Extract the Clotho v2 archives (zenodo.org/records/4783391) "
            "into one folder.",
        )
        manifests = ManifestSet(CORPUS)
        for name, split in SPLITS.items():
            captions = read_captions(root / f"clotho_captions_{name}.csv")
            wavs = {f: root / f"clotho_audio_{name}" / f for f in captions}
            missing = sorted(str(p) for p in wavs.values() if not p.is_file())
            check_missing_audio(f"Clotho {name}", missing, len(wavs))
            for file_name, caps in captions.items():
                stem = Path(file_name).stem.replace(" ", "_")
                duration = audio_info(wavs[file_name]).duration
                if split == "train":
                    for k, caption in enumerate(caps, 1):
                        eid = f"{CORPUS}_{stem}_{k}"
                        entry = make_entry(
                            TASK, eid, wavs[file_name], duration, caption
                        )
                        manifests.add(split, eid, entry)
                else:
                    eid = f"{CORPUS}_{stem}"
                    entry = make_entry(
                        TASK,
                        eid,
                        wavs[file_name],
                        duration,
                        caps[0],
                        references=caps,
                    )
                    manifests.add(split, eid, entry)
        return manifests

    return run_preparation(CORPUS, save_folder, options, build, skip_prep)


if __name__ == "__main__":
    command_line(prepare_clotho)
