"""Where the project keeps generated data and toy backbones.

Authors
 * audiollm-lobes developers, 2026
"""

import os
from pathlib import Path


def cache_home():
    """Returns the root folder of the project's cache.

    ``$AUDIOLLM_LOBES_HOME`` if set, else ``~/.cache/audiollm_lobes``.

    Returns
    -------
    pathlib.Path
        The cache root (not created here).

    Example
    -------
    >>> isinstance(cache_home(), Path)
    True
    """
    env = os.environ.get("AUDIOLLM_LOBES_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "audiollm_lobes"


def toyworld_dir(profile):
    """Returns the folder of the toy world built with ``profile``.

    Arguments
    ---------
    profile : str
        ``"tiny"`` or ``"small"``.

    Returns
    -------
    pathlib.Path
        ``<cache_home>/toyworld/<profile>``.

    Example
    -------
    >>> toyworld_dir("tiny").name
    'tiny'
    """
    return cache_home() / "toyworld" / profile
