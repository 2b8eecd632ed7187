"""Builds the toy world on disk: audio, SpeechBrain manifests, text corpora.

Layout of a built world (``build_world``)::

    audio/<split>/<id>.wav             16 kHz mono PCM16
    manifests/<split>/<task>.json      SpeechBrain JSON, "{data_root}/..." paths
    text/<split>.jsonl                 text versions of the tasks (toy LM)
    text/tokenizer_corpus.txt          every string the LM reads or writes
    world.json                         version, seed, profile, counts (last)

Utterances are of three kinds: ``statement`` (ASR, translation, emotion,
spoken QA, speaker verification), ``command`` (SLU) and ``query``
(spoken-query QA). The ``asr`` manifest holds every utterance, so an
ASR-only model (Wav2Prompt) hears the words of every task; the ``kind``
field tells them apart. Speakers and styles are drawn balanced and
independently of the sentences. Held-out sentences (valid/test) never
occur in train.

Everything is drawn from ``seed``; a build is cached and reused when its
``world.json`` matches ``WORLD_VERSION``, the seed and the profile. A
build goes to a temporary sibling folder that is moved into place at the
end, so a killed build never leaves a half-written world.

Authors
 * audiollm-lobes developers, 2026
"""

import json
import logging
import math
import os
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import filelock
import numpy as np

from audiollm_lobes.atomic import replace_dir, write_json, write_text
from audiollm_lobes.data import templates
from audiollm_lobes.paths import toyworld_dir
from audiollm_lobes.toyworld import grammar, sounds, speech

logger = logging.getLogger(__name__)

WORLD_VERSION = 5
SPLITS = grammar.SPLITS

#: Manifest task names, in a fixed order.
TASKS = (
    "asr",
    "translate_fr",
    "translate_zh",
    "emotion",
    "speaker_verification",
    "spoken_qa",
    "spoken_query_qa",
    "slu",
    "sound_event",
    "captioning",
)


def _splits(train, valid, test):
    return {"train": train, "valid": valid, "test": test}


#: Sizes of the built-in profiles. Counts of utterances/clips/pairs per
#: split; ``text_train`` is the number of train text examples per text
#: task, ``text_eval`` the number per task for valid and test;
#: ``statement_pool`` the number of distinct train statements the text
#: corpus draws from (the synthesised ones are its first part).
PROFILES = {
    "tiny": {
        "speakers": 6,
        "statements": _splits(180, 20, 20),
        "commands": _splits(60, 10, 10),
        "queries": _splits(50, 8, 8),
        "events": _splits(100, 16, 16),
        "scenes": _splits(80, 12, 12),
        "sv_pairs": _splits(150, 20, 20),
        "statement_pool": 1500,
        "text_train": {
            "repeat": 600,
            "translate_fr": 600,
            "translate_zh": 600,
            "spoken_qa": 600,
            "spoken_query_qa": 300,
            "slu": 600,
            "captioning": 300,
        },
        "text_eval": 40,
    },
    "small": {
        "speakers": 12,
        "statements": _splits(1800, 200, 200),
        "commands": _splits(600, 100, 100),
        "queries": _splits(500, 80, 80),
        "events": _splits(1000, 152, 152),
        "scenes": _splits(800, 120, 120),
        "sv_pairs": _splits(1500, 200, 200),
        "statement_pool": 10000,
        "text_train": {
            "repeat": 6000,
            "translate_fr": 6000,
            "translate_zh": 6000,
            "spoken_qa": 6000,
            "spoken_query_qa": 2000,
            "slu": 6000,
            "captioning": 3000,
        },
        "text_eval": 300,
    },
}

_SPLIT_CODE = {"train": 0, "valid": 1, "test": 2}

#: One-word answers of the audio-only tasks (emotion, sound event, speaker
#: verification), included in the toy LM's text pretraining via ``repeat``.
ANSWER_WORDS = (
    tuple(speech.STYLES) + tuple(sounds.EVENT_CLASSES) + ("yes", "no")
)


# ---------------------------------------------------------------------------
# Public helpers
# ---------------------------------------------------------------------------


