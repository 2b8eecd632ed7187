"""Frozen-encoder features from a disk cache vs on the fly vs in memory.

Two measurements on a LiSTEN recipe (default ``recipes/LiSTEN/hparams/
dps.yaml`` on the ``small`` toy world, built on first use), each variant in
a process of its own so that times and memory do not mix:

1. **Epoch time.** The same ``--steps`` training steps (same seed, model
   and batches) with the frozen encoders run on the fly (``cache_encoder_
   features: False``, the encoder frozen by hand so that the same
   parameters train), from a disk cache (``feature_cache: disk``, filled
   first by precomputing the training set into an empty folder; the
   precomputation is timed on its own) and from the in-memory cache.
   The variants run in turn ``--repeats`` times (the same machine load for
   all); printed: the fastest epoch of each and the on-the-fly / disk
   ratio (target: at least 3x).
2. **Peak memory.** For each ``--sizes`` (examples per task in the
   training set), the training set's features are precomputed into the
   in-memory cache or the disk cache, then every training batch reads its
   features once (``encode_audio``); the disk variant runs twice, into an
   empty folder (filling: the encoder runs, as in the memory variant) and
   again as a later run that finds every clip on disk (reading only, what
   every run after the first does). Printed: the process's resident
   memory after building the Brain, its peak (``ru_maxrss``) and the
   growth between them, per cache and corpus size (target: the disk
   cache's growth does not grow with the corpus).

By default the variants train as the recipe does: ``--precision auto``
(bf16 autocast where the hardware runs it natively) and the LLM decoder
compiled (``llm_compile_training``), each worker first running one
untimed warm-up epoch on the same batches so that compiling is not timed
(``--no-compile`` runs the decoder eagerly; ``--precision fp32 --no-compile``
is the most conservative setting: the slowest step, so the smallest
ratio).

Usage::

    python benchmarks/feature_cache.py [--profile small] [--steps 20]
        [--train_per_task 100] [--sizes 100 400] [--repeats 2]
        [--parts epoch memory] [--hparams FILE] [--precision auto]
        [--no-compile]

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import speechbrain as sb
from speechbrain.utils.epoch_loop import EpochCounter

from audiollm_lobes.brain import AudioLLMBrain
from audiollm_lobes.cli import load_recipe_hparams, resolve_precision
from audiollm_lobes.data.datasets import build_datasets
from audiollm_lobes.data.sampling import train_loader_kwargs

ROOT = Path(__file__).resolve().parents[1]
MB = 2**20


def rss_mb():
    """Current resident memory of this process, in MiB.

    Returns
    -------
    float

    Example
    -------
    >>> rss_mb() > 0
    True
    """
    return psutil.Process().memory_info().rss / MB


def reset_peak_rss():
    """Starts a new peak-memory window (Linux: ``/proc/self/clear_refs``).

    Returns
    -------
    bool
        Whether the peak could be reset (else the peak is since start-up).

    Example
    -------
    >>> reset_peak_rss() in (True, False)
    True
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb():
    """Peak resident memory since start-up or :func:`reset_peak_rss`, MiB.

    Reads ``VmHWM`` (Linux), else ``ru_maxrss``.

    Returns
    -------
    float

    Example
    -------
    >>> peak_rss_mb() >= rss_mb() - 1
    True
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(args, mode, train_per_task, folder):
    """Brain and datasets of one variant.

    Arguments
    ---------
    args : argparse.Namespace
        ``hparams``, ``profile``, ``steps``, ``batch_size``.
    mode : str
        ``"on_the_fly"``, ``"memory"`` or ``"disk"``.
    train_per_task : int
        Training examples per task.
    folder : str
        Disk cache folder (for ``"disk"``).

    Returns
    -------
    tuple
        ``(brain, datasets, hparams)``.

    Example
    -------
    >>> brain, data, hp = build(args, "disk", 100, "/tmp/f")  # doctest: +SKIP
    >>> brain.hparams.feature_cache  # doctest: +SKIP
    'disk'
    """
    cached = mode != "on_the_fly"
    hparams, run_opts = load_recipe_hparams(
        [
            args.hparams,
            f"--toy_profile={args.profile}",
            f"--output_folder={tempfile.mkdtemp(prefix='fc-bench-')}",
            f"--max_train_per_task={train_per_task}",
            "--max_valid_per_task=1",
            "--max_test_per_task=1",
            f"--steps_per_epoch={args.steps}",
            "--number_of_epochs=1",
            f"--batch_size={args.batch_size}",
            f"--precision={resolve_precision(args.precision)}",
            "--noprogressbar",
            f"--llm_compile_training={args.compile}",
            f"--cache_encoder_features={cached}",
            f"--precompute_encoder_features={cached}",
        ],
        args.hparams,
    )
    hparams["feature_cache"] = "disk" if mode == "disk" else "memory"
    hparams["feature_cache_folder"] = folder
    datasets = build_datasets(hparams)
    brain = AudioLLMBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=None,
    )
    # the same trainable parameters in every variant: frozen encoder
    brain.modules.encoder.requires_grad_(False)
    return brain, datasets, hparams


def run_epoch(args):
    """Worker: precompute (if cached) and one epoch of ``--steps`` steps.

    Arguments
    ---------
    args : argparse.Namespace
        With ``mode``, ``folder``, ``train_per_task``.

    Returns
    -------
    dict
        ``precompute_s``, ``epoch_s``, ``steps``, ``loss``.

    Example
    -------
    >>> run_epoch(args)["epoch_s"] > 0  # doctest: +SKIP
    True
    """
    brain, datasets, hparams = build(
        args, args.mode, args.train_per_task, args.folder
    )
    train = datasets["train"]
    start = time.perf_counter()
    loader = brain.make_dataloader(
        train,
        sb.Stage.TRAIN,
        ckpt_prefix=None,
        **train_loader_kwargs(hparams, train),
    )
    precompute = time.perf_counter() - start
    if args.compile:
        # untimed warm-up epoch: the decoder compiles here
        brain.fit(EpochCounter(limit=1), loader, None)
    start = time.perf_counter()
    brain.fit(EpochCounter(limit=1), loader, None)
    epoch = time.perf_counter() - start
    return {
        "precompute_s": precompute,
        "epoch_s": epoch,
        "steps": len(loader),
        "loss": float(brain.train_stats["loss"]),
    }


def run_memory(args):
    """Worker: precompute the training set, then read every batch once.

    Arguments
    ---------
    args : argparse.Namespace
        With ``mode``, ``folder``, ``train_per_task``.

    Returns
    -------
    dict
        ``clips``, ``examples``, ``base_mb``, ``peak_mb``, ``end_mb``.

    Example
    -------
    >>> run_memory(args)["peak_mb"] > 0  # doctest: +SKIP
    True
    """
    brain, datasets, _ = build(
        args, args.mode, args.train_per_task, args.folder
    )
    train = datasets["train"]
    base = rss_mb()
    reset = reset_peak_rss()
    loader = brain.make_dataloader(
        train, sb.Stage.VALID, ckpt_prefix=None, batch_size=args.batch_size
    )
    brain.modules.eval()
    import torch

    n = 0
    with torch.no_grad():
        for batch in loader:
            brain.encode_audio(batch.to(brain.device))
            n += len(batch.id)
    cache = brain.feature_caches["fused"]
    return {
        "clips": len(cache),
        "examples": n,
        "base_mb": base,
        "peak_reset": reset,
        "peak_mb": peak_rss_mb(),
        "end_mb": rss_mb(),
    }


def worker(task, mode, train_per_task, folder, args):
    """Runs one variant in a fresh process; returns its JSON result.

    Arguments
    ---------
    task : str
        ``"epoch"`` or ``"memory"``.
    mode : str
        ``"on_the_fly"``, ``"memory"`` or ``"disk"``.
    train_per_task : int
        Training examples per task.
    folder : str
        Disk cache folder.
    args : argparse.Namespace
        The benchmark's options.

    Returns
    -------
    dict

    Example
    -------
    >>> worker("epoch", "disk", 100, "/tmp/f", args)  # doctest: +SKIP
    {'precompute_s': ..., 'epoch_s': ..., ...}
    """
    cmd = [
        sys.executable,
        __file__,
        f"--worker={task}",
        f"--mode={mode}",
        f"--train_per_task={train_per_task}",
        f"--folder={folder}",
        f"--hparams={args.hparams}",
        f"--profile={args.profile}",
        f"--steps={args.steps}",
        f"--batch_size={args.batch_size}",
        f"--precision={args.precision}",
    ] + ([] if args.compile else ["--no-compile"])
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{task}/{mode} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    """Runs both measurements and prints the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--hparams", default=str(ROOT / "recipes/LiSTEN/hparams/dps.yaml")
    )
    parser.add_argument("--profile", default="small")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--train_per_task", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--precision",
        default="auto",
        help="fp32, bf16 or auto (the recipe's own default: bf16 autocast "
        "where the CPU/GPU runs bf16 natively)",
    )
    parser.add_argument(
        "--no-compile",
        dest="compile",
        action="store_false",
        help="run the LLM decoder eagerly (the recipe compiles it)",
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["epoch", "memory"],
        choices=["epoch", "memory"],
    )
    parser.add_argument("--folder", default=None)
    parser.add_argument("--worker", choices=["epoch", "memory"])
    parser.add_argument("--mode", choices=["on_the_fly", "memory", "disk"])
    args = parser.parse_args(argv)
    if args.worker:
        run = run_epoch if args.worker == "epoch" else run_memory
        print(json.dumps(run(args)))
        return

    root = Path(tempfile.mkdtemp(prefix="fc-bench-cache-"))
    print(
        f"# {args.profile} world, {Path(args.hparams).name}, "
        f"{args.steps} steps of {args.batch_size}, "
        f"{args.train_per_task} training examples per task, "
        f"precision {resolve_precision(args.precision)}, "
        f"LLM decoder {'compiled' if args.compile else 'eager'}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '2')}"
    )
    if "epoch" in args.parts:
        print_epoch_table(args, root)
    if "memory" in args.parts:
        print_memory_table(args, root)


