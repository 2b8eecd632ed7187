"""Tests of ``build_world``: layout, manifests, text tasks, caching and
atomic builds of the toy world.

Authors
 * audiollm-lobes developers, 2026
"""

import collections
import json

import pytest
import soundfile as sf

from audiollm_lobes.data import templates
from audiollm_lobes.toyworld import grammar, sounds, speech, world

# ---------------------------------------------------------------------------
# World
# ---------------------------------------------------------------------------

MICRO = dict(
    world.PROFILES["tiny"],
    name="micro",
    speakers=3,
    statements={"train": 16, "valid": 4, "test": 4},
    commands={"train": 6, "valid": 2, "test": 2},
    queries={"train": 4, "valid": 2, "test": 2},
    events={"train": 8, "valid": 3, "test": 3},
    scenes={"train": 4, "valid": 2, "test": 2},
    sv_pairs={"train": 10, "valid": 4, "test": 4},
    statement_pool=80,
    text_train=dict.fromkeys(templates.TEXT_INSTRUCTIONS, 20),
    text_eval=6,
)


@pytest.fixture(scope="module")
def micro_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tw") / "micro"
    return world.build_world(MICRO, root=root, seed=5, progress=False)


def test_independence_of_voice_and_words():
    """Speakers and styles are balanced and drawn independently of the
    sentences: every statement kind occurs with every style, and the
    speaker x style table is balanced."""
    _, config = world.resolve_profile("small")
    _, _, _, _, _, utts = world._plan_utterances(config, seed=0)
    train = utts["train"]
    table = collections.Counter(
        (u["template"], u["style"].name)
        for u in train
        if u["kind"] == "statement"
    )
    for kind in grammar.STATEMENT_KINDS:
        counts = [table[(kind, s)] for s in speech.STYLES]
        assert min(counts) >= 50, (kind, counts)
    pairs = collections.Counter(
        (u["speaker"].name, u["style"].name) for u in train
    )
    assert len(pairs) == 12 * len(speech.STYLES)
    assert max(pairs.values()) - min(pairs.values()) <= 1
    # the same sentence is never tied to one voice across the world
    by_kind = collections.defaultdict(set)
    for u in train:
        by_kind[u["template"]].add(u["speaker"].name)
    assert all(len(v) >= 3 for v in by_kind.values())


def _load(root, split, task):
    from speechbrain.dataio.dataset import DynamicItemDataset

    path = world.manifest_path(root, split, task)
    return DynamicItemDataset.from_json(
        str(path), replacements={"data_root": str(root)}
    )


def test_micro_world_layout_and_manifests(micro_world):
    root = micro_world
    info = world.load_world_info(root)
    assert info["version"] == world.WORLD_VERSION and info["seed"] == 5
    assert info["profile"] == "micro"
    assert info["event_classes"] == list(sounds.EVENT_CLASSES)
    assert len(info["speakers"]) == 3
    for split in world.SPLITS:
        for task in world.TASKS:
            data = _load(root, split, task)
            data.set_output_keys(
                ["id", "wav", "duration", "task", "instruction", "target"]
            )
            assert len(data) == info["counts"][split][task] > 0, (split, task)
            raw = json.loads(world.manifest_path(root, split, task).read_text())
            for ex in raw.values():
                assert ex["wav"].startswith("{data_root}/audio/" + split + "/")
                assert ex["task"] == task and ex["target"]
                assert ex["instruction"].count(templates.AUDIO_MARKER) == 1
                assert "<question>" not in ex["instruction"]
            for item in data:
                wav, sr = sf.read(item["wav"], dtype="float32")
                assert sr == 16000 and wav.ndim == 1
                assert sf.info(item["wav"]).subtype == "PCM_16"
                assert abs(len(wav) / sr - item["duration"]) < 1e-6
    # counts of the micro profile
    c = info["counts"]["train"]
    n_utts = 16 + 6 + 4
    assert c["asr"] == n_utts and c["translate_fr"] == 16
    assert c["slu"] == 6 and c["spoken_query_qa"] == 4
    assert c["sound_event"] == 8 and c["captioning"] == 4
    assert c["speaker_verification"] == 10


def test_micro_world_task_contents(micro_world):
    root = micro_world

    def raw(split, task):
        return json.loads(world.manifest_path(root, split, task).read_text())

    for split in world.SPLITS:
        for ex in raw(split, "translate_fr").values():
            assert ex["target"] == grammar.translate_fr(ex["transcript"])
        for ex in raw(split, "translate_zh").values():
            assert ex["target"] == grammar.translate_zh(ex["transcript"])
        for ex in raw(split, "emotion").values():
            assert ex["target"] == ex["style"] in speech.STYLES
        for ex in raw(split, "slu").values():
            assert (
                ex["target"] == grammar.parse_command(ex["transcript"]).target()
            )
        for ex in raw(split, "spoken_qa").values():
            qa = dict(grammar.parse_statement(ex["transcript"]).questions())
            assert qa[ex["question"]] == ex["target"]
            assert ex["question"] in ex["instruction"]
        for ex in raw(split, "captioning").values():
            assert ex["target"] == sounds.caption(ex["events"])
        for ex in raw(split, "asr").values():
            assert ex["target"] == ex["transcript"]
        sv = list(raw(split, "speaker_verification").values())
        labels = collections.Counter(ex["target"] for ex in sv)
        assert abs(labels["yes"] - labels["no"]) <= 1
        for ex in sv:
            assert ex["transcript"] != ex["transcript2"]
            assert (ex["speaker"] == ex["speaker2"]) == (ex["target"] == "yes")
            assert ex["wav2"].startswith("{data_root}/audio/")
    # held-out sentences never occur in train (audio or text)
    train_text = {ex["transcript"] for ex in raw("train", "asr").values()}
    rows = [json.loads(x) for x in (root / "text" / "train.jsonl").open()]
    train_text |= {r["target"] for r in rows if r["task"] == "repeat"}
    for split in ("valid", "test"):
        for ex in raw(split, "asr").values():
            assert ex["transcript"] not in train_text


