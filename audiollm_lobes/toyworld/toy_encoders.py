"""The toy encoders of a toy world: the toy Whisper and the toy BEATs.

``pretrain_toy_encoders`` makes both from their seeds, pretrains them on
the toy world's speech and sound-event clips and saves them in the real
formats: ``<out_dir>/whisper/`` (a HF folder with the feature extractor)
and ``<out_dir>/beats/beats.pt`` (``{"cfg": ..., "model": ...}``).
``PROFILES`` holds their size and training budget per world profile.

The models and their pretraining are in ``toy_whisper`` and
``toy_beats``; the clips they learn from in ``clips``; the linear probes
that check them in ``probes``.

Authors
 * audiollm-lobes developers, 2026
"""

import random
import time
from pathlib import Path

import torch

from audiollm_lobes.atomic import replace_dir, staging_dir
from audiollm_lobes.toyworld.clips import load_sound_events, load_speech
from audiollm_lobes.toyworld.toy_beats import (
    make_toy_beats,
    pretrain_toy_beats,
    save_toy_beats,
)
from audiollm_lobes.toyworld.toy_whisper import (
    make_toy_whisper,
    pretrain_toy_whisper,
    save_toy_whisper,
)

#: Architecture and training budget of the toy encoders per world profile.
PROFILES = {
    "tiny": {
        "whisper": {"d_model": 64, "layers": 2, "heads": 4, "ffn_dim": 256},
        "beats": {
            "embed_dim": 64,
            "encoder_embed_dim": 64,
            "layers": 2,
            "heads": 4,
            "ffn_dim": 128,
            "conv_pos": 32,
            "conv_pos_groups": 16,
        },
        "whisper_steps": 300,
        "beats_steps": 250,
        "batch_size": 8,
        "lr": 2e-3,
        "warmup_steps": 30,
        "beats_speech_items": 200,
        "beats_max_seconds": 1.5,
    },
    "small": {
        "whisper": {"d_model": 128, "layers": 3, "heads": 4, "ffn_dim": 512},
        "beats": {
            "embed_dim": 128,
            "encoder_embed_dim": 128,
            "layers": 2,
            "heads": 4,
            "ffn_dim": 256,
            "conv_pos": 64,
            "conv_pos_groups": 16,
        },
        "whisper_steps": 3000,
        "beats_steps": 400,
        "batch_size": 12,
        "lr": 2e-3,
        "warmup_steps": 60,
        "beats_speech_items": 600,
        "beats_max_seconds": 1.5,
    },
}


def pretrain_toy_encoders(
    world_root, out_dir, profile_cfg, seed=0, progress=True, num_threads=2
):
    """Makes, pretrains and saves the toy Whisper and BEATs of a toy world.

    Arguments
    ---------
    world_root : str or Path
        A toy world folder (``manifests/<split>/asr.json`` and
        ``sound_event.json`` with their wavs).
    out_dir : str or Path
        Where ``whisper/`` and ``beats/beats.pt`` are written (atomically,
        replacing older ones).
    profile_cfg : dict
        A ``PROFILES`` entry (architecture and training budget).
    seed : int
        Seed of initialisation, batching and subsets.
    progress : bool
        Show progress bars.
    num_threads : int, optional
        Torch threads while training (restored afterwards); None keeps
        the current setting.

    Returns
    -------
    dict
        ``{"whisper": stats, "beats": stats, "seconds": total}`` with
        training losses, held-out CER and head accuracies.

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.toyworld.world import build_world
    >>> world = build_world("tiny", progress=False)  # doctest: +SKIP
    >>> out = Path(tempfile.mkdtemp())
    >>> stats = pretrain_toy_encoders(  # doctest: +SKIP
    ...     world, out, PROFILES["tiny"], progress=False
    ... )
    >>> sorted(p.name for p in out.iterdir())  # doctest: +SKIP
    ['beats', 'whisper']
    """
    start = time.time()
    threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(int(num_threads))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        speech_train = load_speech(world_root, "train")
        speech_valid = load_speech(world_root, "valid")
        sound_train = load_sound_events(world_root, "train")
        sound_valid = load_sound_events(world_root, "valid")
        load_seconds = time.time() - start

        with staging_dir(out_dir / "whisper") as tmp:
            init_dir = make_toy_whisper(
                tmp / "whisper_init", seed=seed, **profile_cfg["whisper"]
            )
            encoder, whisper_stats = pretrain_toy_whisper(
                speech_train + sound_train,
                speech_valid + sound_valid,
                init_dir,
                profile_cfg,
                seed=seed,
                progress=progress,
            )
            staged = save_toy_whisper(encoder, init_dir, tmp / "whisper")
            del encoder

            init_path = make_toy_beats(
                tmp / "beats_init.pt", seed=seed, **profile_cfg["beats"]
            )
            limit = int(profile_cfg.get("beats_speech_items", 0))
            rng = random.Random(seed)
            speech_part = rng.sample(
                speech_train, min(limit, len(speech_train))
            )
            beats, beats_stats = pretrain_toy_beats(
                sound_train + speech_part,
                sound_valid + speech_valid[: max(1, limit // 4)],
                init_path,
                profile_cfg,
                seed=seed,
                progress=progress,
            )
            replace_dir(staged, out_dir / "whisper")
            save_toy_beats(beats, init_path, out_dir / "beats" / "beats.pt")
    finally:
        torch.set_num_threads(threads)
    return {
        "whisper": whisper_stats,
        "beats": beats_stats,
        "load_seconds": load_seconds,
        "seconds": time.time() - start,
        "train_items": {
            "speech": len(speech_train),
            "sound_event": len(sound_train),
        },
    }
