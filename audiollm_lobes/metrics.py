"""Per-task metrics for instruction-following audio LLMs.

Every metric here is a corpus-level percentage in ``[0, 100]`` (BLEU too,
as sacrebleu reports it; WER and CER can exceed 100 with many insertions):

===============  =========================================  ======
metric           definition                                 better
===============  =========================================  ======
``wer``          word edits / reference words (jiwer)       lower
``cer``          character edits / reference characters     lower
``bleu``         sacrebleu corpus BLEU (``zh`` tokenizer    higher
                 for Chinese, ``13a`` otherwise)
``accuracy``     normalised hypothesis == normalised ref    higher
``exact_match``  hypothesis == reference (only whitespace   higher
                 collapsed; case and punctuation count)
``eer``          equal error rate of scores vs yes/no refs  lower
===============  =========================================  ======

:class:`TaskMetrics` accumulates hypotheses per task over an evaluation
(multitask batches welcome) and summarises them with the default metric of
each task (:data:`TASK_METRICS`, overridable).

Authors
 * audiollm-lobes developers, 2026
"""

import collections
import json
import logging
import re
import unicodedata

import jiwer
import sacrebleu
import torch

from audiollm_lobes.atomic import write_text

logger = logging.getLogger(__name__)

#: Default metric of each task.
TASK_METRICS = {
    "asr": "wer",
    "translate_fr": "bleu",
    "translate_zh": "bleu",
    "emotion": "accuracy",
    "speaker_verification": "accuracy",
    "spoken_qa": "accuracy",
    "spoken_query_qa": "accuracy",
    "slu": "exact_match",
    "sound_event": "accuracy",
    "captioning": "bleu",
    "repeat": "exact_match",
}

#: Metrics added for a task when scores were given for all its examples.
SCORE_METRICS = {"speaker_verification": ("eer",)}

#: BLEU tokenisation language of each task (default ``"en"``).
TASK_LANGUAGES = {"translate_fr": "fr", "translate_zh": "zh"}

#: Metrics for which a lower value is better.
LOWER_IS_BETTER = frozenset({"wer", "cer", "eer"})

#: References counted as the positive class for EER (after normalisation).
POSITIVE_ANSWERS = frozenset({"yes", "same", "true", "1"})
#: References counted as the negative class for EER (after normalisation).
NEGATIVE_ANSWERS = frozenset({"no", "different", "false", "0"})

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_SPACES = re.compile(r"\s+")


