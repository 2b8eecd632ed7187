"""Training-step time of a LiSTEN recipe with the LLM decoder compiled or not.

``llm_compile_training: True`` runs the frozen LLM's decoder through
``torch.compile(dynamic=True)`` in training forwards (decoding and
validation stay eager). This benchmark loads the recipe twice, eager and
compiled (same seed; the trainable weights of the first are copied into
the second), draws a fixed set of training batches, fills the
encoder-feature cache, runs one warm-up pass over the batches with each
(the compiled one compiles there, into an empty compilation cache unless
``--warm-cache``: its extra warm-up time is printed as the compilation
cost a fresh machine pays), then times ``fit_batch`` on the same batches with
each brain in turn, ``--repeats`` times, so that both see the same machine
load. Prints the median seconds per step of each, their ratio, the
number of steps after which compiling has paid for itself, and each
one's loss on the first batch before training, in eval mode with
gradients enabled (the compiled path; fp32, outside the training
autocast), which agree up to rounding.

Usage::

    python benchmarks/compile_step.py [--hparams FILE] [--steps 20]
        [--repeats 3] [--profile small] [--warm-cache] [--device cuda]

Authors
 * audiollm-lobes developers, 2026
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from precision_step import (
    benchmark_parser,
    first_batch_losses,
    load_variant,
    make_brains_alike,
    time_alternately,
    training_batches,
)

VARIANTS = ("eager", "compiled")


def main(argv=None):
    """Runs the benchmark (see the module docstring)."""
    parser = benchmark_parser(__doc__.split("\n")[0])
    parser.add_argument(
        "--warm-cache",
        action="store_true",
        help="reuse PyTorch's on-disk compilation cache (default: empty)",
    )
    args = parser.parse_args(argv)
    if not args.warm_cache:  # measure what a fresh machine pays
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp()

    all_hparams = {
        name: load_variant(
            args.hparams,
            args.profile,
            "bench_compile",
            [f"--llm_compile_training={name == 'compiled'}"],
            device=args.device,
        )
        for name in VARIANTS
    }
    for name, hparams in all_hparams.items():
        if hparams["llm"].compile_training != (name == "compiled"):
            raise RuntimeError(f"llm_compile_training not applied ({name})")
    first = all_hparams[VARIANTS[0]]
    batches = training_batches(first, args.steps)
    brains = make_brains_alike(all_hparams)  # same starting weights
    # gradients on: the compiled path (fp32, outside the training autocast)
    first_loss = first_batch_losses(brains, batches[0], enable_grad=True)
    stats = time_alternately(brains, batches, args.repeats)  # compiles
    if not brains["compiled"].modules.llm.compile_training:
        raise RuntimeError("compiling failed (see the warning above)")
    medians = {name: stats[name]["median"] for name in brains}
    warm_up = {name: stats[name]["warm_up"] for name in brains}
    compile_cost = (
        warm_up["compiled"] - medians["compiled"] * len(batches)
    ) - (warm_up["eager"] - medians["eager"] * len(batches))
    saved = medians["eager"] - medians["compiled"]
    print(
        f"{Path(args.hparams).name} on toy world {args.profile!r}, "
        f"{args.steps} steps x {args.repeats} repeats, "
        f"{torch.get_num_threads()} threads, precision "
        f"{first['precision']}"
    )
    print("| LLM decoder | s/step (median) | warm-up pass (s) | first loss |")
    print("|---|---:|---:|---:|")
    for name in VARIANTS:
        print(
            f"| {name} | {medians[name]:.3f} | {warm_up[name]:.1f} | "
            f"{first_loss[name]:.4f} |"
        )
    print(
        f"speed-up of compiled over eager: "
        f"{medians['eager'] / medians['compiled']:.2f}x; compilation "
        f"about {compile_cost:.0f} s"
    )
    if saved > 0:
        steps = compile_cost / saved
        print(f"compiling pays for itself after {steps:.0f} steps")


if __name__ == "__main__":
    sys.exit(main())
