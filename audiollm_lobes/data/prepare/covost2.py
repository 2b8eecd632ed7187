"""CoVoST 2 En->Zh (Common Voice English clips) -> translation manifests.

Layout read::

    <common voice en>/clips/<clip>.mp3          48 kHz mono MP3
    <common voice en>/covost_v2.en_zh-CN.tsv    (or --covost_tsv=...)

The CoVoST 2 TSV (extracted from ``covost_v2.en_zh-CN.tsv.tar.gz``) has the
columns ``path`` (the clip's file name), ``sentence`` (English),
``translation`` (Chinese), ``client_id`` and ``split`` (``train``, ``dev``,
``test``). CoVoST 2 is built on Common Voice 4; with another release some
clips may be absent (``missing_audio``). CoVoST 2 has no En->Fr direction:
``translate_fr`` comes from MuST-C (:mod:`.mustc`). Other En->X
directions of CoVoST 2 would need a task of their own.

Command line::

    python -m audiollm_lobes.data.prepare.covost2 \\
        --data_folder /corpora/cv-corpus-4-en/en --save_folder /data/prepared

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

CORPUS = "covost2"
TASK = "translate_zh"
#: The CoVoST ``split`` values and the manifest split they go to.
SPLITS = {"train": "train", "dev": "valid", "test": "test"}
COLUMNS = ("path", "sentence", "translation", "split")


def read_covost_tsv(path):
    """Reads a CoVoST 2 TSV (no quoting: sentences hold quote marks).

    Arguments
    ---------
    path : str or os.PathLike
        The TSV.

    Returns
    -------
    list of dict
        One dict per row, keyed by column.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "c.tsv")
    >>> with open(path, "w") as f:
    ...     _ = f.write('path\\tsentence\\ttranslation\\tclient_id\\tsplit\\n'
    ...                 'a.mp3\\tSay "hi".\\t说"嗨"。\\tc1\\ttrain\\n')
    >>> read_covost_tsv(path)[0]["sentence"]
    'Say "hi".'
    """
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise PreparationError(
                f"{path}: missing columns {missing}; the header is "
                f"{reader.fieldnames}, expected {list(COLUMNS)} (a CoVoST 2 "
                "covost_v2.en_zh-CN.tsv)"
            )
        return list(reader)


def prepare_covost2(
    data_folder,
    save_folder,
    covost_tsv="",
    missing_audio="error",
    skip_prep=False,
):
    """Writes ``translate_zh`` manifests from CoVoST 2 En->Zh.

    Arguments
    ---------
    data_folder : str
        The Common Voice English folder holding ``clips/``.
    save_folder : str
        Where ``manifests/<split>/translate_zh.json`` go.
    covost_tsv : str
        The CoVoST 2 TSV (default ``<data_folder>/covost_v2.en_zh-CN.tsv``).
    missing_audio : str
        ``"error"`` or ``"skip"`` rows whose clip is absent.
    skip_prep : bool
        Do nothing (the manifests exist).

    Returns
    -------
    dict
        ``{split: {"translate_zh": path}}``.

    Example
    -------
    >>> prepare_covost2("/corpora/cv4/en", "/data/prepared")  # doctest: +SKIP
    """
    root = Path(data_folder).expanduser().absolute()
    tsv = Path(covost_tsv or root / "covost_v2.en_zh-CN.tsv").absolute()
    options = {
        "data_folder": str(root),
        "covost_tsv": str(tsv),
        "missing_audio": missing_audio,
    }

    def build():
        expected = {"clips/": "Common Voice English clips (*.mp3)"}
        if not covost_tsv:
            expected["covost_v2.en_zh-CN.tsv"] = "the CoVoST 2 En->Zh TSV"
        require_paths(
            "Common Voice (CoVoST 2)",
            root,
            expected,
            hint="The TSV comes from covost_v2.en_zh-CN.tsv.tar.gz (CoVoST 2 "
            "release); give another place with --covost_tsv.",
        )
        if covost_tsv:
            require_paths("CoVoST 2", tsv.parent, {tsv.name: "the TSV"})
        rows = read_covost_tsv(tsv)
        bad = sorted({r["split"] for r in rows} - set(SPLITS))
        if bad:
            raise PreparationError(
                f"{tsv}: unknown split values {bad}, expected {list(SPLITS)}"
            )
        clips = {r["path"]: root / "clips" / r["path"] for r in rows}
        missing = sorted(str(p) for p in clips.values() if not p.is_file())
        check_missing_audio("CoVoST 2", missing, len(clips), missing_audio)
        missing = set(missing)
        manifests = ManifestSet(CORPUS)
        for row in rows:
            clip = clips[row["path"]]
            if str(clip) in missing:
                continue
            eid = f"{CORPUS}_{Path(row['path']).stem}"
            entry = make_entry(
                TASK,
                eid,
                clip,
                audio_info(clip).duration,
                row["translation"],
                transcript=row["sentence"],
                client_id=row.get("client_id"),
            )
            manifests.add(SPLITS[row["split"]], eid, entry)
        return manifests

    return run_preparation(CORPUS, save_folder, options, build, skip_prep)


if __name__ == "__main__":
    command_line(prepare_covost2)
