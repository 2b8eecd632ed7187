"""PAL: each audio encoder's tokens go to PLITS or to LAL.

PAL (Alex et al., "Probing Audio Encoders via LLMs") integrates every
audio encoder in its own way: its tokens are either spliced into the LLM
input (PLITS, ``plits.assemble_plits``) or injected as attention keys and
values only (LAL, ``lal.AttentionOnlyInjector``). A routing table
``{encoder name: "plits" | "lal"}`` says which; ``PALRouter`` splits the
token streams accordingly and ``check_routes`` validates a table against
the model's lobes (the PAL Brain uses both).

Authors
 * audiollm-lobes developers, 2026
"""

from typing import NamedTuple, Optional

import torch

from audiollm_lobes.injection.plits import pack_segments

#: The two ways an encoder's tokens reach the LLM.
ROUTES = ("plits", "lal")

#: Route name standing for the encoder's fused (concatenated) output.
FUSED = "fused"


def check_routes(routes, connectors, stream_names, has_injector, num_beams):
    """Validates a PAL routing table against the model's lobes.

    Arguments
    ---------
    routes : dict
        ``name -> "plits" | "lal"``.
    connectors : dict
        ``name -> connector``.
    stream_names : list of str or None
        The encoder's streams (None when it has no per-stream output).
    has_injector : bool
        Whether an ``injector`` module is given.
    num_beams : int
        Beam size for decoding (>= 1; LAL and PLITS both decode with
        beams, see ``AttentionOnlyInjector.generate``).

    Returns
    -------
    bool
        True when the routes name per-encoder streams, False for
        ``{"fused": ...}``.

    Example
    -------
    >>> check_routes({"fused": "plits"}, {"fused": None}, None, False, 1)
    False
    >>> check_routes({"a": "lal", "b": "plits"}, {"a": 0, "b": 0},
    ...              ["a", "b"], True, 4)  # LAL decodes with beams too
    True
    >>> check_routes({"a": "lal"}, {"a": 0}, ["a"], False, 1)
    Traceback (most recent call last):
    ...
    ValueError: routes send ['a'] to 'lal' but no `injector` module is given
    """
    if not isinstance(routes, dict) or not routes:
        raise ValueError(
            f"routes must be a non-empty dict name -> {ROUTES}; got {routes!r}"
        )
    bad = {name: r for name, r in routes.items() if r not in ROUTES}
    if bad:
        raise ValueError(f"routes {bad}: each route must be one of {ROUTES}")
    if not isinstance(connectors, dict):
        raise ValueError(
            "connectors must be a dict name -> connector; got "
            f"{type(connectors).__name__}"
        )
    missing = sorted(set(routes) - set(connectors))
    if missing:
        raise ValueError(
            f"connectors has no entry for routed streams {missing} "
            f"(connectors: {sorted(connectors)})"
        )
    per_stream = set(routes) != {FUSED}
    if per_stream:
        if FUSED in routes:
            raise ValueError(
                f"routes mixes {FUSED!r} with per-encoder streams "
                f"{sorted(routes)}; route either the fused output or every "
                "encoder stream"
            )
        if stream_names is None or set(routes) != set(stream_names):
            raise ValueError(
                f"routes {sorted(routes)} must name exactly the encoder's "
                f"streams {stream_names} (or be {{{FUSED!r}: ...}})"
            )
    to_lal = sorted(name for name, r in routes.items() if r == "lal")
    if to_lal and not has_injector:
        raise ValueError(
            f"routes send {to_lal} to 'lal' but no `injector` module is given"
        )
    if not to_lal and has_injector:
        raise ValueError(
            "an `injector` module is given but no route is 'lal' (its "
            "parameters would never train); remove it or route a stream "
            "to 'lal'"
        )
    if not isinstance(num_beams, int) or isinstance(num_beams, bool):
        raise ValueError(f"num_beams must be an int >= 1; got {num_beams!r}")
    if num_beams < 1:
        raise ValueError(f"num_beams must be an int >= 1; got {num_beams!r}")
    return per_stream


