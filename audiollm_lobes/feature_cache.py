"""Frozen-encoder features computed once per clip, in memory or on disk.

A frozen, deterministic encoder gives the same features for a clip at
every epoch, and tasks that share a clip (the ASR and translation entries
of one utterance) share them too. A feature cache keeps each clip's
features unpadded, keyed by the batch's ``audio_key``; a batch is then
re-padded from the cache instead of running the encoder.
:func:`precompute_features` fills a cache for a whole dataset before
training and stops the dataset from reading audio at all.

Two caches with one interface (``features(batch, device)``, ``in``,
``len``, ``flush``):

* :class:`FeatureCache` holds the features in memory (CPU): the fastest,
  but a corpus's features must fit in RAM.
* :class:`DiskFeatureCache` writes them to shards on disk and reads each
  clip back when a batch needs it, so the process's memory does not grow
  with the corpus. Shards are plain ``.npy`` files (``np.load(path,
  mmap_mode="r")`` maps them) plus a JSON index, each shard written in a
  staging folder and renamed into place (:mod:`audiollm_lobes.atomic`):
  a shard either exists complete or not at all, so a run killed while
  writing keeps every finished shard and later runs encode only what is
  missing. The folder of a cache is named by :func:`encoder_fingerprint`
  (the encoder's class, configuration and weights, the output's name) and
  by the autocast precision it was computed under, so a changed encoder
  never reuses stale features. Several processes may read and write one
  folder (shard names are unique; a reader rescans the folder when it
  misses a clip); under DDP the Brain lets the main process precompute
  while the others wait.

Authors
 * audiollm-lobes developers, 2026
"""

import collections
import ctypes
import ctypes.util
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
import weakref
from pathlib import Path

import numpy as np
import speechbrain as sb
import torch
from tqdm.auto import tqdm

from audiollm_lobes.atomic import replace_dir, staging_dir, write_json

logger = logging.getLogger(__name__)

#: Where a Brain keeps its features (hparams ``feature_cache``).
FEATURE_CACHE_KINDS = ("memory", "disk")
#: How the disk cache stores features (hparams ``feature_cache_dtype``).
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}
#: How the disk cache reads a shard (hparams ``feature_cache_read``).
READ_MODES = ("file", "mmap")
#: Version of the disk layout; part of every fingerprint.
FORMAT_VERSION = 1
SHARD_PREFIX = "shard-"
#: Staging folders of killed writers older than this (s) are removed.
STALE_STAGING_SECONDS = 3600.0
_FLOAT16_MAX = float(torch.finfo(torch.float16).max)


