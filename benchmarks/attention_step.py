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
1e-5, ``tests/unit/test_llm.py``).

Usage::

    python benchmarks/attention_step.py [--hparams FILE] [--steps 20]
        [--repeats 3] [--profile small] [--precision auto]

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import statistics
import sys
from pathlib import Path

import speechbrain as sb
import torch
from precision_step import make_brain, time_steps, training_batches

from audiollm_lobes.recipe_utils import load_recipe_hparams

ROOT = Path(__file__).resolve().parents[1]
IMPLEMENTATIONS = ("sdpa", "eager")


def load(hparams_file, profile, attention, precision):
    """Recipe hparams with this LLM attention implementation.

    Arguments
    ---------
    hparams_file : str
        A LiSTEN-style recipe hparams file.
    profile : str
        Toy world profile.
    attention : str
        ``"sdpa"`` or ``"eager"``.
    precision : str
        ``"auto"`` (the yaml's own setting), ``"fp32"`` or ``"bf16"``.

    Returns
    -------
    dict
        Loaded hparams (``precision`` resolved).

    Example
    -------
    >>> load  # doctest: +ELLIPSIS
    <function load at ...>
    """
    argv = [
        hparams_file,
        f"--toy_profile={profile}",
        f"--llm_attn_implementation={attention}",
        "--experiment=bench_attention",
        "--output_folder=/tmp/audiollm_lobes_bench_attention",
    ]
    if precision != "auto":  # "auto" is resolved from the yaml's value
        argv.append(f"--precision={precision}")
    hparams, _ = load_recipe_hparams(argv, hparams_file)
    return hparams


def main(argv=None):
    """Runs the benchmark (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--hparams", default=str(ROOT / "recipes/LiSTEN/hparams/dps.yaml")
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", default="small")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)

    all_hparams = {
        name: load(args.hparams, args.profile, name, args.precision)
        for name in IMPLEMENTATIONS
    }
    for name, hparams in all_hparams.items():
        got = hparams["llm"].model.config._attn_implementation
        if got != name:
            raise RuntimeError(f"asked for {name!r} attention, got {got!r}")
    first = all_hparams[IMPLEMENTATIONS[0]]
    batches = training_batches(first, args.steps)
    brains = {
        name: make_brain(hparams, hparams["precision"])
        for name, hparams in all_hparams.items()
    }
    # same starting weights: copy the first brain's trainable state over
    source = brains[IMPLEMENTATIONS[0]].modules.state_dict()
    brains[IMPLEMENTATIONS[1]].modules.load_state_dict(source)
    first_loss = {}
    for name, brain in brains.items():  # eval mode: no dropout, k = k_eval
        brain.modules.eval()
        with torch.no_grad():
            out = brain.compute_forward(batches[0], sb.Stage.VALID)
            first_loss[name] = float(
                brain.compute_objectives(out, batches[0], sb.Stage.VALID)
            )
        brain.modules.train()
    cache = {}  # one feature cache: the encoder is frozen
    for brain in brains.values():
        brain._feature_cache = cache
        time_steps(brain, batches)  # warm-up: caching, allocator, oneDNN
    times = {name: [] for name in brains}
    for _ in range(args.repeats):
        for name, brain in brains.items():
            times[name].append(time_steps(brain, batches)[0])
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"{Path(args.hparams).name} on toy world {args.profile!r}, "
        f"{args.steps} steps x {args.repeats} repeats, "
        f"{torch.get_num_threads()} threads, precision "
        f"{first['precision']}"
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
