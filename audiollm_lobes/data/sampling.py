"""Which training examples each epoch draws: fixed step budgets and task
shares.

Authors
 * audiollm-lobes developers, 2026
"""

from speechbrain.dataio.sampler import (
    ReproducibleRandomSampler,
    ReproducibleWeightedRandomSampler,
)


def train_loader_kwargs(hparams, train_set):
    """Train dataloader options, with a fixed number of steps per epoch.

    With ``steps_per_epoch`` in the hparams, each epoch draws
    ``steps_per_epoch * batch_size`` examples (a reproducible random
    sampler that cycles through shuffled passes of the data), so step
    budgets do not depend on the size of the data set. With
    ``task_sampling_weights`` (``{task: weight}``), examples are drawn with
    replacement so that each task makes up ``weight / sum(weights)`` of
    the draws whatever its size (see ``example_weights``).

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
    if task_weights:
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
