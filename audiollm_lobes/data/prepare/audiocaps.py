"""AudioCaps -> captioning manifests (clips fetched by the user).

Layout read::

    <data_folder>/train.csv, val.csv, test.csv
        columns audiocap_id, youtube_id, start_time, caption
    <audio_folder>/train/<name>.wav, val/<name>.wav, test/<name>.wav

AudioCaps ships only the CSVs; the 10 s clips are fetched from YouTube by
the user, so their naming is the user's: ``file_name="youtube_id"``
(default) looks for ``<youtube_id><extension>``, ``"audiocap_id"`` for
``<audiocap_id><extension>``; ``audio_folder`` defaults to
``<data_folder>/audio``. Any rate and channel count is accepted (the audio
reader resamples and downmixes at load time). Some videos are always gone
from YouTube, so clips absent on disk are skipped with a warning by
default (``missing_audio="error"`` to stop instead).

Training has one entry per row (``audiocaps_<audiocap_id>``); valid and
test (5 captions per clip) have one entry per clip
(``audiocaps_<youtube_id>``) whose ``target`` is the first caption and
``references`` all of them.

Command line::

    python -m audiollm_lobes.data.prepare.audiocaps \\
        --data_folder /corpora/audiocaps --save_folder /data/prepared

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

CORPUS = "audiocaps"
TASK = "captioning"
#: CSV (and audio subfolder) name -> manifest split.
SPLITS = {"train": "train", "val": "valid", "test": "test"}
COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
FILE_NAMES = ("youtube_id", "audiocap_id")


def read_rows(path):
    """Reads an AudioCaps CSV.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "val.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("audiocap_id,youtube_id,start_time,caption\\n"
    ...                 "97151,vfY_TJq7n_U,130,Rustling occurs\\n")
    >>> read_rows(path)[0]["youtube_id"]
    'vfY_TJq7n_U'
    """
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise PreparationError(
                f"{path}: missing columns {missing}; the header is "
                f"{reader.fieldnames}, expected {list(COLUMNS)}"
            )
        rows = list(reader)
    for number, row in enumerate(rows, 2):
        if not (row["caption"] or "").strip():
            raise PreparationError(f"{path}:{number}: empty caption")
    return rows


def prepare_audiocaps(
    data_folder,
    save_folder,
    audio_folder="",
    file_name="youtube_id",
    extension=".wav",
    missing_audio="skip",
    skip_prep=False,
):
    """Writes ``captioning`` manifests from AudioCaps.

    Arguments
    ---------
    data_folder : str
        The folder holding ``train.csv``, ``val.csv``, ``test.csv``.
    save_folder : str
        Where ``manifests/<split>/captioning.json`` go.
    audio_folder : str
        Folder with ``train/``, ``val/``, ``test/`` clip folders (default
        ``<data_folder>/audio``).
    file_name : str
        Column naming the clips: ``"youtube_id"`` or ``"audiocap_id"``.
    extension : str
        The clips' file extension (``.wav``, ``.flac``, ``.mp3``...).
    missing_audio : str
        ``"skip"`` (default) or ``"error"`` for rows without a clip.
    skip_prep : bool
        Do nothing (the manifests exist).

    Returns
    -------
    dict
        ``{split: {"captioning": path}}``.

    Example
    -------
    >>> prepare_audiocaps("/corpora/audiocaps", "/data/p")  # doctest: +SKIP
    """
    if file_name not in FILE_NAMES:
        raise ValueError(
            f"file_name is {file_name!r}, expected one of {FILE_NAMES}"
        )
    root = Path(data_folder).expanduser().absolute()
    audio = (
        Path(audio_folder).expanduser().absolute()
        if audio_folder
        else root / "audio"
    )
    options = {
        "data_folder": str(root),
        "audio_folder": str(audio),
        "file_name": file_name,
        "extension": extension,
        "missing_audio": missing_audio,
    }

    def build():
        require_paths(
            "AudioCaps",
            root,
            {f"{name}.csv": f"the {name} captions" for name in SPLITS},
            hint="The CSVs are in github.com/cdjkim/audiocaps (dataset/).",
        )
        require_paths(
            "AudioCaps audio",
            audio,
            {f"{name}/": f"the {name} clips you fetched" for name in SPLITS},
            hint="Give the clips' folder with --audio_folder.",
        )
        manifests = ManifestSet(CORPUS)
        for name, split in SPLITS.items():
            rows = read_rows(root / f"{name}.csv")
            clips = {
                r[file_name]: audio / name / f"{r[file_name]}{extension}"
                for r in rows
            }
            missing = sorted(str(p) for p in clips.values() if not p.is_file())
            check_missing_audio(
                f"AudioCaps {name}", missing, len(clips), missing_audio
            )
            gone = set(missing)
            durations = {}
            grouped = {}
            for row in rows:
                clip = clips[row[file_name]]
                if str(clip) in gone:
                    continue
                if clip not in durations:
                    durations[clip] = audio_info(clip).duration
                if split == "train":
                    eid = f"{CORPUS}_{row['audiocap_id']}"
                    entry = make_entry(
                        TASK,
                        eid,
                        clip,
                        durations[clip],
                        row["caption"],
                        youtube_id=row["youtube_id"],
                        start_time=row["start_time"],
                    )
                    manifests.add(split, eid, entry)
                else:
                    grouped.setdefault(row["youtube_id"], []).append(row)
            for youtube_id, group in grouped.items():
                clip = clips[group[0][file_name]]
                captions = [r["caption"].strip() for r in group]
                eid = f"{CORPUS}_{youtube_id}"
                entry = make_entry(
                    TASK,
                    eid,
                    clip,
                    durations[clip],
                    captions[0],
                    references=captions,
                    youtube_id=youtube_id,
                    audiocap_ids=[r["audiocap_id"] for r in group],
                    start_time=group[0]["start_time"],
                )
                manifests.add(split, eid, entry)
        return manifests

    return run_preparation(CORPUS, save_folder, options, build, skip_prep)


if __name__ == "__main__":
    command_line(prepare_audiocaps)
