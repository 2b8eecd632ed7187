#!/usr/bin/env python3
"""Times a from-scratch build of the toy world and its toy backbones.

Builds into a fresh temporary folder (the user's cache is not touched) and
prints the wall time of each stage next to the 10-minute budget of the
``small`` profile::

    python benchmarks/toyworld_build.py --profile small
    python benchmarks/toyworld_build.py --profile tiny --keep /tmp/tw

``--compare`` builds the world once, then its backbones twice, the LM and
encoder pretraining one after the other and then at once in two processes
(``build_backbones(parallel=...)``), and prints both times, their ratio
and whether every weight tensor came out identical::

    python benchmarks/toyworld_build.py --profile small --compare

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

BUDGET_S = {"small": 600.0, "tiny": 60.0}


def main():
    """Runs the benchmark (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="small", choices=list(BUDGET_S))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", default=None, help="build here, keep it")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="backbones one after the other vs in parallel, same world",
    )
    args = parser.parse_args()
    if args.compare:
        return compare(args.profile, args.seed)

    from audiollm_lobes.toyworld.backbones import build_backbones
    from audiollm_lobes.toyworld.world import build_world

    tmp = None
    if args.keep:
        root = Path(args.keep)
    else:
        tmp = tempfile.mkdtemp(prefix="toyworld_bench_")
        root = Path(tmp) / args.profile
    try:
        start = time.time()
        world = build_world(
            args.profile, root=root, seed=args.seed, force=True, progress=False
        )
        t_world = time.time() - start
        build_backbones(
            world,
            profile=args.profile,
            seed=args.seed,
            force=True,
            progress=False,
        )
        total = time.time() - start
        stamp = json.loads(
            (Path(world) / "backbones" / "backbones.json").read_text()
        )
        rows = [("world data (speech, sounds, manifests)", t_world)]
        rows += [(k, v) for k, v in stamp["timings"].items()]
        print(
            f"toy world build, profile={args.profile}, cores={os.cpu_count()}"
        )
        for name, secs in rows:
            print(f"  {name:<40s} {secs:8.1f} s")
        budget = BUDGET_S[args.profile]
        print(
            f"  {'total':<40s} {total:8.1f} s   "
            f"(budget {budget:.0f} s, ratio {total / budget:.2f})"
        )
        lm = stamp.get("lm", {})
        if isinstance(lm, dict) and lm.get("params"):
            print(f"  toy LM parameters: {lm['params']:,}")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def backbone_weights(backbones_folder):
    """Every weight tensor of a toy backbones folder, by name."""
    import torch
    from safetensors.torch import load_file

    folder = Path(backbones_folder)
    out = {}
    for name in ("lm", "whisper"):
        for f in sorted((folder / name).glob("*.safetensors")):
            for k, v in load_file(f).items():
                out[f"{name}/{k}"] = v
    beats = torch.load(folder / "beats" / "beats.pt", map_location="cpu")
    for k, v in beats["model"].items():
        out[f"beats/{k}"] = v
    return out


def compare(profile, seed):
    """Sequential against parallel backbone pretraining on one world."""
    import torch

    from audiollm_lobes.toyworld.backbones import build_backbones
    from audiollm_lobes.toyworld.world import build_world

    tmp = tempfile.mkdtemp(prefix="toyworld_bench_")
    try:
        world = build_world(
            profile, root=Path(tmp) / "seq", seed=seed, progress=False
        )
        shutil.copytree(world, Path(tmp) / "par", symlinks=True)
        times, weights = {}, {}
        for name, parallel in (("sequential", False), ("parallel", True)):
            start = time.time()
            folder = build_backbones(
                Path(tmp) / name[:3],
                profile=profile,
                seed=seed,
                force=True,
                progress=False,
                parallel=parallel,
            )
            times[name] = time.time() - start
            weights[name] = backbone_weights(folder)
        seq, par = weights["sequential"], weights["parallel"]
        same = seq.keys() == par.keys() and all(
            torch.equal(seq[k], par[k]) for k in seq
        )
        print(f"toy backbones build, profile={profile}, cores={os.cpu_count()}")
        for name, secs in times.items():
            print(f"  {name:<12s} {secs:8.1f} s")
        print(
            f"  sequential / parallel = "
            f"{times['sequential'] / times['parallel']:.2f}x; "
            f"{len(seq)} weight tensors "
            + ("all identical" if same else "NOT identical")
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
