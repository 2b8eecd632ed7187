"""Which training examples each epoch draws and how they are batched:
fixed step budgets, task shares, dynamic (duration-bucketed) batches.

Authors
 * audiollm-lobes developers, 2026
"""

from speechbrain.dataio.sampler import (
    DynamicBatchSampler,
    ReproducibleRandomSampler,
    ReproducibleWeightedRandomSampler,
)

#: Keys of the ``dynamic_batching`` hparam (``DynamicBatchSampler``'s).
DYNAMIC_BATCHING_KEYS = (
    "max_batch_length",
    "num_buckets",
    "bucket_boundaries",
    "max_batch_ex",
    "shuffle",
    "batch_ordering",
    "drop_last",
)
#: Loader options a ``batch_sampler`` replaces.
_BATCH_OPTIONS = ("batch_size", "shuffle", "sampler", "drop_last")


def train_loader_kwargs(hparams, train_set):
    """Train dataloader options, with a fixed number of steps per epoch.

    With ``steps_per_epoch`` in the hparams, each epoch draws
    ``steps_per_epoch * batch_size`` examples (a reproducible random
    sampler that cycles through shuffled passes of the data), so step
    budgets do not depend on the size of the data set. With
    ``task_sampling_weights`` (``{task: weight}``), examples are drawn with
    replacement so that each task makes up ``weight / sum(weights)`` of
    the draws whatever its size (see ``example_weights``).

    With ``dynamic_batching`` (``{max_batch_length: seconds, num_buckets:
    n}``, or any of ``DYNAMIC_BATCHING_KEYS``), SpeechBrain's
    ``DynamicBatchSampler`` groups examples of similar ``duration`` into
    batches of at most ``max_batch_length`` seconds of audio (shuffled
    reproducibly from ``seed``), replacing ``batch_size``; with
    ``steps_per_epoch`` too, an epoch is that many such batches (the
    loader loops over the data, ``looped_nominal_epoch``). It cannot be
    combined with ``task_sampling_weights``.

    Arguments
    ---------
    hparams : dict
        Loaded hparams (``train_dataloader_opts``, optional
        ``steps_per_epoch``, ``seed``).
    train_set : torch.utils.data.Dataset
        The training set.

    Returns
    -------
    dict
        Keyword arguments for ``Brain.fit(train_loader_kwargs=...)``.

    Example
    -------
    >>> opts = train_loader_kwargs(
    ...     {"train_dataloader_opts": {"batch_size": 4, "shuffle": True},
    ...      "steps_per_epoch": 3}, list(range(5)))
    >>> len(opts["sampler"]), "shuffle" in opts
    (12, False)
    """
    opts = dict(hparams["train_dataloader_opts"])
    steps = hparams.get("steps_per_epoch")
    task_weights = hparams.get("task_sampling_weights")
    dynamic = hparams.get("dynamic_batching")
    if dynamic:
        if task_weights:
            raise ValueError(
                "dynamic_batching cannot be combined with "
                "task_sampling_weights (drawn with replacement); set one"
            )
        for key in _BATCH_OPTIONS:
            opts.pop(key, None)
        opts["batch_sampler"] = dynamic_batch_sampler(
            train_set, dynamic, seed=int(hparams.get("seed", 0))
        )
        if steps:
            opts["looped_nominal_epoch"] = int(steps)
    elif task_weights:
        opts.pop("shuffle", None)
        n_samples = (
            int(steps) * int(opts["batch_size"]) if steps else len(train_set)
        )
        opts["sampler"] = ReproducibleWeightedRandomSampler(
            example_weights(train_set, task_weights),
            num_samples=n_samples,
            replacement=True,
            seed=int(hparams.get("seed", 0)),
        )
    elif steps:
        opts.pop("shuffle", None)
        opts["sampler"] = ReproducibleRandomSampler(
            train_set,
            seed=int(hparams.get("seed", 0)),
            num_samples=int(steps) * int(opts["batch_size"]),
        )
    return opts


