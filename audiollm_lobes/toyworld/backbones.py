"""Builds the toy backbones of a toy world: tokenizer, LLM, Whisper, BEATs.

Each backbone is saved in its real checkpoint format (a HF folder for the
LLM and for Whisper, a SpeechBrain BEATs ``.pt`` file), so that recipes
load them through exactly the code path a user's real checkpoint takes.
The LLM is pretrained on the *text* versions of the toy tasks; the
encoders are pretrained briefly on the toy audio (DESIGN §6).

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

#: 2: the toy BEATs is pretrained through ``BEATsEncoder`` with whole-patch
#: padding masks (its features no longer depend on batch padding), which
#: changes its weights; caches built before are rebuilt.
BACKBONES_VERSION = 2

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
    world_root, profile="small", seed=0, force=False, progress=True
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

    Returns
    -------
    pathlib.Path
        The backbones folder.

    Example
    -------
    >>> build_backbones  # doctest: +ELLIPSIS
    <function build_backbones at ...>
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

    start = time.time()
    lm_stats = toy_lm.pretrain_lm(
        world_root,
        out / "lm",
        lm_cfg,
        tokenizer_dir=out / "tokenizer",
        seed=seed,
        progress=progress,
    )
    timings["lm_s"] = time.time() - start

    start = time.time()
    enc_stats = toy_encoders.pretrain_toy_encoders(
        world_root,
        out,
        toy_encoders.PROFILES[profile],
        seed=seed,
        progress=progress,
    )
    timings["encoders_s"] = time.time() - start

    stamp = {
        "version": BACKBONES_VERSION,
        "profile": profile,
        "seed": seed,
        "config": config_fingerprint(profile),
        "timings": timings,
        "lm": _jsonable(lm_stats),
        "encoders": _jsonable(enc_stats),
    }
    tmp = stamp_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(stamp, indent=2))
    os.replace(tmp, stamp_path)
    return out


def _jsonable(obj):
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        if isinstance(obj, dict):
            return {str(k): _jsonable(v) for k, v in obj.items()}
        return str(obj)
