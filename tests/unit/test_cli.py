"""``precision: auto`` in recipe hparams and its resolution."""

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
