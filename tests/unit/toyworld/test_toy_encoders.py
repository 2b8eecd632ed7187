"""Tests of ``pretrain_toy_encoders`` on a stand-in world of tones: both
encoders are made, pretrained, saved in the real formats and replaced
atomically.

Authors
 * audiollm-lobes developers, 2026
"""

import json
import math

import soundfile
import torch

from audiollm_lobes.encoders import BEATsEncoder, WhisperEncoder
from audiollm_lobes.toyworld import clips, probes, toy_encoders

SR = 16000


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
    stats = toy_encoders.pretrain_toy_encoders(
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
    train = clips.load_speech(world, "train")
    test = clips.load_speech(world, "test")
    feats = probes.pooled_features(whisper, [x["audio"] for x in train])
    test_feats = probes.pooled_features(whisper, [x["audio"] for x in test])
    probe = probes.linear_probe(
        feats,
        [x["speaker"] for x in train],
        test_feats,
        [x["speaker"] for x in test],
    )
    assert probe["test_acc"] >= 0.9
    sounds = clips.load_sound_events(world, "train")
    pooled = probes.pooled_features(beats, [x["audio"] for x in sounds])
    assert pooled.shape == (36, 32)
    # Rebuilding replaces the folders atomically (no leftovers).
    profile = dict(_micro_profile(), whisper_steps=1, beats_steps=1)
    toy_encoders.pretrain_toy_encoders(world, out, profile, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["beats", "whisper"]
    assert not torch.equal(
        WhisperEncoder(out / "whisper").encoder.conv1.weight,
        whisper.encoder.conv1.weight,
    )
