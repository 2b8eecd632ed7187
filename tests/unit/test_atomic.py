"""Atomic writes: a reader sees the old file or the new one, never half."""

import os

import pytest
import torch

from audiollm_lobes.atomic import (
    replace_dir,
    replacing,
    save_torch,
    staging_dir,
    write_json,
    write_text,
)


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    path = tmp_path / "results.md"
    write_text(path, "old")
    with pytest.raises(RuntimeError):
        with replacing(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["results.md"]


def test_writers_replace_and_leave_no_temporary_file(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    write_json(tmp_path / "a.json", {"x": 2})
    save_torch({"w": torch.arange(3)}, tmp_path / "w.pt")
    assert (tmp_path / "a.json").read_text() == '{\n  "x": 2\n}'
    assert torch.load(tmp_path / "w.pt")["w"].tolist() == [0, 1, 2]
    assert sorted(os.listdir(tmp_path)) == ["a.json", "w.pt"]


def test_replace_dir_swaps_whole_folders(tmp_path):
    dest = tmp_path / "model"
    write_text(dest / "old.bin", "old")
    with staging_dir(dest) as tmp:
        write_text(tmp / "new.bin", "new")
        replace_dir(tmp, dest)
    assert sorted(os.listdir(dest)) == ["new.bin"]
    assert os.listdir(tmp_path) == ["model"]


def test_a_failed_folder_build_keeps_the_old_folder(tmp_path):
    dest = tmp_path / "model"
    write_text(dest / "old.bin", "old")
    with pytest.raises(ValueError):
        with staging_dir(dest) as tmp:
            write_text(tmp / "new.bin", "half")
            raise ValueError("build failed")
    assert sorted(os.listdir(dest)) == ["old.bin"]
    assert os.listdir(tmp_path) == ["model"]
