"""CoVoST 2 En->Zh preparation: Common Voice 48 kHz MP3 clips + the TSV."""

import pytest
from prepare_fixtures import (
    assert_skips_second_time,
    assert_valid,
    read_manifest,
    write_audio,
)

from audiollm_lobes.data.manifest import load_manifest
from audiollm_lobes.data.prepare.covost2 import prepare_covost2
from audiollm_lobes.data.prepare.preparation import (
    CorpusError,
    PreparationError,
    audio_info,
)

ROWS = [
    ("common_voice_en_1.mp3", 'He said "hi".', "他说“嗨”。", "train"),
    (
        "common_voice_en_2.mp3",
        "Use {braces} here.",
        "在这里用{括号}。",
        "train",
    ),
    ("common_voice_en_3.mp3", "Good morning.", "早上好。", "dev"),
    ("common_voice_en_4.mp3", "See you.", "再见。", "test"),
]


def make_covost(root, rows=ROWS):
    for k, (clip, *_rest) in enumerate(rows):
        write_audio(root / "clips" / clip, 0.6, rate=48000, seed=k)
    lines = ["path\tsentence\ttranslation\tclient_id\tsplit"]
    lines += [
        f"{c}\t{s}\t{t}\tclient{k}\t{p}" for k, (c, s, t, p) in enumerate(rows)
    ]
    (root / "covost_v2.en_zh-CN.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_prepare_covost2(tmp_path):
    corpus = make_covost(tmp_path / "en")
    info = audio_info(corpus / "clips" / ROWS[0][0])
    assert info.sample_rate == 48000 and info.channels == 1
    save = tmp_path / "prepared"
    paths = prepare_covost2(str(corpus), str(save))
    assert {s: sorted(t) for s, t in paths.items()} == {
        "train": ["translate_zh"],
        "valid": ["translate_zh"],
        "test": ["translate_zh"],
    }
    assert_valid(paths)
    train = read_manifest(save, "train", "translate_zh")
    assert sorted(train) == [
        "covost2_common_voice_en_1",
        "covost2_common_voice_en_2",
    ]
    assert train["covost2_common_voice_en_1"]["target"] == "他说“嗨”。"
    assert train["covost2_common_voice_en_1"]["transcript"] == 'He said "hi".'
    assert abs(train["covost2_common_voice_en_1"]["duration"] - 0.6) < 0.1
    # braces are stored doubled and read back as written in the corpus
    loaded = load_manifest(paths["train"]["translate_zh"], {"data_root": "/x"})
    assert loaded["covost2_common_voice_en_2"]["target"] == "在这里用{括号}。"
    assert list(read_manifest(save, "valid", "translate_zh")) == [
        "covost2_common_voice_en_3"
    ]
    assert_skips_second_time(prepare_covost2, save, data_folder=str(corpus))


def test_covost2_missing_and_bad(tmp_path):
    with pytest.raises(CorpusError) as err:
        prepare_covost2(str(tmp_path / "nowhere"), str(tmp_path / "out"))
    assert "clips/" in str(err.value)
    assert "covost_v2.en_zh-CN.tsv" in str(err.value)
    corpus = make_covost(tmp_path / "en")
    (corpus / "clips" / ROWS[3][0]).unlink()
    with pytest.raises(CorpusError, match="common_voice_en_4.mp3"):
        prepare_covost2(str(corpus), str(tmp_path / "out"))
    # skipping the missing clip leaves an empty test split out
    paths = prepare_covost2(
        str(corpus), str(tmp_path / "out"), missing_audio="skip"
    )
    assert "test" not in paths and "train" in paths
    (corpus / "covost_v2.en_zh-CN.tsv").write_text("path\tsentence\n")
    with pytest.raises(PreparationError, match="translation"):
        prepare_covost2(str(corpus), str(tmp_path / "out2"))