def load_world_info(root):
    """Reads ``world.json`` of a built toy world.

    Arguments
    ---------
    root : str or Path
        The world folder.

    Returns
    -------
    dict
        The world description (version, seed, profile, counts, speakers,
        styles, event classes, ...).

    Raises
    ------
    FileNotFoundError
        If ``root`` holds no ``world.json`` (not built, or still building).

    Example
    -------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "world.json").write_text('{"version": 1}')
    >>> load_world_info(d)["version"]
    1
    """
    path = Path(root) / "world.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {root} is not a built toy world; run "
            "build_world() or `python -m audiollm_lobes.toyworld`"
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def manifest_path(root, split, task):
    """Returns the path of one manifest of a world.

    Arguments
    ---------
    root : str or Path
        The world folder.
    split : str
        ``train``, ``valid`` or ``test``.
    task : str
        A task of ``TASKS``.

    Returns
    -------
    pathlib.Path
        ``<root>/manifests/<split>/<task>.json``.

    Example
    -------
    >>> manifest_path("/w", "train", "asr").as_posix()
    '/w/manifests/train/asr.json'
    """
    return Path(root) / "manifests" / split / f"{task}.json"


def resolve_profile(profile):
    """Returns ``(name, config)`` of a profile name or a custom profile.

    Arguments
    ---------
    profile : str or dict
        A key of ``PROFILES``, or a dict with a ``"name"`` and every key of
        a built-in profile (e.g. a scaled-down copy for tests).

    Returns
    -------
    tuple
        ``(name, config)`` with ``config`` a JSON-normalised dict.

    Example
    -------
    >>> resolve_profile("tiny")[0]
    'tiny'
    """
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ValueError(
                f"unknown toy world profile {profile!r}; expected one of "
                f"{sorted(PROFILES)} or a dict"
            )
        name, config = profile, PROFILES[profile]
    elif isinstance(profile, dict):
        config = {k: v for k, v in profile.items() if k != "name"}
        name = profile.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("a custom toy world profile needs a 'name'")
        expected = set(PROFILES["tiny"])
        missing = sorted(expected - set(config))
        extra = sorted(set(config) - expected)
        if missing or extra:
            raise ValueError(
                f"custom profile {name!r}: missing keys {missing}, "
                f"unknown keys {extra}"
            )
    else:
        raise TypeError(
            f"profile must be a str or dict, got {type(profile).__name__}"
        )
    if not 2 <= config["speakers"] <= len(speech.SPEAKERS):
        raise ValueError(
            f"profile {name!r}: 'speakers' must be in 2..{len(speech.SPEAKERS)}"
        )
    return name, json.loads(json.dumps(config))


def _is_cached(root, name, config, seed):
    try:
        info = load_world_info(root)
    except (FileNotFoundError, ValueError, OSError):
        return False
    return (
        info.get("version") == WORLD_VERSION
        and info.get("seed") == seed
        and info.get("profile") == name
        and info.get("profile_config") == config
    )


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------


def build_world(
    profile="small",
    root=None,
    seed=0,
    force=False,
    progress=True,
    num_workers=2,
):
    """Builds the toy world (or returns the cached one).

    Arguments
    ---------
    profile : str or dict
        ``"tiny"`` (tests, seconds), ``"small"`` (demo, about a minute) or
        a custom profile dict (see ``resolve_profile``).
    root : str or Path, optional
        Output folder; default ``audiollm_lobes.paths.toyworld_dir(name)``.
    seed : int
        Seed of every random choice.
    force : bool
        Rebuild even when the cached world matches.
    progress : bool
        Show a tqdm progress bar.
    num_workers : int
        Parallel synthesis workers.

    Returns
    -------
    pathlib.Path
        The world folder.

    Example
    -------
    >>> root = build_world("tiny", progress=False)  # doctest: +SKIP
    >>> load_world_info(root)["profile"]  # doctest: +SKIP
    'tiny'
    >>> manifest_path(root, "train", "asr").is_file()  # doctest: +SKIP
    True
    """
    name, config = resolve_profile(profile)
    root = Path(root) if root is not None else toyworld_dir(name)
    if not force and _is_cached(root, name, config, seed):
        logger.info("toy world cached in %s", root)
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(root):
        if not force and _is_cached(root, name, config, seed):
            return root
        if root.exists() and not (root / "world.json").exists():
            if any(root.iterdir()):
                raise FileExistsError(
                    f"{root} exists, is not empty and holds no world.json, so "
                    "it is not a toy world; remove it or choose another root"
                )
        for pattern in (".building-*", ".old-*"):
            for stale in root.parent.glob(f".{root.name}{pattern}"):
                shutil.rmtree(stale, ignore_errors=True)
        tmp = root.parent / f".{root.name}.building-{os.getpid()}"
        start = time.time()
        try:
            _build_into(tmp, name, config, seed, progress, num_workers, start)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        replace_dir(tmp, root)
    logger.info("toy world built in %s (%.1f s)", root, time.time() - start)
    return root


