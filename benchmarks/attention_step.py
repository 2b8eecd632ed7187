"""Training-step time of a LiSTEN recipe with the LLM's sdpa vs eager attention.

The recipes pass ``llm_attn_implementation`` to HF's ``from_pretrained``.
On a GPU ``sdpa`` (fused kernels) is the right choice; on a CPU, at the
toy world's short sequences (about 60 positions), PyTorch's fused CPU
attention has a slow backward pass and HF's plain ``eager`` attention
(matmul, softmax, matmul) trains faster. This benchmark loads the recipe
twice, once with each implementation (same seed, same trainable weights),
draws a fixed set of training batches, fills the encoder-feature cache,
then times ``fit_batch`` on the same batches with each brain in turn,
``--repeats`` times, so that both see the same machine load. Prints the
median seconds per step of each, their ratio, and each one's loss on the
first batch in eval mode, which agree up to the rounding of the training
precision (the two compute the same function: in fp32 they match to
1e-5, ``tests/unit/test_llm.py``). The LLM decoder runs eagerly in both
unless ``--compiled`` (then both compile it in the warm-up pass).

Usage::

    python benchmarks/attention_step.py [--hparams FILE] [--steps 20]
        [--repeats 3] [--profile small] [--precision auto] [--compiled]
        [--device cuda]

Authors
 * audiollm-lobes developers, 2026
"""

import sys
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

IMPLEMENTATIONS = ("sdpa", "eager")


def main(argv=None):
    """Runs the benchmark (see the module docstring)."""
    parser = benchmark_parser(__doc__.split("\n")[0])
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="compile the LLM decoder in both (llm_compile_training)",
    )
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)

    # one factor at a time: the decoder stays eager unless --compiled
    overrides = [f"--llm_compile_training={args.compiled}"]
    if args.precision != "auto":  # "auto" is resolved from the yaml's value
        overrides.append(f"--precision={args.precision}")
    all_hparams = {
        name: load_variant(
            args.hparams,
            args.profile,
            "bench_attention",
            [f"--llm_attn_implementation={name}", *overrides],
            device=args.device,
        )
        for name in IMPLEMENTATIONS
    }
    for name, hparams in all_hparams.items():
        got = hparams["llm"].model.config._attn_implementation
        if got != name:
            raise RuntimeError(f"asked for {name!r} attention, got {got!r}")
    first = all_hparams[IMPLEMENTATIONS[0]]
    batches = training_batches(first, args.steps)
    brains = make_brains_alike(all_hparams)  # same starting weights
    first_loss = first_batch_losses(brains, batches[0])
    stats = time_alternately(brains, batches, args.repeats)
    medians = {name: stats[name]["median"] for name in brains}
    print(
        f"{Path(args.hparams).name} on toy world {args.profile!r}, "
        f"{args.steps} steps x {args.repeats} repeats, "
        f"{torch.get_num_threads()} threads, precision "
        f"{first['precision']}, LLM decoder "
        f"{'compiled' if args.compiled else 'eager'}"
    )
    print("| LLM attention | s/step (median) | loss of the first batch |")
    print("|---|---:|---:|")
    for name in IMPLEMENTATIONS:
        print(f"| {name} | {medians[name]:.3f} | {first_loss[name]:.4f} |")
    print(
        f"speed-up of eager over sdpa: "
        f"{medians['sdpa'] / medians['eager']:.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
