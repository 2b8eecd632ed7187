"""Training-step time of a LiSTEN recipe in fp32 and in bf16 autocast.

Loads a recipe's hparams (default ``recipes/LiSTEN/hparams/dps.yaml`` on
the ``small`` toy world, built on first use), draws a fixed set of training
batches, fills the encoder-feature cache, then times ``fit_batch`` on the
same batches under ``--precision=fp32`` and ``--precision=bf16``,
alternating the two ``--repeats`` times so that both see the same machine
load. Prints the median seconds per step of each, their ratio and the mean
training loss of each: both brains step the same model in turn (bf16
right after fp32), so the losses are a sanity check (finite, falling),
not a comparison of the two precisions' accuracy.

bf16 is only faster where the hardware multiplies bfloat16 natively
(``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` on CPU); elsewhere it is
emulated and slower, which is why the recipes' ``precision: auto`` picks
fp32 there. The LLM decoder runs eagerly (``llm_compile_training`` off),
so that only the precision differs from the earlier measurements.

``--device`` (shared by the step benchmarks; default ``cuda`` when one is
available, else ``cpu``) puts the brains on that device; on a GPU every
timing is bracketed by ``torch.cuda.synchronize()``, since kernels run
asynchronously.

Usage::

    python benchmarks/precision_step.py [--hparams FILE] [--steps 20]
        [--repeats 3] [--profile small] [--device cuda]

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import speechbrain as sb
import torch

from audiollm_lobes.brain import AudioLLMBrain
from audiollm_lobes.cli import load_recipe_hparams
from audiollm_lobes.data.datasets import build_datasets
from audiollm_lobes.data.sampling import train_loader_kwargs
from audiollm_lobes.peak_memory import synchronize

ROOT = Path(__file__).resolve().parents[1]


def make_brain(hparams, precision):
    """An AudioLLMBrain over the hparams' modules with this precision.

    Arguments
    ---------
    hparams : dict
        Loaded recipe hparams.
    precision : str
        ``"fp32"`` or ``"bf16"``.

    Returns
    -------
    AudioLLMBrain
        Ready for ``fit_batch`` (optimizer created, train mode).

    Example
    -------
    >>> brain = make_brain(hparams, "bf16")  # doctest: +SKIP
    >>> brain.precision, brain.modules.training  # doctest: +SKIP
    ('bf16', True)
    """
    brain = AudioLLMBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts={"precision": precision},
        checkpointer=None,
    )
    brain.init_optimizers()
    brain.modules.train()
    brain.on_stage_start(sb.Stage.TRAIN, 1)
    return brain


def make_brains_alike(all_hparams):
    """One brain per variant, all starting from the first one's weights.

    Arguments
    ---------
    all_hparams : dict
        ``{variant: loaded hparams}`` (``precision`` resolved).

    Returns
    -------
    dict
        ``{variant: AudioLLMBrain}``, in the same order.

    Example
    -------
    >>> make_brains_alike({})
    {}
    """
    brains = {
        name: make_brain(hparams, hparams["precision"])
        for name, hparams in all_hparams.items()
    }
    if brains:
        source = next(iter(brains.values())).modules.state_dict()
        for brain in brains.values():
            brain.modules.load_state_dict(source)
    return brains


def time_steps(brain, batches):
    """Seconds per ``fit_batch`` and mean loss over ``batches``.

    Arguments
    ---------
    brain : AudioLLMBrain
        The brain to step.
    batches : list
        Training batches.

    Returns
    -------
    tuple
        ``(seconds_per_step, mean_loss)``.

    Example
    -------
    >>> seconds, loss = time_steps(brain, batches)  # doctest: +SKIP
    >>> seconds > 0 and loss > 0  # doctest: +SKIP
    True
    """
    losses = []
    synchronize(brain.device)
    start = time.perf_counter()
    for batch in batches:
        losses.append(float(brain.fit_batch(batch)))
    synchronize(brain.device)
    return (time.perf_counter() - start) / len(batches), sum(losses) / len(
        losses
    )


def training_batches(hparams, n):
    """The first ``n`` training batches of a recipe's hparams.

    Arguments
    ---------
    hparams : dict
        Loaded recipe hparams (data and loader options).
    n : int
        How many batches.

    Returns
    -------
    list
        ``PaddedBatch`` objects, drawn as the recipe's loader draws them.

    Example
    -------
    >>> batches = training_batches(hparams, 2)  # doctest: +SKIP
    >>> len(batches), len(batches[0].id) == hparams["batch_size"]
    ... # doctest: +SKIP
    (2, True)
    """
    datasets = build_datasets(hparams)
    loader = sb.dataio.dataloader.make_dataloader(
        datasets["train"], **train_loader_kwargs(hparams, datasets["train"])
    )
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == n:
            break
    return batches


def benchmark_parser(description):
    """Command-line options shared by the LiSTEN step benchmarks.

    Arguments
    ---------
    description : str
        The benchmark's one-line description.

    Returns
    -------
    argparse.ArgumentParser
        With ``--hparams``, ``--steps``, ``--repeats``, ``--profile`` and
        ``--device``.

    Example
    -------
    >>> args = benchmark_parser("x").parse_args([])
    >>> args.steps, args.device == default_device()
    (20, True)
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--hparams", default=str(ROOT / "recipes/LiSTEN/hparams/dps.yaml")
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", default="small")
    parser.add_argument(
        "--device",
        default=default_device(),
        help="cpu or cuda[:i] (default: cuda:0 when available, else cpu)",
    )
    return parser


