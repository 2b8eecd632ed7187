"""LibriSpeech -> ASR manifests.

Layout read (as downloaded from openslr.org, resource 12)::

    LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt

with subsets such as ``train-clean-100``, ``dev-clean``, ``test-clean``;
each ``.trans.txt`` line is ``<utt-id> <UPPER CASE TRANSCRIPT>``. Audio is
16 kHz mono FLAC. Targets are the transcripts in lower case; ids are
``librispeech_<utt-id>``.

Command line::

    python -m audiollm_lobes.data.prepare.librispeech \\
        --data_folder /corpora/LibriSpeech --save_folder /data/prepared

Authors
 * audiollm-lobes developers, 2026
"""

from pathlib import Path

from audiollm_lobes.data.prepare.preparation import (
    CorpusError,
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

CORPUS = "librispeech"
TASK = "asr"


def read_transcripts(subset_folder):
    """Reads every ``.trans.txt`` of a subset folder.

    Arguments
    ---------
    subset_folder : pathlib.Path
        E.g. ``LibriSpeech/dev-clean``.

    Returns
    -------
    dict
        ``{utt_id: (transcript, flac path)}`` in file order.

    Example
    -------
    >>> import tempfile
    >>> chapter = Path(tempfile.mkdtemp()) / "dev-clean" / "84" / "121123"
    >>> chapter.mkdir(parents=True)
    >>> _ = (chapter / "84-121123.trans.txt").write_text(
    ...     "84-121123-0000 GO DO YOU HEAR\\n")
    >>> read_transcripts(chapter.parents[1])["84-121123-0000"][0]
    'GO DO YOU HEAR'
    """
    out = {}
    for trans in sorted(Path(subset_folder).glob("*/*/*.trans.txt")):
        with open(trans, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                utt, _, text = line.partition(" ")
                if not text.strip():
                    raise PreparationError(
                        f"{trans}:{number}: expected '<utt-id> <TRANSCRIPT>',"
                        f" got {line!r}"
                    )
                out[utt] = (text.strip(), trans.parent / f"{utt}.flac")
    return out


def prepare_librispeech(
    data_folder,
    save_folder,
    train_splits=("train-clean-100",),
    valid_splits=("dev-clean",),
    test_splits=("test-clean",),
    skip_prep=False,
):
    """Writes ASR manifests (``asr.json`` per split) from LibriSpeech.

    Arguments
    ---------
    data_folder : str
        The ``LibriSpeech`` folder (or the folder holding it).
    save_folder : str
        Where ``manifests/<split>/asr.json`` go.
    train_splits, valid_splits, test_splits : list of str
        LibriSpeech subsets for each split (several are merged).
    skip_prep : bool
        Do nothing (the manifests exist).

    Returns
    -------
    dict
        ``{split: {"asr": path}}``.

    Example
    -------
    >>> prepare_librispeech("/corpora/LibriSpeech", "/data/prepared")
    ... # doctest: +SKIP
    {'train': {'asr': '/data/prepared/manifests/train/asr.json'}, ...}
    """
    root = find_folder(data_folder, "LibriSpeech")
    splits = {
        "train": list(train_splits),
        "valid": list(valid_splits),
        "test": list(test_splits),
    }
    options = {"data_folder": str(root), "splits": splits}

    def build():
        subsets = [s for names in splits.values() for s in names]
        require_paths(
            "LibriSpeech",
            root,
            {f"{s}/": f"the {s} subset" for s in subsets},
            hint="Download the subsets from https://www.openslr.org/12 and "
            "extract them (they all unpack into LibriSpeech/).",
        )
        manifests = ManifestSet(CORPUS)
        for split, names in splits.items():
            for subset in names:
                transcripts = read_transcripts(root / subset)
                if not transcripts:
                    raise CorpusError(
                        f"LibriSpeech: {root / subset} holds no "
                        "<speaker>/<chapter>/<speaker>-<chapter>.trans.txt"
                    )
                missing = [
                    str(p) for _, p in transcripts.values() if not p.is_file()
                ]
                check_missing_audio(
                    f"LibriSpeech {subset}", missing, len(transcripts)
                )
                for utt, (text, flac) in transcripts.items():
                    eid = f"{CORPUS}_{utt}"
                    speaker, chapter = utt.split("-")[:2]
                    entry = make_entry(
                        TASK,
                        eid,
                        flac,
                        audio_info(flac).duration,
                        text.lower(),
                        speaker=speaker,
                        chapter=chapter,
                        subset=subset,
                    )
                    manifests.add(split, eid, entry)
        return manifests

    return run_preparation(CORPUS, save_folder, options, build, skip_prep)


if __name__ == "__main__":
    command_line(prepare_librispeech)
