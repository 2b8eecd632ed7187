"""AudioCaps preparation: user-fetched 44.1 kHz stereo clips + the CSVs."""

import pytest
from prepare_fixtures import (
    assert_skips_second_time,
    assert_valid,
    read_manifest,
    write_audio,
)

from audiollm_lobes.data.prepare.audiocaps import prepare_audiocaps
from audiollm_lobes.data.prepare.preparation import (
    CorpusError,
    audio_info,
)

ROWS = {
    "train": [("91139", "r1nicOVtvkQ", "130", "A man talks, then a dog barks")],
    "val": [
        (str(100 + k), "vfY_TJq7n_U", "30", f"Rustling {k}") for k in range(5)
    ],
    "test": [
        (str(200 + k), "-0Gj8-vB1q4", "10", f"Water runs {k}") for k in range(5)
    ]
    + [("300", "GONE_FROM_YT", "0", "never fetched")],
}


def make_audiocaps(root):
    for k, (name, rows) in enumerate(ROWS.items()):
        lines = ["audiocap_id,youtube_id,start_time,caption"]
        for audiocap_id, youtube_id, start, caption in rows:
            lines.append(f'{audiocap_id},{youtube_id},{start},"{caption}"')
            clip = root / "audio" / name / f"{youtube_id}.wav"
            if youtube_id != "GONE_FROM_YT" and not clip.exists():
                write_audio(clip, 0.5, 44100, channels=2, seed=k)
        (root / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return root


def test_prepare_audiocaps(tmp_path):
    corpus = make_audiocaps(tmp_path / "audiocaps")
    assert audio_info(corpus / "audio" / "train" / "r1nicOVtvkQ.wav")[1:3] == (
        44100,
        2,
    )
    save = tmp_path / "prepared"
    paths = prepare_audiocaps(str(corpus), str(save))
    assert_valid(paths)
    train = read_manifest(save, "train", "captioning")
    assert train["audiocaps_91139"]["target"] == "A man talks, then a dog barks"
    valid = read_manifest(save, "valid", "captioning")
    assert list(valid) == ["audiocaps_vfY_TJq7n_U"]
    assert valid["audiocaps_vfY_TJq7n_U"]["references"] == [
        f"Rustling {k}" for k in range(5)
    ]
    # the clip never fetched is skipped (missing_audio="skip")
    assert list(read_manifest(save, "test", "captioning")) == [
        "audiocaps_-0Gj8-vB1q4"
    ]
    assert_skips_second_time(prepare_audiocaps, save, data_folder=str(corpus))
    with pytest.raises(CorpusError, match="GONE_FROM_YT.wav"):
        prepare_audiocaps(
            str(corpus), str(tmp_path / "out"), missing_audio="error"
        )


def test_audiocaps_missing(tmp_path):
    corpus = make_audiocaps(tmp_path / "audiocaps")
    with pytest.raises(CorpusError) as err:
        prepare_audiocaps(
            str(corpus), str(tmp_path / "out"), audio_folder=str(tmp_path)
        )
    assert "train/" in str(err.value) and "--audio_folder" in str(err.value)
    with pytest.raises(ValueError, match="file_name"):
        prepare_audiocaps(str(corpus), str(tmp_path / "out"), file_name="x")
