"""Precomputed encoder features: every distinct clip encoded once, the
same features as encoding inside the training step, no audio read after."""

import speechbrain as sb
import torch

from audiollm_lobes.brain import AudioLLMBrain
from audiollm_lobes.cli import load_recipe_hparams
from audiollm_lobes.data.datasets import build_datasets

HPARAMS = "recipes/LiSTEN/hparams/dps.yaml"


def _brain(tmp_path, tiny_backbones, precompute):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    hparams, run_opts = load_recipe_hparams(
        [
            str(root / HPARAMS),
            "--toy_profile=tiny",
            f"--output_folder={tmp_path / str(precompute)}",
            f"--precompute_encoder_features={precompute}",
            "--precision=fp32",
            "--max_valid_per_task=3",
        ],
        str(root / HPARAMS),
    )
    datasets = build_datasets(hparams)
    brain = AudioLLMBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=None,
    )
    return brain, datasets["valid"]


def test_precomputed_features_match_and_no_audio_is_read(
    tmp_path, tiny_backbones
):
    brain, valid = _brain(tmp_path, tiny_backbones, True)
    loader = brain.make_dataloader(
        valid, sb.Stage.VALID, ckpt_prefix=None, batch_size=4
    )
    keys = {valid[i]["audio_key"] for i in range(len(valid))}
    cache = brain.feature_caches["fused"].entries
    # every distinct clip once (SV pairs are their own clip), nothing else
    assert set(cache) == keys
    assert len(keys) < len(valid)  # tasks share utterances
    batches = list(loader)
    assert all(not hasattr(b, "sig") for b in batches)
    assert sum(len(b.id) for b in batches) == len(valid)

    # the same features as the encoder gives on each clip alone
    ref, ref_valid = _brain(tmp_path, tiny_backbones, False)
    ref_loader = ref.make_dataloader(
        ref_valid, sb.Stage.VALID, ckpt_prefix=None, batch_size=1
    )
    ref.modules.eval()
    checked = 0
    with torch.no_grad():
        for batch in ref_loader:
            wavs, lens = batch.sig
            feats, mask = ref.modules.encoder(wavs, lens)
            got = cache[batch.audio_key[0]]["fused"]
            want = feats[0, : int(mask[0].sum())]
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
            checked += 1
    assert checked == len(valid)

    # a training/eval step works from the cache alone
    brain.modules.eval()
    with torch.no_grad():
        out = brain.compute_forward(batches[0], sb.Stage.VALID)
    assert torch.isfinite(out["ce"])


def test_missing_clip_without_audio_is_a_clear_error(tmp_path, tiny_backbones):
    brain, valid = _brain(tmp_path, tiny_backbones, True)
    loader = brain.make_dataloader(
        valid, sb.Stage.VALID, ckpt_prefix=None, batch_size=4
    )
    batch = next(iter(loader))
    brain.feature_caches["fused"].entries.clear()
    try:
        brain.encode_audio(batch)
    except RuntimeError as err:
        assert "not in the feature cache" in str(err)
    else:
        raise AssertionError("expected a RuntimeError")


