"""Builds the toy backbones of a toy world: tokenizer, LLM, Whisper, BEATs.

Each backbone is saved in its real checkpoint format (a HF folder for the
LLM and for Whisper, a SpeechBrain BEATs ``.pt`` file), so that recipes
load them through exactly the code path a user's real checkpoint takes.
The LLM is pretrained on the *text* versions of the toy tasks; the
encoders are pretrained briefly on the toy audio (``docs/design.md``,
"Toy world"; ``toy_whisper``, ``toy_beats``).

Layout under ``<world_root>/backbones``::

    tokenizer/      sentencepiece tokenizer as a HF tokenizer folder
    lm/             LlamaForCausalLM + tokenizer (HF folder)
    whisper/        WhisperModel + WhisperFeatureExtractor (HF folder)
    beats/beats.pt  {"cfg": ..., "model": ...} as SpeechBrain's BEATs loads
    backbones.json  stamp: version, seed, profile, timings, LM scores

Authors
 * audiollm-lobes developers, 2026
"""

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from audiollm_lobes.atomic import write_json

#: 2: the toy BEATs is pretrained through ``BEATsEncoder`` with whole-patch
#: padding masks (its features no longer depend on batch padding), which
#: changes its weights; caches built before are rebuilt.
BACKBONES_VERSION = 2

#: CPU threads of the LM and of the encoder pretraining. Fixed: the
#: weights depend on the thread count (floating-point reduction order),
#: so a build gives the same weights on every machine only with a fixed
#: count (tests/unit/toyworld/test_toyworld_fingerprint.py).
BUILD_THREADS = 2

logger = logging.getLogger(__name__)


def backbones_dir(world_root):
    """Returns the backbones folder of a toy world.

    Arguments
    ---------
    world_root : str or Path
        The toy world folder.

    Returns
    -------
    pathlib.Path
        ``<world_root>/backbones``.

    Example
    -------
    >>> backbones_dir("/tmp/w").name
    'backbones'
    """
    return Path(world_root) / "backbones"


def config_fingerprint(profile):
    """A short hash of the toy backbones' settings for ``profile``.

    The cache is rebuilt when these settings change, not only when
    ``BACKBONES_VERSION`` is bumped.

    Arguments
    ---------
    profile : str
        ``"tiny"`` or ``"small"``.

    Returns
    -------
    str
        12 hex digits.

    Example
    -------
    >>> len(config_fingerprint("tiny"))
    12
    """
    from audiollm_lobes.toyworld import toy_encoders, toy_lm

    settings = {
        "lm": toy_lm.LM_PROFILES[profile],
        "encoders": toy_encoders.PROFILES[profile],
    }
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _stamp_matches(stamp_path, profile, seed):
    if not stamp_path.exists():
        return False
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        return False
    return (
        stamp.get("version") == BACKBONES_VERSION
        and stamp.get("profile") == profile
        and stamp.get("seed") == seed
        and stamp.get("config") == config_fingerprint(profile)
    )