def example_weights(train_set, task_weights):
    """Per-example sampling weights giving each task its share of draws.

    Arguments
    ---------
    train_set : DynamicItemDataset
        The training set (its entries have a ``task``).
    task_weights : dict
        ``{task: weight >= 0}``; every task of the set must be listed.

    Returns
    -------
    list of float
        ``weight[task] / n_examples[task]`` for each example, in order.

    Example
    -------
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> data = DynamicItemDataset({"a": {"task": "asr"}, "b": {"task": "asr"},
    ...                            "c": {"task": "emotion"}})
    >>> example_weights(data, {"asr": 3, "emotion": 1})
    [1.5, 1.5, 1.0]
    """
    tasks = [train_set.data[i]["task"] for i in train_set.data_ids]
    counts = {}
    for task in tasks:
        counts[task] = counts.get(task, 0) + 1
    missing = sorted(set(counts) - set(task_weights))
    if missing:
        raise ValueError(
            f"task_sampling_weights: no weight for the training tasks "
            f"{missing}; expected one for each of {sorted(counts)}"
        )
    bad = {t: w for t, w in task_weights.items() if float(w) < 0}
    if bad or not any(float(task_weights[t]) > 0 for t in counts):
        raise ValueError(
            f"task_sampling_weights: expected weights >= 0, not all zero, "
            f"got {dict(task_weights)}"
        )
    return [float(task_weights[t]) / counts[t] for t in tasks]


def dynamic_batch_sampler(train_set, options, seed=0):
    """SpeechBrain's ``DynamicBatchSampler`` from the ``dynamic_batching``
    hparam, checked.

    Arguments
    ---------
    train_set : DynamicItemDataset
        Its entries have a ``duration`` (seconds).
    options : dict
        ``max_batch_length`` (seconds of audio per batch, required) and
        ``num_buckets`` or ``bucket_boundaries`` (seconds), optionally
        ``max_batch_ex``, ``shuffle``, ``batch_ordering``, ``drop_last``.
    seed : int
        Shuffling seed (plus the epoch number, see ``set_epoch``).

    Returns
    -------
    speechbrain.dataio.sampler.DynamicBatchSampler
        Yields lists of example indices.

    Example
    -------
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> data = DynamicItemDataset(
    ...     {str(i): {"duration": 1.0 + i % 3} for i in range(18)})
    >>> sampler = dynamic_batch_sampler(
    ...     data, {"max_batch_length": 6, "bucket_boundaries": [1, 2, 3]})
    >>> batches = list(sampler)
    >>> sorted(len(b) for b in batches)  # 6 s: 6 x 1 s, 3 x 2 s, 2 x 3 s
    [2, 2, 2, 3, 3, 6]
    >>> sorted(i for b in batches for i in b) == list(range(18))
    True
    """
    options = dict(options)
    unknown = sorted(set(options) - set(DYNAMIC_BATCHING_KEYS))
    if unknown:
        raise ValueError(
            f"dynamic_batching: unknown keys {unknown}; expected some of "
            f"{list(DYNAMIC_BATCHING_KEYS)}"
        )
    length = options.get("max_batch_length")
    if length is None or not float(length) > 0:
        raise ValueError(
            f"dynamic_batching: max_batch_length must be a positive number "
            f"of seconds, got {length!r}"
        )
    if not options.get("num_buckets") and not options.get("bucket_boundaries"):
        raise ValueError(
            "dynamic_batching: give num_buckets (e.g. 10) or "
            "bucket_boundaries (seconds)"
        )
    no_duration = [
        eid
        for eid in train_set.data_ids
        if "duration" not in train_set.data[eid]
    ]
    if no_duration:
        raise ValueError(
            f"dynamic_batching: {len(no_duration)} training examples have no "
            f"duration (e.g. {no_duration[:3]}); expected seconds in each"
        )
    return DynamicBatchSampler(
        train_set,
        max_batch_length=float(length),
        num_buckets=options.get("num_buckets"),
        bucket_boundaries=list(options.get("bucket_boundaries") or []),
        max_batch_ex=options.get("max_batch_ex"),
        shuffle=bool(options.get("shuffle", True)),
        batch_ordering=options.get("batch_ordering", "random"),
        drop_last=bool(options.get("drop_last", False)),
        seed=int(seed),
    )