def _build_lock(root):
    """Serialises builds of the same root between processes (any OS).

    Arguments
    ---------
    root : pathlib.Path
        The world root; the lock file is ``.<name>.lock`` next to it.

    Returns
    -------
    filelock.FileLock
        A context manager holding an exclusive lock on that file.
    """
    return filelock.FileLock(str(root.parent / f".{root.name}.lock"))


def _balanced_pairs(n, speakers, styles, rng):
    """``n`` (speaker, style) pairs, balanced over all combinations and
    drawn independently of anything else."""
    block = [(sp, st) for sp in speakers for st in styles]
    out = []
    while len(out) < n:
        b = list(block)
        rng.shuffle(b)
        out.extend(b)
    return out[:n]


def _cycle(items, n, rng):
    """``n`` items cycling through shuffled copies of ``items``."""
    if n > 0 and not items:
        raise ValueError(f"cannot draw {n} items from an empty pool")
    out = []
    while len(out) < n:
        b = list(items)
        rng.shuffle(b)
        out.extend(b)
    return out[:n]


def _wav_ref(split, uid):
    return f"{{data_root}}/audio/{split}/{uid}.wav"


def _plan_utterances(config, seed):
    """Decides every utterance (text, speaker, style) and the held-out
    sentence pools, without touching the disk."""
    speakers = list(speech.SPEAKERS[: config["speakers"]])
    styles = list(speech.STYLES.values())
    n_eval = config["text_eval"]
    st_sizes = {
        "train": max(config["statement_pool"], config["statements"]["train"]),
        "valid": max(config["statements"]["valid"], n_eval),
        "test": max(config["statements"]["test"], n_eval),
    }
    statements = grammar.split_statements(seed, st_sizes)
    commands = grammar.split_commands(
        seed,
        {
            "valid": max(config["commands"]["valid"], n_eval),
            "test": max(config["commands"]["test"], n_eval),
        },
    )
    queries = grammar.split_queries(seed)

    utts = {split: [] for split in SPLITS}
    for split in SPLITS:
        rng = random.Random(f"{seed}-voices-{split}")
        items = []
        for s in statements[split][: config["statements"][split]]:
            items.append(("statement", s.english(), s.kind, s))
        cmds = commands[split]
        n_cmd = config["commands"][split]
        if n_cmd > len(cmds):
            cmds = _cycle(cmds, n_cmd, rng)
        for c in cmds[:n_cmd]:
            items.append(("command", c.text, c.intent, c))
        for q in _cycle(queries[split], config["queries"][split], rng):
            items.append(("query", q.text, q.relation, q))
        voices = _balanced_pairs(len(items), speakers, styles, rng)
        prefix = {"statement": "st", "command": "cm", "query": "qu"}
        counters = dict.fromkeys(prefix, 0)
        for (kind, text, template, obj), (spk, sty) in zip(items, voices):
            uid = f"{prefix[kind]}{counters[kind]:05d}"
            counters[kind] += 1
            utts[split].append(
                {
                    "uid": uid,
                    "kind": kind,
                    "text": text,
                    "template": template,
                    "obj": obj,
                    "speaker": spk,
                    "style": sty,
                    "pitch_jitter": rng.randint(-3, 3),
                    "speed_jitter": round(rng.uniform(0.95, 1.05), 3),
                }
            )
    return speakers, styles, statements, commands, queries, utts


