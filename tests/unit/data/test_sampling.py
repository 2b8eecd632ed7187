"""Train loader options: dynamic (duration-bucketed) batches."""

import pytest
from speechbrain.dataio.dataset import DynamicItemDataset

from audiollm_lobes.data.sampling import train_loader_kwargs

DURATIONS = [0.5 + 0.25 * (i * 7 % 11) for i in range(60)]  # 0.5 .. 3.0 s


def _data():
    return DynamicItemDataset(
        {f"e{i}": {"duration": d} for i, d in enumerate(DURATIONS)}
    )


def _hparams(**extra):
    return {
        "train_dataloader_opts": {
            "batch_size": 8,
            "shuffle": True,
            "num_workers": 0,
        },
        "seed": 5,
        "dynamic_batching": {"max_batch_length": 6.0, "num_buckets": 4},
        **extra,
    }


def test_dynamic_batches_cover_the_data_within_the_length_budget():
    opts = train_loader_kwargs(_hparams(), _data())
    # the sampler replaces batch_size and shuffle; other options stay
    assert set(opts) == {"batch_sampler", "num_workers"}
    batches = list(opts["batch_sampler"])
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(DURATIONS)))  # each example once
    for batch in batches:
        # padded length: the longest clip times the batch size
        if len(batch) > 1:
            assert max(DURATIONS[i] for i in batch) * len(batch) <= 6.0 + 1e-9
    # not one batch size: more short clips per batch than long ones
    assert len({len(b) for b in batches}) > 1
    # reproducible from the seed
    again = train_loader_kwargs(_hparams(), _data())["batch_sampler"]
    assert list(again) == batches


def test_dynamic_batches_with_a_step_budget_loop_over_the_data():
    opts = train_loader_kwargs(_hparams(steps_per_epoch=50), _data())
    assert opts["looped_nominal_epoch"] == 50
    assert "sampler" not in opts


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"task_sampling_weights": {"asr": 1}}, "task_sampling_weights"),
        ({"dynamic_batching": {"max_batch_length": 6.0}}, "num_buckets"),
        ({"dynamic_batching": {"num_buckets": 4}}, "max_batch_length"),
        (
            {"dynamic_batching": {"max_batch_length": 6, "buckets": 4}},
            "unknown keys",
        ),
    ],
)
def test_bad_dynamic_batching_options_are_named(extra, message):
    with pytest.raises(ValueError, match=message):
        train_loader_kwargs(_hparams(**extra), _data())


def test_examples_without_a_duration_are_named():
    data = DynamicItemDataset({"a": {"duration": 1.0}, "b": {}})
    with pytest.raises(ValueError, match=r"no duration \(e.g. \['b'\]\)"):
        train_loader_kwargs(_hparams(), data)