def normalize_text(text):
    """Normalises text for scoring.

    NFKC-normalises (full-width forms become ASCII), lowercases, replaces
    every punctuation or symbol character except the apostrophe by a space,
    and collapses runs of whitespace. Letters of every script (including
    CJK characters), digits and combining marks are kept.

    Arguments
    ---------
    text : str
        The text.

    Returns
    -------
    str
        The normalised text.

    Example
    -------
    >>> normalize_text("  Hello, World!  It’s  FINE. ")
    "hello world it's fine"
    >>> normalize_text("你好，世界。")
    '你好 世界'
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    chars = [
        c if c == "'" or unicodedata.category(c)[0] not in "PS" else " "
        for c in text
    ]
    return _SPACES.sub(" ", "".join(chars)).strip()


def _squash_spaces(text):
    """Strips and collapses whitespace only."""
    return _SPACES.sub(" ", text).strip()


def _check_pairs(refs, hyps, name):
    """Checks that refs and hyps are equally long, non-empty string lists."""
    if isinstance(refs, str) or isinstance(hyps, str):
        raise TypeError(
            f"{name}: refs and hyps must be lists of strings, not a string"
        )
    refs, hyps = list(refs), list(hyps)
    if len(refs) != len(hyps):
        raise ValueError(
            f"{name}: {len(refs)} references but {len(hyps)} hypotheses; "
            "expected the same number"
        )
    if not refs:
        raise ValueError(f"{name}: no examples (empty lists)")
    for kind, items in (("reference", refs), ("hypothesis", hyps)):
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise TypeError(
                    f"{name}: {kind} {i} is a {type(item).__name__}, "
                    "expected a string"
                )
    return refs, hyps


def wer(refs, hyps, normalize=True):
    """Corpus word error rate, in percent.

    Arguments
    ---------
    refs : list of str
        Reference transcripts.
    hyps : list of str
        Hypotheses, one per reference.
    normalize : bool
        Apply :func:`normalize_text` to both sides first.

    Returns
    -------
    float
        ``100 * (substitutions + deletions + insertions) / reference words``
        summed over the corpus.

    Example
    -------
    >>> wer(["the cat sat", "a dog"], ["the cat sat down", "a dog"])
    20.0
    """
    refs, hyps = _check_pairs(refs, hyps, "wer")
    if normalize:
        refs = [normalize_text(r) for r in refs]
        hyps = [normalize_text(h) for h in hyps]
    return 100.0 * float(jiwer.process_words(refs, hyps).wer)


def cer(refs, hyps, normalize=True):
    """Corpus character error rate, in percent (spaces count as characters).

    Arguments
    ---------
    refs : list of str
        Reference texts.
    hyps : list of str
        Hypotheses, one per reference.
    normalize : bool
        Apply :func:`normalize_text` to both sides first.

    Returns
    -------
    float
        ``100 * character edits / reference characters`` over the corpus.

    Example
    -------
    >>> cer(["abcd"], ["abed"])
    25.0
    """
    refs, hyps = _check_pairs(refs, hyps, "cer")
    if normalize:
        refs = [normalize_text(r) for r in refs]
        hyps = [normalize_text(h) for h in hyps]
    return 100.0 * float(jiwer.process_characters(refs, hyps).cer)


def bleu(refs, hyps, lang="en", lowercase=False):
    """Corpus BLEU (sacrebleu), from 0 to 100.

    Arguments
    ---------
    refs : list of str
        One reference per hypothesis.
    hyps : list of str
        Hypotheses.
    lang : str
        Target language: ``"zh"`` uses sacrebleu's Chinese tokenizer (one
        token per CJK character); any other value (``"en"``, ``"fr"``...)
        uses the standard ``13a`` tokenizer.
    lowercase : bool
        Case-insensitive BLEU.

    Returns
    -------
    float
        The corpus BLEU score.

    Example
    -------
    >>> round(bleu(["the cat is on the mat"], ["the cat is on the mat"]), 6)
    100.0
    """
    refs, hyps = _check_pairs(refs, hyps, "bleu")
    tokenize = "zh" if lang == "zh" else "13a"
    result = sacrebleu.corpus_bleu(
        [h.strip() for h in hyps],
        [[r.strip() for r in refs]],
        tokenize=tokenize,
        lowercase=lowercase,
    )
    return float(result.score)


def accuracy(refs, hyps, normalize=True):
    """Percentage of hypotheses equal to their reference.

    Arguments
    ---------
    refs : list of str
        Reference answers.
    hyps : list of str
        Predicted answers.
    normalize : bool
        Compare after :func:`normalize_text` (so ``"Happy."`` matches
        ``"happy"``).

    Returns
    -------
    float
        Accuracy in percent.

    Example
    -------
    >>> accuracy(["yes", "no", "happy"], ["Yes.", "yes", "happy"])
    66.66666666666667
    """
    refs, hyps = _check_pairs(refs, hyps, "accuracy")
    norm = normalize_text if normalize else _squash_spaces
    hits = sum(norm(r) == norm(h) for r, h in zip(refs, hyps))
    return 100.0 * hits / len(refs)


def exact_match(refs, hyps, normalize=False):
    """Percentage of hypotheses identical to their reference.

    Only surrounding whitespace and runs of spaces are ignored by default;
    case and punctuation count (as needed for structured outputs such as
    ``intent: lights_on | room: kitchen``).

    Arguments
    ---------
    refs : list of str
        References.
    hyps : list of str
        Hypotheses.
    normalize : bool
        Compare after :func:`normalize_text` instead.

    Returns
    -------
    float
        Exact-match rate in percent.

    Example
    -------
    >>> exact_match(["intent: on | room: hall"], [" intent: on |  room: hall"])
    100.0
    >>> exact_match(["Hall"], ["hall"])
    0.0
    """
    refs, hyps = _check_pairs(refs, hyps, "exact_match")
    norm = normalize_text if normalize else _squash_spaces
    hits = sum(norm(r) == norm(h) for r, h in zip(refs, hyps))
    return 100.0 * hits / len(refs)


#: Metrics computed from references and hypotheses, by name.
TEXT_METRICS = {
    "wer": wer,
    "cer": cer,
    "bleu": bleu,
    "accuracy": accuracy,
    "exact_match": exact_match,
}

#: Every metric name a task may be scored with (``eer`` needs scores).
METRIC_NAMES = frozenset(TEXT_METRICS) | {"eer"}


def eer(scores, labels, return_threshold=False):
    """Equal error rate of detection scores, in percent.

    Same definition as SpeechBrain's ``speechbrain.utils.metric_stats.EER``:
    among thresholds at every distinct score and every midpoint between
    consecutive distinct scores, take the first (lowest) one where the
    false acceptance and false rejection rates are closest; the EER is
    their mean. A trial is accepted when its score is above the threshold.
    SpeechBrain loops over the thresholds in Python (quadratic: ~6 s for
    4,000 trials here), so this version counts with sorted scores and
    ``searchsorted`` instead (O(n log n)) in float64.

    Arguments
    ---------
    scores : list of float or torch.Tensor
        One score per trial, higher meaning "same / positive".
    labels : list of (bool or int) or torch.Tensor
        1/True for positive (target) trials, 0/False for negative ones.
    return_threshold : bool
        Also return the threshold.

    Returns
    -------
    float or tuple
        The EER in percent, or ``(eer, threshold)``.

    Example
    -------
    >>> eer([0.9, 0.8, 0.3, 0.7, 0.2, 0.1], [1, 1, 1, 0, 0, 0])
    33.33333333333333
    """
    scores = torch.as_tensor(scores, dtype=torch.float64).flatten()
    labels = torch.as_tensor(labels).flatten()
    if scores.numel() != labels.numel():
        raise ValueError(
            f"eer: {scores.numel()} scores but {labels.numel()} labels; "
            "expected the same number"
        )
    if not torch.isfinite(scores).all():
        raise ValueError("eer: scores hold NaN or infinite values")
    if not ((labels == 0) | (labels == 1)).all():
        raise ValueError("eer: labels must be 0/1 or booleans")
    labels = labels.bool()
    positives, negatives = scores[labels], scores[~labels]
    if positives.numel() == 0 or negatives.numel() == 0:
        raise ValueError(
            f"eer: needs both positive and negative trials, got "
            f"{positives.numel()} positive and {negatives.numel()} negative"
        )
    distinct = torch.unique(scores)  # sorted
    middles = (distinct[:-1] + distinct[1:]) / 2
    thresholds, _ = torch.sort(torch.cat([distinct, middles]))
    positives, _ = torch.sort(positives)
    negatives, _ = torch.sort(negatives)
    # number of scores <= threshold, for each threshold
    rejected = torch.searchsorted(positives, thresholds, right=True)
    kept_negatives = torch.searchsorted(negatives, thresholds, right=True)
    false_rejection = rejected.double() / positives.numel()
    false_acceptance = (
        negatives.numel() - kept_negatives
    ).double() / negatives.numel()
    best = int(torch.argmin((false_acceptance - false_rejection).abs()))
    value = 100.0 * float(false_rejection[best] + false_acceptance[best]) / 2
    if return_threshold:
        return value, float(thresholds[best])
    return value


def majority_baseline(train_targets, test_targets, normalize=True):
    """Accuracy of always answering the most frequent training target.

    Arguments
    ---------
    train_targets : list of str
        Targets of the training set (ties: the first seen wins).
    test_targets : list of str
        Targets of the evaluation set.
    normalize : bool
        Count and compare after :func:`normalize_text`.

    Returns
    -------
    float
        Accuracy in percent.

    Example
    -------
    >>> majority_baseline(["yes", "no", "yes"], ["yes", "no", "no", "no"])
    25.0
    """
    train_targets, test_targets = list(train_targets), list(test_targets)
    if not train_targets or not test_targets:
        raise ValueError(
            "majority_baseline: needs non-empty train and test targets, got "
            f"{len(train_targets)} and {len(test_targets)}"
        )
    norm = normalize_text if normalize else _squash_spaces
    counts = collections.Counter(norm(t) for t in train_targets)
    answer = counts.most_common(1)[0][0]
    hits = sum(norm(t) == answer for t in test_targets)
    return 100.0 * hits / len(test_targets)


def compute_metric(name, refs, hyps, lang="en"):
    """Computes one text metric by name.

    Arguments
    ---------
    name : str
        ``"wer"``, ``"cer"``, ``"bleu"``, ``"accuracy"`` or
        ``"exact_match"``.
    refs : list of str
        References.
    hyps : list of str
        Hypotheses.
    lang : str
        Language for BLEU.

    Returns
    -------
    float
        The metric in percent.

    Example
    -------
    >>> compute_metric("wer", ["a b"], ["a c"])
    50.0
    """
    if name == "bleu":
        return bleu(refs, hyps, lang=lang)
    if name not in TEXT_METRICS:
        raise ValueError(
            f"unknown metric {name!r}; expected one of "
            f"{sorted(TEXT_METRICS) + ['eer']}"
        )
    return TEXT_METRICS[name](refs, hyps)


def _as_list(name, values, n=None):
    """Turns a tensor/sequence into a list, checking its length."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().flatten().tolist()
    elif isinstance(values, str):
        values = [values]
    else:
        values = list(values)
    if n is not None and len(values) != n:
        raise ValueError(
            f"TaskMetrics.append: {name} has {len(values)} items, expected "
            f"{n} (one per id)"
        )
    return values