def _plan_sounds(config, seed):
    """Decides every sound clip: (uid, kind, events) per split."""
    plan = {}
    for split in SPLITS:
        rng = np.random.default_rng([seed, _SPLIT_CODE[split], 7])
        classes = []
        while len(classes) < config["events"][split]:
            classes.extend(rng.permutation(len(sounds.EVENT_CLASSES)).tolist())
        items = []
        for i, c in enumerate(classes[: config["events"][split]]):
            items.append((f"ev{i:05d}", "event", [sounds.EVENT_CLASSES[c]]))
        for i in range(config["scenes"][split]):
            events = sounds.sample_scene_events(rng)
            items.append((f"sc{i:05d}", "scene", events))
        plan[split] = items
    return plan


def _make_sound(out_dir, split, uid, kind, events, seed):
    code = _SPLIT_CODE[split]
    index = int(uid[2:])
    kind_code = 1 if kind == "event" else 2
    rng = np.random.default_rng([seed, code, kind_code, index])
    if kind == "event":
        wav = sounds.make_event_clip(events[0], rng)
    else:
        wav = sounds.make_scene(events, rng)
    return speech.write_wav(out_dir / "audio" / split / f"{uid}.wav", wav)


def _speech_meta(u, duration, split):
    return {
        "wav": _wav_ref(split, u["uid"]),
        "duration": duration,
        "transcript": u["text"],
        "speaker": u["speaker"].name,
        "style": u["style"].name,
        "kind": u["kind"],
        "template": u["template"],
    }


def _example(task, instruction, target, meta):
    ex = dict(meta)
    ex.update({"task": task, "instruction": instruction, "target": target})
    return ex


def _sv_pairs(utts, n, rng, split):
    """Balanced yes/no pairs of utterances with different sentences."""
    by_spk = {}
    for u in utts:
        by_spk.setdefault(u["speaker"].name, []).append(u)
    names = sorted(by_spk)
    if len(names) < 2:
        raise ValueError(f"{split}: speaker verification needs >= 2 speakers")
    pairs, seen = [], set()
    attempts = 0
    while len(pairs) < n:
        attempts += 1
        if attempts > 1000 * n + 1000:
            raise RuntimeError(
                f"{split}: could not draw {n} distinct speaker-verification "
                "pairs; add utterances or lower 'sv_pairs'"
            )
        same = len(pairs) % 2 == 0
        if same:
            spk = rng.choice(names)
            if len(by_spk[spk]) < 2:
                continue
            a, b = rng.sample(by_spk[spk], 2)
        else:
            s1, s2 = rng.sample(names, 2)
            a, b = rng.choice(by_spk[s1]), rng.choice(by_spk[s2])
        if a["text"] == b["text"]:
            continue
        key = frozenset((a["uid"], b["uid"]))
        if key in seen:
            continue
        seen.add(key)
        pairs.append((a, b, "yes" if same else "no"))
    return pairs


def _instr(rngs, task, **fields):
    return templates.sample_instruction(task, rngs[task], **fields)


def _speech_manifests(utts, durations, seed, config):
    """Returns {split: {task: {id: example}}} for the speech tasks."""
    out = {}
    for split in SPLITS:
        man = {t: {} for t in TASKS if t not in ("sound_event", "captioning")}

        rngs = {t: random.Random(f"{seed}-instr-{split}-{t}") for t in man}
        qa_rng = random.Random(f"{seed}-qa-{split}")
        for u in utts[split]:
            meta = _speech_meta(u, durations[(split, u["uid"])], split)
            uid = u["uid"]
            man["asr"][f"asr_{split}_{uid}"] = _example(
                "asr", _instr(rngs, "asr"), u["text"], meta
            )
            if u["kind"] == "statement":
                s = u["obj"]
                for task, target in (
                    ("translate_fr", s.french()),
                    ("translate_zh", s.chinese()),
                    ("emotion", u["style"].name),
                ):
                    man[task][f"{task}_{split}_{uid}"] = _example(
                        task, _instr(rngs, task), target, meta
                    )
                question, answer = qa_rng.choice(s.questions())
                ex = _example(
                    "spoken_qa",
                    _instr(rngs, "spoken_qa", question=question),
                    answer,
                    meta,
                )
                ex["question"] = question
                man["spoken_qa"][f"spoken_qa_{split}_{uid}"] = ex
            elif u["kind"] == "command":
                man["slu"][f"slu_{split}_{uid}"] = _example(
                    "slu", _instr(rngs, "slu"), u["obj"].target(), meta
                )
            else:
                man["spoken_query_qa"][f"spoken_query_qa_{split}_{uid}"] = (
                    _example(
                        "spoken_query_qa",
                        _instr(rngs, "spoken_query_qa"),
                        u["obj"].answer,
                        meta,
                    )
                )
        sv_rng = random.Random(f"{seed}-sv-{split}")
        pairs = _sv_pairs(utts[split], config["sv_pairs"][split], sv_rng, split)
        for i, (a, b, label) in enumerate(pairs):
            meta = _speech_meta(a, durations[(split, a["uid"])], split)
            meta.update(
                {
                    "wav2": _wav_ref(split, b["uid"]),
                    "duration2": durations[(split, b["uid"])],
                    "transcript2": b["text"],
                    "speaker2": b["speaker"].name,
                    "style2": b["style"].name,
                }
            )
            man["speaker_verification"][
                f"speaker_verification_{split}_{i:05d}"
            ] = _example(
                "speaker_verification",
                _instr(rngs, "speaker_verification"),
                label,
                meta,
            )
        out[split] = man
    return out