def _cache_brain(tmp_path, name, *overrides, **extra):
    """A LiSTEN dps Brain on the tiny world with extra command-line
    overrides and ``extra`` hparams (keys the YAML may not have)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    hparams, run_opts = load_recipe_hparams(
        [
            str(root / HPARAMS),
            "--toy_profile=tiny",
            f"--output_folder={tmp_path / name}",
            "--precompute_encoder_features=True",
            "--precision=fp32",
            "--max_valid_per_task=3",
            *overrides,
        ],
        str(root / HPARAMS),
    )
    hparams.update(extra)
    datasets = build_datasets(hparams)
    brain = AudioLLMBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=None,
    )
    brain.test_hparams = hparams
    return brain, datasets["valid"]


def test_disk_feature_cache_is_written_once_and_read_by_a_new_run(
    tmp_path, tiny_backbones
):
    folder = tmp_path / "features"
    disk = {"feature_cache": "disk", "feature_cache_folder": str(folder)}
    brain, valid = _cache_brain(tmp_path, "first", **disk)
    # the encoder on each distinct clip alone, the reference
    first = {}
    for i, eid in enumerate(valid.data_ids):
        first.setdefault(valid[i]["audio_key"], eid)
    brain.modules.eval()
    with torch.no_grad():
        refs = {
            key: brain.modules.encoder(*_with_audio(valid, eid).sig)
            for key, eid in first.items()
        }
    loader = brain.make_dataloader(
        valid, sb.Stage.VALID, ckpt_prefix=None, batch_size=4
    )
    keys = {valid[i]["audio_key"] for i in range(len(valid))}
    cache = brain.feature_caches["fused"]
    assert len(cache) == len(keys) and all(k in cache for k in keys)
    assert list(folder.glob("*/shard-*"))  # flushed after precomputing
    assert len(list(loader)) > 0

    # as a new run: new caches (opened from disk) and a new dataset; it
    # encodes nothing and reads no audio
    brain.feature_caches = {}
    valid2 = build_datasets(brain.test_hparams)["valid"]
    calls = []
    brain.modules.encoder.register_forward_hook(lambda *a: calls.append(1))
    loader2 = brain.make_dataloader(
        valid2, sb.Stage.VALID, ckpt_prefix=None, batch_size=4
    )
    batches = list(loader2)
    assert all(not hasattr(b, "sig") for b in batches)
    assert sum(len(b.id) for b in batches) == len(valid2)
    with torch.no_grad():
        for batch in batches:
            feats, mask = brain.encode_audio(batch)
            for row, key in enumerate(batch.audio_key):
                ref, ref_mask = refs[key]
                n = int(ref_mask[0].sum())
                assert int(mask[row].sum()) == n
                torch.testing.assert_close(
                    feats[row, :n], ref[0, :n], atol=1e-4, rtol=1e-4
                )
    assert calls == []


def _with_audio(dataset, example_id):
    """A one-example PaddedBatch of ``example_id`` with its audio."""
    outputs = list(dataset.pipeline.output_mapping) + ["sig"]
    with dataset.output_keys_as(outputs):
        index = dataset.data_ids.index(example_id)
        return sb.dataio.batch.PaddedBatch([dataset[index]])


def test_debug_runs_do_not_precompute_the_corpus(tmp_path, tiny_backbones):
    brain, valid = _cache_brain(tmp_path, "debug", "--debug")
    assert brain.debug
    brain.make_dataloader(valid, sb.Stage.VALID, ckpt_prefix=None, batch_size=4)
    assert brain.feature_caches == {}
    assert "sig" in valid[0]  # the debug batches encode their own clips


def test_a_dynamic_batch_sampler_gets_each_epoch():
    from speechbrain.dataio.dataset import DynamicItemDataset

    from audiollm_lobes.data.sampling import train_loader_kwargs

    data = DynamicItemDataset(
        {f"e{i}": {"duration": 1.0 + i % 4} for i in range(40)}
    )
    data.set_output_keys(["id"])
    opts = train_loader_kwargs(
        {
            "train_dataloader_opts": {"batch_size": 8, "shuffle": True},
            "dynamic_batching": {"max_batch_length": 8, "num_buckets": 4},
            "seed": 3,
        },
        data,
    )
    brain = AudioLLMBrain(
        modules={"connector": torch.nn.Linear(2, 2)},
        hparams={},
        run_opts={"device": "cpu"},
        checkpointer=None,
    )
    loader = brain.make_dataloader(
        data, sb.Stage.TRAIN, ckpt_prefix=None, **opts
    )
    assert brain.train_sampler is opts["batch_sampler"]
    first = [list(b.id) for b in loader]
    brain.train_sampler.set_epoch(1)  # as fit() does at each epoch
    second = [list(b.id) for b in loader]
    assert sorted(sum(first, [])) == sorted(data.data_ids)
    assert sorted(sum(second, [])) == sorted(data.data_ids)
    assert first != second


def test_a_recipe_sampler_draws_other_examples_each_epoch():
    """steps_per_epoch hands Brain.fit a sampler of its own; SpeechBrain
    gives the epoch number (set_epoch) only to samplers it made, so every
    epoch used to draw the same examples in the same order."""
    from speechbrain.dataio.dataset import DynamicItemDataset
    from speechbrain.utils.epoch_loop import EpochCounter

    from audiollm_lobes.data.sampling import train_loader_kwargs

    data = DynamicItemDataset({str(i): {"n": i} for i in range(40)})
    data.set_output_keys(["id"])
    seen = []

    class Probe(AudioLLMBrain):
        def compute_forward(self, batch, stage):
            seen.append(list(batch.id))
            return self.modules.lin(torch.ones(1, 1)).sum()

        def compute_objectives(self, predictions, batch, stage):
            return predictions

    def run_two_epochs():
        brain = Probe(
            modules={"lin": torch.nn.Linear(1, 1)},
            opt_class=lambda params: torch.optim.SGD(params, lr=0.1),
            hparams={},
            run_opts={"device": "cpu", "noprogressbar": True},
        )
        opts = train_loader_kwargs(
            {
                "train_dataloader_opts": {"batch_size": 4, "shuffle": True},
                "steps_per_epoch": 3,
                "seed": 1,
            },
            data,
        )
        brain.fit(EpochCounter(2), data, train_loader_kwargs=opts)

    run_two_epochs()
    assert len(seen) == 6
    first, second = seen[:3], seen[3:]
    assert first != second
    # each epoch is still a reproducible draw: a fresh run repeats it
    seen_before = list(seen)
    seen.clear()
    run_two_epochs()
    assert seen == seen_before
