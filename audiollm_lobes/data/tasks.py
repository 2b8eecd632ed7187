"""The table of tasks: built-in ones plus tasks declared in hparams.

A task has a name, the metric(s) it is scored with, paraphrased
instructions (each with one ``<audio>`` marker), optionally text versions
of them (each with one ``<text>`` marker, for prompting an LLM with the
text of the utterance) and the language of its references (BLEU
tokenisation). The built-in tasks come from
:mod:`audiollm_lobes.data.templates` and :mod:`audiollm_lobes.metrics`;
a recipe declares new tasks, or changes built-in ones, under the hparams
key ``task_definitions``, with no library edit::

    task_definitions:
        bird_species:
            metric: accuracy
            instructions:
                - "<audio> Which bird is singing?"
                - "Name the bird species: <audio>"
        asr:
            metric: [wer, cer]     # a built-in task: only the keys given change

The table is a plain dict built from the hparams where it is needed
(:func:`task_definitions`): manifest validation accepts its task names,
:func:`make_task_metrics` scores each task with its metrics. Nothing is
registered globally.

Authors
 * audiollm-lobes developers, 2026
"""

import random
from dataclasses import dataclass, replace

from audiollm_lobes import metrics
from audiollm_lobes.data import templates

#: Keys a declaration may hold.
DECLARATION_KEYS = ("metric", "instructions", "text_instructions", "language")


@dataclass(frozen=True)
class TaskDefinition:
    """What the toolkit knows of one task.

    Arguments
    ---------
    name : str
        The task name, as in manifests (``"task"``) and file names.
    metrics : tuple of str
        Metric names (:data:`audiollm_lobes.metrics.METRIC_NAMES`); the
        first is the task's main metric.
    instructions : tuple of str
        Paraphrased instructions, each with exactly one ``<audio>``.
    text_instructions : tuple of str
        Text versions, each with exactly one ``<text>`` (may be empty).
    language : str
        Language of the references, for BLEU tokenisation (``"zh"``
        tokenises Chinese characters).

    Example
    -------
    >>> task = TaskDefinition("bird", ("accuracy",), ("<audio> Which bird?",))
    >>> task.sample_instruction(random.Random(0))
    '<audio> Which bird?'
    """

    name: str
    metrics: tuple
    instructions: tuple = ()
    text_instructions: tuple = ()
    language: str = "en"

    def sample_instruction(self, rng=None, text=False, **fields):
        """Draws one paraphrased instruction and fills its placeholders.

        Arguments
        ---------
        rng : random.Random, optional
            Random generator (for determinism).
        text : bool
            Draw from the text instructions.
        **fields : str
            Placeholder values (``question=...``).

        Returns
        -------
        str
            The instruction.
        """
        choices = self.text_instructions if text else self.instructions
        if not choices:
            kind = "text_instructions" if text else "instructions"
            raise ValueError(
                f"task {self.name!r} has no {kind}; declare them under "
                f"task_definitions.{self.name}.{kind}"
            )
        return templates.fill((rng or random).choice(choices), **fields)


def default_task_definitions():
    """The built-in tasks (the toy world's and the papers').

    Returns
    -------
    dict
        ``{name: TaskDefinition}``, in the order of
        :data:`~audiollm_lobes.data.templates.AUDIO_INSTRUCTIONS`.

    Example
    -------
    >>> table = default_task_definitions()
    >>> table["translate_zh"].metrics, table["translate_zh"].language
    (('bleu',), 'zh')
    >>> table["asr"].text_instructions[0]
    'Repeat the text: <text>'
    """
    table = {}
    for name, instructions in templates.AUDIO_INSTRUCTIONS.items():
        text_task = templates.TEXT_TASK_OF_AUDIO_TASK.get(name)
        table[name] = TaskDefinition(
            name=name,
            metrics=(metrics.TASK_METRICS.get(name, "exact_match"),),
            instructions=tuple(instructions),
            text_instructions=tuple(
                templates.TEXT_INSTRUCTIONS.get(text_task, ())
            ),
            language=metrics.TASK_LANGUAGES.get(name, "en"),
        )
    return table


def _check_templates(where, values, marker):
    """Checks a list of instruction templates; returns them as a tuple."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise ValueError(
            f"{where}: expected a list of instructions, got "
            f"{type(values).__name__} {values!r:.60}"
        )
    if not values:
        raise ValueError(f"{where}: is empty, expected instructions")
    for i, value in enumerate(values):
        count = value.count(marker) if isinstance(value, str) else 0
        if not isinstance(value, str) or count != 1:
            raise ValueError(
                f"{where}[{i}]: {value!r:.80} holds {count} {marker} "
                "markers, expected exactly 1"
            )
        if "{" in value or "}" in value:
            raise ValueError(
                f"{where}[{i}]: {value!r:.80} holds curly braces, which "
                "manifests reserve for placeholders such as {data_root}"
            )
    return tuple(values)


def _check_metrics(where, value):
    """Checks a metric name or a list of them; returns a tuple."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names:
        raise ValueError(
            f"{where}: expected a metric name or a list of them, got "
            f"{value!r:.60}"
        )
    for name in names:
        if name not in metrics.METRIC_NAMES:
            raise ValueError(
                f"{where}: unknown metric {name!r}; expected one of "
                f"{sorted(metrics.METRIC_NAMES)}"
            )
    return tuple(names)