def _sound_manifests(plan, durations, seed):
    out = {}
    for split in SPLITS:
        rng_ev = random.Random(f"{seed}-instr-{split}-sound_event")
        rng_sc = random.Random(f"{seed}-instr-{split}-captioning")
        man = {"sound_event": {}, "captioning": {}}
        for uid, kind, events in plan[split]:
            meta = {
                "wav": _wav_ref(split, uid),
                "duration": durations[(split, uid)],
                "events": list(events),
            }
            if kind == "event":
                task = "sound_event"
                ins = templates.sample_instruction(task, rng_ev)
                target = events[0]
            else:
                task = "captioning"
                ins = templates.sample_instruction(task, rng_sc)
                target = sounds.caption(events)
            man[task][f"{task}_{split}_{uid}"] = _example(
                task, ins, target, meta
            )
        out[split] = man
    return out


#: The spoken task whose phrasings each text task also takes in training,
#: with the text where the audio goes: a real LLM understands "Transcribe
#: the speech." and "Say this in Chinese."; the toy LM learns them too.
SPOKEN_PHRASING = {
    "repeat": "asr",
    "translate_fr": "translate_fr",
    "translate_zh": "translate_zh",
    "spoken_qa": "spoken_qa",
    "spoken_query_qa": "spoken_query_qa",
    "slu": "slu",
    "captioning": "captioning",
}
#: Share of train text examples phrased like the spoken task.
SPOKEN_PHRASING_RATE = 0.5


def _text_instruction(task, rng, sentence, question=None, spoken_rate=0.0):
    fields = {} if question is None else {"question": question}
    if spoken_rate and rng.random() < spoken_rate:
        ins = templates.sample_instruction(
            SPOKEN_PHRASING[task], rng, text=False, **fields
        )
        ins = ins.replace(templates.AUDIO_MARKER, templates.TEXT_MARKER)
    else:
        ins = templates.sample_instruction(task, rng, text=True, **fields)
    return templates.fill(ins, text=sentence)


