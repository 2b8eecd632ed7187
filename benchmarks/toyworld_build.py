#!/usr/bin/env python3
"""Times a from-scratch build of the toy world and its toy backbones.

Builds into a fresh temporary folder (the user's cache is not touched) and
prints the wall time of each stage next to the 10-minute budget of the
``small`` profile::

    python benchmarks/toyworld_build.py --profile small
    python benchmarks/toyworld_build.py --profile tiny --keep /tmp/tw

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
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
