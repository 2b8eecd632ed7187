"""IEMOCAP -> 4-class emotion manifests, split by session.

Layout read (``IEMOCAP_full_release``)::

    Session<n>/sentences/wav/<dialog>/<utt>.wav           16 kHz mono
    Session<n>/dialog/EmoEvaluation/<dialog>.txt          labels

A label line reads ``[6.2901 - 8.2357]<TAB><utt><TAB><emo><TAB>[2.5, 2.5,
2.5]``. The usual 4-class set is kept: neutral (``neu``), happy (``hap``,
with ``exc`` merged in), sad (``sad``), angry (``ang``); other labels
(frustration, surprise, ``xxx``...) are dropped. The test session (5 by
default) is the test split; of the other sessions a fixed fraction of
utterances (chosen by a hash of the id) is the valid split. Ids are
``iemocap_<utt>``.

Command line::

    python -m audiollm_lobes.data.prepare.iemocap \\
        --data_folder /corpora/IEMOCAP_full_release --save_folder /data/p

Authors
 * audiollm-lobes developers, 2026
"""

import re

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
    stable_fraction,
)

CORPUS = "iemocap"
TASK = "emotion"
#: IEMOCAP label -> target word (labels absent here are dropped).
LABELS = {
    "neu": "neutral",
    "hap": "happy",
    "exc": "happy",
    "sad": "sad",
    "ang": "angry",
}
_LINE = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\t(\S+)\t(\S+)\t")


def read_labels(eval_file):
    """Reads the utterance labels of one ``EmoEvaluation/<dialog>.txt``.

    Arguments
    ---------
    eval_file : pathlib.Path
        The file.

    Returns
    -------
    dict
        ``{utt: label}`` (raw IEMOCAP labels, e.g. ``"exc"``).

    Example
    -------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "Ses01F_impro01.txt"
    >>> _ = path.write_text(
    ...     "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\\n\\n"
    ...     "[6.2901 - 8.2357]\\tSes01F_impro01_F000\\tneu\\t[2.5, 2.5, 2.5]\\n"
    ...     "C-E2:\\tNeutral;\\t()\\n")
    >>> read_labels(path)
    {'Ses01F_impro01_F000': 'neu'}
    """
    out = {}
    with open(eval_file, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = _LINE.match(line)
            if match:
                out[match.group(3)] = match.group(4)
    return out


def prepare_iemocap(
    data_folder,
    save_folder,
    test_session=5,
    valid_fraction=0.1,
    skip_prep=False,
):
    """Writes ``emotion`` manifests from IEMOCAP (leave one session out).

    Arguments
    ---------
    data_folder : str
        ``IEMOCAP_full_release`` (or the folder holding it).
    save_folder : str
        Where ``manifests/<split>/emotion.json`` go.
    test_session : int
        The session (1-5) used as the test split.
    valid_fraction : float
        Share of the other sessions' utterances held out for validation.
    skip_prep : bool
        Do nothing (the manifests exist).

    Returns
    -------
    dict
        ``{split: {"emotion": path}}``.

    Example
    -------
    >>> prepare_iemocap("/corpora/IEMOCAP_full_release", "/data/p")
    ... # doctest: +SKIP
    """
    root = find_folder(data_folder, "IEMOCAP_full_release")
    if int(test_session) not in range(1, 6):
        raise ValueError(f"test_session is {test_session}, expected 1 to 5")
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction is {valid_fraction}, expected [0, 1)")
    options = {
        "data_folder": str(root),
        "test_session": int(test_session),
        "valid_fraction": float(valid_fraction),
    }

    def build():
        expected = {}
        for n in range(1, 6):
            expected[f"Session{n}/sentences/wav/"] = "utterance audio"
            expected[f"Session{n}/dialog/EmoEvaluation/"] = "emotion labels"
        require_paths(
            "IEMOCAP",
            root,
            expected,
            hint="Expected the IEMOCAP_full_release layout.",
        )
        manifests = ManifestSet(CORPUS)
        for n in range(1, 6):
            session = root / f"Session{n}"
            labels = {}
            evals = sorted(
                p
                for p in (session / "dialog" / "EmoEvaluation").glob("*.txt")
                if not p.name.startswith(".")
            )
            for path in evals:
                labels.update(read_labels(path))
            if not labels:
                raise PreparationError(
                    f"IEMOCAP: no label line found in {len(evals)} files of "
                    f"{session / 'dialog' / 'EmoEvaluation'}"
                )
            kept = {
                u: LABELS[lab] for u, lab in labels.items() if lab in LABELS
            }
            wavs = {
                u: session
                / "sentences"
                / "wav"
                / u.rsplit("_", 1)[0]
                / f"{u}.wav"
                for u in kept
            }
            missing = sorted(str(p) for p in wavs.values() if not p.is_file())
            check_missing_audio(f"IEMOCAP Session{n}", missing, len(wavs))
            for utt in sorted(kept):
                eid = f"{CORPUS}_{utt}"
                if n == int(test_session):
                    split = "test"
                elif stable_fraction(eid) < valid_fraction:
                    split = "valid"
                else:
                    split = "train"
                entry = make_entry(
                    TASK,
                    eid,
                    wavs[utt],
                    audio_info(wavs[utt]).duration,
                    kept[utt],
                    label=labels[utt],
                    session=n,
                    speaker=f"Ses0{n}{utt.split('_')[-1][0]}",
                )
                manifests.add(split, eid, entry)
        return manifests

    return run_preparation(CORPUS, save_folder, options, build, skip_prep)


if __name__ == "__main__":
    command_line(prepare_iemocap)