def _text_examples(split, statements, commands, queries, n_per_task, seed):
    """Text versions of the tasks for one split.

    ``n_per_task`` maps each text task to its number of examples; train
    draws with replacement from the train pools, valid/test walk through
    the held-out pools.
    """
    rng = random.Random(f"{seed}-text-{split}")
    np_rng = np.random.default_rng([seed, _SPLIT_CODE[split], 7])
    train = split == "train"
    spoken = SPOKEN_PHRASING_RATE if train else 0.0
    examples = []

    def pick(pool, i):
        return rng.choice(pool) if train else pool[i % len(pool)]

    by_intent = {}
    for c in commands:
        by_intent.setdefault(c.intent, []).append(c)
    intents = sorted(by_intent)
    # Intents with many phrasings/slot fillers (add_to_list has thousands)
    # need more examples than those with a few dozen: weight each intent by
    # the square root of its number of distinct commands.
    intent_weights = [math.sqrt(len(by_intent[i])) for i in intents]

    def pick_command(i):
        if train:
            intent = rng.choices(intents, weights=intent_weights)[0]
            return rng.choice(by_intent[intent])
        return commands[i % len(commands)]

    for task, n in n_per_task.items():
        if task == "spoken_query_qa" and not train:
            n_ins = len(templates.TEXT_INSTRUCTIONS[task])
            combos = [(q, j) for q in queries for j in range(n_ins)]
            rng.shuffle(combos)
            for q, j in combos[:n]:
                ins = templates.TEXT_INSTRUCTIONS[task][j]
                examples.append(
                    (task, templates.fill(ins, text=q.text), q.answer)
                )
            continue
        for i in range(n):
            if task == "repeat":
                r = rng.random() if train else (i % 10) / 10
                if r < 0.5:
                    text = pick(statements, i).english()
                elif r < 0.7:
                    text = pick_command(i).text
                elif r < 0.9:
                    text = pick(queries, i).text
                else:
                    # the one-word answers of the audio-only tasks are words
                    # a real LLM knows: let the toy LM know them too
                    text = ANSWER_WORDS[int(np_rng.integers(len(ANSWER_WORDS)))]
                examples.append(
                    (
                        task,
                        _text_instruction(task, rng, text, spoken_rate=spoken),
                        text,
                    )
                )
            elif task in ("translate_fr", "translate_zh"):
                s = pick(statements, i)
                target = s.french() if task == "translate_fr" else s.chinese()
                ins = _text_instruction(
                    task, rng, s.english(), spoken_rate=spoken
                )
                examples.append((task, ins, target))
            elif task == "spoken_qa":
                s = pick(statements, i)
                question, answer = rng.choice(s.questions())
                ins = _text_instruction(
                    task, rng, s.english(), question, spoken_rate=spoken
                )
                examples.append((task, ins, answer))
            elif task == "slu":
                c = pick_command(i)
                ins = _text_instruction(task, rng, c.text, spoken_rate=spoken)
                examples.append((task, ins, c.target()))
            elif task == "spoken_query_qa":
                q = pick(queries, i)
                ins = _text_instruction(task, rng, q.text, spoken_rate=spoken)
                examples.append((task, ins, q.answer))
            elif task == "captioning":
                # text analogue of audio captioning: event names -> caption
                events = sounds.sample_scene_events(np_rng)
                ins = _text_instruction(
                    task, rng, ", ".join(events), spoken_rate=spoken
                )
                examples.append((task, ins, sounds.caption(events)))
            else:
                raise ValueError(f"unknown text task {task!r}")
    return [
        {
            "id": f"{task}_{split}_{i:05d}",
            "task": task,
            "instruction": ins,
            "target": target,
        }
        for i, (task, ins, target) in enumerate(examples)
    ]


