"""Feature caches: the disk cache gives the encoder's features (as the
in-memory cache does), a changed encoder misses it, an interrupted shard is
never used and the rest resumes, and another process reads what one wrote.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import speechbrain as sb
import torch
from torch import nn

from audiollm_lobes import feature_cache as fc
from audiollm_lobes.feature_cache import (
    DiskFeatureCache,
    FeatureCache,
    encoder_fingerprint,
    precompute_features,
)

HOP = 4


class FrameEncoder(nn.Module):
    """Two outputs per frame of ``HOP`` samples: ``a`` (3 features) and
    ``b`` (2 features); zero on padded frames, a clip's features do not
    depend on the rest of its batch."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.proj = nn.Linear(HOP, 3)
        self.out = nn.Linear(3, 2)
        self.scale = 10.0

    def forward(self, wavs, rel_lens):
        n_frames = wavs.shape[1] // HOP
        frames = wavs[:, : n_frames * HOP].reshape(len(wavs), n_frames, HOP)
        lengths = torch.round(rel_lens * wavs.shape[1]).long() // HOP
        mask = torch.arange(n_frames)[None] < lengths[:, None]
        a = self.proj(frames * self.scale) * mask[..., None]
        b = torch.tanh(self.out(a)) * mask[..., None]
        return {"a": (a, mask), "b": (b, mask)}


def counting(encoder):
    """``run`` for a cache, and the list of batch sizes it was called on."""
    calls = []

    def run(wavs, lens):
        calls.append(len(wavs))
        return encoder(wavs, lens)

    return run, calls


