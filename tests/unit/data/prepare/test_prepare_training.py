"""Prepared corpora train a tiny LiSTEN run for two steps (one run for
all: FLAC, 48 kHz MP3, 44.1 kHz stereo WAV, talk segments, pairs;
the 44.1 kHz mono ESC-50 and Clotho clips read the same way)."""

import json

from test_prepare_audiocaps import make_audiocaps
from test_prepare_covost2 import make_covost
from test_prepare_librispeech import make_librispeech
from test_prepare_mustc import make_mustc
from test_prepare_voxceleb1 import make_voxceleb

from audiollm_lobes.data.prepare.audiocaps import prepare_audiocaps
from audiollm_lobes.data.prepare.covost2 import prepare_covost2
from audiollm_lobes.data.prepare.librispeech import prepare_librispeech
from audiollm_lobes.data.prepare.mustc import prepare_mustc
from audiollm_lobes.data.prepare.voxceleb1 import prepare_voxceleb1

TASKS = [
    "asr",
    "translate_zh",
    "translate_fr",
    "speaker_verification",
    "captioning",
]


def test_prepared_corpora_train_a_tiny_recipe(
    tiny_backbones, tmp_path, run_tiny_recipe
):
    corpora, save = tmp_path / "corpora", tmp_path / "prepared"
    prepare_librispeech(str(make_librispeech(corpora)), str(save))
    prepare_covost2(str(make_covost(corpora / "cv")), str(save))
    prepare_mustc(str(make_mustc(corpora / "mustc")), str(save))
    prepare_voxceleb1(
        str(make_voxceleb(corpora / "vox")),
        str(save),
        train_pairs=4,
        valid_pairs=2,
        valid_speakers=2,
    )
    prepare_audiocaps(str(make_audiocaps(corpora / "audiocaps")), str(save))
    out = tmp_path / "run"
    proc = run_tiny_recipe(
        "LiSTEN",
        "dps",
        out,
        extra=[
            f"--data_folder={save}",
            f"--tasks=[{', '.join(TASKS)}]",
            "--k_eval_sweep=[]",
            "--llm_compile_training=False",
        ],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test"]) == set(TASKS)
    tested = {task: values["n"] for task, values in summary["test"].items()}
    assert tested == {
        "asr": 2,
        "translate_zh": 1,
        "translate_fr": 1,
        "speaker_verification": 2,
        "captioning": 1,
    }