def _tokenizer_corpus(text_train, manifests):
    lines = ["USER:", "ASSISTANT:"]
    for table in (templates.AUDIO_INSTRUCTIONS, templates.TEXT_INSTRUCTIONS):
        for paraphrases in table.values():
            lines.extend(paraphrases)
    lines.extend(grammar.lexicon_strings())
    lines.extend(speech.STYLES)
    lines.extend(["yes", "no"])
    lines.extend(sounds.EVENT_CLASSES)
    for a in sounds.EVENT_CLASSES:
        for b in sounds.EVENT_CLASSES:
            if a == b:
                continue
            lines.append(sounds.caption([a, b]))
            for c in sounds.EVENT_CLASSES:
                if c != b:
                    lines.append(sounds.caption([a, b, c]))
    for facts in grammar.FACTS.values():
        lines.extend(answer for _, answer in facts)
    for c in grammar.all_commands():
        lines.append(c.target())
    for ex in text_train:
        lines.append(ex["instruction"])
        lines.append(ex["target"])
    for task_manifest in manifests.values():
        for ex in task_manifest.values():
            lines.append(ex["instruction"])
            lines.append(ex["target"])
    seen, out = set(), []
    for line in lines:
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def _run_parallel(fn, jobs, num_workers, bar):
    """Runs ``fn(*job)`` for every job in a thread pool; returns results."""
    results = [None] * len(jobs)
    pool = ThreadPoolExecutor(max_workers=max(1, num_workers))
    try:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _build_into(out, name, config, seed, progress, num_workers, start):
    from tqdm.auto import tqdm

    speech.check_espeak()
    out.mkdir(parents=True)
    for split in SPLITS:
        (out / "audio" / split).mkdir(parents=True)

    speakers, styles, statements, commands, queries, utts = _plan_utterances(
        config, seed
    )
    sound_plan = _plan_sounds(config, seed)
    n_speech = sum(len(utts[s]) for s in SPLITS)
    n_sound = sum(len(sound_plan[s]) for s in SPLITS)

    bar = tqdm(
        total=n_speech + n_sound,
        desc=f"toy world ({name})",
        unit="clip",
        disable=not progress,
    )
    with bar:
        jobs, keys = [], []
        for split in SPLITS:
            for u in utts[split]:
                keys.append((split, u["uid"]))
                jobs.append(
                    speech.SpeechJob(
                        u["text"],
                        u["speaker"],
                        u["style"],
                        str(out / "audio" / split / f"{u['uid']}.wav"),
                        u["pitch_jitter"],
                        u["speed_jitter"],
                    )
                )
        durations = dict(
            zip(
                keys,
                speech.synthesize_many(jobs, num_workers, progress=bar.update),
            )
        )
        sound_jobs = [
            (out, split, uid, kind, events, seed)
            for split in SPLITS
            for uid, kind, events in sound_plan[split]
        ]
        sound_durs = _run_parallel(_make_sound, sound_jobs, num_workers, bar)
        for (_, split, uid, _, _, _), d in zip(sound_jobs, sound_durs):
            durations[(split, uid)] = d

    manifests = _speech_manifests(utts, durations, seed, config)
    for split, man in _sound_manifests(sound_plan, durations, seed).items():
        manifests[split].update(man)
    counts = {}
    for split in SPLITS:
        counts[split] = {}
        for task in TASKS:
            write_json(
                out / "manifests" / split / f"{task}.json",
                manifests[split][task],
                indent=1,
            )
            counts[split][task] = len(manifests[split][task])

    text_counts = {}
    text_train = None
    for split in SPLITS:
        if split == "train":
            n_per_task = dict(config["text_train"])
        else:
            n_eval = config["text_eval"]
            n_per_task = dict.fromkeys(config["text_train"], n_eval)
        rows = _text_examples(
            split,
            statements[split],
            commands[split],
            queries[split],
            n_per_task,
            seed,
        )
        if split == "train":
            text_train = rows
        write_text(
            out / "text" / f"{split}.jsonl",
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
        )
        text_counts[split] = {}
        for row in rows:
            text_counts[split][row["task"]] = (
                text_counts[split].get(row["task"], 0) + 1
            )

    corpus = _tokenizer_corpus(text_train, manifests["train"])
    write_text(out / "text" / "tokenizer_corpus.txt", "\n".join(corpus) + "\n")

    info = {
        "version": WORLD_VERSION,
        "seed": seed,
        "profile": name,
        "profile_config": config,
        "sample_rate": speech.SAMPLE_RATE,
        "tasks": list(TASKS),
        "text_tasks": list(templates.TEXT_INSTRUCTIONS),
        "counts": counts,
        "text_counts": text_counts,
        "utterances": {
            split: {
                kind: sum(1 for u in utts[split] if u["kind"] == kind)
                for kind in ("statement", "command", "query")
            }
            for split in SPLITS
        },
        "audio_hours": round(sum(durations.values()) / 3600, 4),
        "speakers": [
            {
                "name": s.name,
                "voice": s.voice,
                "pitch": s.pitch,
                "speed": s.speed,
            }
            for s in speakers
        ],
        "styles": [
            {
                "name": s.name,
                "pitch_offset": s.pitch_offset,
                "pitch_range": s.pitch_range,
                "speed_factor": s.speed_factor,
                "amplitude": s.amplitude,
                "word_gap": s.word_gap,
            }
            for s in styles
        ],
        "event_classes": list(sounds.EVENT_CLASSES),
        "build_seconds": round(time.time() - start, 1),
    }
    write_json(out / "world.json", info, indent=1)
