"""``precision: auto`` in recipe hparams and its resolution."""

import subprocess
import sys

import speechbrain as sb
import torch

from audiollm_lobes.cli import load_recipe_hparams, resolve_precision


def _native_bf16():
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def test_resolve_precision():
    assert resolve_precision("auto") == ("bf16" if _native_bf16() else "fp32")
    for name in ("fp32", "bf16", "fp16"):
        assert resolve_precision(name) == name


def _write(tmp_path, text):
    path = tmp_path / "hp.yaml"
    path.write_text(text + f"output_folder: {tmp_path / 'out'}\n")
    return str(path)


def test_auto_in_hparams_reaches_the_brain(tmp_path):
    path = _write(tmp_path, "precision: auto\neval_precision: fp32\n")
    hparams, run_opts = load_recipe_hparams([path], path)
    expected = "bf16" if _native_bf16() else "fp32"
    assert hparams["precision"] == expected
    assert hparams["eval_precision"] == "fp32"
    brain = sb.Brain(modules={}, hparams=hparams, run_opts=run_opts)
    assert brain.precision == expected
    assert brain.eval_precision == "fp32"


def test_command_line_precision_wins_over_auto(tmp_path):
    path = _write(tmp_path, "precision: auto\n")
    hparams, run_opts = load_recipe_hparams([path, "--precision=fp32"], path)
    brain = sb.Brain(modules={}, hparams=hparams, run_opts=run_opts)
    assert brain.precision == "fp32"


def test_the_run_folder_holds_the_recipe_script(tmp_path):
    """SpeechBrain copies the file that calls it (cli.py); a run should
    keep its recipe's own script, as SpeechBrain recipes' runs do."""
    path = _write(tmp_path, "precision: fp32\n")
    script = tmp_path / "train.py"
    script.write_text("# the recipe\n")
    load_recipe_hparams([path], str(script))
    out = tmp_path / "out"
    assert (out / "train.py").read_text() == "# the recipe\n"
    assert not (out / "cli.py").exists()


def test_process_group_is_destroyed_before_interpreter_exit(tmp_path):
    """A Gloo group left alive at exit may abort the process during
    finalisation; the handler destroys it first. An atexit handler
    registered before it runs after it (LIFO) and sees no group."""
    script = tmp_path / "child.py"
    script.write_text(
        "import atexit\n"
        "import torch.distributed as dist\n"
        "from audiollm_lobes import cli\n"
        "atexit.register(lambda: print('alive at exit:', "
        "dist.is_initialized()))\n"
        f"dist.init_process_group('gloo', init_method='file://{tmp_path}/pg',"
        " rank=0, world_size=1)\n"
        "cli.end_process_group_at_exit()\n"
        "cli.end_process_group_at_exit()  # once per process\n"
        "print('alive in main:', dist.is_initialized())\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines == ["alive in main: True", "alive at exit: False"]
