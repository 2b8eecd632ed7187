"""VoxCeleb1 preparation: trial-list test pairs, pairs drawn from dev."""

import pytest
from prepare_fixtures import (
    assert_skips_second_time,
    assert_valid,
    read_manifest,
    write_audio,
)

from audiollm_lobes.data.audio import DEFAULT_GAP_SECONDS
from audiollm_lobes.data.prepare.preparation import CorpusError
from audiollm_lobes.data.prepare.voxceleb1 import prepare_voxceleb1

DEV = ["id10001", "id10002", "id10003", "id10004", "id10005"]
TEST = ["id10270", "id10271"]
TRIALS = [
    ("1", "id10270/5r0dWxy17C8/00001.wav", "id10270/x6uYqmx31kE/00001.wav"),
    ("0", "id10270/5r0dWxy17C8/00001.wav", "id10271/1gtz-CUIygI/00001.wav"),
    ("1", "id10271/1gtz-CUIygI/00001.wav", "id10271/1gtz-CUIygI/00002.wav"),
]


def make_voxceleb(root):
    for k, spk in enumerate(DEV):
        for j, yt in enumerate(["1zcIwhmdeo4", "7gWzIy6yIIk"]):
            path = root / "vox1_dev_wav" / "wav" / spk / yt / "00001.wav"
            write_audio(path, 0.3 + 0.05 * j, seed=k)
    clips = {u for t in TRIALS for u in t[1:]}
    for k, utt in enumerate(sorted(clips)):
        write_audio(root / "vox1_test_wav" / "wav" / utt, 0.4, seed=10 + k)
    (root / "veri_test2.txt").write_text(
        "".join(" ".join(t) + "\n" for t in TRIALS)
    )
    return root


def test_prepare_voxceleb1(tmp_path):
    corpus = make_voxceleb(tmp_path / "vox")
    save = tmp_path / "prepared"
    options = {"train_pairs": 6, "valid_pairs": 2, "valid_speakers": 2}
    paths = prepare_voxceleb1(str(corpus), str(save), **options)
    assert_valid(paths)
    test = read_manifest(save, "test", "speaker_verification")
    assert list(test) == [
        "voxceleb1_veri_test2_000001",
        "voxceleb1_veri_test2_000002",
        "voxceleb1_veri_test2_000003",
    ]
    assert [e["target"] for e in test.values()] == ["yes", "no", "yes"]
    first = test["voxceleb1_veri_test2_000002"]
    assert first["wav2"].endswith("vox1_test_wav/wav/" + TRIALS[1][2])
    assert first["duration"] == pytest.approx(0.4 + DEFAULT_GAP_SECONDS + 0.4)
    train = read_manifest(save, "train", "speaker_verification")
    valid = read_manifest(save, "valid", "speaker_verification")
    assert len(train) == 6 and len(valid) == 2
    for entries in (train, valid):
        for entry in entries.values():
            same = entry["utt1"].split("/")[0] == entry["utt2"].split("/")[0]
            assert entry["target"] == ("yes" if same else "no")
            assert "vox1_dev_wav" in entry["wav"]
    assert (
        sorted(e["target"] for e in train.values()) == ["no"] * 3 + ["yes"] * 3
    )
    spk = {
        u.split("/")[0] for e in train.values() for u in (e["utt1"], e["utt2"])
    }
    held = {
        u.split("/")[0] for e in valid.values() for u in (e["utt1"], e["utt2"])
    }
    assert len(held) == 2 and not spk & held
    assert_skips_second_time(
        prepare_voxceleb1, save, data_folder=str(corpus), **options
    )


def test_voxceleb1_missing(tmp_path):
    corpus = make_voxceleb(tmp_path / "vox")
    (corpus / "vox1_test_wav" / "wav" / TRIALS[2][2]).unlink()
    with pytest.raises(CorpusError, match="id10271/1gtz-CUIygI/00002.wav"):
        prepare_voxceleb1(str(corpus), str(tmp_path / "out"))
    with pytest.raises(CorpusError, match="list_test_hard2.txt"):
        prepare_voxceleb1(
            str(corpus), str(tmp_path / "out"), trial_list="list_test_hard2.txt"
        )
