"""LibriSpeech preparation on a fabricated corpus in the official layout."""

import pytest
from prepare_fixtures import (
    assert_skips_second_time,
    assert_valid,
    read_manifest,
    stamps,
    write_audio,
)

from audiollm_lobes.data.prepare.librispeech import prepare_librispeech
from audiollm_lobes.data.prepare.preparation import (
    CorpusError,
    PreparationError,
)

#: subset -> (speaker, chapter, transcripts)
CORPUS = {
    "train-clean-100": ("19", "198", ["NORTHANGER ABBEY", "IT IS A TRUTH"]),
    "dev-clean": ("84", "121123", ["GO DO YOU HEAR", "BUT IN LESS"]),
    "test-clean": ("1089", "134686", ["HE HOPED THERE", "STUFF IT INTO"]),
}


def make_librispeech(root, subsets=CORPUS):
    """``root/LibriSpeech/<subset>/<spk>/<chapter>/...`` with FLAC files."""
    for k, (subset, (spk, chapter, texts)) in enumerate(subsets.items()):
        folder = root / "LibriSpeech" / subset / spk / chapter
        lines = []
        for n, text in enumerate(texts):
            utt = f"{spk}-{chapter}-{n:04d}"
            write_audio(folder / f"{utt}.flac", 0.4 + 0.1 * n, seed=k + n)
            lines.append(f"{utt} {text}\n")
        (folder / f"{spk}-{chapter}.trans.txt").write_text("".join(lines))
    return root / "LibriSpeech"


def test_prepare_librispeech(tmp_path):
    corpus = make_librispeech(tmp_path / "corpora")
    save = tmp_path / "prepared"
    # the folder holding LibriSpeech/ is accepted too
    paths = prepare_librispeech(str(corpus.parent), str(save))
    assert sorted(paths) == ["test", "train", "valid"]
    assert_valid(paths)
    train = read_manifest(save, "train", "asr")
    assert sorted(train) == [
        "librispeech_19-198-0000",
        "librispeech_19-198-0001",
    ]
    entry = train["librispeech_19-198-0001"]
    assert entry["target"] == "it is a truth"
    assert entry["wav"] == str(
        corpus / "train-clean-100" / "19" / "198" / "19-198-0001.flac"
    )
    assert entry["duration"] == pytest.approx(0.5)
    assert entry["speaker"] == "19" and entry["corpus"] == "librispeech"
    assert list(read_manifest(save, "test", "asr"))[0].startswith(
        "librispeech_1089-134686"
    )
    again = assert_skips_second_time(
        prepare_librispeech, save, data_folder=str(corpus)
    )
    assert again == paths
    # other options prepare again: dev-clean and test-clean swapped
    before = stamps(save)
    prepare_librispeech(
        str(corpus),
        str(save),
        valid_splits=["test-clean"],
        test_splits=["dev-clean"],
    )
    assert stamps(save) != before
    assert list(read_manifest(save, "test", "asr"))[0].startswith(
        "librispeech_84-121123"
    )
    # one subset in two splits would share examples between them
    with pytest.raises(PreparationError, match="produced twice"):
        prepare_librispeech(str(corpus), str(save), test_splits=["dev-clean"])


def test_librispeech_missing_parts(tmp_path):
    corpus = make_librispeech(tmp_path, {"dev-clean": CORPUS["dev-clean"]})
    with pytest.raises(CorpusError) as err:
        prepare_librispeech(str(corpus), str(tmp_path / "out"))
    message = str(err.value)
    assert "train-clean-100/" in message and "test-clean/" in message
    assert "dev-clean/" not in message
    # a transcript line without its FLAC file is named
    make_librispeech(tmp_path, CORPUS)
    flac = corpus / "dev-clean" / "84" / "121123" / "84-121123-0001.flac"
    flac.unlink()
    with pytest.raises(CorpusError, match="84-121123-0001.flac"):
        prepare_librispeech(str(corpus), str(tmp_path / "out"))
    assert not (tmp_path / "out" / "manifests" / "train").exists()