class TaskMetrics:
    """Accumulates hypotheses per task and computes each task's metrics.

    Arguments
    ---------
    task_metrics : dict, optional
        Overrides of :data:`TASK_METRICS`: ``{task: metric}`` or
        ``{task: [metric, ...]}`` (tasks declared in hparams:
        :func:`audiollm_lobes.data.tasks.make_task_metrics`).
    default_metric : str
        Metric of tasks absent from the table.
    task_languages : dict, optional
        Overrides of :data:`TASK_LANGUAGES` (BLEU tokenisation).

    Example
    -------
    >>> stats = TaskMetrics()
    >>> stats.append("asr", ["u1", "u2"], ["the cat", "a dog"],
    ...              ["the cat", "the dog"])
    >>> stats.append(["emotion", "speaker_verification"], ["u3", "u4"],
    ...              ["happy", "yes"], ["sad", "yes"], scores=[0.1, 0.9])
    >>> stats.summarize()["asr"]
    {'wer': 25.0, 'n': 2}
    >>> stats.summarize()["emotion"]
    {'accuracy': 0.0, 'n': 1}
    """

    def __init__(
        self,
        task_metrics=None,
        default_metric="exact_match",
        task_languages=None,
    ):
        self.task_metrics = {k: (v,) for k, v in TASK_METRICS.items()}
        for task, metrics in (task_metrics or {}).items():
            self.task_metrics[task] = (
                (metrics,) if isinstance(metrics, str) else tuple(metrics)
            )
        self.default_metric = default_metric
        self.task_languages = dict(TASK_LANGUAGES, **(task_languages or {}))
        for task, metrics in self.task_metrics.items():
            for metric in metrics:
                if metric not in METRIC_NAMES:
                    raise ValueError(
                        f"task_metrics[{task!r}]: unknown metric {metric!r}; "
                        f"expected one of {sorted(METRIC_NAMES)}"
                    )
        if default_metric not in TEXT_METRICS:
            raise ValueError(
                f"default_metric {default_metric!r} unknown; expected one of "
                f"{sorted(TEXT_METRICS)}"
            )
        self.clear()

    def clear(self):
        """Forgets everything appended so far.

        Example
        -------
        >>> stats = TaskMetrics()
        >>> stats.append("asr", ["u1"], ["a"], ["a"])
        >>> stats.clear()
        >>> stats.summarize()
        {}
        """
        self.records = collections.OrderedDict()

    def __len__(self):
        """Number of examples appended so far (all tasks).

        Example
        -------
        >>> stats = TaskMetrics()
        >>> stats.append("asr", ["u1", "u2"], ["a", "b"], ["a", "c"])
        >>> len(stats)
        2
        """
        return sum(len(r["ids"]) for r in self.records.values())

    def append(self, task, ids, hyps, refs, scores=None):
        """Adds a batch of predictions.

        Arguments
        ---------
        task : str or list of str
            The task of the whole batch, or one task per example.
        ids : list of str
            Example ids.
        hyps : list of str
            Predicted texts.
        refs : list of str
            Reference texts.
        scores : list of float or torch.Tensor, optional
            A detection score per example (e.g. the probability of "yes"
            for speaker verification), used for EER.

        Example
        -------
        >>> stats = TaskMetrics()
        >>> stats.append("repeat", ["a"], ["hi"], ["hi"])
        >>> stats.summarize()
        {'repeat': {'exact_match': 100.0, 'n': 1}}
        """
        ids = _as_list("ids", ids)
        n = len(ids)
        hyps = _as_list("hyps", hyps, n)
        refs = _as_list("refs", refs, n)
        tasks = (
            [task] * n if isinstance(task, str) else _as_list("task", task, n)
        )
        score_list = (
            [None] * n if scores is None else _as_list("scores", scores, n)
        )
        for i in range(n):
            for name, value in (
                ("hyps", hyps[i]),
                ("refs", refs[i]),
                ("task", tasks[i]),
            ):
                if not isinstance(value, str):
                    raise TypeError(
                        f"TaskMetrics.append: {name}[{i}] is a "
                        f"{type(value).__name__}, expected a string"
                    )
            record = self.records.setdefault(
                tasks[i], {"ids": [], "hyps": [], "refs": [], "scores": []}
            )
            record["ids"].append(ids[i])
            record["hyps"].append(hyps[i])
            record["refs"].append(refs[i])
            record["scores"].append(
                None if score_list[i] is None else float(score_list[i])
            )

    def metrics_of(self, task):
        """Returns the metric names used for a task (before scores).

        Arguments
        ---------
        task : str
            The task.

        Returns
        -------
        tuple of str
            The metrics.

        Example
        -------
        >>> TaskMetrics({"asr": ["wer", "cer"]}).metrics_of("asr")
        ('wer', 'cer')
        """
        return self.task_metrics.get(task, (self.default_metric,))

    def _eer_of(self, task, record):
        """Returns the EER of a task's scored trials, or None."""
        scores = record["scores"]
        if any(s is None for s in scores):
            if any(s is not None for s in scores):
                logger.warning(
                    "task %s: only some examples have scores; EER skipped",
                    task,
                )
            return None
        labels = []
        for ref in record["refs"]:
            answer = normalize_text(ref)
            if answer in POSITIVE_ANSWERS:
                labels.append(1)
            elif answer in NEGATIVE_ANSWERS:
                labels.append(0)
            else:
                logger.warning(
                    "task %s: reference %r is not a yes/no answer; EER skipped",
                    task,
                    ref,
                )
                return None
        if len(set(labels)) < 2:
            logger.warning(
                "task %s: EER needs positive and negative trials; skipped",
                task,
            )
            return None
        return eer(scores, labels)

    def summarize(self):
        """Computes the metrics of every task seen.

        Returns
        -------
        dict
            ``{task: {metric_name: value, ..., "n": count}}`` in the order
            the tasks were first seen; values in percent.

        Example
        -------
        >>> stats = TaskMetrics()
        >>> zh = "我们喜欢小猫"
        >>> stats.append("translate_zh", ["a"], [zh], [zh])
        >>> stats.append("emotion", ["b", "c"], ["calm", "sad"], ["calm", "x"])
        >>> summary = stats.summarize()
        >>> round(summary["translate_zh"]["bleu"], 6), summary["emotion"]
        (100.0, {'accuracy': 50.0, 'n': 2})
        """
        summary = {}
        for task, record in self.records.items():
            lang = self.task_languages.get(task, "en")
            out = {}
            metrics = list(self.metrics_of(task))
            metrics += [
                m for m in SCORE_METRICS.get(task, ()) if m not in metrics
            ]
            for metric in metrics:
                if metric == "eer":
                    value = self._eer_of(task, record)
                    if value is not None:
                        out["eer"] = value
                else:
                    out[metric] = compute_metric(
                        metric, record["refs"], record["hyps"], lang=lang
                    )
            out["n"] = len(record["ids"])
            summary[task] = out
        return summary

    def write_predictions(self, path):
        """Writes every prediction as JSON lines (atomically).

        Arguments
        ---------
        path : str or os.PathLike
            Output file; each line is ``{"id", "task", "hyp", "ref"}`` plus
            ``"score"`` when given.

        Example
        -------
        >>> import os, tempfile
        >>> stats = TaskMetrics()
        >>> stats.append("asr", ["u1"], ["a"], ["a"])
        >>> path = os.path.join(tempfile.mkdtemp(), "pred.jsonl")
        >>> stats.write_predictions(path)
        >>> open(path).read().strip()
        '{"id": "u1", "task": "asr", "hyp": "a", "ref": "a"}'
        """
        lines = []
        for task, rec in self.records.items():
            for i, eid in enumerate(rec["ids"]):
                row = {
                    "id": eid,
                    "task": task,
                    "hyp": rec["hyps"][i],
                    "ref": rec["refs"][i],
                }
                if rec["scores"][i] is not None:
                    row["score"] = rec["scores"][i]
                lines.append(json.dumps(row, ensure_ascii=False))
        write_text(path, "".join(line + "\n" for line in lines))