def clip(key):
    """A deterministic waveform per key (length 8..40 samples)."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(key))
    gen = torch.Generator().manual_seed(seed)
    n = 8 + HOP * int(torch.randint(0, 9, (1,), generator=gen))
    return torch.randn(n, generator=gen)


def batch_of(keys):
    wavs = [clip(k) for k in keys]
    longest = max(len(w) for w in wavs)
    padded = torch.zeros(len(wavs), longest)
    for i, w in enumerate(wavs):
        padded[i, : len(w)] = w
    lens = torch.tensor([len(w) / longest for w in wavs])
    return SimpleNamespace(
        audio_key=list(keys), id=list(keys), sig=(padded, lens)
    )


def reference(encoder, key):
    """The encoder on the clip alone: ``{name: (frames, dim)}``."""
    wav = clip(key)[None]
    with torch.no_grad():
        out = encoder(wav, torch.ones(1))
    return {n: f[0, : int(m[0].sum())] for n, (f, m) in out.items()}


KEYS = [f"clip{i}" for i in range(10)]
BATCHES = [KEYS[:4], KEYS[4:7], KEYS[7:], ["clip2", "clip8", "clip5"]]


def test_fingerprint_sees_weights_settings_name_and_extra():
    enc = FrameEncoder()
    base = encoder_fingerprint(enc, "x", {"sample_rate": 16000})
    assert base == encoder_fingerprint(
        FrameEncoder(), "x", {"sample_rate": 16000}
    )
    assert base != encoder_fingerprint(enc, "y", {"sample_rate": 16000})
    assert base != encoder_fingerprint(enc, "x", {"sample_rate": 8000})
    enc.scale = 11.0
    assert base != encoder_fingerprint(enc, "x", {"sample_rate": 16000})


@pytest.mark.parametrize(
    "read,dtype",
    [("file", "float32"), ("mmap", "float32"), ("file", "float16")],
)
def test_disk_cache_gives_the_encoders_and_the_memory_caches_features(
    tmp_path, read, dtype
):
    encoder = FrameEncoder()
    fingerprint = encoder_fingerprint(encoder, "streams")
    memory = FeatureCache(encoder)
    # small shards: several per run, one clip per shard for some
    run, calls = counting(encoder)
    disk = DiskFeatureCache(
        run, tmp_path, fingerprint, dtype=dtype, read=read, shard_megabytes=1e-4
    )
    for keys in BATCHES:
        want = memory.features(batch_of(keys), "cpu")
        got = disk.features(batch_of(keys), "cpu")
        for name in ("a", "b"):
            if dtype == "float32":
                assert torch.equal(got[name][0], want[name][0])
            assert torch.equal(got[name][1], want[name][1])
    disk.flush()
    assert sum(calls) == len(KEYS)  # every clip encoded once
    shards = list(tmp_path.glob("*/shard-*"))
    assert len(shards) > 2

    # a new cache (another run) reads everything back from disk
    run2, calls2 = counting(encoder)
    again = DiskFeatureCache(
        run2, tmp_path, fingerprint, dtype=dtype, read=read
    )
    assert len(again) == len(KEYS) and "clip3" in again
    tol = 1e-6 if dtype == "float32" else 2e-3
    for keys in BATCHES:
        out = again.features(batch_of(keys), "cpu")
        for row, key in enumerate(keys):
            for name, ref in reference(encoder, key).items():
                feats, mask = out[name]
                n = len(ref)
                assert int(mask[row].sum()) == n
                torch.testing.assert_close(
                    feats[row, :n], ref, atol=tol, rtol=tol
                )
                assert not feats[row, n:].any()
    assert calls2 == []
    # the output is the dtype the encoder gave, whatever is stored
    assert out["a"][0].dtype == torch.float32


def test_a_changed_encoder_misses_the_cache(tmp_path):
    encoder = FrameEncoder()
    run, calls = counting(encoder)
    cache = fc.open_feature_cache(
        "disk", run, encoder, name="fused", folder=tmp_path
    )
    before = cache.features(batch_of(KEYS[:3]), "cpu")["a"][0]
    cache.flush()
    with torch.no_grad():
        encoder.proj.weight[0, 0] += 0.5  # one weight changed
    run2, calls2 = counting(encoder)
    changed = fc.open_feature_cache(
        "disk", run2, encoder, name="fused", folder=tmp_path
    )
    assert changed.fingerprint != cache.fingerprint
    assert len(changed) == 0
    after = changed.features(batch_of(KEYS[:3]), "cpu")["a"][0]
    assert calls2 == [3]
    assert not torch.allclose(before, after)
    want = reference(encoder, KEYS[0])["a"]
    torch.testing.assert_close(after[0, : len(want)], want)


def test_autocast_features_are_kept_apart(tmp_path):
    encoder = FrameEncoder()
    run, calls = counting(encoder)
    cache = DiskFeatureCache(run, tmp_path, "fp")
    cache.features(batch_of(KEYS[:2]), "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert KEYS[0] not in cache
        out = cache.features(batch_of(KEYS[:2]), "cpu")
    assert calls == [2, 2]
    assert out["a"][0].dtype == torch.bfloat16  # given back as encoded
    cache.flush()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["fp-autocast-bfloat16", "fp-fp32"]


def test_a_shard_failing_mid_write_is_not_used_and_the_rest_resumes(
    tmp_path, monkeypatch
):
    encoder = FrameEncoder()
    run, calls = counting(encoder)
    cache = DiskFeatureCache(run, tmp_path, "fp")
    cache.features(batch_of(KEYS[:4]), "cpu")
    cache.flush()  # shard 1: complete
    cache.features(batch_of(KEYS[4:8]), "cpu")
    real_save = np.save

    def failing_save(path, array):
        if str(path).endswith("1.npy"):  # the second output's file
            raise OSError("disk full (simulated)")
        real_save(path, array)

    monkeypatch.setattr(fc.np, "save", failing_save)
    with pytest.raises(OSError, match="simulated"):
        cache.flush()
    monkeypatch.setattr(fc.np, "save", real_save)
    folder = tmp_path / "fp-fp32"
    # no half shard, no leftovers: shard 1 and meta.json only
    assert len(list(folder.glob("shard-*"))) == 1
    assert not list(folder.glob(".*"))

    run2, calls2 = counting(encoder)
    resumed = DiskFeatureCache(run2, tmp_path, "fp")
    assert len(resumed) == 4
    out = resumed.features(batch_of(KEYS[:8]), "cpu")
    assert calls2 == [4]  # only the clips of the failed shard
    for row, key in enumerate(KEYS[:8]):
        want = reference(encoder, key)["b"]
        torch.testing.assert_close(out["b"][0][row, : len(want)], want)
    # the failed writer kept its clips and can still write them
    cache.flush()
    assert len(list(folder.glob("shard-*"))) == 2


WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_feature_cache import FrameEncoder, KEYS, batch_of
    from audiollm_lobes import feature_cache as fc

    encoder = FrameEncoder()
    cache = fc.open_feature_cache("disk", encoder, encoder, name="fused",
                                  folder={folder!r})
    print(cache.fingerprint)
    cache.features(batch_of(KEYS[:5]), "cpu")
    cache.flush()  # complete
    cache.features(batch_of(KEYS[5:]), "cpu")
    real_save = np.save

    def save_then_die(path, array):
        real_save(path, array)
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)  # killed mid-shard

    fc.np.save = save_then_die
    cache.flush()
    """
)


