"""Helpers of the preparation tests: fabricated audio and manifest checks.

Imported by the ``test_prepare_*.py`` files of this folder (pytest puts
the folder on ``sys.path``).

Authors
 * audiollm-lobes developers, 2026
"""

import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from audiollm_lobes.data import templates
from audiollm_lobes.data.manifest import validate_manifest
from audiollm_lobes.data.prepare.preparation import (
    manifest_path,
    record_path,
)


def write_audio(path, seconds=0.5, rate=16000, channels=1, seed=0):
    """Writes a noisy tone (not silent) in the format of the extension
    (``.wav``, ``.flac``, ``.mp3``); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * rate))
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    tone = 0.2 * np.sin(2 * np.pi * (220 + 40 * seed) * t)
    data = tone[:, None] + 0.05 * rng.standard_normal((n, channels))
    data = data.astype("float32")
    kwargs = {}
    if path.suffix == ".mp3":
        kwargs = {"format": "MP3"}
    sf.write(str(path), data if channels > 1 else data[:, 0], rate, **kwargs)
    return path


def read_manifest(save_folder, split, task):
    """The raw JSON entries of one manifest file."""
    with open(manifest_path(save_folder, split, task), encoding="utf-8") as f:
        return json.load(f)


def assert_valid(paths):
    """Every manifest of ``{split: {task: path}}`` passes validation (audio
    included), and every instruction is one of the task's paraphrases."""
    assert paths, "no manifest written"
    for tasks in paths.values():
        for task, path in tasks.items():
            report = validate_manifest(path)
            assert report.ok, str(report)
            with open(path, encoding="utf-8") as f:
                entries = json.load(f)
            for eid, entry in entries.items():
                assert entry["task"] == task, eid
                assert entry["instruction"].count("<audio>") == 1, eid
                fields = {"question": entry.get("question", "")}
                allowed = {
                    templates.fill(t, **fields)
                    for t in templates.AUDIO_INSTRUCTIONS[task]
                }
                assert entry["instruction"] in allowed, eid


def stamps(save_folder):
    """``{file: mtime_ns}`` of everything under ``<save_folder>/manifests``."""
    root = Path(save_folder) / "manifests"
    return {
        str(p): os.stat(p).st_mtime_ns
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".prepare.lock"
    }


def assert_skips_second_time(prepare, save_folder, **kwargs):
    """A second identical call returns the same paths and rewrites
    nothing (the record and every manifest keep their mtime)."""
    before = stamps(save_folder)
    assert before, "nothing was written the first time"
    first_record = record_path(save_folder, _corpus(prepare)).read_text()
    paths = prepare(save_folder=str(save_folder), **kwargs)
    assert stamps(save_folder) == before
    assert record_path(save_folder, _corpus(prepare)).read_text() == (
        first_record
    )
    return paths


def _corpus(prepare):
    import importlib

    return importlib.import_module(prepare.__module__).CORPUS
