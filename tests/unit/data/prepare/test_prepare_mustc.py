"""MuST-C En->Fr preparation: segments (offset/duration) of whole talks."""

import pytest
from prepare_fixtures import (
    assert_skips_second_time,
    assert_valid,
    read_manifest,
    write_audio,
)

from audiollm_lobes.data.audio import read_example_audio
from audiollm_lobes.data.prepare.mustc import prepare_mustc
from audiollm_lobes.data.prepare.preparation import (
    CorpusError,
    PreparationError,
)

#: split -> talk -> [(offset, duration, en, fr)]
SEGMENTS = {
    "train": {
        "ted_1": [
            (0.2, 0.8, "Hello.", "Bonjour."),
            (1.25, 1.0, "Thanks.", "Merci."),
        ],
        "ted_2": [(0.0, 1.5, "Yes, {x}.", "Oui, {x}.")],
    },
    "dev": {"ted_767": [(0.5, 1.0, "Good.", "Bien.")]},
    "tst-COMMON": {"ted_1096": [(0.1, 0.9, "No.", "Non.")]},
}


def make_mustc(root, segments=SEGMENTS, talk_seconds=2.5):
    for k, (split, talks) in enumerate(segments.items()):
        data = root / "en-fr" / "data" / split
        yaml_lines, en, fr = [], [], []
        for j, (talk, segs) in enumerate(talks.items()):
            write_audio(data / "wav" / f"{talk}.wav", talk_seconds, seed=k + j)
            for offset, duration, e, f in segs:
                yaml_lines.append(
                    f"- {{duration: {duration:.6f}, offset: {offset:.6f}, "
                    f"rW: 2, uW: 0, speaker_id: spk.{j}, wav: {talk}.wav}}"
                )
                en.append(e)
                fr.append(f)
        txt = data / "txt"
        txt.mkdir(parents=True, exist_ok=True)
        (txt / f"{split}.yaml").write_text("\n".join(yaml_lines) + "\n")
        (txt / f"{split}.en").write_text("\n".join(en) + "\n")
        (txt / f"{split}.fr").write_text("\n".join(fr) + "\n")
    return root


def test_prepare_mustc(tmp_path):
    corpus = make_mustc(tmp_path / "MUSTC_v1.0")
    save = tmp_path / "prepared"
    paths = prepare_mustc(str(corpus), str(save))
    assert_valid(paths)
    train = read_manifest(save, "train", "translate_fr")
    assert sorted(train) == ["mustc_ted_1_0", "mustc_ted_1_1", "mustc_ted_2_0"]
    seg = train["mustc_ted_1_1"]
    assert seg["wav"].endswith("en-fr/data/train/wav/ted_1.wav")
    assert (seg["start"], seg["stop"]) == (1.25, 2.25)
    assert seg["duration"] == pytest.approx(1.0)
    assert seg["target"] == "Merci." and seg["transcript"] == "Thanks."
    assert seg["speaker"] == "spk.0"
    # the reader cuts the segment out of the talk
    assert read_example_audio(seg).shape[0] == 16000
    assert list(read_manifest(save, "test", "translate_fr")) == [
        "mustc_ted_1096_0"
    ]
    assert_skips_second_time(prepare_mustc, save, data_folder=str(corpus))


def test_mustc_problems(tmp_path):
    with pytest.raises(CorpusError) as err:
        prepare_mustc(str(tmp_path), str(tmp_path / "out"))
    assert "data/tst-COMMON/txt/tst-COMMON.yaml" in str(err.value)
    corpus = make_mustc(tmp_path / "c1")
    txt = corpus / "en-fr" / "data" / "dev" / "txt"
    (txt / "dev.fr").write_text("Bien.\nEncore.\n")
    with pytest.raises(PreparationError, match="not aligned"):
        prepare_mustc(str(corpus), str(tmp_path / "out"))
    past_end = {
        "train": {"ted_9": [(2.0, 1.0, "a", "b")]},
        "dev": SEGMENTS["dev"],
        "tst-COMMON": SEGMENTS["tst-COMMON"],
    }
    corpus = make_mustc(tmp_path / "c2", past_end)
    with pytest.raises(PreparationError, match="ted_9.wav"):
        prepare_mustc(str(corpus), str(tmp_path / "out"))
