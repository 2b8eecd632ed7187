"""Tests of the toy world's data generator: grammar, speech, sounds, world.

Authors
 * audiollm-lobes developers, 2026
"""

import collections
import json
import random

import numpy as np
import pytest
import soundfile as sf

from audiollm_lobes.data import templates
from audiollm_lobes.toyworld import grammar, sounds, speech, world

# ---------------------------------------------------------------------------
# Grammar: hand-worked examples
# ---------------------------------------------------------------------------

FR_EXAMPLES = [
    ("the red cat is in the kitchen", "le chat rouge est dans la cuisine"),
    (
        "the white cows are in the garden",
        "les vaches blanches sont dans le jardin",
    ),
    ("the dog sees two green balls", "le chien voit deux balles vertes"),
    ("the goat has one black book", "la chèvre a un livre noir"),
    ("the pig likes one white spoon", "le cochon aime une cuillère blanche"),
    (
        "there are three blue cups in the bathroom",
        "il y a trois tasses bleues dans la salle de bain",
    ),
    (
        "there is one brown box in the office",
        "il y a une boîte brune dans le bureau",
    ),
    (
        "the pink fox finds the yellow key in the attic",
        "le renard rose trouve la clé jaune dans le grenier",
    ),
    (
        "the green frog wants the red bag in the hallway",
        "la grenouille verte veut le sac rouge dans le couloir",
    ),
]

ZH_EXAMPLES = [
    ("the red cat is in the kitchen", "红色的猫在厨房里"),
    ("the white cows are in the garden", "白色的牛在花园里"),
    ("the dog sees two green balls", "狗看见两个绿色的球"),
    ("the goat has one black book", "山羊有一个黑色的书"),
    ("there are three blue cups in the garden", "花园里有三个蓝色的杯子"),
    (
        "there are twelve white rabbits in the garage",
        "车库里有十二只白色的兔子",
    ),
    (
        "the red cat sees the green ball in the kitchen",
        "红色的猫在厨房里看见绿色的球",
    ),
]


@pytest.mark.parametrize("english, french", FR_EXAMPLES)
def test_translate_fr_worked_examples(english, french):
    assert grammar.translate_fr(english) == french


@pytest.mark.parametrize("english, chinese", ZH_EXAMPLES)
def test_translate_zh_worked_examples(english, chinese):
    assert grammar.translate_zh(english) == chinese


def test_questions_worked_examples():
    qs = dict(
        grammar.parse_statement("the red cat is in the kitchen").questions()
    )
    assert qs["where is the cat?"] == "kitchen"
    assert qs["what color is the cat?"] == "red"
    assert qs["what is in the kitchen?"] == "cat"
    qs = dict(
        grammar.parse_statement("the dog sees two green balls").questions()
    )
    assert qs["how many balls does the dog see?"] == "two"
    assert qs["what color are the balls?"] == "green"
    assert qs["who sees the balls?"] == "dog"
    s = grammar.parse_statement("there is one pink box in the attic")
    qs = dict(s.questions())
    assert qs["how many boxes are in the attic?"] == "one"
    assert qs["where is the box?"] == "attic"
    s = grammar.parse_statement("the red cat has the green ball in the office")
    qs = dict(s.questions())
    assert qs["what does the cat have?"] == "ball"
    assert qs["what color is the ball?"] == "green"
    assert qs["where is the cat?"] == "office"


def test_parse_roundtrip_and_errors():
    rng = random.Random(1)
    for _ in range(2000):
        s = grammar.sample_statement(rng)
        assert grammar.parse_statement(s.english()) == s
    for bad in ["the red cat", "the blue unicorn is in the kitchen", ""]:
        with pytest.raises(ValueError, match="not a statement"):
            grammar.parse_statement(bad)


@pytest.mark.parametrize(
    "text, target",
    [
        (
            "turn on the lights in the kitchen",
            "intent=lights_on room=kitchen",
        ),
        ("switch off the attic lights", "intent=lights_off room=attic"),
        (
            "please set an alarm for seven thirty",
            "intent=set_alarm time=seven_thirty",
        ),
        ("wake me up at twelve", "intent=set_alarm time=twelve"),
        (
            "we need three red pens",
            "intent=add_to_list item=pen color=red count=three",
        ),
        (
            "can you put one box on the shopping list",
            "intent=add_to_list item=box count=one",
        ),
        (
            "play jazz music in the garden",
            "intent=play_music genre=jazz room=garden",
        ),
        ("the cat is hungry", "intent=feed_pet animal=cat"),
        ("shut the door to the garage", "intent=close_door room=garage"),
    ],
)
def test_command_targets(text, target):
    assert grammar.parse_command(text).target() == target


def test_unknown_command():
    with pytest.raises(ValueError, match="not a command"):
        grammar.parse_command("fly me to the moon")


def test_no_curly_braces_anywhere():
    rng = random.Random(0)
    strings = []
    for _ in range(500):
        s = grammar.sample_statement(rng)
        strings += [s.english(), s.french(), s.chinese()]
        strings += [x for qa in s.questions() for x in qa]
    for c in grammar.all_commands():
        strings += [c.text, c.target()]
    strings += [q.text + q.answer for q in grammar.all_queries()]
    strings += grammar.lexicon_strings()
    strings += [
        sounds.caption(sounds.sample_scene_events(np.random.default_rng(i)))
        for i in range(50)
    ]
    assert not any("{" in x or "}" in x for x in strings)