@pytest.fixture(scope="module")
def killed_writer(tmp_path_factory):
    """A process that wrote one shard, then was killed writing the next."""
    folder = tmp_path_factory.mktemp("shared_cache")
    script = WRITER.format(tests=str(Path(__file__).parent), folder=str(folder))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return folder, proc


def test_a_killed_writer_leaves_no_usable_half_shard(killed_writer):
    folder, proc = killed_writer
    assert proc.returncode == -9, proc.stderr
    (store,) = [p for p in folder.iterdir() if p.is_dir()]
    assert len(list(store.glob("shard-*"))) == 1
    assert len(list(store.glob(".shard-*"))) == 1  # the staging leftover


def test_a_fresh_process_reads_what_another_wrote_and_resumes(killed_writer):
    folder, proc = killed_writer
    encoder = FrameEncoder()
    run, calls = counting(encoder)
    cache = fc.open_feature_cache("disk", run, encoder, "fused", folder=folder)
    # the same fingerprint in both processes
    assert cache.fingerprint == proc.stdout.split()[0]
    assert len(cache) == 5
    out = cache.features(batch_of(KEYS), "cpu")
    assert calls == [len(KEYS) - 5]  # the killed shard's clips only
    for row, key in enumerate(KEYS):
        want = reference(encoder, key)["a"]
        torch.testing.assert_close(out["a"][0][row, : len(want)], want)


def test_errors_name_the_clip(tmp_path):
    encoder = FrameEncoder()
    cache = DiskFeatureCache(encoder, tmp_path, "fp", dtype="float16")
    encoder.scale = 1e6
    with pytest.raises(ValueError, match="clip0.*float16.*float32"):
        cache.features(batch_of(KEYS[:1]), "cpu")
    batch = batch_of(KEYS[1:3])
    del batch.sig
    with pytest.raises(RuntimeError, match="not in the feature cache"):
        cache.features(batch, "cpu")
    with pytest.raises(ValueError, match="feature_cache_dtype"):
        DiskFeatureCache(encoder, tmp_path, "fp", dtype="int8")


def _dataset(reads):
    data = sb.dataio.dataset.DynamicItemDataset(
        {
            f"ex{i}": {"key": KEYS[i % 6], "duration": float(i % 6)}
            for i in range(12)
        }
    )

    @sb.utils.data_pipeline.takes("key")
    @sb.utils.data_pipeline.provides("sig")
    def read(key):
        reads.append(key)
        return clip(key)

    data.add_dynamic_item(read)
    data.add_dynamic_item(lambda k: k, takes="key", provides="audio_key")
    data.set_output_keys(["id", "audio_key", "sig"])
    return data


def test_precompute_skips_cached_clips_without_reading_their_audio(tmp_path):
    encoder = FrameEncoder()
    first = DiskFeatureCache(encoder, tmp_path, "fp")
    first.features(batch_of(KEYS[:4]), "cpu")
    first.flush()  # e.g. a run killed after its first shard

    run, calls = counting(encoder)
    cache = DiskFeatureCache(run, tmp_path, "fp")
    reads = []
    data = _dataset(reads)

    def encode(batch):
        feats, _ = cache.features(batch, "cpu")["a"]
        assert len(feats) == len(batch.audio_key)

    n = precompute_features(
        data,
        encode,
        torch.no_grad(),
        batch_size=4,
        is_cached=cache.__contains__,
    )
    assert n == 2 and calls == [2]
    assert sorted(reads) == KEYS[4:6]  # 12 examples, 6 clips, 4 cached
    assert "sig" not in data[0]
    cache.flush()
    assert len(DiskFeatureCache(encoder, tmp_path, "fp")) == 6


def test_precompute_logs_its_own_wall_time(caplog):
    """The logged seconds (read by ``benchmarks/main_job.py``) are the
    call's own: here at least the 0.05 s each of its 2 batches sleeps,
    and no more than the call took."""
    import re
    import time

    def encode(batch):
        time.sleep(0.05)

    began = time.time()
    with caplog.at_level("INFO", logger="audiollm_lobes.feature_cache"):
        precompute_features(_dataset([]), encode, torch.no_grad(), 4)
    took = time.time() - began
    logged = re.findall(r"clips already cached\) in ([0-9.]+) s", caplog.text)
    assert len(logged) == 1
    assert 0.1 <= float(logged[0]) <= took + 0.05