def print_epoch_table(args, root):
    """Measurement 1: ``--repeats`` rounds of the three variants in turn
    (so that all see the same machine load); the fastest epoch of each.

    Arguments
    ---------
    args : argparse.Namespace
        The benchmark's options.
    root : pathlib.Path
        Folder for the disk cache (empty at the first round).

    Example
    -------
    >>> print_epoch_table(args, Path("/tmp/x"))  # doctest: +SKIP
    """
    runs = {"on_the_fly": [], "disk": [], "memory": []}
    for _ in range(args.repeats):
        for mode, results in runs.items():
            results.append(
                worker(
                    "epoch",
                    mode,
                    args.train_per_task,
                    str(root / "epoch"),
                    args,
                )
            )
    print(
        "\n| features | precompute, first round (s) | epoch, fastest of "
        f"{args.repeats} (s) | s/step | loss |"
    )
    print("|---|---|---|---|---|")
    best = {}
    for mode, results in runs.items():
        best[mode] = min(r["epoch_s"] for r in results)
        res = results[0]
        print(
            f"| {mode} | {res['precompute_s']:.1f} | {best[mode]:.1f} | "
            f"{best[mode] / res['steps']:.3f} | {res['loss']:.4f} |"
        )
    ratio = best["on_the_fly"] / best["disk"]
    print(f"\nepoch time on the fly / disk cache: {ratio:.2f}x (target >= 3x)")


