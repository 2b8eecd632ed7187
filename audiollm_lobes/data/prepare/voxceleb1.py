"""VoxCeleb1 -> speaker-verification pair manifests.

Layout read::

    <data_folder>/vox1_dev_wav/wav/<speaker id10xxx>/<youtube id>/<nnnnn>.wav
    <data_folder>/vox1_test_wav/wav/<speaker>/<youtube id>/<nnnnn>.wav
    <data_folder>/veri_test2.txt   (or list_test_all2.txt, list_test_hard2.txt)

Audio is 16 kHz mono WAV. A trial line reads ``<1|0> <spk/yt/nnnnn.wav>
<spk/yt/nnnnn.wav>``; the test split holds the trials of the trial list
(target ``yes`` for 1, ``no`` for 0), with ids
``voxceleb1_<list>_<line number>``. Training and validation pairs are drawn
deterministically (``seed``) from the dev speakers, half same-speaker,
half different-speaker; ``valid_speakers`` dev speakers (chosen by a hash
of their id) are kept for validation only. Their ids are
``voxceleb1_<utt1>_<utt2>`` with ``/`` replaced by ``-``.

Each entry holds ``wav`` and ``wav2``; ``duration`` is that of both clips
and the silence :func:`audiollm_lobes.data.audio.read_example_audio`
puts between them. Vox1-E and Vox1-H trial lists use dev speakers: do not
train on the dev speakers when testing on them.

Command line::

    python -m audiollm_lobes.data.prepare.voxceleb1 \\
        --data_folder /corpora/VoxCeleb1 --save_folder /data/prepared

Authors
 * audiollm-lobes developers, 2026
"""

import random

from audiollm_lobes.data.audio import DEFAULT_GAP_SECONDS
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
    stable_fraction,
)

CORPUS = "voxceleb1"
TASK = "speaker_verification"
DEV = "vox1_dev_wav/wav"
TEST = "vox1_test_wav/wav"


def list_speakers(wav_folder):
    """``{speaker: [relative utterance paths]}`` under a ``wav/`` folder.

    Arguments
    ---------
    wav_folder : pathlib.Path
        ``vox1_dev_wav/wav``.

    Returns
    -------
    dict
        Sorted speakers, each with its sorted ``spk/yt/nnnnn.wav`` paths.
    """
    out = {}
    for path in sorted(wav_folder.glob("*/*/*.wav")):
        rel = path.relative_to(wav_folder).as_posix()
        out.setdefault(rel.split("/")[0], []).append(rel)
    return out


def sample_pairs(speakers, n_pairs, rng):
    """Draws ``n_pairs`` distinct pairs, alternately same and different
    speaker (same-speaker pairs need a speaker with two utterances).

    Arguments
    ---------
    speakers : dict
        ``{speaker: [utterances]}``.
    n_pairs : int
        How many pairs.
    rng : random.Random
        The generator (determinism).

    Returns
    -------
    list of tuple
        ``(utt1, utt2, same)`` with ``same`` a bool.

    Example
    -------
    >>> spk = {"a": ["a/1", "a/2"], "b": ["b/1"]}
    >>> pairs = sample_pairs(spk, 2, random.Random(0))
    >>> sorted(p[2] for p in pairs)
    [False, True]
    """
    names = sorted(speakers)
    multi = [s for s in names if len(speakers[s]) >= 2]
    if n_pairs > 0 and (len(names) < 2 or not multi):
        raise PreparationError(
            f"VoxCeleb1: cannot draw pairs from {len(names)} speakers "
            f"({len(multi)} with two utterances or more): need at least 2 "
            "speakers and one with two utterances"
        )
    pairs, seen = [], set()
    attempts = 0
    while len(pairs) < n_pairs:
        attempts += 1
        if attempts > 100 * n_pairs + 1000:
            raise PreparationError(
                f"VoxCeleb1: found only {len(pairs)} distinct pairs of the "
                f"{n_pairs} asked for; ask for fewer"
            )
        same = len(pairs) % 2 == 0
        if same:
            speaker = rng.choice(multi)
            first, second = rng.sample(speakers[speaker], 2)
        else:
            one, two = rng.sample(names, 2)
            first = rng.choice(speakers[one])
            second = rng.choice(speakers[two])
        key = (first, second)
        if key in seen:
            continue
        seen.add(key)
        pairs.append((first, second, same))
    return pairs