# ---------------------------------------------------------------------------
# Grammar: splits
# ---------------------------------------------------------------------------


def test_statement_splits_deterministic_and_disjoint():
    sizes = {"train": 3000, "valid": 200, "test": 200}
    a = grammar.split_statements(3, sizes)
    b = grammar.split_statements(3, sizes)
    c = grammar.split_statements(4, sizes)
    text = {k: [s.english() for s in v] for k, v in a.items()}
    assert text == {k: [s.english() for s in v] for k, v in b.items()}
    assert text["test"] != [s.english() for s in c["test"]]
    for split, n in sizes.items():
        assert len(set(text[split])) == n
    assert set(text["train"]).isdisjoint(text["valid"])
    assert set(text["train"]).isdisjoint(text["test"])
    assert set(text["valid"]).isdisjoint(text["test"])
    # The held-out sets do not depend on the train size.
    d = grammar.split_statements(3, dict(sizes, train=100))
    assert [s.english() for s in d["test"]] == text["test"]
    # Every kind, colour and room occurs in both train and test.
    for split in ("train", "test"):
        kinds = {s.kind for s in a[split]}
        assert kinds == set(grammar.STATEMENT_KINDS)
        assert {s.room for s in a[split] if s.room} == set(grammar.ROOMS)


def test_statement_space_is_far_larger_than_train():
    n_col, n_room = len(grammar.COLORS), len(grammar.ROOMS)
    n_an, n_ob = len(grammar.ANIMALS), len(grammar.OBJECTS)
    n_num, n_verb = len(grammar.NUMBERS), len(grammar.VERBS)
    space = (
        n_col * (n_an + n_ob) * n_room * 2  # location, singular/plural
        + n_an * n_verb * n_num * n_col * n_ob  # count
        + n_num * n_col * (n_an + n_ob) * n_room  # existence
        + n_col * n_an * n_verb * n_col * n_ob * n_room  # action
    )
    assert space > 30 * world.PROFILES["small"]["statement_pool"]


def test_command_splits_disjoint_and_balanced():
    a = grammar.split_commands(0, {"valid": 100, "test": 100})
    b = grammar.split_commands(0, {"valid": 100, "test": 100})
    assert [c.text for c in a["test"]] == [c.text for c in b["test"]]
    train = {c.text for c in a["train"]}
    assert train.isdisjoint(c.text for c in a["valid"])
    assert train.isdisjoint(c.text for c in a["test"])
    sizes = collections.Counter(c.intent for c in grammar.all_commands())
    for split in ("valid", "test"):
        counts = collections.Counter(c.intent for c in a[split])
        assert set(counts) == set(grammar.INTENTS)
        for intent, n in counts.items():
            assert n <= max(1, 0.1 * sizes[intent])
    # the first ones (synthesised in small worlds) are balanced
    first = collections.Counter(c.intent for c in a["test"][:50])
    assert set(first.values()) == {5}
    big = grammar.split_commands(0, {"valid": 300, "test": 300})
    train_counts = collections.Counter(c.intent for c in big["train"])
    for intent, n in train_counts.items():
        assert n >= 0.8 * sizes[intent]
    assert len(grammar.all_commands()) > 20 * 100


def test_query_splits_hold_out_combinations():
    s = grammar.split_queries(0)
    n_facts = sum(len(f) for f in grammar.FACTS.values())
    assert len(s["valid"]) == len(s["test"]) == n_facts
    train_text = {q.text for q in s["train"]}
    for split in ("valid", "test"):
        assert train_text.isdisjoint(q.text for q in s[split])
    # Every fact and every paraphrase still appears in train.
    facts = {(q.relation, q.subject) for q in s["train"]}
    assert len(facts) == n_facts
    paraphrases = {(q.relation, q.paraphrase) for q in s["train"]}
    assert len(paraphrases) == sum(
        len(t) for t in grammar.QUERY_TEMPLATES.values()
    )
    ex = [
        q
        for q in grammar.all_queries()
        if q.text == "what sound does a cow make"
    ]
    assert ex[0].answer == "moo"


# ---------------------------------------------------------------------------
# Speech
# ---------------------------------------------------------------------------


def test_resample_matches_analytic_sine():
    t_in = np.arange(22050) / 22050
    x = np.sin(2 * np.pi * 1000 * t_in).astype(np.float32)
    y = speech.resample(x, 22050, 16000)
    ref = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    assert y.shape == (16000,)
    mid = slice(1000, 15000)  # edges are affected by the filter
    assert np.abs(y[mid] - ref[mid]).max() < 1e-2


def test_trim_silence_hand_example():
    x = np.zeros(32000, dtype=np.float32)
    x[10000:12000] = 0.3
    y = speech.trim_silence(x, 16000, margin=0.05)
    assert len(y) == 2000 + 2 * 800
    assert np.array_equal(speech.trim_silence(np.zeros(5)), np.zeros(5))