def default_device():
    """``"cuda:0"`` when PyTorch sees a GPU, else ``"cpu"``.

    Returns
    -------
    str
        The benchmarks' default ``--device``.

    Example
    -------
    >>> default_device() in ("cpu", "cuda:0")
    True
    """
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def load_variant(hparams_file, profile, name, overrides=(), device="cpu"):
    """Recipe hparams of one benchmark variant.

    Arguments
    ---------
    hparams_file : str
        A LiSTEN-style recipe hparams file.
    profile : str
        Toy world profile.
    name : str
        Benchmark name (output folder ``/tmp/audiollm_lobes_<name>``).
    overrides : sequence of str
        Extra ``--key=value`` overrides.
    device : str
        The run's device: resolves ``precision: auto`` for it, and is set
        as ``hparams["device"]``, where the brains of ``make_brain`` read
        it.

    Returns
    -------
    dict
        Loaded hparams (``precision`` resolved, ``device`` set).

    Example
    -------
    >>> hparams = load_variant("recipes/LiSTEN/hparams/dps.yaml", "tiny",
    ...     "precision_fp32", ["--precision=fp32"])  # doctest: +SKIP
    >>> hparams["precision"]  # doctest: +SKIP
    'fp32'
    """
    argv = [
        hparams_file,
        f"--toy_profile={profile}",
        f"--experiment={name}",
        f"--output_folder=/tmp/audiollm_lobes_{name}",
        f"--device={device}",
        *overrides,
    ]
    hparams, _ = load_recipe_hparams(argv, hparams_file)
    hparams["device"] = device
    return hparams


def first_batch_losses(brains, batch, enable_grad=False):
    """Each brain's eval-mode loss on one batch (no parameter update).

    Arguments
    ---------
    brains : dict
        ``{name: AudioLLMBrain}``.
    batch : PaddedBatch
        The batch.
    enable_grad : bool
        Keep gradients enabled (the path a training forward takes).

    Returns
    -------
    dict
        ``{name: loss}``.

    Example
    -------
    >>> first_batch_losses({}, None)
    {}
    """
    losses = {}
    for name, brain in brains.items():  # no dropout, k = k_eval
        brain.modules.eval()
        with torch.set_grad_enabled(enable_grad):
            out = brain.compute_forward(batch, sb.Stage.VALID)
            loss = brain.compute_objectives(out, batch, sb.Stage.VALID)
            losses[name] = float(loss)
        brain.modules.train()
    return losses


def time_alternately(brains, batches, repeats):
    """Warm-up and alternated timing of ``fit_batch`` for several brains.

    The brains share one encoder-feature cache, filled first (no-grad
    forwards of the first brain; the encoder is frozen). Each brain then
    runs one warm-up pass over ``batches`` (allocator, oneDNN,
    compilation), after which the brains step through the batches in
    turn, ``repeats`` times, so that all see the same machine load.

    Arguments
    ---------
    brains : dict
        ``{name: AudioLLMBrain}`` in train mode.
    batches : list
        Training batches.
    repeats : int
        Timed passes per brain.

    Returns
    -------
    dict
        ``{name: {"warm_up": seconds, "median": seconds per step,
        "loss": mean training loss over the timed passes}}``.

    Example
    -------
    >>> time_alternately({}, [], 1)
    {}
    """
    caches = {}
    for brain in brains.values():
        brain.feature_caches = caches
    if brains:
        first = next(iter(brains.values()))
        with torch.no_grad():
            for batch in batches:
                first.compute_forward(batch, sb.Stage.VALID)
    stats = {}
    for name, brain in brains.items():
        start = time.perf_counter()
        time_steps(brain, batches)
        stats[name] = {"warm_up": time.perf_counter() - start}
    times = {name: [] for name in brains}
    losses = {name: [] for name in brains}
    for _ in range(repeats):
        for name, brain in brains.items():
            sec, loss = time_steps(brain, batches)
            times[name].append(sec)
            losses[name].append(loss)
    for name in brains:
        stats[name]["median"] = statistics.median(times[name])
        stats[name]["loss"] = statistics.mean(losses[name])
    return stats


def main(argv=None):
    """Runs the benchmark (see the module docstring)."""
    parser = benchmark_parser(__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    hparams = load_variant(  # one factor at a time: the decoder stays eager
        args.hparams,
        args.profile,
        "bench_precision",
        ["--llm_compile_training=False"],
        device=args.device,
    )
    batches = training_batches(hparams, args.steps)
    brains = {p: make_brain(hparams, p) for p in ("fp32", "bf16")}
    stats = time_alternately(brains, batches, args.repeats)
    fp32, bf16 = stats["fp32"]["median"], stats["bf16"]["median"]
    on_cuda = torch.device(args.device).type == "cuda"
    native_bf16 = (
        torch.cuda.is_bf16_supported()
        if on_cuda
        else torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
    print(
        f"{Path(args.hparams).name} on toy world {args.profile!r}, "
        f"{args.steps} steps x {args.repeats} repeats, "
        f"{torch.get_num_threads()} threads, native bf16: "
        f"{native_bf16}" + (f", device {args.device}" if on_cuda else "")
    )
    print("| precision | s/step (median) | mean train loss |")
    print("|---|---:|---:|")
    for name, sec in (("fp32", fp32), ("bf16", bf16)):
        print(f"| {name} | {sec:.3f} | {stats[name]['loss']:.4f} |")
    print(f"speed-up of bf16 over fp32: {fp32 / bf16:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
