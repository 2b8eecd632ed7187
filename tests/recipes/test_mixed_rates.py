"""A corpus as it comes: mixed rates, channels and formats, a new task.

Clips of the tiny toy world are rewritten at 8, 16, 22.05, 44.1 and
48 kHz, mono and stereo, as wav, flac, ogg and mp3, under a new task
declared in the hparams (``task_definitions``); the manifests validate as
they are and a LiSTEN run trains on them for two steps.

Authors
 * audiollm-lobes developers, 2026
"""

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from audiollm_lobes.data.manifest import check_manifests

ROOT = Path(__file__).resolve().parents[2]

#: (rate, channels, extension, soundfile format, subtype), used in turn.
LAYOUTS = [
    (8000, 1, "wav", "WAV", "PCM_16"),
    (44100, 2, "wav", "WAV", "PCM_16"),
    (22050, 2, "flac", "FLAC", "PCM_16"),
    (48000, 1, "mp3", "MP3", "MPEG_LAYER_III"),
    (16000, 2, "ogg", "OGG", "VORBIS"),
    (48000, 2, "wav", "WAV", "FLOAT"),
    (44100, 1, "flac", "FLAC", "PCM_24"),
    (22050, 1, "wav", "WAV", "PCM_16"),
]
SPLIT_SIZES = {"train": 8, "valid": 2, "test": 2}
NEW_TASK = "first_word"


def _rewrite(wav_16k, path, layout):
    """Writes a 16 kHz mono clip at another rate/channels/format."""
    rate, channels, _, fmt, subtype = layout
    x = torchaudio.functional.resample(torch.from_numpy(wav_16k), 16000, rate)
    x = x.numpy()
    if channels == 2:  # not the same signal twice: the mix is the mean
        x = np.stack([0.8 * x, 1.2 * x], axis=1)
    sf.write(str(path), x, rate, format=fmt, subtype=subtype)
    info = sf.info(str(path))
    return info.frames / info.samplerate


def _mixed_corpus(tiny_world, root):
    """Writes ``root/manifests/<split>/{asr,first_word}.json``."""
    layouts = iter(LAYOUTS * 8)
    for split, n in SPLIT_SIZES.items():
        source = json.loads(
            (Path(tiny_world) / "manifests" / split / "asr.json").read_text()
        )
        manifests = {"asr": {}, NEW_TASK: {}}
        for i, (eid, entry) in enumerate(list(source.items())[: 2 * n]):
            layout = next(layouts)
            wav_path = entry["wav"].replace("{data_root}", str(tiny_world))
            wav, rate = sf.read(wav_path, dtype="float32")
            assert rate == 16000
            name = f"{eid}_{layout[0]}_{layout[1]}ch.{layout[2]}"
            folder = root / "audio" / split
            folder.mkdir(parents=True, exist_ok=True)
            duration = _rewrite(wav, folder / name, layout)
            new = dict(entry, wav="{data_root}/audio/" + f"{split}/{name}")
            new["duration"] = duration
            if i % 2:
                new["task"] = NEW_TASK
                new["instruction"] = "<audio> Say the first word only."
                new["target"] = entry["transcript"].split()[0]
            manifests[new["task"]][eid] = new
        out = root / "manifests" / split
        out.mkdir(parents=True, exist_ok=True)
        for task, entries in manifests.items():
            (out / f"{task}.json").write_text(json.dumps(entries, indent=1))


def test_mixed_rates_validate_and_train(
    tiny_world, tiny_backbones, tmp_path, run_tiny_recipe
):
    data = tmp_path / "corpus"
    _mixed_corpus(tiny_world, data)
    paths = sorted(str(p) for p in data.glob("manifests/*/*.json"))
    good = check_manifests(
        paths,
        known_tasks=["asr", NEW_TASK],
        replacements={"data_root": str(data)},
    )
    assert sum(len(v) for v in good.values()) == 2 * sum(SPLIT_SIZES.values())
    rates = {sf.info(str(p)).samplerate for p in data.glob("audio/*/*")}
    assert rates == {8000, 16000, 22050, 44100, 48000}

    # the recipe as it is; the new task is declared on the command line
    out = tmp_path / "run"
    proc = run_tiny_recipe(
        "LiSTEN",
        "dps",
        out,
        extra=[
            f"--data_folder={data}",
            f"--tasks=[asr, {NEW_TASK}]",
            "--k_eval_sweep=[]",
            f"--task_definitions={{{NEW_TASK}: {{metric: accuracy, "
            "instructions: ['<audio> Say the first word only.']}}",
        ],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test"]) == {"asr", NEW_TASK}
    assert all(values["n"] == 2 for values in summary["test"].values())
    # the declared task is scored with its declared metric
    assert "accuracy" in summary["test"][NEW_TASK]
