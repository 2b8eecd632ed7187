"""``toy://`` sources: the built-in toy world addressed like a model hub.

Recipes name their backbones and data with a ``source`` string. A hub id
or a folder is used as it is; ``toy://<profile>/<part>`` is resolved to
the local folder of the toy world, which is built on first use (under an
inter-process file lock, so several DDP processes build it only once)::

    toy://small            the world root (manifests, audio, text)
    toy://small/lm         the toy Llama (HF folder)
    toy://small/whisper    the toy Whisper (HF folder)
    toy://small/beats      the toy BEATs checkpoint file (SpeechBrain format)

After resolution the backbones load through exactly the same code as a
user's real checkpoint (``from_pretrained(folder)``, ``BEATs(ckp_path)``).

Authors
 * audiollm-lobes developers, 2026
"""

from pathlib import Path

import filelock

from audiollm_lobes.paths import toyworld_dir

TOY_SCHEME = "toy://"
PARTS = {
    "": None,
    "world": None,
    "lm": "backbones/lm",
    "whisper": "backbones/whisper",
    "beats": "backbones/beats/beats.pt",
    "tokenizer": "backbones/tokenizer",
}
PROFILES = ("tiny", "small")


def is_toy_source(source):
    """Tells whether ``source`` uses the ``toy://`` scheme.

    Arguments
    ---------
    source : str or Path
        A source string.

    Returns
    -------
    bool
        True for ``toy://...``.

    Example
    -------
    >>> is_toy_source("toy://tiny/lm"), is_toy_source("meta-llama/x")
    (True, False)
    """
    return isinstance(source, str) and source.startswith(TOY_SCHEME)


def parse_toy_source(source):
    """Splits a ``toy://`` source into profile and part.

    Arguments
    ---------
    source : str
        E.g. ``"toy://small/lm"``.

    Returns
    -------
    tuple of str
        ``(profile, part)``; part is ``""`` for the world root.

    Example
    -------
    >>> parse_toy_source("toy://small/whisper")
    ('small', 'whisper')
    """
    rest = source[len(TOY_SCHEME) :].strip("/")
    profile, _, part = rest.partition("/")
    if profile not in PROFILES:
        raise ValueError(
            f"{source!r}: unknown toy profile {profile!r}; expected one of "
            f"{list(PROFILES)}"
        )
    if part not in PARTS:
        raise ValueError(
            f"{source!r}: unknown toy part {part!r}; expected one of "
            f"{sorted(p for p in PARTS if p)}"
        )
    return profile, part


def ensure_toyworld(profile, seed=0, progress=True):
    """Builds the toy world and its backbones once; returns the world root.

    Arguments
    ---------
    profile : str
        ``"tiny"`` or ``"small"``.
    seed : int
        Random seed of the world.
    progress : bool
        Show progress bars.

    Returns
    -------
    pathlib.Path
        The world root.

    Example
    -------
    >>> root = ensure_toyworld("tiny", progress=False)  # doctest: +SKIP
    >>> (root / PARTS["beats"]).is_file()  # doctest: +SKIP
    True
    """
    from audiollm_lobes.toyworld.backbones import build_backbones
    from audiollm_lobes.toyworld.world import build_world

    root = toyworld_dir(profile)
    root.parent.mkdir(parents=True, exist_ok=True)
    # Not the ``.<profile>.lock`` that build_world takes inside: two locks
    # on one file from one process would wait for each other forever.
    lock_path = root.parent / f".{profile}.sources.lock"
    with filelock.FileLock(str(lock_path)):
        world = build_world(profile, seed=seed, progress=progress)
        build_backbones(world, profile=profile, seed=seed, progress=progress)
    return Path(world)


def resolve_source(source):
    """Maps a ``toy://`` source to its local path; other sources unchanged.

    Arguments
    ---------
    source : str or Path
        ``toy://<profile>[/<part>]``, a hub id, or a local path.

    Returns
    -------
    str
        A local path for toy sources, else ``source`` as given.

    Example
    -------
    >>> resolve_source("meta-llama/Llama-3.2-1B")
    'meta-llama/Llama-3.2-1B'
    """
    if not is_toy_source(source):
        return source if not isinstance(source, Path) else str(source)
    profile, part = parse_toy_source(source)
    world = ensure_toyworld(profile)
    sub = PARTS[part]
    return str(world / sub) if sub else str(world)
