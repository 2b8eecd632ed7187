"""ESC-50 -> sound-event manifests, split by fold.

Layout read (the GitHub archive ``ESC-50-master``)::

    ESC-50-master/audio/<fold>-<freesound id>-<take>-<target>.wav
    ESC-50-master/meta/esc50.csv

The CSV has the columns ``filename``, ``fold``, ``target``, ``category``,
``esc10``, ``src_file``, ``take``; audio is 44.1 kHz mono WAV, 5 s. The
50 classes are the ``category`` names with ``_`` read as a space
(``crying_baby`` -> ``crying baby``). ESC-50 is meant for 5-fold cross
validation; one run uses ``test_fold`` as the test split, ``valid_fold``
as the valid split and the other folds for training. Ids are
``esc50_<file stem>``.

Command line::

    python -m audiollm_lobes.data.prepare.esc50 \\
        --data_folder /corpora/ESC-50-master --save_folder /data/prepared

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
    find_folder,
    make_entry,
    require_paths,
    run_preparation,
)

CORPUS = "esc50"
TASK = "sound_event"
COLUMNS = ("filename", "fold", "target", "category")


def class_name(category):
    """The target word(s) of an ESC-50 category.

    Example
    -------
    >>> class_name("crying_baby")
    'crying baby'
    """
    return category.replace("_", " ").strip()


def prepare_esc50(
    data_folder, save_folder, test_fold=5, valid_fold=4, skip_prep=False
):
    """Writes ``sound_event`` manifests from ESC-50.

    Arguments
    ---------
    data_folder : str
        ``ESC-50-master`` (or the folder holding it).
    save_folder : str
        Where ``manifests/<split>/sound_event.json`` go.
    test_fold, valid_fold : int
        The folds (1-5) of the test and valid splits.
    skip_prep : bool
        Do nothing (the manifests exist).

    Returns
    -------
    dict
        ``{split: {"sound_event": path}}``.

    Example
    -------
    >>> prepare_esc50("/corpora/ESC-50-master", "/data/p")  # doctest: +SKIP
    """
    root = find_folder(data_folder, "ESC-50-master")
    test_fold, valid_fold = int(test_fold), int(valid_fold)
    if {test_fold, valid_fold} - set(range(1, 6)) or test_fold == valid_fold:
        raise ValueError(
            f"test_fold={test_fold}, valid_fold={valid_fold}: expected two "
            "different folds of 1-5"
        )
    options = {
        "data_folder": str(root),
        "test_fold": test_fold,
        "valid_fold": valid_fold,
    }

    def build():
        require_paths(
            "ESC-50",
            root,
            {"audio/": "the clips", "meta/esc50.csv": "the labels"},
            hint="Download github.com/karolpiczak/ESC-50 (ESC-50-master).",
        )
        csv_path = root / "meta" / "esc50.csv"
        with open(csv_path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            absent = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if absent:
                raise PreparationError(
                    f"{csv_path}: missing columns {absent}; the header is "
                    f"{reader.fieldnames}"
                )
            rows = list(reader)
        wavs = {r["filename"]: root / "audio" / r["filename"] for r in rows}
        missing = sorted(str(p) for p in wavs.values() if not p.is_file())
        check_missing_audio("ESC-50", missing, len(wavs))
        manifests = ManifestSet(CORPUS)
        for number, row in enumerate(rows, 2):
            try:
                fold = int(row["fold"])
            except ValueError:
                raise PreparationError(
                    f"{csv_path}:{number}: fold {row['fold']!r} is not a number"
                ) from None
            split = {test_fold: "test", valid_fold: "valid"}.get(fold, "train")
            eid = f"{CORPUS}_{Path(row['filename']).stem}"
            wav = wavs[row["filename"]]
            entry = make_entry(
                TASK,
                eid,
                wav,
                audio_info(wav).duration,
                class_name(row["category"]),
                fold=fold,
                class_id=int(row["target"]),
                esc10=row.get("esc10") == "True",
            )
            manifests.add(split, eid, entry)
        return manifests

    return run_preparation(CORPUS, save_folder, options, build, skip_prep)


if __name__ == "__main__":
    command_line(prepare_esc50)
