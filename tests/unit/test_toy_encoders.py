"""Tests of the toy Whisper / BEATs backbones: formats, pretraining, probes.

Authors
 * audiollm-lobes developers, 2026
"""

import json
import math

import pytest
import soundfile
import torch

from audiollm_lobes.encoders import BEATsEncoder, WhisperEncoder
from audiollm_lobes.toyworld import toy_encoders as te

SR = 16000


def test_toy_whisper_real_format(tmp_path):
    from transformers import WhisperFeatureExtractor, WhisperModel

    folder = te.make_toy_whisper(
        tmp_path / "w", d_model=32, layers=2, heads=4, seed=0
    )
    model = WhisperModel.from_pretrained(folder, local_files_only=True)
    assert model.config.num_mel_bins == 80
    assert model.config.max_source_positions == 1500
    assert model.config.encoder_layers == 2
    extractor = WhisperFeatureExtractor.from_pretrained(folder)
    assert extractor.feature_size == 80 and extractor.sampling_rate == SR
    # The same path a user's checkpoint takes.
    encoder = WhisperEncoder(source=folder)
    for name, value in encoder.encoder.state_dict().items():
        torch.testing.assert_close(value, model.encoder.state_dict()[name])
    feats, mask = encoder(torch.randn(1, 24000))
    assert feats.shape == (1, 75, 32) and bool(mask.all())
    # Seeded: the same seed gives the same weights, another seed not.
    again = te.make_toy_whisper(tmp_path / "w2", d_model=32, layers=2, seed=0)
    other = te.make_toy_whisper(tmp_path / "w3", d_model=32, layers=2, seed=1)
    w0 = WhisperModel.from_pretrained(again).encoder.conv1.weight
    w1 = WhisperModel.from_pretrained(other).encoder.conv1.weight
    assert torch.equal(w0, model.encoder.conv1.weight)
    assert not torch.equal(w1, w0)


def test_toy_beats_real_format(tmp_path):
    from speechbrain.lobes.models.beats import BEATs

    path = te.make_toy_beats(
        tmp_path / "b" / "beats.pt", embed_dim=32, encoder_embed_dim=32
    )
    checkpoint = torch.load(path, weights_only=True)
    assert sorted(checkpoint) == ["cfg", "model"]
    for value in checkpoint["cfg"].values():
        assert isinstance(value, (bool, int, float, str))
    reference = BEATs(ckp_path=str(path))
    encoder = BEATsEncoder(ckp_path=path)
    state = encoder.model.state_dict()
    assert state.keys() == checkpoint["model"].keys()
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(state[name], value)
    assert encoder.output_dim == 32 and encoder.frame_rate == 50.0
    with pytest.raises(ValueError, match="must divide"):
        te.make_toy_beats(tmp_path / "x.pt", encoder_embed_dim=30, heads=4)


def test_linear_probe_against_hand_cases():
    gen = torch.Generator().manual_seed(0)
    labels = [["a", "b", "c"][i % 3] for i in range(90)]
    centres = {"a": 0.0, "b": 5.0, "c": 10.0}
    feats = torch.randn(90, 4, generator=gen)
    feats[:, 1] += torch.tensor([centres[v] for v in labels])
    result = te.linear_probe(feats, labels, test_fraction=0.3)
    assert result["test_acc"] > 0.9
    assert result["n_test"] == 27 and result["classes"] == 3
    # Pure noise features: no better than a generous chance bound.
    noise = torch.randn(90, 4, generator=gen)
    shuffled = te.linear_probe(noise, labels, test_fraction=0.3)
    assert shuffled["test_acc"] < 0.7
    # Explicit test set; a test label never seen in training is an error.
    result = te.linear_probe(
        feats[:60], labels[:60], feats[60:63], ["a", "b", "zzz"]
    )
    hand = sum(int(p == t) for p, t in zip(["a", "b", None], ["a", "b", "zzz"]))
    assert result["test_acc"] <= hand / 3 + 1e-9
    assert result["chance"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="one label per item"):
        te.linear_probe(feats, labels[:10])


def test_masked_mean_and_collate_against_loop():
    gen = torch.Generator().manual_seed(2)
    clips = [torch.randn(n, generator=gen) for n in (5, 9, 3)]
    wav, lens = te.collate_audio(clips)
    assert wav.shape == (3, 9)
    for i, clip in enumerate(clips):
        n = int(round(float(lens[i]) * 9))
        assert torch.equal(wav[i, :n], clip) and torch.all(wav[i, n:] == 0)
    feats = torch.randn(3, 4, 2, generator=gen)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]).bool()
    pooled = te.masked_mean(feats, mask)
    for i in range(3):
        rows = [feats[i, t] for t in range(4) if mask[i, t]]
        torch.testing.assert_close(pooled[i], sum(rows) / len(rows))


# ------------------------------------------------------ synthetic world


