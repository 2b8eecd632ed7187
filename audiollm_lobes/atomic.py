"""Atomic writes: a file or a folder is either the old one or the new one.

Everything the toolkit writes (manifests, caches, checkpoints of the toy
backbones, results, summaries) goes through these functions, so that a
run killed at any moment never leaves a half-written file for the next run
to trip over. A file is written to a temporary name in the same folder and
moved into place with ``os.replace`` (atomic on POSIX and Windows); a
folder is built under a temporary name and swapped in by two renames.

Authors
 * audiollm-lobes developers, 2026
"""

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import torch


@contextlib.contextmanager
def replacing(path):
    """Yields a temporary path next to ``path``; on success it becomes
    ``path`` (``os.replace``), on an error it is deleted.

    For writers that take a file name (``savefig``, ``save_pretrained`` of
    a single file, ...). The temporary name keeps the suffix of ``path``,
    for writers that choose a format by it.

    Arguments
    ---------
    path : str or os.PathLike
        Destination file (parent folders are made).

    Yields
    ------
    pathlib.Path
        Where to write.

    Example
    -------
    >>> path = Path(tempfile.mkdtemp()) / "a.txt"
    >>> with replacing(path) as tmp:
    ...     _ = tmp.write_text("done")
    ...     path.exists(), tmp.suffix
    (False, '.txt')
    >>> path.read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique name, created with the usual permissions (umask), unlike
    # mkstemp's 0600
    tmp = path.with_name(
        f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex}.tmp{path.suffix}"
    )
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text(path, text, encoding="utf-8"):
    """Writes ``text`` to ``path`` atomically (parent folders are made).

    Arguments
    ---------
    path : str or os.PathLike
        Destination file.
    text : str
        Content.
    encoding : str
        Text encoding.

    Returns
    -------
    pathlib.Path
        ``path``.

    Example
    -------
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_text(folder / "a" / "b.txt", "hello").read_text()
    'hello'
    >>> sorted(p.name for p in (folder / "a").iterdir())  # no leftovers
    ['b.txt']
    """
    path = Path(path)
    with replacing(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return path


def write_json(path, obj, indent=2):
    """Writes ``obj`` as JSON (UTF-8, not ASCII-escaped) atomically.

    Arguments
    ---------
    path : str or os.PathLike
        Destination file.
    obj : object
        JSON-serialisable object.
    indent : int
        Indentation.

    Returns
    -------
    pathlib.Path
        ``path``.

    Example
    -------
    >>> path = Path(tempfile.mkdtemp()) / "x.json"
    >>> json.loads(write_json(path, {"city": "Zürich"}).read_text())
    {'city': 'Zürich'}
    """
    return write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False))


def save_torch(obj, path):
    """``torch.save`` to ``path`` atomically.

    Arguments
    ---------
    obj : object
        What ``torch.save`` accepts.
    path : str or os.PathLike
        Destination file.

    Returns
    -------
    pathlib.Path
        ``path``.

    Example
    -------
    >>> path = Path(tempfile.mkdtemp()) / "w.pt"
    >>> torch.load(save_torch({"w": torch.ones(2)}, path))["w"].tolist()
    [1.0, 1.0]
    """
    path = Path(path)
    with replacing(path) as tmp:
        torch.save(obj, tmp)
    return path


def replace_dir(staged, dest):
    """Moves the finished folder ``staged`` to ``dest``, replacing it.

    The old ``dest`` (if any) is renamed aside first, the new one renamed
    into place, then the old one deleted: at every moment ``dest`` is
    either absent, the complete old folder or the complete new one.
    ``staged`` must be on the same file system (build it next to
    ``dest``, e.g. with :func:`staging_dir`).

    Arguments
    ---------
    staged : str or os.PathLike
        The complete new folder.
    dest : str or os.PathLike
        Its final place.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Example
    -------
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = write_text(root / "out" / "old.txt", "old")
    >>> _ = write_text(root / "new" / "new.txt", "new")
    >>> out = replace_dir(root / "new", root / "out")
    >>> sorted(p.name for p in out.iterdir())
    ['new.txt']
    >>> sorted(p.name for p in root.iterdir())
    ['out']
    """
    staged, dest = Path(staged), Path(dest)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dest, old)
    os.replace(staged, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


@contextlib.contextmanager
def staging_dir(dest):
    """A temporary folder next to ``dest``, removed unless moved away.

    Build the new content inside it, then :func:`replace_dir` it (or a
    subfolder of it) to ``dest``; on an error or after the move the
    leftovers are deleted.

    Arguments
    ---------
    dest : str or os.PathLike
        The folder that will eventually be replaced.

    Yields
    ------
    pathlib.Path
        The empty temporary folder.

    Example
    -------
    >>> root = Path(tempfile.mkdtemp())
    >>> with staging_dir(root / "model") as tmp:
    ...     _ = write_text(tmp / "weights.txt", "w")
    ...     _ = replace_dir(tmp, root / "model")
    >>> sorted(p.name for p in root.iterdir())
    ['model']
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
