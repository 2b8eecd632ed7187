"""IEMOCAP preparation: 4 classes (excited -> happy), session split."""

import pytest
from prepare_fixtures import (
    assert_skips_second_time,
    assert_valid,
    read_manifest,
    write_audio,
)

from audiollm_lobes.data.prepare.iemocap import prepare_iemocap
from audiollm_lobes.data.prepare.preparation import (
    CorpusError,
    stable_fraction,
)

LABELS = ["neu", "exc", "fru", "sad", "ang", "hap"]


def make_iemocap(root, sessions=range(1, 6)):
    root = root / "IEMOCAP_full_release"
    for n in sessions:
        dialog = f"Ses0{n}F_impro01"
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for k, label in enumerate(LABELS):
            utt = f"{dialog}_{'FM'[k % 2]}{k:03d}"
            wav = root / f"Session{n}" / "sentences" / "wav" / dialog
            write_audio(wav / f"{utt}.wav", 0.3, seed=n + k)
            lines += [
                f"[{k:.4f} - {k + 0.3:.4f}]\t{utt}\t{label}\t[2.5, 2.5, 2.5]",
                "C-E2:\tNeutral;\t()",
                "",
            ]
        evals = root / f"Session{n}" / "dialog" / "EmoEvaluation"
        evals.mkdir(parents=True, exist_ok=True)
        (evals / f"{dialog}.txt").write_text("\n".join(lines))
        (evals / "Categorical").mkdir(exist_ok=True)
    return root


def test_prepare_iemocap(tmp_path):
    corpus = make_iemocap(tmp_path)
    save = tmp_path / "prepared"
    paths = prepare_iemocap(str(tmp_path), str(save), valid_fraction=0.3)
    assert_valid(paths)
    test = read_manifest(save, "test", "emotion")
    assert {e["session"] for e in test.values()} == {5}
    assert {k: e["target"] for k, e in test.items()} == {
        "iemocap_Ses05F_impro01_F000": "neutral",
        "iemocap_Ses05F_impro01_M001": "happy",  # excited, merged
        "iemocap_Ses05F_impro01_M003": "sad",
        "iemocap_Ses05F_impro01_F004": "angry",
        "iemocap_Ses05F_impro01_M005": "happy",
    }
    train = read_manifest(save, "train", "emotion")
    valid = read_manifest(save, "valid", "emotion")
    assert len(train) + len(valid) == 4 * 5
    assert valid and all(stable_fraction(k) < 0.3 for k in valid)
    assert all(stable_fraction(k) >= 0.3 for k in train)
    assert {e["target"] for e in train.values()} <= {
        "neutral",
        "happy",
        "sad",
        "angry",
    }
    assert_skips_second_time(
        prepare_iemocap, save, data_folder=str(corpus), valid_fraction=0.3
    )
    # another test session: session 1 becomes the test split
    prepare_iemocap(str(corpus), str(save), test_session=1)
    test = read_manifest(save, "test", "emotion")
    assert {e["session"] for e in test.values()} == {1}


def test_iemocap_missing_session(tmp_path):
    make_iemocap(tmp_path, sessions=[1, 2, 4, 5])
    with pytest.raises(CorpusError) as err:
        prepare_iemocap(str(tmp_path), str(tmp_path / "out"))
    message = str(err.value)
    assert "Session3/sentences/wav/" in message
    assert "Session3/dialog/EmoEvaluation/" in message
    assert "Session1" not in message
