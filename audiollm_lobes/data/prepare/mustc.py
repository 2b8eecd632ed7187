"""MuST-C En->Fr -> translation manifests of segments of long talks.

Layout read (MuST-C v1/v2, one folder per language pair)::

    <data_folder>/en-fr/data/<split>/wav/<talk>.wav     whole TED talks
    <data_folder>/en-fr/data/<split>/txt/<split>.yaml   one segment a line
    <data_folder>/en-fr/data/<split>/txt/<split>.en     aligned line by line
    <data_folder>/en-fr/data/<split>/txt/<split>.fr

with splits ``train``, ``dev``, ``tst-COMMON`` (and ``tst-HE``). A YAML
line reads ``- {duration: 3.5, offset: 12.61, rW: 9, uW: 0, speaker_id:
spk.767, wav: ted_767.wav}``. Audio is 16 kHz mono WAV. Entries point at
the talk with ``start``/``stop`` (seconds) and the segment's
``duration``; nothing is cut. Ids are ``mustc_<talk>_<n>``, ``n``
counting the segments of a talk from 0.

Command line::

    python -m audiollm_lobes.data.prepare.mustc \\
        --data_folder /corpora/MUSTC_v1.0 --save_folder /data/prepared

Authors
 * audiollm-lobes developers, 2026
"""

import re
from pathlib import Path

import yaml

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

CORPUS = "mustc"
TASK = "translate_fr"
#: How far (s) a segment may end past its talk's end (rounding).
END_TOLERANCE = 0.05
_FIELD = re.compile(r"\s*([A-Za-z_]+)\s*:\s*([^,]*?)\s*(?:,|$)")


def parse_segment_line(line):
    """Parses one line of a MuST-C segment YAML into a dict.

    The lines are YAML flow mappings; the common form is parsed directly
    (a YAML parser takes minutes on the 250k lines of a train split),
    anything else is handed to ``yaml.safe_load``.

    Arguments
    ---------
    line : str
        E.g. ``"- {duration: 3.5, offset: 1.2, wav: ted_1.wav}"``.

    Returns
    -------
    dict
        The fields (numbers as float).

    Example
    -------
    >>> parse_segment_line(
    ...     "- {duration: 3.5, offset: 12.61, rW: 9, uW: 0, "
    ...     "speaker_id: spk.767, wav: ted_767.wav}")["offset"]
    12.61
    """
    text = line.strip()
    if text.startswith("- {") and text.endswith("}"):
        body = text[3:-1]
        fields = dict(_FIELD.findall(body))
        if {"duration", "offset", "wav"} <= set(fields):
            out = {}
            for key, value in fields.items():
                try:
                    out[key] = float(value)
                except ValueError:
                    out[key] = value
            return out
    loaded = yaml.safe_load(text)
    if isinstance(loaded, list) and len(loaded) == 1:
        loaded = loaded[0]
    if not isinstance(loaded, dict):
        raise ValueError(f"not a segment mapping: {line!r}")
    return loaded


def read_segments(txt_folder, split, target_lang):
    """Reads a split's segment YAML with its English and target texts.

    Arguments
    ---------
    txt_folder : pathlib.Path
        ``en-<lang>/data/<split>/txt``.
    split : str
        The MuST-C split name.
    target_lang : str
        ``"fr"``.

    Returns
    -------
    list of dict
        ``{"wav", "offset", "duration", "speaker_id", "en", "target"}``
        per segment, in file order.
    """
    paths = {
        "yaml": txt_folder / f"{split}.yaml",
        "en": txt_folder / f"{split}.en",
        target_lang: txt_folder / f"{split}.{target_lang}",
    }
    lines = {}
    for key, path in paths.items():
        with open(path, encoding="utf-8") as f:
            lines[key] = [x.rstrip("\n") for x in f]
        while lines[key] and not lines[key][-1].strip():
            lines[key].pop()
    counts = {paths[k].name: len(v) for k, v in lines.items()}
    if len(set(counts.values())) != 1:
        raise PreparationError(
            f"MuST-C {txt_folder}: files are not aligned line by line: "
            f"{counts} lines"
        )
    segments = []
    for number, (line, en, tgt) in enumerate(
        zip(lines["yaml"], lines["en"], lines[target_lang]), 1
    ):
        try:
            seg = parse_segment_line(line)
            offset, duration = float(seg["offset"]), float(seg["duration"])
            wav = str(seg["wav"])
        except (ValueError, KeyError, TypeError, yaml.YAMLError) as err:
            raise PreparationError(
                f"{paths['yaml']}:{number}: expected '- {{duration: ..., "
                f"offset: ..., wav: ...}}' ({type(err).__name__}: {err})"
            ) from None
        if duration <= 0 or offset < 0:
            raise PreparationError(
                f"{paths['yaml']}:{number}: offset {offset} / duration "
                f"{duration}, expected offset >= 0 and duration > 0"
            )
        segments.append(
            {
                "wav": wav,
                "offset": offset,
                "duration": duration,
                "speaker_id": seg.get("speaker_id"),
                "en": en.strip(),
                "target": tgt.strip(),
            }
        )
    return segments