def _find_malloc_trim():
    """glibc's ``malloc_trim``, or None (other C libraries, Windows)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


_MALLOC_TRIM = _find_malloc_trim()


def release_free_memory():
    """Returns freed heap memory to the operating system (glibc only).

    Encoding batch after batch of different lengths leaves the C heap
    fragmented: freed activations stay in the process's resident memory,
    which then grows with the number of batches although nothing is kept.
    :func:`precompute_features` calls this after each batch so that
    filling a disk cache keeps the process's memory flat. A no-op where
    ``malloc_trim`` does not exist.

    Returns
    -------
    bool
        Whether ``malloc_trim`` was called.

    Example
    -------
    >>> release_free_memory() in (True, False)
    True
    """
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def _encode_missing(run, batch, keys, missing):
    """Encodes the rows ``missing`` of a batch together, without grad.

    The rows are cropped to the longest of them; returns one
    ``{name: feats (frames, dim)}`` per row (unpadded, on the CPU).
    """
    if not hasattr(batch, "sig"):
        raise RuntimeError(
            f"{len(missing)} clip(s) of batch {list(batch.id)[:3]} "
            f"are not in the feature cache ({keys[missing[0]]!r}) "
            "and the batch carries no audio ('sig'): the dataset's "
            "features were not all precomputed"
        )
    wavs, wav_lens = batch.sig
    index = torch.tensor(missing, device=wavs.device)
    sub_lens = wav_lens[index]
    # crop to the longest clip of the sub-batch
    longest = sub_lens.max()
    n_samples = int(torch.ceil(longest * wavs.shape[1]))
    with torch.no_grad():
        outputs = run(wavs[index, :n_samples], sub_lens / longest)
    return [
        {
            name: feats[row, : int(mask[row].sum())].detach().cpu()
            for name, (feats, mask) in outputs.items()
        }
        for row in range(len(missing))
    ]


def _pad_clips(clips, device):
    """``[{name: (frames, dim)}]`` -> ``{name: (feats, mask)}`` padded."""
    out = {}
    for name in clips[0]:
        items = [clip[name] for clip in clips]
        lengths = torch.tensor([len(x) for x in items])
        feats = torch.nn.utils.rnn.pad_sequence(items, batch_first=True)
        mask = torch.arange(feats.shape[1])[None] < lengths[:, None]
        out[name] = (feats.to(device), mask.to(device))
    return out


class FeatureCache:
    """Frozen-encoder outputs, computed once per clip, kept in memory.

    Arguments
    ---------
    run : callable
        ``(wavs (batch, samples), rel_lens (batch,)) -> {name: (feats
        (batch, frames, dim), mask (batch, frames))}``; several named
        outputs (e.g. one per encoder stream) are cached together.

    Example
    -------
    >>> from types import SimpleNamespace
    >>> calls = []
    >>> def run(wavs, lens):
    ...     calls.append(len(wavs))
    ...     n = torch.round(lens * wavs.shape[1])
    ...     mask = torch.arange(wavs.shape[1])[None] < n[:, None]
    ...     return {"feats": (wavs[..., None] * 2, mask)}
    >>> cache = FeatureCache(run)
    >>> batch = SimpleNamespace(audio_key=["a", "b"], id=["1", "2"],
    ...     sig=(torch.tensor([[1.0, 2.0], [3.0, 0.0]]),
    ...          torch.tensor([1.0, 0.5])))
    >>> feats, mask = cache.features(batch, "cpu")["feats"]
    >>> feats[..., 0].tolist(), mask.tolist()
    ([[2.0, 4.0], [6.0, 0.0]], [[True, True], [True, False]])
    >>> _ = cache.features(batch, "cpu")  # cached: the encoder is not run
    >>> calls, len(cache)
    ([2], 2)
    """

    def __init__(self, run):
        self.run = run
        self.entries = {}

    def __len__(self):
        return len(self.entries)

    def __contains__(self, key):
        return key in self.entries

    def flush(self):
        """Nothing to write (the interface of :class:`DiskFeatureCache`)."""

    def features(self, batch, device):
        """Features of a batch, encoding only the clips not seen before.

        Clips not seen before are encoded together (cropped to the longest
        of them) under ``no_grad``; every output is kept on the CPU,
        unpadded, and the batch is re-padded from the cache.

        Arguments
        ---------
        batch : PaddedBatch
            With ``audio_key`` and ``id``, and ``sig`` (``(wavs, rel_lens)``)
            unless every clip is cached.
        device : str or torch.device
            Where the padded outputs go.

        Returns
        -------
        dict
            ``{name: (feats (batch, frames, dim), mask (batch, frames))}``,
            right-padded.
        """
        keys = list(batch.audio_key)
        missing = [i for i, k in enumerate(keys) if k not in self.entries]
        if missing:
            clips = _encode_missing(self.run, batch, keys, missing)
            for i, clip in zip(missing, clips):
                self.entries[keys[i]] = clip
        return _pad_clips([self.entries[k] for k in keys], device)


def encoder_fingerprint(module, name, extra=None):
    """A hash of everything that decides an encoder's cached output.

    Covers the format version, the output's ``name``, the class and
    ``repr`` of ``module`` and of every submodule, their plain settings
    (attributes that are numbers, strings, booleans or tuples of them,
    e.g. ``crop``), their ``config`` / ``cfg`` objects (HF configs,
    BEATs' config), every parameter and buffer (names, dtypes, shapes and
    bytes) and ``extra`` (JSON-serialisable, e.g. the sample rate).
    Changing one weight changes the fingerprint. Code changes inside a
    ``forward`` are not seen: bump ``FORMAT_VERSION`` or use another cache
    folder after such a change.

    Arguments
    ---------
    module : torch.nn.Module
        The (frozen) encoder.
    name : str
        Which of its outputs is cached (e.g. ``"fused"``).
    extra : dict, optional
        Further settings the features depend on.

    Returns
    -------
    str
        24 hexadecimal characters.

    Example
    -------
    >>> enc = torch.nn.Linear(3, 2)
    >>> a = encoder_fingerprint(enc, "fused")
    >>> a == encoder_fingerprint(enc, "fused"), len(a)
    (True, 24)
    >>> a == encoder_fingerprint(enc, "streams")
    False
    >>> with torch.no_grad():
    ...     enc.weight[0, 0] += 1e-3
    >>> a == encoder_fingerprint(enc, "fused")
    False
    """
    digest = hashlib.sha256()

    def add(value):
        digest.update(str(value).encode("utf-8"))
        digest.update(b"\0")

    add(f"format {FORMAT_VERSION}")
    add(name)
    add(json.dumps(extra, sort_keys=True, default=str))
    add(repr(module))
    for sub_name, sub in module.named_modules():
        add(sub_name)
        add(f"{type(sub).__module__}.{type(sub).__qualname__}")
        for key, value in sorted(vars(sub).items()):
            if key.startswith("_") or key == "training":
                continue
            if _is_plain(value):
                add(f"{key}={value!r}")
            elif key in ("config", "cfg"):
                add(f"{key}={_describe_config(value)}")
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    for tensor_name, tensor in tensors:
        add(f"{tensor_name} {tensor.dtype} {tuple(tensor.shape)}")
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()[:24]


def _is_plain(value):
    if isinstance(value, (bool, int, float, str, type(None))):
        return True
    if isinstance(value, (tuple, list)):
        return all(_is_plain(v) for v in value)
    return False


def _describe_config(config):
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    elif hasattr(config, "__dict__"):
        config = vars(config)
    return json.dumps(config, sort_keys=True, default=str)


def autocast_signature(device_type):
    """``"fp32"`` or ``"autocast-<dtype>"``: the autocast state now.

    Features computed under bf16 autocast differ from fp32 ones, so the
    disk cache keeps them apart.

    Arguments
    ---------
    device_type : str
        ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    str

    Example
    -------
    >>> autocast_signature("cpu")
    'fp32'
    >>> with torch.autocast("cpu", dtype=torch.bfloat16):
    ...     autocast_signature("cpu")
    'autocast-bfloat16'
    """
    if not torch.is_autocast_enabled(device_type):
        return "fp32"
    dtype = torch.get_autocast_dtype(device_type)
    return f"autocast-{str(dtype).replace('torch.', '')}"


class DiskFeatureCache:
    """Frozen-encoder outputs, computed once per clip, kept in disk shards.

    The same interface as :class:`FeatureCache`. Newly encoded clips wait
    in memory until they fill ``shard_megabytes``, then are written as one
    shard (atomically); :meth:`flush` writes a partial shard (the Brain
    flushes after precomputing; what is pending is also flushed at
    interpreter exit, and lost, to be recomputed, if the process is
    killed). Reading a clip costs one positioned file read per output
    (``read="file"``, the default: the page cache is not the process's
    memory, so its resident memory does not grow with the corpus) or a copy
    out of a memory map (``read="mmap"``: pages read stay mapped and count
    in the process's resident memory until the map is closed). At most
    ``max_open_files`` shard files are open at once. The index holds about
    200 bytes per clip in memory.

    Layout: ``<folder>/<fingerprint>-<autocast>/`` holds ``meta.json`` and
    shards ``shard-<time>-<pid>-<random>/`` with ``index.json`` (keys,
    output names, frames per clip and output, feature sizes, dtypes) and
    ``<j>.npy`` ``(frames of all its clips, dim)`` per output ``j``.

    Arguments
    ---------
    run : callable
        ``(wavs (batch, samples), rel_lens (batch,)) -> {name: (feats
        (batch, frames, dim), mask (batch, frames))}``.
    folder : str or os.PathLike
        Root folder of the cache (shared by encoders and runs).
    fingerprint : str
        :func:`encoder_fingerprint` of the encoder and output.
    dtype : str
        Storage precision, ``"float32"`` (exact) or ``"float16"`` (half the
        disk and reading; a value beyond float16's range is an error).
        Features are returned in the dtype the encoder gave them.
    shard_megabytes : float
        Size of a shard (and the most that waits in memory).
    read : str
        ``"file"`` or ``"mmap"`` (see above).
    max_open_files : int
        Open shard files kept (least recently used closed first).
    description : dict, optional
        Written to ``meta.json`` for people (e.g. the encoder's class).

    Example
    -------
    >>> import tempfile
    >>> from types import SimpleNamespace
    >>> calls = []
    >>> def run(wavs, lens):
    ...     calls.append(len(wavs))
    ...     n = torch.round(lens * wavs.shape[1])
    ...     mask = torch.arange(wavs.shape[1])[None] < n[:, None]
    ...     return {"feats": (wavs[..., None] * 2, mask)}
    >>> folder = tempfile.mkdtemp()
    >>> cache = DiskFeatureCache(run, folder, "f00d")
    >>> batch = SimpleNamespace(audio_key=["a", "b"], id=["1", "2"],
    ...     sig=(torch.tensor([[1.0, 2.0], [3.0, 0.0]]),
    ...          torch.tensor([1.0, 0.5])))
    >>> feats, mask = cache.features(batch, "cpu")["feats"]
    >>> feats[..., 0].tolist(), mask.tolist()
    ([[2.0, 4.0], [6.0, 0.0]], [[True, True], [True, False]])
    >>> cache.flush()  # one shard on disk
    >>> again = DiskFeatureCache(run, folder, "f00d")  # e.g. another run
    >>> again.features(batch, "cpu")["feats"][0][..., 0].tolist()
    [[2.0, 4.0], [6.0, 0.0]]
    >>> calls, len(again)  # read back: the encoder ran once
    ([2], 2)
    """

    def __init__(
        self,
        run,
        folder,
        fingerprint,
        dtype="float32",
        shard_megabytes=64.0,
        read="file",
        max_open_files=64,
        description=None,
    ):
        if dtype not in STORAGE_DTYPES:
            raise ValueError(
                f"DiskFeatureCache: dtype (feature_cache_dtype) must be one "
                f"of {sorted(STORAGE_DTYPES)}, got {dtype!r}"
            )
        if read not in READ_MODES:
            raise ValueError(
                f"DiskFeatureCache: read (feature_cache_read) must be one of "
                f"{list(READ_MODES)}, got {read!r}"
            )
        if not float(shard_megabytes) > 0:
            raise ValueError(
                f"DiskFeatureCache: shard_megabytes must be > 0, got "
                f"{shard_megabytes!r}"
            )
        if not str(fingerprint) or "/" in str(fingerprint):
            raise ValueError(
                f"DiskFeatureCache: fingerprint must be a non-empty name "
                f"without '/', got {fingerprint!r}"
            )
        self.run = run
        self.folder = Path(folder)
        self.fingerprint = str(fingerprint)
        self.dtype = dtype
        self.shard_bytes = int(float(shard_megabytes) * 2**20)
        self.read = read
        self.max_open_files = int(max_open_files)
        self.description = dict(description or {})
        self.device_type = "cpu"
        #: ``{autocast signature: _ShardStore}``
        self.stores = {}
        weakref.finalize(self, _flush_at_exit, self.stores)

    def store(self):
        """The shard store of the current autocast state (opened once)."""
        signature = autocast_signature(self.device_type)
        if signature not in self.stores:
            meta = {
                "format": FORMAT_VERSION,
                "fingerprint": self.fingerprint,
                "autocast": signature,
                **self.description,
            }
            self.stores[signature] = _ShardStore(
                self.folder / f"{self.fingerprint}-{signature}",
                STORAGE_DTYPES[self.dtype],
                self.shard_bytes,
                self.read,
                self.max_open_files,
                meta,
            )
        return self.stores[signature]

    def __len__(self):
        return len(self.store())

    def __contains__(self, key):
        return key in self.store()

    def flush(self):
        """Writes what waits in memory as shards (one per output layout)."""
        for store in self.stores.values():
            store.flush()

    def refresh(self):
        """Indexes shards that other processes wrote since the last look."""
        for store in self.stores.values():
            store.refresh()

    def features(self, batch, device):
        """Features of a batch, encoding only the clips not on disk.

        Clips missing from the index are looked for again on disk (another
        process may have written them), then the rest are encoded together
        (cropped to the longest of them) under ``no_grad`` and queued for
        the next shard.

        Arguments
        ---------
        batch : PaddedBatch
            With ``audio_key`` and ``id``, and ``sig`` (``(wavs, rel_lens)``)
            unless every clip is cached.
        device : str or torch.device
            Where the padded outputs go.

        Returns
        -------
        dict
            ``{name: (feats (batch, frames, dim), mask (batch, frames))}``,
            right-padded.
        """
        self.device_type = torch.device(device).type
        store = self.store()
        keys = list(batch.audio_key)
        clips = [store.get(k) for k in keys]
        if any(clip is None for clip in clips):
            store.refresh()
            clips = [
                store.get(k) if c is None else c for k, c in zip(keys, clips)
            ]
        missing = [i for i, clip in enumerate(clips) if clip is None]
        if missing:
            encoded = _encode_missing(self.run, batch, keys, missing)
            for i, clip in zip(missing, encoded):
                clips[i] = clip
                store.put(keys[i], clip)
        return _pad_clips(clips, device)


def _flush_at_exit(stores):
    for store in list(stores.values()):
        try:
            store.flush()
        except Exception as err:  # at exit: report, do not raise
            logger.warning("feature cache %s: not flushed (%s)", store, err)


class _ShardStore:
    """The shards of one folder: index, pending clips, reading, writing."""

    def __init__(self, folder, dtype, shard_bytes, read, max_open, meta):
        self.folder = Path(folder)
        self.dtype = dtype
        self.shard_bytes = shard_bytes
        self.read = read
        self.max_open = max(1, max_open)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "meta.json").exists():
            write_json(self.folder / "meta.json", meta)
        self.index = {}  # key -> (shard slot, row)
        self.shards = []  # per slot: name, outputs, dims, dtypes, offsets
        self.known = set()  # shard folder names already looked at
        self.pending = {}  # key -> {output: (frames, dim) tensor}
        self.pending_bytes = 0
        self.handles = collections.OrderedDict()  # (slot, j) -> handle
        self._remove_stale_staging()
        self.refresh()

    def __repr__(self):
        return f"_ShardStore({str(self.folder)!r})"

    def __len__(self):
        return len(self.index) + len(self.pending)

    def __contains__(self, key):
        return key in self.pending or key in self.index

    def _remove_stale_staging(self):
        now = time.time()
        for path in self.folder.glob(f".{SHARD_PREFIX}*"):
            try:
                age = now - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if age > STALE_STAGING_SECONDS:
                shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------ index
    def refresh(self):
        """Indexes the complete shards not indexed yet (sorted by name)."""
        names = sorted(
            p.name
            for p in self.folder.iterdir()
            if p.name.startswith(SHARD_PREFIX) and p.name not in self.known
        )
        for name in names:
            self.known.add(name)
            path = self.folder / name / "index.json"
            try:
                meta = json.loads(path.read_text(encoding="utf-8"))
                self._add_shard(name, meta)
            except (OSError, ValueError, KeyError, TypeError) as err:
                logger.warning(
                    "feature cache: shard %s is unreadable and skipped (%s)",
                    self.folder / name,
                    err,
                )

    def _add_shard(self, name, meta):
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"format {meta.get('format')!r}, expected {FORMAT_VERSION}"
            )
        keys = list(meta["keys"])
        lengths = np.asarray(meta["lengths"], dtype=np.int64)
        n_outputs = len(meta["outputs"])
        lengths = lengths.reshape(len(keys), n_outputs)
        offsets = np.zeros((len(keys) + 1, n_outputs), dtype=np.int64)
        np.cumsum(lengths, axis=0, out=offsets[1:])
        slot = len(self.shards)
        self.shards.append(
            {
                "name": name,
                "outputs": list(meta["outputs"]),
                "dims": [int(d) for d in meta["dims"]],
                "dtypes": [getattr(torch, d) for d in meta["dtypes"]],
                "offsets": offsets,
            }
        )
        for row, key in enumerate(keys):
            self.index.setdefault(key, (slot, row))

    # ---------------------------------------------------------- reading
    def get(self, key):
        """``{output: (frames, dim)}`` of a clip, or None if absent."""
        if key in self.pending:
            return self.pending[key]
        where = self.index.get(key)
        if where is None:
            return None
        slot, row = where
        shard = self.shards[slot]
        return {
            name: self._read(slot, j, row)
            for j, name in enumerate(shard["outputs"])
        }

    def _read(self, slot, j, row):
        shard = self.shards[slot]
        start, stop = (int(x) for x in shard["offsets"][row : row + 2, j])
        dim = shard["dims"][j]
        handle = self._handle(slot, j)
        if self.read == "mmap":
            array = np.array(handle[start:stop])
        else:
            file, data_offset, np_dtype = handle
            array = np.empty((stop - start, dim), dtype=np_dtype)
            if array.nbytes:
                file.seek(data_offset + start * dim * array.itemsize)
                got = file.readinto(memoryview(array).cast("B"))
                if got != array.nbytes:
                    raise RuntimeError(
                        f"feature cache: {file.name} is truncated (read "
                        f"{got} of {array.nbytes} bytes at row {row})"
                    )
        return torch.from_numpy(array).to(shard["dtypes"][j])

    def _handle(self, slot, j):
        if (slot, j) in self.handles:
            self.handles.move_to_end((slot, j))
            return self.handles[(slot, j)]
        while len(self.handles) >= self.max_open:
            _, old = self.handles.popitem(last=False)
            if self.read == "file":
                old[0].close()
        shard = self.shards[slot]
        path = self.folder / shard["name"] / f"{j}.npy"
        total = int(shard["offsets"][-1, j])
        expected = (total, shard["dims"][j])
        if self.read == "mmap":
            handle = np.load(path, mmap_mode="r")
            shape = handle.shape
        else:
            file = open(path, "rb")
            version = np.lib.format.read_magic(file)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, np_dtype = read_header(file)
            handle = (file, file.tell(), np_dtype)
            if fortran:
                file.close()
                raise RuntimeError(f"feature cache: {path} is not C-ordered")
        if tuple(shape) != expected:
            if self.read == "file":
                handle[0].close()
            raise RuntimeError(
                f"feature cache: {path} has shape {tuple(shape)}, its index "
                f"says {expected}"
            )
        self.handles[(slot, j)] = handle
        return handle

    # ---------------------------------------------------------- writing
    def put(self, key, clip):
        """Queues a clip's ``{output: (frames, dim)}``; writes full shards."""
        if key in self:
            return
        size = torch.finfo(self.dtype).bits // 8
        for name, feats in clip.items():
            if feats.dim() != 2:
                raise ValueError(
                    f"feature cache: output {name!r} of clip {key!r} has "
                    f"shape {tuple(feats.shape)}; expected (frames, dim), "
                    "i.e. (batch, frames, dim) from the encoder"
                )
            if self.dtype == torch.float16 and feats.numel():
                peak = float(feats.detach().abs().max())
                if peak > _FLOAT16_MAX:
                    raise ValueError(
                        f"feature cache: output {name!r} of clip {key!r} "
                        f"reaches {peak:.3g}, beyond float16's range; use "
                        "feature_cache_dtype: float32"
                    )
        # copies: the encoder's slices would keep whole batches alive
        self.pending[key] = {name: f.clone() for name, f in clip.items()}
        self.pending_bytes += sum(f.numel() * size for f in clip.values())
        if self.pending_bytes >= self.shard_bytes:
            self.flush()

    def flush(self):
        """Writes the pending clips, one shard per output layout."""
        groups = {}
        for key, clip in self.pending.items():
            layout = tuple(
                (name, f.shape[1], str(f.dtype)) for name, f in clip.items()
            )
            groups.setdefault(layout, []).append(key)
        for layout, keys in groups.items():
            self._write_shard(layout, keys)
            for key in keys:
                del self.pending[key]
        self.pending_bytes = 0

    def _write_shard(self, layout, keys):
        name = (
            f"{SHARD_PREFIX}{time.time_ns():020d}-{os.getpid()}-"
            f"{uuid.uuid4().hex[:8]}"
        )
        dest = self.folder / name
        outputs = [out for out, _, _ in layout]
        meta = {
            "format": FORMAT_VERSION,
            "keys": keys,
            "outputs": outputs,
            "dims": [int(dim) for _, dim, _ in layout],
            "dtypes": [dt.replace("torch.", "") for _, _, dt in layout],
            "lengths": [
                [int(self.pending[k][out].shape[0]) for out in outputs]
                for k in keys
            ],
        }
        with staging_dir(dest) as tmp:
            for j, out in enumerate(outputs):
                frames = torch.cat([self.pending[k][out] for k in keys])
                np.save(tmp / f"{j}.npy", frames.to(self.dtype).numpy())
            write_json(tmp / "index.json", meta)
            replace_dir(tmp, dest)
        self.known.add(name)
        self._add_shard(name, meta)


def precompute_features(
    dataset,
    encode_batch,
    context,
    batch_size=32,
    is_cached=None,
    progress=None,
):
    """Encodes every distinct clip of ``dataset`` once; drops its audio.

    Clips are encoded once each (examples sharing a clip share its
    features), shortest first so that batches hold little padding, under
    ``no_grad`` and ``context`` (e.g. SpeechBrain's ``training_ctx``).
    ``encode_batch`` is expected to fill a feature cache. Clips for which
    ``is_cached`` is true (e.g. on disk from a run that was killed) are
    skipped without reading their audio. Freed memory is handed back to
    the system after each batch (:func:`release_free_memory`). The
    dataset's ``sig`` output is then dropped, so later loaders read no
    audio.

    Arguments
    ---------
    dataset : speechbrain.dataio.dataset.DynamicItemDataset
        With ``id``, ``audio_key``, ``duration`` and ``sig``.
    encode_batch : callable
        ``(PaddedBatch) -> None``, e.g. a Brain's ``encode_audio`` on a
        batch moved to its device.
    context : contextlib.AbstractContextManager
        Precision context of the stage.
    batch_size : int
        Clips per encoder pass.
    is_cached : callable, optional
        ``(audio_key) -> bool``, called under ``context``.
    progress : bool, optional
        Show a progress bar; default: when standard error is a terminal.

    Returns
    -------
    int
        Number of clips encoded now (0 when the dataset was already done
        or every clip was cached).

    Example
    -------
    >>> import contextlib
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> data = DynamicItemDataset({
    ...     "a": {"duration": 2.0, "wav": "x.wav"},
    ...     "b": {"duration": 2.0, "wav": "x.wav"},  # the same clip
    ...     "c": {"duration": 1.5, "wav": "y.wav"}})
    >>> data.add_dynamic_item(lambda w: w, takes="wav", provides="audio_key")
    >>> data.add_dynamic_item(lambda w: torch.ones(4), takes="wav",
    ...                       provides="sig")
    >>> data.set_output_keys(["id", "audio_key", "sig"])
    >>> seen = []
    >>> precompute_features(data, lambda b: seen.extend(b.audio_key),
    ...                     contextlib.nullcontext())
    2
    >>> seen, sorted(data[0])  # shortest first; no audio any more
    (['y.wav', 'x.wav'], ['audio_key', 'id'])
    """
    outputs = list(dataset.pipeline.output_mapping)
    if "sig" not in outputs:
        return 0  # already precomputed
    with dataset.output_keys_as(["id", "audio_key"]):
        rows = [dataset[i] for i in range(len(dataset))]
    first = {}
    for row in rows:
        first.setdefault(row["audio_key"], row["id"])
    keep = set(first.values())
    key_of = {row["id"]: row["audio_key"] for row in rows}
    todo = dataset.filtered_sorted(
        key_test={"id": lambda eid: eid in keep}, sort_key="duration"
    )
    keys = [key_of[eid] for eid in todo.data_ids]
    if progress is None:
        progress = sys.stderr.isatty()
    encoded = 0
    began = time.time()
    bar = tqdm(
        total=len(keys),
        desc="precomputing encoder features",
        unit="clip",
        disable=not progress,
        dynamic_ncols=True,
    )
    with torch.no_grad(), context, bar:
        for start in range(0, len(keys), batch_size):
            chunk = range(start, min(start + batch_size, len(keys)))
            needed = [
                i for i in chunk if is_cached is None or not is_cached(keys[i])
            ]
            if needed:
                encode_batch(
                    sb.dataio.batch.PaddedBatch([todo[i] for i in needed])
                )
                encoded += len(needed)
                release_free_memory()
            bar.update(len(chunk))
    logger.info(
        "precomputed encoder features of %d clips (%d examples, %d clips "
        "already cached) in %.1f s",
        encoded,
        len(rows),
        len(keys) - encoded,
        time.time() - began,
    )
    drop_audio(dataset)
    return encoded


def drop_audio(dataset):
    """Stops ``dataset`` from reading audio (drops its ``sig`` output).

    For the processes that did not precompute a dataset's features
    themselves but read them from a shared disk cache.

    Arguments
    ---------
    dataset : speechbrain.dataio.dataset.DynamicItemDataset
        Its output keys lose ``sig``.

    Example
    -------
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> data = DynamicItemDataset({"a": {"wav": "x.wav"}})
    >>> data.add_dynamic_item(lambda w: w, takes="wav", provides="sig")
    >>> data.set_output_keys(["id", "sig"])
    >>> drop_audio(data); data[0]
    {'id': 'a'}
    """
    outputs = list(dataset.pipeline.output_mapping)
    dataset.set_output_keys([k for k in outputs if k != "sig"])


def open_feature_cache(
    kind,
    run,
    encoder=None,
    name="fused",
    folder=None,
    extra=None,
    dtype="float32",
    shard_megabytes=64.0,
    read="file",
):
    """The feature cache of one kind of output, as a Brain configures it.

    Arguments
    ---------
    kind : str
        ``"memory"`` (:class:`FeatureCache`) or ``"disk"``
        (:class:`DiskFeatureCache`).
    run : callable
        ``(wavs, rel_lens) -> {output: (feats, mask)}``.
    encoder : torch.nn.Module, optional
        Fingerprinted for the disk cache (required there).
    name : str
        The cache's name (e.g. ``"fused"``, ``"streams"``).
    folder : str or os.PathLike, optional
        Root of the disk cache; default ``<cache home>/features``
        (``$AUDIOLLM_LOBES_HOME``), shared by every run, so experiments
        with the same encoder share its features.
    extra : dict, optional
        Settings the features depend on besides the encoder (e.g. the
        sample rate), part of the fingerprint.
    dtype : str
        Disk storage precision (``"float32"`` or ``"float16"``).
    shard_megabytes : float
        Size of a disk shard.
    read : str
        ``"file"`` or ``"mmap"``.

    Returns
    -------
    FeatureCache or DiskFeatureCache

    Example
    -------
    >>> import tempfile
    >>> cache = open_feature_cache("disk", None, torch.nn.Linear(2, 2),
    ...                            folder=tempfile.mkdtemp())
    >>> type(cache).__name__, len(cache.fingerprint)
    ('DiskFeatureCache', 24)
    >>> open_feature_cache("ram", None)
    Traceback (most recent call last):
    ...
    ValueError: feature_cache must be one of ['memory', 'disk'], got 'ram'
    """
    if kind not in FEATURE_CACHE_KINDS:
        raise ValueError(
            f"feature_cache must be one of {list(FEATURE_CACHE_KINDS)}, "
            f"got {kind!r}"
        )
    if kind == "memory":
        return FeatureCache(run)
    if encoder is None:
        raise ValueError(
            "feature_cache: disk needs the encoder, to fingerprint it"
        )
    if folder is None:
        from audiollm_lobes.paths import cache_home

        folder = cache_home() / "features"
    cls = type(encoder)
    return DiskFeatureCache(
        run,
        folder,
        encoder_fingerprint(encoder, name, extra),
        dtype=dtype,
        shard_megabytes=shard_megabytes,
        read=read,
        description={
            "name": name,
            "encoder": f"{cls.__module__}.{cls.__qualname__}",
            "extra": extra,
        },
    )