def _check_name(name):
    """Checks that a task name can be a file name and a stats key."""
    if (
        not isinstance(name, str)
        or not name
        or any(c.isspace() or c in "/\\{}<>" for c in name)
    ):
        raise ValueError(
            f"task_definitions: task name {name!r} must be a non-empty "
            "string without spaces, slashes, braces or angle brackets (it "
            "names manifest files <split>/<task>.json)"
        )


def task_definitions(declared=None):
    """The built-in tasks merged with the tasks declared in hparams.

    Arguments
    ---------
    declared : dict, optional
        The hparams value ``task_definitions``: ``{name: {metric,
        instructions, text_instructions, language}}``. A new task needs
        ``metric``; its instructions are optional (manifests hold each
        example's instruction) but checked when given. For a built-in
        task, only the keys given replace the defaults. A task mapped to
        None is left as it is (so a command line can switch a file's
        declaration off).

    Returns
    -------
    dict
        ``{name: TaskDefinition}``: the built-in tasks, then the new ones
        in declaration order.

    Raises
    ------
    ValueError
        Naming the task and key at fault: unknown metric or key, an
        instruction without exactly one marker, a new task without metric.

    Example
    -------
    >>> table = task_definitions({"bird": {"metric": "accuracy",
    ...     "instructions": ["<audio> Which bird is singing?"]}})
    >>> table["bird"].metrics, "asr" in table
    (('accuracy',), True)
    >>> task_definitions({"bird": {"metric": "rouge"}})
    Traceback (most recent call last):
     ...
    ValueError: task_definitions.bird.metric: unknown metric 'rouge'; \
expected one of ['accuracy', 'bleu', 'cer', 'eer', 'exact_match', 'wer']
    """
    table = default_task_definitions()
    if not declared:
        return table
    if not isinstance(declared, dict):
        raise ValueError(
            "task_definitions: expected a mapping {task: {metric: ..., "
            f"instructions: [...]}}, got {type(declared).__name__}"
        )
    for name, spec in declared.items():
        if spec is None:
            continue
        _check_name(name)
        where = f"task_definitions.{name}"
        if not isinstance(spec, dict):
            raise ValueError(
                f"{where}: expected a mapping with keys "
                f"{list(DECLARATION_KEYS)}, got {type(spec).__name__}"
            )
        unknown = sorted(set(spec) - set(DECLARATION_KEYS))
        if unknown:
            raise ValueError(
                f"{where}: unknown keys {unknown}; expected some of "
                f"{list(DECLARATION_KEYS)}"
            )
        if name not in table and "metric" not in spec:
            raise ValueError(
                f"{where}: a new task needs a metric (one of "
                f"{sorted(metrics.METRIC_NAMES)})"
            )
        changes = {}
        if "metric" in spec:
            changes["metrics"] = _check_metrics(
                f"{where}.metric", spec["metric"]
            )
        if spec.get("instructions") is not None:
            changes["instructions"] = _check_templates(
                f"{where}.instructions",
                spec["instructions"],
                templates.AUDIO_MARKER,
            )
        if spec.get("text_instructions") is not None:
            changes["text_instructions"] = _check_templates(
                f"{where}.text_instructions",
                spec["text_instructions"],
                templates.TEXT_MARKER,
            )
        if "language" in spec:
            language = spec["language"]
            if not isinstance(language, str) or not language:
                raise ValueError(
                    f"{where}.language: expected a language code such as "
                    f"'en' or 'zh', got {language!r}"
                )
            changes["language"] = language
        base = table.get(name, TaskDefinition(name, ()))
        table[name] = replace(base, **changes)
    return table


def make_task_metrics(declared=None, **kwargs):
    """A :class:`~audiollm_lobes.metrics.TaskMetrics` for the task table.

    Arguments
    ---------
    declared : dict, optional
        The hparams value ``task_definitions`` (see
        :func:`task_definitions`).
    **kwargs
        Further arguments of ``TaskMetrics`` (``default_metric``).

    Returns
    -------
    audiollm_lobes.metrics.TaskMetrics
        Scoring every task with its metrics and language.

    Example
    -------
    >>> stats = make_task_metrics({"bird": {"metric": "accuracy"}})
    >>> stats.append("bird", ["a", "b"], ["Robin", "wren"], ["robin", "owl"])
    >>> stats.summarize()
    {'bird': {'accuracy': 50.0, 'n': 2}}
    """
    table = task_definitions(declared)
    return metrics.TaskMetrics(
        task_metrics={name: task.metrics for name, task in table.items()},
        task_languages={name: task.language for name, task in table.items()},
        **kwargs,
    )
