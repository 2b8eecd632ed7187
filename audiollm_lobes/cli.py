"""A recipe's command line: find its hparams file, load it, set up the run.

Every ``train.py`` starts with :func:`load_recipe_hparams`: SpeechBrain's
argument parsing (``--device``, ``--precision``, ``--distributed_backend``,
YAML overrides ...), the hparams file found relative to the current folder
or to the recipe, DDP initialisation, HyperPyYAML loading and
``create_experiment_directory``.

Authors
 * audiollm-lobes developers, 2026
"""

import atexit
import shutil
from pathlib import Path

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml

from audiollm_lobes.atomic import write_json
from audiollm_lobes.backbone_widths import backbone_signature

#: What a run (or export) expects of its backbones (see
#: :func:`audiollm_lobes.backbone_widths.backbone_signature`).
BACKBONES_FILE = "backbones.json"


def resolve_hparams_file(path, script_file):
    """Finds an hparams file relative to the CWD, then to the recipe folder.

    Arguments
    ---------
    path : str
        As given on the command line, e.g. ``hparams/dps.yaml``.
    script_file : str
        The recipe's ``train.py`` (``__file__``).

    Returns
    -------
    str
        An existing path.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(d, "hparams"))
    >>> open(os.path.join(d, "hparams", "x.yaml"), "w").close()
    >>> resolve_hparams_file("hparams/x.yaml", os.path.join(d, "train.py"))[-6:]
    'x.yaml'
    """
    tried = [Path(path), Path(script_file).resolve().parent / path]
    for candidate in tried:
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"hparams file {path!r} not found; tried: "
        + ", ".join(str(c.resolve()) for c in tried)
    )


def resolve_precision(precision, device="cpu"):
    """Resolves ``precision: auto`` to SpeechBrain's ``bf16`` or ``fp32``.

    ``auto`` gives ``bf16`` autocast where the hardware runs bfloat16
    matrix products natively (CPUs whose oneDNN supports bf16, e.g.
    AVX-512 BF16 / AMX; CUDA GPUs with bf16), where it is much faster than
    fp32 (1.4x per LiSTEN training step on this project's machine,
    ``benchmarks/precision_step.py``), and ``fp32`` elsewhere, where
    emulated bf16 would be slower. Any other value is returned unchanged.

    Arguments
    ---------
    precision : str
        ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    device : str
        The run's device (``"cpu"``, ``"cuda:0"``, ...).

    Returns
    -------
    str
        The precision SpeechBrain is given.

    Example
    -------
    >>> resolve_precision("fp32")
    'fp32'
    >>> resolve_precision("auto") in ("bf16", "fp32")
    True
    """
    if precision != "auto":
        return precision
    if str(device).startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def load_recipe_hparams(argv, script_file):
    """Parses a recipe's command line, loads its hparams, makes its folder.

    The common start of every ``train.py``: ``sb.parse_arguments``, the
    hparams file found relative to the CWD or the recipe folder, DDP
    initialisation, HyperPyYAML loading with the overrides, and
    ``sb.create_experiment_directory``.

    Arguments
    ---------
    argv : list of str
        Command-line arguments (``sys.argv[1:]``).
    script_file : str
        The recipe's ``train.py`` (``__file__``).

    Returns
    -------
    tuple
        ``(hparams, run_opts)``.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "exp.yaml").write_text(
    ...     f"seed: 1\\noutput_folder: {folder / 'out'}\\nprecision: fp32\\n")
    >>> hparams, run_opts = load_recipe_hparams(
    ...     ["exp.yaml", "--seed=7"], str(folder / "train.py")
    ... )  # doctest: +SKIP
    >>> hparams["seed"], (folder / "out" / "hyperparams.yaml").is_file()
    ... # doctest: +SKIP
    (7, True)
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    hparams_file = resolve_hparams_file(hparams_file, script_file)
    sb.utils.distributed.ddp_init_group(run_opts)
    end_process_group_at_exit()
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    # SpeechBrain reads run options missing from the command line from the
    # hparams; "auto" precisions are resolved for this machine first.
    overridden = getattr(run_opts, "overridden_args", ())
    device = run_opts.get("device") if "device" in overridden else None
    device = device or hparams.get("device") or "cpu"
    for key in ("precision", "eval_precision"):
        if key in hparams and key not in overridden:
            hparams[key] = resolve_precision(hparams[key], device)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    # SpeechBrain copies the file that called it (this module) into the
    # run's folder; the run should hold the recipe's own code instead (its
    # script and the helpers it imports: audiollm_lobes.inference rebuilds
    # the trained model from them), and what it expects of its backbones
    if sb.utils.distributed.if_main_process():
        out_dir = Path(hparams["output_folder"])
        script = Path(script_file).resolve()
        for code in recipe_code_files(script):
            shutil.copy(code, out_dir / code.name)
        if script.name != Path(__file__).name:
            (out_dir / Path(__file__).name).unlink(missing_ok=True)
        if "llm" in hparams:
            write_json(out_dir / BACKBONES_FILE, backbone_signature(hparams))
    return hparams, run_opts


def end_process_group_at_exit():
    """Destroys the DDP process group (if any) when the program exits,
    while the interpreter is still whole.

    A process that exits with its Gloo process group alive may abort
    during interpreter finalisation ("terminate called without an active
    exception", SIGABRT) when Gloo's worker threads still hold Python
    objects: a run that trained and tested fine would fail at its very
    end, now and then (seen under load). ``atexit`` handlers run before
    finalisation; this one is registered once per process and does
    nothing when no group exists or it was already destroyed.

    Example
    -------
    >>> end_process_group_at_exit()  # no group here: registers, no-op
    >>> _destroy_process_group()
    """
    atexit.unregister(_destroy_process_group)  # registered once
    atexit.register(_destroy_process_group)


def _destroy_process_group():
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def recipe_code_files(script_file):
    """The recipe's Python files: its script and the helpers beside it.

    Arguments
    ---------
    script_file : str or Path
        The recipe's ``train.py``.

    Returns
    -------
    list of Path
        Existing ``*.py`` files of the script's folder (the script first).

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("train.py", "helpers.py", "notes.txt"):
    ...     _ = (folder / name).write_text("")
    >>> [p.name for p in recipe_code_files(folder / "train.py")]
    ['train.py', 'helpers.py']
    """
    script = Path(script_file)
    if not script.is_file():
        return []
    others = sorted(p for p in script.parent.glob("*.py") if p != script)
    return [script] + others