def _tone_world(root, seed=0):
    """A stand-in toy world: tones whose pitch is the 'speaker'.

    Writes ``manifests/<split>/asr.json`` and ``sound_event.json`` in the
    real layout (``{data_root}`` paths, 16 kHz PCM16 wavs).
    """
    gen = torch.Generator().manual_seed(seed)
    speakers = {"low": 180.0, "mid": 400.0, "high": 900.0}
    styles = {"calm": 3.0, "busy": 12.0}
    words = ["ab", "ba", "abba"]
    for split, count in (("train", 36), ("valid", 12), ("test", 12)):
        (root / "audio" / split).mkdir(parents=True)
        (root / "manifests" / split).mkdir(parents=True)
        asr, events = {}, {}
        for i in range(count):
            spk = list(speakers)[i % 3]
            sty = list(styles)[(i // 3) % 2]
            n = int(SR * (0.6 + 0.4 * float(torch.rand(1, generator=gen))))
            t = torch.arange(n) / SR
            env = 0.6 + 0.4 * torch.sin(2 * math.pi * styles[sty] * t)
            wav = 0.3 * env * torch.sin(2 * math.pi * speakers[spk] * t)
            wav = wav + 0.01 * torch.randn(n, generator=gen)
            name = f"audio/{split}/u{i:03d}.wav"
            soundfile.write(root / name, wav.numpy(), SR, subtype="PCM_16")
            asr[f"u{i:03d}"] = {
                "wav": "{data_root}/" + name,
                "duration": n / SR,
                "task": "asr",
                "transcript": words[i % 3],
                "target": words[i % 3],
                "speaker": spk,
                "style": sty,
            }
            kind = ["noise", "beep"][i % 2]
            m = int(0.5 * SR)
            if kind == "noise":
                clip = 0.2 * torch.randn(m, generator=gen)
            else:
                clip = 0.3 * torch.sin(
                    2 * math.pi * 1000 * torch.arange(m) / SR
                )
            ev = f"audio/{split}/e{i:03d}.wav"
            soundfile.write(root / ev, clip.numpy(), SR, subtype="PCM_16")
            events[f"e{i:03d}"] = {
                "wav": "{data_root}/" + ev,
                "duration": 0.5,
                "task": "sound_event",
                "target": kind,
            }
        for task, data in (("asr", asr), ("sound_event", events)):
            path = root / "manifests" / split / f"{task}.json"
            path.write_text(json.dumps(data))
    return root


def _micro_profile():
    return {
        "whisper": {"d_model": 32, "layers": 1, "heads": 4, "ffn_dim": 64},
        "beats": {
            "embed_dim": 32,
            "encoder_embed_dim": 32,
            "layers": 1,
            "heads": 4,
            "ffn_dim": 64,
            "conv_pos": 16,
            "conv_pos_groups": 4,
        },
        "whisper_steps": 24,
        "beats_steps": 8,
        "batch_size": 12,
        "lr": 3e-3,
        "warmup_steps": 5,
        "beats_speech_items": 12,
        "beats_max_seconds": 0.5,
    }


def test_pretrain_on_stand_in_world(tmp_path):
    world = _tone_world(tmp_path / "world")
    out = tmp_path / "backbones"
    stats = te.pretrain_toy_encoders(
        world, out, _micro_profile(), seed=0, progress=False
    )
    assert sorted(p.name for p in out.iterdir()) == ["beats", "whisper"]
    assert (out / "beats" / "beats.pt").is_file()
    assert stats["whisper"]["steps"] == 24
    assert 0.0 <= stats["whisper"]["valid_speaker_acc"] <= 1.0
    assert "valid_event_acc" in stats["beats"]
    assert torch.get_num_threads() >= 1
    # Saved encoders load through the real-checkpoint code paths, and the
    # pretrained Whisper separates the tone "speakers" on held-out clips.
    whisper = WhisperEncoder(out / "whisper")
    beats = BEATsEncoder(out / "beats" / "beats.pt")
    train = te.load_speech(world, "train")
    test = te.load_speech(world, "test")
    feats = te.pooled_features(whisper, [x["audio"] for x in train])
    test_feats = te.pooled_features(whisper, [x["audio"] for x in test])
    probe = te.linear_probe(
        feats,
        [x["speaker"] for x in train],
        test_feats,
        [x["speaker"] for x in test],
    )
    assert probe["test_acc"] >= 0.9
    sounds = te.load_sound_events(world, "train")
    pooled = te.pooled_features(beats, [x["audio"] for x in sounds])
    assert pooled.shape == (36, 32)
    # Rebuilding replaces the folders atomically (no leftovers).
    profile = dict(_micro_profile(), whisper_steps=1, beats_steps=1)
    te.pretrain_toy_encoders(world, out, profile, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["beats", "whisper"]
    assert not torch.equal(
        WhisperEncoder(out / "whisper").encoder.conv1.weight,
        whisper.encoder.conv1.weight,
    )


def test_missing_manifest_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="asr.json"):
        te.load_speech(tmp_path, "train")


# ------------------------------------------------------ probe on tiny world


def test_probe_on_frozen_tiny_encoders(tiny_world, tiny_backbones, tmp_path):
    """Linear probes on frozen toy features, trained on train clips and
    scored on held-out valid+test clips, beat chance by far; and the
    pretrained Whisper's output depends on the audio, not mostly on its
    positional table as a random one's does."""
    results = te.probe_report(tiny_world, tiny_backbones)
    assert len(results) == 4
    summary = {k: round(v["test_acc"], 3) for k, v in results.items()}
    for result in results.values():
        chance = 1.0 / result["classes"]
        assert result["test_acc"] >= max(0.6, 3 * chance), summary

    speech_test = te.load_speech(tiny_world, "test")
    whisper = WhisperEncoder(tiny_backbones / "whisper")
    wav, lens = te.collate_audio([x["audio"] for x in speech_test[:32]])
    pretrained = te.utterance_variation_ratio(*whisper(wav, lens))
    random_folder = te.make_toy_whisper(
        tmp_path / "random", **te.PROFILES["tiny"]["whisper"]
    )
    random_ratio = te.utterance_variation_ratio(
        *WhisperEncoder(random_folder)(wav, lens)
    )
    assert pretrained > 1.0 and pretrained > 100 * random_ratio, (
        pretrained,
        random_ratio,
    )