def print_memory_table(args, root):
    """Measurement 2: peak memory per cache and corpus size.

    Arguments
    ---------
    args : argparse.Namespace
        The benchmark's options.
    root : pathlib.Path
        Folder for the disk caches (one per size, empty at first).

    Example
    -------
    >>> print_memory_table(args, Path("/tmp/x"))  # doctest: +SKIP
    """
    print(
        "\n| cache | examples/task | clips | RSS after build (MiB) | "
        "peak RSS after build (MiB) | growth (MiB) |"
    )
    print("|---|---|---|---|---|---|")
    growth = {}
    for size in args.sizes:
        folder = str(root / f"rss-{size}")
        for mode, label in (
            ("memory", "memory"),
            ("disk", "disk, filling"),
            ("disk", "disk, a later run"),
        ):
            res = worker("memory", mode, size, folder, args)
            grown = res["peak_mb"] - res["base_mb"]
            growth[(label, size)] = grown
            print(
                f"| {label} | {size} | {res['clips']} | {res['base_mb']:.0f} "
                f"| {res['peak_mb']:.0f} | {grown:.0f} |"
            )
    small, large = min(args.sizes), max(args.sizes)
    for label in ("memory", "disk, filling", "disk, a later run"):
        print(
            f"{label}: growth {growth[(label, small)]:.0f} MiB at "
            f"{small}/task, {growth[(label, large)]:.0f} MiB at {large}/task"
        )


if __name__ == "__main__":
    main()