def prepare_mustc(
    data_folder,
    save_folder,
    train_splits=("train",),
    valid_splits=("dev",),
    test_splits=("tst-COMMON",),
    skip_prep=False,
):
    """Writes ``translate_fr`` manifests from MuST-C En->Fr.

    Arguments
    ---------
    data_folder : str
        The MuST-C folder holding ``en-fr/`` (or ``en-fr`` itself).
    save_folder : str
        Where ``manifests/<split>/translate_fr.json`` go.
    train_splits, valid_splits, test_splits : list of str
        MuST-C splits for each manifest split.
    skip_prep : bool
        Do nothing (the manifests exist).

    Returns
    -------
    dict
        ``{split: {"translate_fr": path}}``.

    Example
    -------
    >>> prepare_mustc("/corpora/MUSTC_v1.0", "/data/prepared")
    ... # doctest: +SKIP
    """
    pair = "en-fr"
    root = find_folder(data_folder, pair)
    splits = {
        "train": list(train_splits),
        "valid": list(valid_splits),
        "test": list(test_splits),
    }
    options = {"data_folder": str(root), "splits": splits}

    def build():
        expected = {}
        for name in (s for names in splits.values() for s in names):
            expected[f"data/{name}/wav/"] = f"the talks of {name}"
            for ext in ("yaml", "en", "fr"):
                expected[f"data/{name}/txt/{name}.{ext}"] = (
                    "segments" if ext == "yaml" else f"{ext} text"
                )
        require_paths(
            f"MuST-C {pair}",
            root,
            expected,
            hint="Expected the MuST-C release layout en-fr/data/<split>/"
            "{wav,txt}/ (give the folder holding en-fr as --data_folder).",
        )
        manifests = ManifestSet(CORPUS)
        for split, names in splits.items():
            for name in names:
                data = root / "data" / name
                segments = read_segments(data / "txt", name, "fr")
                talks = sorted({s["wav"] for s in segments})
                paths = {t: data / "wav" / t for t in talks}
                missing = [str(p) for p in paths.values() if not p.is_file()]
                check_missing_audio(f"MuST-C {name}", missing, len(talks))
                lengths = {t: audio_info(p).duration for t, p in paths.items()}
                counters = {}
                for seg in segments:
                    talk = seg["wav"]
                    n = counters.get(talk, 0)
                    counters[talk] = n + 1
                    start = seg["offset"]
                    stop = start + seg["duration"]
                    if stop > lengths[talk] + END_TOLERANCE:
                        raise PreparationError(
                            f"MuST-C {name}: segment {n} of {talk} ends at "
                            f"{stop:.2f} s but the talk lasts "
                            f"{lengths[talk]:.2f} s ({paths[talk]})"
                        )
                    stop = min(stop, lengths[talk])
                    eid = f"{CORPUS}_{Path(talk).stem}_{n}"
                    entry = make_entry(
                        TASK,
                        eid,
                        paths[talk],
                        stop - start,
                        seg["target"],
                        start=start,
                        stop=stop,
                        transcript=seg["en"],
                        speaker=seg["speaker_id"],
                        mustc_split=name,
                    )
                    manifests.add(split, eid, entry)
        return manifests

    return run_preparation(CORPUS, save_folder, options, build, skip_prep)


if __name__ == "__main__":
    command_line(prepare_mustc)
