#!/usr/bin/env python3
"""Times the README's main command from an empty cache, stage by stage.

Runs ``python recipes/LiSTEN/train.py hparams/dps.yaml`` as a newcomer
does on a fresh machine: with ``AUDIOLLM_LOBES_HOME`` pointing at an empty
temporary folder, so the toy world and its toy backbones are built first.
Then prints the wall time of each stage, read from what the run records
(the toy world's ``world.json``, the backbones' ``backbones.json``
timings, the feature precomputation's seconds in the run's ``log.txt``,
the epochs', the test's and each ``k_eval`` sweep pass's ``seconds`` in
``train_log.txt``), the rest (start-up, loading, prompt-usage report) as
the difference, and the total against the 10-minute goal::

    python benchmarks/main_job.py
    python benchmarks/main_job.py --cached     # the user's cache: training only
    python benchmarks/main_job.py --keep /tmp/main_job -- --seed=7

Arguments after ``--`` go to ``train.py``. Nothing of the user's cache or
``results/`` is touched unless ``--cached`` is given (then the cache is
read, and built if missing).

Authors
 * audiollm-lobes developers, 2026
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 600.0


def stage_seconds(train_log, stage):
    """The ``<stage> seconds`` entries of a ``train_log.txt``, in order.

    One per epoch for ``"train"`` and ``"valid"``; for ``"test"`` the test
    at ``k_eval`` first, then one pass per ``k`` of a LiSTEN run's
    ``k_eval`` sweep.

    Arguments
    ---------
    train_log : str or Path
        SpeechBrain's ``FileTrainLogger`` file.
    stage : str
        ``"train"``, ``"valid"`` or ``"test"``.

    Returns
    -------
    list of float

    Example
    -------
    >>> import tempfile
    >>> log = Path(tempfile.mkdtemp()) / "train_log.txt"
    >>> _ = log.write_text(
    ...     "epoch: 1 - train loss: 2.0, train seconds: 1.5e+02 - valid "
    ...     "loss: 1.0, valid seconds: 1.27\\n"
    ...     "epoch: 2 - train seconds: 94.5 - valid seconds: 1.0\\n"
    ...     "Epoch loaded: 2 - test loss: 0.6, test seconds: 11.0\\n"
    ...     "Epoch loaded: 2 - test loss: 0.7, test seconds: 9.5\\n")
    >>> stage_seconds(log, "train"), stage_seconds(log, "test")
    ([150.0, 94.5], [11.0, 9.5])
    """
    text = Path(train_log).read_text(encoding="utf-8")
    pattern = rf"{stage} seconds: ([0-9.e+-]+)"
    return [float(v) for v in re.findall(pattern, text)]


def precompute_seconds(run_log):
    """Seconds spent precomputing encoder features, from a run's ``log.txt``.

    Sums the ``feature_cache`` lines ``precomputed encoder features of ...
    in <seconds> s`` (one per precomputed dataset).

    Arguments
    ---------
    run_log : str or Path
        The run's ``log.txt``.

    Returns
    -------
    float
        0.0 when the log holds no such line.

    Example
    -------
    >>> import tempfile
    >>> log = Path(tempfile.mkdtemp()) / "log.txt"
    >>> _ = log.write_text(
    ...     "... - precomputed encoder features of 52 clips (106 examples, "
    ...     "0 clips already cached) in 61.5 s\\n"
    ...     "... - precomputed encoder features of 6 clips (12 examples, "
    ...     "0 clips already cached) in 2.5 s\\n")
    >>> precompute_seconds(log)
    64.0
    """
    path = Path(run_log)
    if not path.is_file():
        return 0.0
    pattern = r"precomputed encoder features of .* in ([0-9.]+) s"
    text = path.read_text(encoding="utf-8", errors="replace")
    return round(sum(float(v) for v in re.findall(pattern, text)), 2)


def stage_table(total, home, run):
    """The stage breakdown of a finished run.

    Arguments
    ---------
    total : float
        Wall seconds of the whole command.
    home : Path
        ``AUDIOLLM_LOBES_HOME`` of the run.
    run : Path
        Its output folder.

    Returns
    -------
    list of tuple
        ``(stage, seconds)``.
    """
    rows = []
    world = home / "toyworld" / "small"
    world_json = world / "world.json"
    backbones_json = world / "backbones" / "backbones.json"
    built = 0.0
    if world_json.is_file():
        seconds = json.loads(world_json.read_text())["build_seconds"]
        rows.append(("toy world data", seconds))
        built += seconds
    if backbones_json.is_file():
        timings = json.loads(backbones_json.read_text())["timings"]
        parallel = "at once" if timings.get("parallel") else "in turn"
        rows.append((f"  toy LM pretraining ({parallel})", timings["lm_s"]))
        rows.append(("  toy encoders pretraining", timings["encoders_s"]))
        rows.append(
            ("toy backbones (LM, encoders)", timings["lm_and_encoders_s"])
        )
        built += timings["lm_and_encoders_s"] + timings.get("tokenizer_s", 0)
    log = run / "train_log.txt"
    train = round(sum(stage_seconds(log, "train")), 2)
    valid = round(sum(stage_seconds(log, "valid")), 2)
    tests = stage_seconds(log, "test")
    test = round(sum(tests), 2)
    features = precompute_seconds(run / "log.txt")
    rows += [
        ("encoder features precomputed (train, valid, test)", features),
        ("training epochs", train),
        ("validation", valid),
        ("test (k_eval)", tests[0] if tests else 0.0),
        ("k_eval sweep (one test pass per k)", sum(tests[1:])),
    ]
    rest = total - built - features - train - valid - test
    rows.append(("rest: start-up, loading, usage report, ...", rest))
    rows.append(("total", total))
    return rows


def main(argv=None):
    """Runs the benchmark (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cached", action="store_true")
    parser.add_argument("--keep", help="run (and cache) here, keep it")
    parser.add_argument("train_args", nargs="*", help="after --: train.py")
    args = parser.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="main_job_"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    home = Path(env.get("AUDIOLLM_LOBES_HOME", "~/.cache/audiollm_lobes"))
    if not args.cached:
        home = work / "home"
        if home.exists():
            shutil.rmtree(home)
        env["AUDIOLLM_LOBES_HOME"] = str(home)
    run = work / "run"
    if run.exists():
        # a run folder kept from an earlier call would make train.py resume
        # its finished run and append to its logs (wrong stage times)
        shutil.rmtree(run)
    cmd = [
        sys.executable,
        str(ROOT / "recipes" / "LiSTEN" / "train.py"),
        "hparams/dps.yaml",
        f"--output_folder={run}",
        *args.train_args,
    ]
    print("running:", " ".join(cmd), flush=True)
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    total = time.time() - start
    if proc.returncode != 0:
        sys.exit(f"the main command failed (exit {proc.returncode})")
    print(f"\nmain job, {'cached' if args.cached else 'from an empty cache'}")
    print(f"{'stage':<55} {'seconds':>9}")
    for stage, seconds in stage_table(total, home.expanduser(), run):
        print(f"{stage:<55} {seconds:9.1f}")
    verdict = "met" if total <= GOAL_S else "NOT met"
    print(f"goal: at most {GOAL_S:.0f} s -> {verdict}")
    summary = run / "results.md"
    if summary.is_file():
        print("\n" + summary.read_text(encoding="utf-8"))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