def build_backbones(
    world_root,
    profile="small",
    seed=0,
    force=False,
    progress=True,
    parallel=None,
):
    """Makes (or reuses from cache) the toy backbones of a toy world.

    Arguments
    ---------
    world_root : str or Path
        A folder made by ``build_world``.
    profile : str
        ``"tiny"`` (tests) or ``"small"`` (demo).
    seed : int
        Random seed of every initialisation and training run.
    force : bool
        Rebuild even when the stamp matches.
    progress : bool
        Show progress bars.
    parallel : bool, optional
        Pretrain the LM and the encoders at once, in two processes (same
        weights as one after the other: each keeps ``BUILD_THREADS``
        threads). Default: when at least two CPUs are available.

    Returns
    -------
    pathlib.Path
        The backbones folder.

    Example
    -------
    >>> from audiollm_lobes.toyworld.world import build_world
    >>> world = build_world("tiny", progress=False)  # doctest: +SKIP
    >>> folder = build_backbones(world, "tiny")  # doctest: +SKIP
    >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
    ['backbones.json', 'beats', 'lm', 'tokenizer', 'whisper']
    """
    from audiollm_lobes.toyworld import toy_encoders, toy_lm

    out = backbones_dir(world_root)
    stamp_path = out / "backbones.json"
    if not force and _stamp_matches(stamp_path, profile, seed):
        logger.info("toy backbones cached in %s", out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    if stamp_path.exists():
        stamp_path.unlink()
    timings = {}

    start = time.time()
    corpus = Path(world_root) / "text" / "tokenizer_corpus.txt"
    lm_cfg = toy_lm.LM_PROFILES[profile]
    toy_lm.train_tokenizer(
        corpus, out / "tokenizer", vocab_size=lm_cfg["vocab_size"]
    )
    timings["tokenizer_s"] = time.time() - start

    if parallel is None:
        parallel = _build_in_parallel()
    encoder_args = (
        str(world_root),
        str(out),
        toy_encoders.PROFILES[profile],
        seed,
    )
    lm_kwargs = {
        "tokenizer_dir": str(out / "tokenizer"),
        "seed": seed,
        "progress": progress,
        "num_threads": BUILD_THREADS,
    }
    start = time.time()
    if parallel:
        # The LM and the encoders train at once, one process each with
        # the threads of a sequential build (so the same weights).
        workers = [
            _BuildWorker(
                "toy LM pretraining",
                "audiollm_lobes.toyworld.toy_lm",
                "pretrain_lm",
                str(world_root),
                str(out / "lm"),
                lm_cfg,
                **lm_kwargs,
            ),
            _BuildWorker(
                "toy encoder pretraining",
                "audiollm_lobes.toyworld.toy_encoders",
                "pretrain_toy_encoders",
                *encoder_args,
                progress=False,
                num_threads=BUILD_THREADS,
            ),
        ]
        try:
            lm_stats = workers[0].result()
            timings["lm_s"] = time.time() - start
            enc_stats = workers[1].result()
        finally:
            for worker in workers:
                worker.stop()
        timings["encoders_s"] = enc_stats["seconds"]
    else:
        lm_stats = toy_lm.pretrain_lm(
            world_root, out / "lm", lm_cfg, **lm_kwargs
        )
        timings["lm_s"] = time.time() - start
        enc_start = time.time()
        enc_stats = toy_encoders.pretrain_toy_encoders(
            *encoder_args, progress=progress, num_threads=BUILD_THREADS
        )
        timings["encoders_s"] = time.time() - enc_start
    timings["lm_and_encoders_s"] = time.time() - start
    timings["parallel"] = parallel

    stamp = {
        "version": BACKBONES_VERSION,
        "profile": profile,
        "seed": seed,
        "config": config_fingerprint(profile),
        "timings": timings,
        "lm": _jsonable(lm_stats),
        "encoders": _jsonable(enc_stats),
    }
    write_json(stamp_path, stamp, indent=2)
    return out


def _build_in_parallel():
    """Whether the LM and the encoders pretrain at once (two processes).

    They do when this process may use at least two CPUs; each keeps
    ``BUILD_THREADS`` threads, so the weights are those of a sequential
    build.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return cpus >= 2


def _worker_main(conn, module, function, args, kwargs):
    """Child process of ``_BuildWorker``: runs one function, sends back
    ``("ok", result)`` or ``("error", traceback)``."""
    try:
        import importlib

        fn = getattr(importlib.import_module(module), function)
        conn.send(("ok", _jsonable(fn(*args, **kwargs))))
    except BaseException:  # report every failure to the parent
        import traceback

        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class _BuildWorker:
    """Runs ``module.function(*args, **kwargs)`` in a spawned process.

    The child's OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``):
    two pretraining processes sharing few cores would otherwise spin on
    each other's cores. ``result()`` waits and re-raises a failure of the
    child with its traceback; ``stop()`` ends the process whatever
    happened, so a failed or interrupted build leaves nothing running.
    """

    def __init__(self, name, module, function, *args, **kwargs):
        import multiprocessing

        self.name = name
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_worker_main,
            args=(child_conn, module, function, args, kwargs),
            name=name,
            daemon=True,
        )
        saved = os.environ.get("OMP_WAIT_POLICY")
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            self._proc.start()
        finally:
            if saved is None:
                del os.environ["OMP_WAIT_POLICY"]
            else:
                os.environ["OMP_WAIT_POLICY"] = saved
        child_conn.close()

    def result(self):
        try:
            status, payload = self._conn.recv()
        except EOFError:
            self._proc.join()
            raise RuntimeError(
                f"{self.name}: the process died without a result "
                f"(exit code {self._proc.exitcode})"
            ) from None
        self._proc.join()
        if status != "ok":
            raise RuntimeError(f"{self.name} failed in its process:\n{payload}")
        return payload

    def stop(self):
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join()
        self._conn.close()


def _jsonable(obj):
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        if isinstance(obj, dict):
            return {str(k): _jsonable(v) for k, v in obj.items()}
        return str(obj)
