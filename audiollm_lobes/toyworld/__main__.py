"""Builds the toy world and its toy backbones, then reports the toy LM.

Usage::

    python -m audiollm_lobes.toyworld --profile small
    python -m audiollm_lobes.toyworld --profile tiny --force
    python -m audiollm_lobes.toyworld --profile small --probe   # + probes

The world goes to ``$AUDIOLLM_LOBES_HOME/toyworld/<profile>`` (default
``~/.cache/audiollm_lobes``) unless ``--root`` is given. Both stages are
cached: a second run with the same version and seed returns at once.

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import json
import sys
import time
from pathlib import Path


def build(profile="small", root=None, seed=0, force=False, progress=True):
    """Builds (or reuses) a toy world and its backbones.

    Arguments
    ---------
    profile : str
        ``"tiny"`` or ``"small"``.
    root : str or Path, optional
        Where to build; default ``toyworld_dir(profile)``.
    seed : int
        Random seed.
    force : bool
        Rebuild even if cached.
    progress : bool
        Show progress bars.

    Returns
    -------
    tuple
        ``(world_root, backbones_dir, seconds)``.

    Example
    -------
    >>> world, backbones, _ = build("tiny", progress=False)  # doctest: +SKIP
    >>> backbones == world / "backbones"  # doctest: +SKIP
    True
    """
    from audiollm_lobes.toyworld.backbones import build_backbones
    from audiollm_lobes.toyworld.world import build_world

    start = time.time()
    world = build_world(
        profile=profile, root=root, seed=seed, force=force, progress=progress
    )
    backbones = build_backbones(
        world, profile=profile, seed=seed, force=force, progress=progress
    )
    return Path(world), Path(backbones), time.time() - start


def main(argv=None):
    """Command-line entry point (see the module docstring).

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(
        description="Build the offline toy world and its toy backbones."
    )
    parser.add_argument("--profile", default="small", choices=["tiny", "small"])
    parser.add_argument("--root", default=None, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rebuild")
    parser.add_argument(
        "--no-eval", action="store_true", help="skip the toy LM evaluation"
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="also report linear probes on the frozen toy encoders",
    )
    args = parser.parse_args(argv)

    world, backbones, seconds = build(
        args.profile, args.root, args.seed, args.force
    )
    print(f"toy world:     {world}")
    print(f"toy backbones: {backbones}")
    print(f"build time:    {seconds:.1f} s")
    stamp = json.loads((backbones / "backbones.json").read_text())
    for name, secs in stamp.get("timings", {}).items():
        print(f"  {name}: {secs:.1f}")
    if not args.no_eval:
        from audiollm_lobes.toyworld.toy_lm import evaluate_lm, format_scores

        scores = evaluate_lm(backbones / "lm", world / "text" / "test.jsonl")
        print("toy LM, text only, held-out test sentences (exact match):")
        print(format_scores(scores))
    if args.probe:
        from audiollm_lobes.toyworld.probes import probe_report

        print("linear probes on frozen toy-encoder features (held-out):")
        for name, res in probe_report(world, backbones).items():
            print(
                f"  {name:<24s} {100 * res['test_acc']:5.1f}%  "
                f"(chance {100 / res['classes']:.1f}%, "
                f"{res['classes']} classes)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
