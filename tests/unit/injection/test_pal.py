"""PAL: routing of encoder token streams, and routing-table checks."""

import pytest
import torch

from audiollm_lobes.injection import PALRouter, check_routes


def test_router_packs_streams_and_checks_them():
    router = PALRouter({"a": "plits", "b": "lal", "c": "lal"})
    a = torch.randn(2, 2, 3)
    b = torch.arange(12.0).view(2, 2, 3)
    c = -torch.arange(6.0).view(2, 1, 3) - 1
    bm = torch.tensor([[1, 0], [1, 1]]).bool()
    cm = torch.tensor([[1], [1]]).bool()
    out = router(
        {"a": (a, torch.ones(2, 2).bool()), "b": (b, bm), "c": (c, cm)}
    )
    assert out.lal_mask.tolist() == [[True, True, False], [True, True, True]]
    assert torch.equal(out.lal[0, :2], torch.stack([b[0, 0], c[0, 0]]))
    assert torch.equal(out.lal[1], torch.cat([b[1], c[1]]))
    assert torch.all(out.lal[0, 2] == 0)
    with pytest.raises(ValueError, match="missing"):
        router({"a": (a, torch.ones(2, 2).bool())})
    with pytest.raises(ValueError, match="one of"):
        PALRouter({"a": "prefix"})
    with pytest.raises(ValueError, match="'c'"):
        router(
            {
                "a": (a, torch.ones(2, 2).bool()),
                "b": (b, bm),
                "c": (torch.randn(2, 1, 5), cm),
            }
        )


@pytest.mark.parametrize(
    "routes, connectors, streams, injector, beams, message",
    [
        ({}, {}, ["a"], False, 1, "non-empty dict"),
        ({"a": "ffn"}, {"a": 0}, ["a"], False, 1, "must be one of"),
        ({"a": "plits"}, {}, ["a"], False, 1, "no entry for routed"),
        ({"a": "plits"}, {"a": 0}, ["a", "b"], False, 1, "exactly the"),
        (
            {"fused": "plits", "a": "lal"},
            {"fused": 0, "a": 0},
            ["a"],
            True,
            1,
            "mixes",
        ),
        ({"a": "plits"}, {"a": 0}, ["a"], True, 1, "never train"),
        ({"a": "lal"}, {"a": 0}, ["a"], True, 0, "num_beams must be"),
        ({"a": "plits"}, {"a": 0}, ["a"], False, 2.5, "num_beams must be"),
    ],
)
def test_check_routes_errors(
    routes, connectors, streams, injector, beams, message
):
    with pytest.raises(ValueError, match=message):
        check_routes(routes, connectors, streams, injector, beams)


def test_check_routes_accepts_fused_and_per_stream_tables():
    assert check_routes({"fused": "lal"}, {"fused": 0}, None, True, 1) is False
    # LAL decodes with beams too (AttentionOnlyInjector.generate)
    assert check_routes({"fused": "lal"}, {"fused": 0}, None, True, 3) is False
    assert (
        check_routes(
            {"a": "plits", "b": "lal"}, {"a": 0, "b": 0}, ["b", "a"], True, 1
        )
        is True
    )
