"""Tests of the per-task metrics against hand-worked values and references.

Authors
 * audiollm-lobes developers, 2026
"""

import json
import math
import random

import pytest

from audiollm_lobes import metrics
from audiollm_lobes.metrics import (
    TaskMetrics,
    accuracy,
    bleu,
    cer,
    eer,
    exact_match,
    majority_baseline,
    normalize_text,
    wer,
)

# ------------------------------------------------------------- references


def _levenshtein(ref, hyp):
    """Edit distance between two token lists (plain dynamic programming)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def _reference_wer(refs, hyps):
    edits = sum(_levenshtein(r.split(), h.split()) for r, h in zip(refs, hyps))
    return 100.0 * edits / sum(len(r.split()) for r in refs)


def _brute_force_eer(scores, labels):
    """EER by sweeping every score and midpoint as threshold (float64)."""
    pos = [float(s) for s, y in zip(scores, labels) if y]
    neg = [float(s) for s, y in zip(scores, labels) if not y]
    values = sorted(set(pos + neg))
    mids = [(a + b) / 2 for a, b in zip(values[:-1], values[1:])]
    best = None
    for t in sorted(values + mids):
        frr = sum(1 for s in pos if s <= t) / len(pos)
        far = sum(1 for s in neg if s > t) / len(neg)
        gap = abs(far - frr)
        if best is None or gap < best[0]:
            best = (gap, (far + frr) / 2)
    return 100.0 * best[1]


# ------------------------------------------------------------ normalising


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello, World!", "hello world"),
        ("  It’s   the DOG's bowl. ", "it's the dog's bowl"),
        ("well-known (really)?", "well known really"),
        ("你好，世界。", "你好 世界"),
        ("ＡＢＣ　１２３", "abc 123"),
        ("Café à l'école", "café à l'école"),
        ("", ""),
    ],
)
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


# -------------------------------------------------------------- WER / CER


def test_wer_hand_worked():
    # pair 1: 1 substitution (sat->sit) + 1 deletion (the) over 6 words
    # pair 2: 1 insertion (big) over 2 words -> corpus 3 / 8
    refs = ["the cat sat on the mat", "hello world"]
    hyps = ["the cat sit on mat", "hello big world"]
    assert wer(refs[:1], hyps[:1]) == pytest.approx(100 * 2 / 6)
    assert wer(refs, hyps) == pytest.approx(37.5)
    assert wer(["The Cat."], ["the cat"]) == 0.0
    assert wer(["The Cat."], ["the cat"], normalize=False) == 100.0


def test_wer_matches_dynamic_programming_reference():
    rng = random.Random(0)
    vocab = ["a", "b", "c", "d"]
    refs, hyps = [], []
    for _ in range(50):
        refs.append(
            " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 8)))
        )
        hyps.append(
            " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 8)))
        )
    assert wer(refs, hyps) == pytest.approx(_reference_wer(refs, hyps))


def test_cer_hand_worked():
    # "abc" vs "abd": 1 substitution / 3; "你好" vs "你好吗": 1 insertion / 2
    assert cer(["abc", "你好"], ["abd", "你好吗"]) == pytest.approx(40.0)


def test_length_mismatch_and_empty_are_errors():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        wer(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no examples"):
        accuracy([], [])
    with pytest.raises(TypeError, match="not a string"):
        bleu("abc", "abc")
    with pytest.raises(TypeError, match="hypothesis 0 is a int"):
        exact_match(["a"], [3])


# ------------------------------------------------------------------- BLEU


def test_bleu_identical_is_100():
    refs = ["the red cat sleeps in the kitchen", "le chat rouge dort"]
    assert bleu(refs, refs) == pytest.approx(100.0)
    assert bleu(refs, refs, lang="fr") == pytest.approx(100.0)


def test_bleu_hand_worked_english():
    # n-gram precisions 5/6, 3/5, 2/4, 1/3; same length so no brevity penalty
    score = bleu(["the cat sat on the mat"], ["the cat sat on a mat"])
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert score == pytest.approx(expected)


def test_bleu_hand_worked_chinese():
    # one token per character: precisions 8/9, 6/8, 4/7, 2/6
    ref, hyp = "我们喜欢红色的小猫", "我们喜欢蓝色的小猫"
    expected = 100 * (8 / 9 * 6 / 8 * 4 / 7 * 2 / 6) ** 0.25
    assert bleu([ref], [hyp], lang="zh") == pytest.approx(expected)
    # with the 13a tokenizer the sentence is a single (wrong) token
    assert bleu([ref], [hyp], lang="en") == pytest.approx(0.0)


def test_bleu_brevity_penalty():
    # hypothesis is a 4-word prefix of a 6-word reference: precisions 1
    score = bleu(["a b c d e f"], ["a b c d"])
    assert score == pytest.approx(100 * math.exp(1 - 6 / 4))


# --------------------------------------------------- accuracy / exact match


def test_accuracy_and_exact_match():
    refs = ["yes", "no", "happy", "intent: on | room: hall"]
    hyps = ["Yes.", "yes", "happy", "intent: on |  room: hall "]
    assert accuracy(refs, hyps) == pytest.approx(75.0)
    assert exact_match(refs, hyps) == pytest.approx(50.0)
    assert exact_match(refs, hyps, normalize=True) == pytest.approx(75.0)


def test_majority_baseline():
    train = ["kitchen", "hall", "Kitchen.", "garden"]
    test = ["kitchen", "garden", "kitchen", "hall", "attic"]
    assert majority_baseline(train, test) == pytest.approx(40.0)
    # ties: the first seen wins ("b")
    assert majority_baseline(["b", "a"], ["a", "b", "b"]) == pytest.approx(
        100 * 2 / 3
    )
    with pytest.raises(ValueError, match="non-empty"):
        majority_baseline([], ["a"])


# -------------------------------------------------------------------- EER


def test_eer_hand_worked():
    # threshold 0.5: 1 of 3 positives rejected, 1 of 3 negatives accepted
    scores = [0.9, 0.8, 0.3, 0.7, 0.2, 0.1]
    labels = [1, 1, 1, 0, 0, 0]
    assert eer(scores, labels) == pytest.approx(100 / 3)
    assert eer([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0
    assert eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 100.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_eer_matches_brute_force(seed):
    rng = random.Random(seed)
    n = rng.randint(20, 60)
    labels = [rng.random() < 0.4 for _ in range(n)]
    # overlapping classes, with some tied (rounded) scores
    scores = [round(rng.gauss(1.0 if y else 0.0, 1.0), 1) for y in labels]
    labels[0], labels[1] = True, False
    assert eer(scores, labels) == pytest.approx(
        _brute_force_eer(scores, labels)
    )


def test_eer_agrees_with_speechbrain():
    import torch
    from speechbrain.utils.metric_stats import EER

    generator = torch.Generator().manual_seed(0)
    labels = torch.rand(120, generator=generator) < 0.3
    scores = torch.randn(120, generator=generator, dtype=torch.float64)
    scores = scores + 1.5 * labels
    expected, threshold = EER(scores[labels], scores[~labels])
    value, ours = eer(scores, labels, return_threshold=True)
    assert value == pytest.approx(100 * expected, abs=1e-4)
    assert ours == pytest.approx(threshold)


def test_eer_errors():
    with pytest.raises(ValueError, match="positive and negative"):
        eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="2 scores but 3 labels"):
        eer([0.1, 0.2], [1, 0, 1])
    with pytest.raises(ValueError, match="0/1"):
        eer([0.1, 0.2], [2, 0])


# ------------------------------------------------------------ TaskMetrics


def test_task_metrics_multitask_batches():
    stats = TaskMetrics()
    stats.append(
        ["asr", "emotion", "asr"],
        ["u1", "u2", "u3"],
        ["the cat sit on mat", "Happy", "hello big world"],
        ["the cat sat on the mat", "happy", "hello world"],
    )
    stats.append("emotion", ["u4"], ["sad"], ["calm"])
    stats.append(
        "translate_zh", ["u5"], ["我们喜欢蓝色的小猫"], ["我们喜欢红色的小猫"]
    )
    stats.append("new_task", ["u6"], ["x"], ["x"])
    summary = stats.summarize()
    assert list(summary) == ["asr", "emotion", "translate_zh", "new_task"]
    assert summary["asr"] == {"wer": pytest.approx(37.5), "n": 2}
    assert summary["emotion"] == {"accuracy": 50.0, "n": 2}
    expected_zh = 100 * (8 / 9 * 6 / 8 * 4 / 7 * 2 / 6) ** 0.25
    assert summary["translate_zh"]["bleu"] == pytest.approx(expected_zh)
    assert summary["new_task"] == {"exact_match": 100.0, "n": 1}


def test_task_metrics_speaker_verification_eer():
    stats = TaskMetrics()
    refs = ["yes", "yes", "yes", "no", "no", "no"]
    hyps = ["yes", "yes", "no", "yes", "no", "no"]
    scores = [0.9, 0.8, 0.3, 0.7, 0.2, 0.1]
    stats.append(
        "speaker_verification", list("abc"), hyps[:3], refs[:3], scores[:3]
    )
    stats.append(
        "speaker_verification", list("def"), hyps[3:], refs[3:], scores[3:]
    )
    result = stats.summarize()["speaker_verification"]
    assert result["accuracy"] == pytest.approx(100 * 4 / 6)
    assert result["eer"] == pytest.approx(100 / 3)
    assert result["n"] == 6
    # without scores: accuracy only
    plain = TaskMetrics()
    plain.append("speaker_verification", ["a"], ["yes"], ["yes"])
    assert plain.summarize()["speaker_verification"] == {
        "accuracy": 100.0,
        "n": 1,
    }


def test_task_metrics_overrides_and_errors():
    stats = TaskMetrics(task_metrics={"asr": ["wer", "cer"], "slu": "accuracy"})
    stats.append("asr", ["a"], ["abd"], ["abc"])
    stats.append("slu", ["b"], ["Lights On."], ["lights on"])
    summary = stats.summarize()
    assert summary["asr"] == {
        "wer": 100.0,
        "cer": pytest.approx(100 / 3),
        "n": 1,
    }
    assert summary["slu"] == {"accuracy": 100.0, "n": 1}
    with pytest.raises(ValueError, match="unknown metric 'rouge'"):
        TaskMetrics(task_metrics={"asr": "rouge"})
    with pytest.raises(ValueError, match="hyps has 1 items, expected 2"):
        stats.append("asr", ["a", "b"], ["x"], ["x", "y"])


def test_write_predictions(tmp_path):
    stats = TaskMetrics()
    stats.append("speaker_verification", ["p"], ["yes"], ["no"], [0.25])
    path = tmp_path / "pred.jsonl"
    stats.write_predictions(path)
    row = json.loads(path.read_text(encoding="utf-8"))
    assert row == {
        "id": "p",
        "task": "speaker_verification",
        "hyp": "yes",
        "ref": "no",
        "score": 0.25,
    }


def test_task_metrics_table_is_consistent():
    assert set(metrics.TASK_METRICS) >= {"asr", "slu", "repeat"}
    for metric in metrics.TASK_METRICS.values():
        assert metric in metrics.TEXT_METRICS
