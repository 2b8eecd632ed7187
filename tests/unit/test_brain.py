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