class PALRouting(NamedTuple):
    """Audio tokens split by route.

    Attributes
    ----------
    plits : torch.Tensor or None
        ``(batch, n_plits, dim)`` tokens to splice into the input.
    plits_mask : torch.Tensor or None
        ``(batch, n_plits)`` boolean.
    lal : torch.Tensor or None
        ``(batch, n_lal, dim)`` tokens for ``AttentionOnlyInjector``.
    lal_mask : torch.Tensor or None
        ``(batch, n_lal)`` boolean.
    """

    plits: Optional[torch.Tensor]
    plits_mask: Optional[torch.Tensor]
    lal: Optional[torch.Tensor]
    lal_mask: Optional[torch.Tensor]


class PALRouter:
    """Sends each encoder's token stream to PLITS or to LAL (PAL).

    Streams routed to the same place are concatenated per sample in the
    order of the routing table, valid tokens first (right-padded), so
    padding of one stream never sits between the tokens of the next.

    Arguments
    ---------
    routes : dict
        Encoder name -> ``"plits"`` or ``"lal"``, e.g.
        ``{"whisper": "plits", "beats": "lal"}``.

    Example
    -------
    >>> router = PALRouter({"whisper": "plits", "beats": "lal"})
    >>> w, b = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    >>> wm, bm = torch.ones(2, 3).bool(), torch.ones(2, 5).bool()
    >>> out = router({"whisper": (w, wm), "beats": (b, bm)})
    >>> out.plits.shape, out.lal.shape
    (torch.Size([2, 3, 4]), torch.Size([2, 5, 4]))
    """

    def __init__(self, routes):
        if not isinstance(routes, dict) or not routes:
            raise ValueError(
                "routes must be a non-empty dict encoder -> 'plits'|'lal'; "
                f"got {routes!r}"
            )
        bad = {k: v for k, v in routes.items() if v not in ROUTES}
        if bad:
            raise ValueError(
                f"unknown routes {bad}: each encoder goes to one of {ROUTES}"
            )
        self.routes = dict(routes)

    def __call__(self, streams):
        """Splits the streams.

        Arguments
        ---------
        streams : dict
            Encoder name -> ``(tokens (batch, n, dim), mask (batch, n))``;
            the names must be exactly those of the routing table.

        Returns
        -------
        PALRouting
            Tokens and masks per route (None for an unused route).

        Example
        -------
        >>> router = PALRouter({"a": "lal", "b": "lal"})
        >>> a = torch.tensor([[[1.0], [0.0]]])
        >>> b = torch.tensor([[[2.0], [3.0]]])
        >>> out = router({
        ...     "a": (a, torch.tensor([[True, False]])),
        ...     "b": (b, torch.tensor([[True, True]])),
        ... })
        >>> out.lal.squeeze(-1).tolist(), out.plits is None
        ([[1.0, 2.0, 3.0]], True)
        """
        missing = [name for name in self.routes if name not in streams]
        extra = [name for name in streams if name not in self.routes]
        if missing or extra:
            raise ValueError(
                f"streams {sorted(streams)} do not match the routing table "
                f"{sorted(self.routes)} (missing: {missing}, unrouted: "
                f"{extra})"
            )
        grouped = {route: ([], []) for route in ROUTES}
        batch = dim = None
        for name, route in self.routes.items():
            tokens, mask = streams[name]
            if tokens.dim() != 3 or mask.shape != tokens.shape[:2]:
                raise ValueError(
                    f"stream {name!r}: expected tokens (batch, n, dim) and "
                    f"mask (batch, n); got {tuple(tokens.shape)} and "
                    f"{tuple(mask.shape)}"
                )
            if batch is None:
                batch, dim = tokens.shape[0], tokens.shape[2]
            elif (tokens.shape[0], tokens.shape[2]) != (batch, dim):
                raise ValueError(
                    f"stream {name!r} has batch/dim "
                    f"{(tokens.shape[0], tokens.shape[2])}, others have "
                    f"{(batch, dim)}"
                )
            grouped[route][0].append(tokens)
            grouped[route][1].append(mask.bool())
        result = {}
        for route, (values, masks) in grouped.items():
            if not values:
                result[route], result[route + "_mask"] = None, None
            elif len(values) == 1:
                result[route] = values[0] * masks[0][..., None]
                result[route + "_mask"] = masks[0]
            else:
                packed, mask, _ = pack_segments(values, masks)
                result[route], result[route + "_mask"] = packed, mask
        return PALRouting(**result)
