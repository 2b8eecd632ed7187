"""Golden fingerprint of the tiny toy world and its toy backbones.

Every result in the READMEs is made on a cached toy world. A cache is
rebuilt only when ``WORLD_VERSION`` / ``BACKBONES_VERSION`` (or the
profile settings) change, so a code change that alters what the build
produces without a version bump leaves old caches in use and makes
results irreproducible on a fresh machine. This test rebuilds nothing: it
fingerprints the tiny world the other tests build and compares it with
``tests/data/toyworld_tiny_fingerprint.json``.

- manifests (durations dropped: they depend on the espeak-ng build) must
  match exactly unless ``WORLD_VERSION`` was bumped;
- backbone weights (three float64 checksums per backbone) must match
  unless ``BACKBONES_VERSION`` was bumped; they are compared only when the
  synthesized audio is byte-identical to the recorded one (another
  espeak-ng build makes other audio, hence other weights);
- after a bump, re-record:
  ``python tests/unit/toyworld/test_toyworld_fingerprint.py --record``.

Authors
 * audiollm-lobes developers, 2026
"""

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

RECORD = Path(__file__).resolve().parents[2] / "data"
RECORD = RECORD / "toyworld_tiny_fingerprint.json"


def manifests_sha(world_root):
    """sha256 of every manifest, ``duration`` fields dropped."""
    digest = hashlib.sha256()
    for path in sorted(Path(world_root, "manifests").rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for entry in data.values():
            entry.pop("duration", None)
        rel = path.relative_to(world_root).as_posix()
        digest.update(rel.encode())
        digest.update(json.dumps(data, sort_keys=True).encode())
    return digest.hexdigest()


def audio_sha(world_root):
    """sha256 of every audio file of the world, in path order."""
    digest = hashlib.sha256()
    for path in sorted(Path(world_root, "audio").rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(world_root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def weights_fingerprint(backbones_folder):
    """``{backbone: [sum, l2 norm, +-1 projection]}`` of its weights."""
    import safetensors.torch

    folder = Path(backbones_folder)
    parts = {
        "lm": safetensors.torch.load_file(str(folder / "lm/model.safetensors")),
        "whisper": safetensors.torch.load_file(
            str(folder / "whisper/model.safetensors")
        ),
        "beats": torch.load(
            folder / "beats/beats.pt", map_location="cpu", weights_only=False
        )["model"],
    }
    generator = torch.Generator().manual_seed(0)
    fingerprint = {}
    for name, state in parts.items():
        flat = torch.cat(
            [state[key].detach().double().flatten() for key in sorted(state)]
        )
        signs = torch.randint(0, 2, flat.shape, generator=generator) * 2 - 1
        fingerprint[name] = [
            float(flat.sum()),
            float(flat.norm()),
            float((flat * signs).sum()),
        ]
    return fingerprint


def current(world_root, backbones_folder):
    """The fingerprint of a built tiny world, in the record's format."""
    from audiollm_lobes.toyworld.backbones import BACKBONES_VERSION
    from audiollm_lobes.toyworld.world import WORLD_VERSION

    return {
        "world_version": WORLD_VERSION,
        "backbones_version": BACKBONES_VERSION,
        "manifests_sha256": manifests_sha(world_root),
        "audio_sha256": audio_sha(world_root),
        "weights": weights_fingerprint(backbones_folder),
    }


RERECORD = (
    "if the change is intended, re-record with "
    "`python tests/unit/toyworld/test_toyworld_fingerprint.py --record`"
)


def test_tiny_world_and_backbones_match_the_record(tiny_world, tiny_backbones):
    record = json.loads(RECORD.read_text())
    now = current(tiny_world, tiny_backbones)
    for key in ("world_version", "backbones_version"):
        assert now[key] == record[key], (
            f"{key} is {now[key]}, the fingerprint in {RECORD} was recorded "
            f"at {record[key]}: {RERECORD}"
        )
    assert now["manifests_sha256"] == record["manifests_sha256"], (
        "the tiny toy world's manifests changed without a WORLD_VERSION bump "
        "(audiollm_lobes/toyworld/world.py): caches built before this change "
        f"would be reused with the old data; bump it, then {RERECORD}"
    )
    if now["audio_sha256"] != record["audio_sha256"]:
        pytest.skip(
            "this machine synthesizes other audio than the recorded one "
            "(espeak-ng build?), so the backbone weights cannot be compared"
        )
    for name, values in record["weights"].items():
        assert now["weights"][name] == pytest.approx(values, rel=1e-6), (
            f"the toy {name} trained on the same data came out different "
            "without a BACKBONES_VERSION bump "
            "(audiollm_lobes/toyworld/backbones.py): caches built before "
            f"this change would be reused with the old weights; bump it, "
            f"then {RERECORD}"
        )


def test_weights_fingerprint_sees_a_small_change(tiny_backbones, tmp_path):
    """One weight moved by 1e-3 changes the projection checksum."""
    import shutil

    import safetensors.torch

    copy = tmp_path / "backbones"
    shutil.copytree(tiny_backbones, copy)
    path = copy / "lm/model.safetensors"
    state = safetensors.torch.load_file(str(path))
    key = sorted(state)[len(state) // 2]
    state[key] = state[key].clone()
    state[key].view(-1)[0] += 1e-3
    safetensors.torch.save_file(state, str(path))
    before = weights_fingerprint(tiny_backbones)
    after = weights_fingerprint(copy)
    assert after["whisper"] == before["whisper"]
    assert after["lm"][2] != pytest.approx(before["lm"][2], rel=1e-6, abs=0)


if __name__ == "__main__" and "--record" in sys.argv:
    from audiollm_lobes.toyworld.backbones import build_backbones
    from audiollm_lobes.toyworld.world import build_world

    world = build_world("tiny", progress=False)
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(
        json.dumps(current(world, build_backbones(world, "tiny")), indent=1)
        + "\n"
    )
    print(f"recorded {RECORD}")