def test_micro_world_text(micro_world):
    root = micro_world
    corpus = (root / "text" / "tokenizer_corpus.txt").read_text(
        encoding="utf-8"
    )
    corpus_chars = set(corpus)
    for split in world.SPLITS:
        rows = [
            json.loads(x)
            for x in (root / "text" / f"{split}.jsonl").open(encoding="utf-8")
        ]
        assert rows and len({r["id"] for r in rows}) == len(rows)
        for r in rows:
            assert set(r) == {"id", "task", "instruction", "target"}
            assert r["task"] in templates.TEXT_INSTRUCTIONS
            for marker in ("<text>", "<audio>", "<question>"):
                assert marker not in r["instruction"]
            assert r["target"]
            assert set(r["target"]) <= corpus_chars, r["target"]
        counts = collections.Counter(r["task"] for r in rows)
        assert set(counts) == set(templates.TEXT_INSTRUCTIONS)
    for word in ["happy", "yes", "no", "noise burst", "intent=lights_on"]:
        assert word in corpus


def test_micro_world_text_speaks_the_spoken_phrasings(micro_world):
    """Train text examples also use the spoken tasks' phrasings (e.g. "<the
    text> Transcribe the speech."), held-out ones only the text ones."""
    spoken = set(templates.AUDIO_INSTRUCTIONS["asr"])
    for split in world.SPLITS:
        path = micro_world / "text" / f"{split}.jsonl"
        rows = [json.loads(x) for x in path.open(encoding="utf-8")]
        repeat = [r for r in rows if r["task"] == "repeat"]
        n_spoken = sum(
            r["instruction"].replace(r["target"], "<audio>", 1) in spoken
            for r in repeat
        )
        if split == "train":
            assert 0.2 * len(repeat) < n_spoken < 0.8 * len(repeat)
        else:
            assert n_spoken == 0


def test_micro_world_cached_and_deterministic(micro_world, tmp_path):
    stamp = (micro_world / "world.json").stat()
    again = world.build_world(MICRO, root=micro_world, seed=5, progress=False)
    assert again == micro_world
    assert (micro_world / "world.json").stat().st_mtime_ns == stamp.st_mtime_ns
    # a different seed does not match the cache
    _, config = world.resolve_profile(MICRO)
    assert world._is_cached(micro_world, "micro", config, 5)
    assert not world._is_cached(micro_world, "micro", config, 6)
    # same seed, another folder: same sentences and the same audio bits
    other = world.build_world(
        MICRO, root=tmp_path / "w2", seed=5, progress=False
    )
    for rel in ["manifests/test/slu.json", "text/train.jsonl"]:
        a = (micro_world / rel).read_text(encoding="utf-8")
        assert a == (other / rel).read_text(encoding="utf-8")
    for rel in ["audio/valid/st00001.wav", "audio/train/sc00001.wav"]:
        assert (micro_world / rel).read_bytes() == (other / rel).read_bytes()


def test_build_never_leaves_half_written_world(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("synthesis failed")

    monkeypatch.setattr(world.speech, "synthesize_many", boom)
    root = tmp_path / "w"
    with pytest.raises(RuntimeError, match="synthesis failed"):
        world.build_world(MICRO, root=root, seed=1, progress=False)
    assert not root.exists()
    assert not list(tmp_path.glob(".w.building-*"))


def test_build_refuses_foreign_folder(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a toy world"):
        world.build_world(MICRO, root=root, progress=False)
    assert (root / "notes.txt").exists()


def test_bad_profiles():
    with pytest.raises(ValueError, match="unknown toy world profile"):
        world.resolve_profile("huge")
    with pytest.raises(ValueError, match="missing keys"):
        world.resolve_profile({"name": "x", "speakers": 3})
    with pytest.raises(FileNotFoundError, match="not a built toy world"):
        world.load_world_info("/nonexistent/folder")


def test_tiny_world_profile(tiny_world):
    info = world.load_world_info(tiny_world)
    assert info["profile"] == "tiny"
    assert info["counts"]["train"]["asr"] == 180 + 60 + 50
    assert info["counts"]["valid"]["speaker_verification"] == 20
    data = _load(tiny_world, "train", "captioning")
    data.set_output_keys(["wav", "target"])
    assert len(data) == 80
    assert sf.info(data[0]["wav"]).samplerate == 16000