def read_trials(path):
    """Reads a VoxCeleb trial list.

    Returns
    -------
    list of tuple
        ``(line number, label "1"/"0", utt1, utt2)``.
    """
    trials = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3 or parts[0] not in ("0", "1"):
                raise PreparationError(
                    f"{path}:{number}: expected '<1|0> <spk/yt/n.wav> "
                    f"<spk/yt/n.wav>', got {line.strip()!r}"
                )
            trials.append((number, parts[0], parts[1], parts[2]))
    return trials


def prepare_voxceleb1(
    data_folder,
    save_folder,
    trial_list="veri_test2.txt",
    train_pairs=20000,
    valid_pairs=1000,
    valid_speakers=20,
    seed=1234,
    skip_prep=False,
):
    """Writes ``speaker_verification`` manifests from VoxCeleb1.

    Arguments
    ---------
    data_folder : str
        The folder holding ``vox1_dev_wav/``, ``vox1_test_wav/`` and the
        trial list.
    save_folder : str
        Where ``manifests/<split>/speaker_verification.json`` go.
    trial_list : str
        The trial list for the test split (a file in ``data_folder``).
    train_pairs, valid_pairs : int
        How many pairs to draw from the dev speakers.
    valid_speakers : int
        How many dev speakers are kept for validation pairs.
    seed : int
        Seed of the pair drawing.
    skip_prep : bool
        Do nothing (the manifests exist).

    Returns
    -------
    dict
        ``{split: {"speaker_verification": path}}``.

    Example
    -------
    >>> prepare_voxceleb1("/corpora/VoxCeleb1", "/data/p")  # doctest: +SKIP
    """
    root = find_folder(data_folder, "VoxCeleb1")
    options = {
        "data_folder": str(root),
        "trial_list": trial_list,
        "train_pairs": int(train_pairs),
        "valid_pairs": int(valid_pairs),
        "valid_speakers": int(valid_speakers),
        "seed": int(seed),
        "gap_seconds": DEFAULT_GAP_SECONDS,
    }

    def build():
        require_paths(
            "VoxCeleb1",
            root,
            {
                f"{DEV}/": "dev speakers (vox1_dev_wav.zip)",
                f"{TEST}/": "test speakers (vox1_test_wav.zip)",
                trial_list: "the trial list",
            },
        )
        manifests = ManifestSet(CORPUS)
        durations = {}

        def duration(path):
            if path not in durations:
                durations[path] = audio_info(path).duration
            return durations[path]

        def add(split, eid, first, second, same, **meta):
            total = duration(first) + DEFAULT_GAP_SECONDS + duration(second)
            entry = make_entry(
                TASK,
                eid,
                first,
                total,
                "yes" if same else "no",
                wav2=second,
                **meta,
            )
            manifests.add(split, eid, entry)

        # test: the trial list, clips looked up in test then dev folders
        trials = read_trials(root / trial_list)
        stem = trial_list.rsplit(".", 1)[0]
        folders = (root / TEST, root / DEV)
        named = sorted({u for t in trials for u in t[2:]})
        found = {}
        for utt in named:
            for folder in folders:
                if (folder / utt).is_file():
                    found[utt] = folder / utt
                    break
        missing = [
            f"{utt} (in {TEST} or {DEV})" for utt in named if utt not in found
        ]
        check_missing_audio("VoxCeleb1 trials", missing, len(named))
        for number, label, first, second in trials:
            add(
                "test",
                f"{CORPUS}_{stem}_{number:06d}",
                found[first],
                found[second],
                label == "1",
                utt1=first,
                utt2=second,
            )
        # train/valid: pairs drawn from the dev speakers
        dev = list_speakers(root / DEV)
        if not dev:
            raise CorpusError(
                f"VoxCeleb1: {root / DEV} holds no <speaker>/<yt>/<n>.wav"
            )
        held = sorted(dev, key=lambda s: stable_fraction(f"{seed}/{s}"))
        held = set(held[: int(valid_speakers)])
        rng = random.Random(int(seed))
        for split, n, names in (
            ("train", train_pairs, [s for s in dev if s not in held]),
            ("valid", valid_pairs, [s for s in dev if s in held]),
        ):
            if not n:
                continue
            speakers = {s: dev[s] for s in names}
            for first, second, same in sample_pairs(speakers, int(n), rng):
                eid = f"{CORPUS}_{first}_{second}".replace("/", "-")
                eid = eid.replace(".wav", "")
                add(
                    split,
                    eid,
                    root / DEV / first,
                    root / DEV / second,
                    same,
                    utt1=first,
                    utt2=second,
                )
        return manifests

    return run_preparation(CORPUS, save_folder, options, build, skip_prep)


if __name__ == "__main__":
    command_line(prepare_voxceleb1)