def test_espeak_args_and_missing_espeak(monkeypatch):
    args = speech.espeak_args(
        "a < b", speech.SPEAKERS[2], speech.STYLES["sad"], pitch_jitter=-50
    )
    assert args[args.index("-p") + 1] == "0"  # clamped
    assert "a &lt; b" in args[-1]
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        speech.check_espeak()


def test_styles_are_realised_in_the_audio():
    text = "the dog sees two green balls"
    spk = speech.SPEAKERS[0]
    wav = {n: speech.synthesize(text, spk, s) for n, s in speech.STYLES.items()}
    dur = {n: len(w) for n, w in wav.items()}
    rms = {n: float(np.sqrt(np.mean(w**2))) for n, w in wav.items()}
    assert dur["sad"] > 1.2 * dur["neutral"] > 1.2 * dur["happy"]
    assert rms["angry"] > rms["neutral"] > rms["sad"]


def _mean_log_spectrum(wav):
    frames = np.lib.stride_tricks.sliding_window_view(wav, 512)[::256]
    spec = np.abs(np.fft.rfft(frames * np.hanning(512), axis=1))
    return np.log(spec.mean(axis=0) + 1e-6)


def test_speakers_are_distinct_voices():
    text = "one two three four"
    specs = [
        _mean_log_spectrum(speech.synthesize(text, s, speech.STYLES["neutral"]))
        for s in speech.SPEAKERS
    ]
    for i in range(len(specs)):
        for j in range(i):
            # identical voices (a variant silently falling back) give 0
            assert np.abs(specs[i] - specs[j]).mean() > 0.05, (i, j)


# ---------------------------------------------------------------------------
# Sounds
# ---------------------------------------------------------------------------


def _dominant_freq(x, sr=16000):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)]


def test_sound_events_match_their_definition():
    rng = np.random.default_rng(0)
    for _ in range(5):
        ev = {n: sounds.synth_event(n, rng) for n in sounds.EVENT_CLASSES}
        for x in ev.values():
            assert x.dtype == np.float32 and 0.14 < np.abs(x).max() <= 0.6
        assert 250 <= _dominant_freq(ev["low beep"]) <= 450
        assert 1600 <= _dominant_freq(ev["high beep"]) <= 2600
        assert 800 - 60 <= _dominant_freq(ev["whistle"]) <= 1300 + 60
        assert _dominant_freq(ev["hum"]) < 720
        for name, rising in (("rising chirp", True), ("falling chirp", False)):
            x = ev[name]
            third = len(x) // 3
            f_start = _dominant_freq(x[:third])
            f_end = _dominant_freq(x[-third:])
            assert (
                (f_end > 1.5 * f_start) if rising else (f_start > 1.5 * f_end)
            )

        # noise: flat spectrum (geometric / arithmetic mean) vs a tone
        def flatness(x):
            p = np.abs(np.fft.rfft(x))[10:2000] ** 2 + 1e-12
            return np.exp(np.mean(np.log(p))) / np.mean(p)

        assert flatness(ev["noise burst"]) > 100 * flatness(ev["low beep"])
        clicks = ev["click train"]
        n_peaks = np.sum(
            np.diff((np.abs(clicks) > 0.5 * np.abs(clicks).max()).astype(int))
            == 1
        )
        assert n_peaks >= 2


def test_scene_and_caption():
    rng = np.random.default_rng(3)
    events = sounds.sample_scene_events(rng)
    wav = sounds.make_scene(events, rng)
    assert wav.dtype == np.float32 and np.abs(wav).max() <= 1
    assert sounds.caption(["hum"]) == "a hum"
    assert (
        sounds.caption(["low beep", "whistle", "click train"])
        == "a low beep then a whistle then a click train"
    )
    a = sounds.make_event_clip("hum", np.random.default_rng(5))
    b = sounds.make_event_clip("hum", np.random.default_rng(5))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="unknown sound event"):
        sounds.synth_event("bark", rng)


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


def test_first_use_build_takes_the_world_lock_without_deadlock(
    tmp_path, monkeypatch
):
    """``toy://`` sources build the world on first use: the outer lock of
    ``ensure_toyworld`` must not be the lock ``build_world`` takes."""
    import threading

    from audiollm_lobes.toyworld import backbones, sources
    from audiollm_lobes.toyworld import world as world_mod

    monkeypatch.setenv("AUDIOLLM_LOBES_HOME", str(tmp_path))
    taken = []

    def fake_build_world(profile, seed=0, progress=True):
        root = world_mod.toyworld_dir(profile)
        with world_mod._build_lock(root):  # what a real (re)build takes
            taken.append(profile)
        return root

    monkeypatch.setattr(world_mod, "build_world", fake_build_world)
    monkeypatch.setattr(backbones, "build_backbones", lambda *a, **k: None)
    done = []
    worker = threading.Thread(
        target=lambda: done.append(sources.resolve_source("toy://tiny/lm")),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=20)
    assert taken == ["tiny"] and done, "ensure_toyworld deadlocked"
    assert done[0].endswith("tiny/backbones/lm")
