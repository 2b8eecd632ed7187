"""Backbone widths declared in hparams, checked against the loaded models.

Paper-scale hparams state the widths of the published backbones so that
the trainable lobes can be sized (and tested on the ``meta`` device)
without weights. When a user then points the sources at real checkpoints,
:func:`check_backbone_widths` compares every declared width with the
loaded models before training starts, and stops with a message naming the
field and both values.

The fields, read off the loaded backbones:

=================  ===================================================
``llm_dim``        the LLM's hidden size (``CausalLM.hidden_size``)
``llm_layers``     its number of decoder layers
``encoder_dim``    the encoder's output width (fused width for several)
``<stream>_dim``   each stream of a ``FusedEncoder`` (e.g. ``whisper_dim``,
                   ``beats_dim``)
=================  ===================================================

A declared ``*_dim`` field that is none of these (e.g. a typo, or a
stream name the encoder does not have) is an error too, so a width can
never silently go unchecked.

Authors
 * audiollm-lobes developers, 2026
"""

#: Width fields a recipe may declare that are not backbone widths.
LOBE_WIDTH_FIELDS = frozenset(
    {"hidden_dim", "ffn_dim", "qformer_dim", "key_dim", "audio_dim"}
)


def loaded_widths(llm, encoder):
    """Widths of loaded backbones, by hparams field name.

    Arguments
    ---------
    llm : audiollm_lobes.llm.CausalLM
        Has ``hidden_size`` and ``config.num_hidden_layers``.
    encoder : torch.nn.Module
        Has ``output_dim``; a ``FusedEncoder`` also ``stream_dims``.

    Returns
    -------
    dict
        ``{field: int}``.

    Example
    -------
    >>> from types import SimpleNamespace as NS
    >>> llm = NS(hidden_size=16, config=NS(num_hidden_layers=2))
    >>> enc = NS(output_dim=12, stream_dims={"whisper": 8, "beats": 4})
    >>> loaded_widths(llm, enc)  # doctest: +NORMALIZE_WHITESPACE
    {'llm_dim': 16, 'llm_layers': 2, 'encoder_dim': 12, 'whisper_dim': 8,
     'beats_dim': 4}
    """
    out = {"llm_dim": int(llm.hidden_size)}
    layers = getattr(getattr(llm, "config", None), "num_hidden_layers", None)
    if layers is not None:
        out["llm_layers"] = int(layers)
    if getattr(encoder, "output_dim", None) is not None:
        out["encoder_dim"] = int(encoder.output_dim)
    for name, dim in (getattr(encoder, "stream_dims", None) or {}).items():
        out[f"{name}_dim"] = int(dim)
    return out


def check_backbone_widths(hparams, extra_fields=()):
    """Stops early when declared widths do not match the loaded backbones.

    Arguments
    ---------
    hparams : dict
        Loaded hparams with ``llm`` and ``encoder``; the declared fields
        (see the module docstring) are checked when present.
    extra_fields : iterable of str
        Further ``*_dim`` fields of the recipe that are not backbone
        widths (sizes of its own lobes).

    Returns
    -------
    dict
        ``{field: width}`` of the fields checked.

    Example
    -------
    >>> from types import SimpleNamespace as NS
    >>> hp = {"llm": NS(hidden_size=16, config=NS(num_hidden_layers=2)),
    ...       "encoder": NS(output_dim=8, stream_dims={"whisper": 8}),
    ...       "llm_dim": 16, "whisper_dim": 8}
    >>> check_backbone_widths(hp)
    {'llm_dim': 16, 'whisper_dim': 8}
    >>> check_backbone_widths(dict(hp, llm_layers=16))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: hparams declare llm_layers=16 but the loaded backbone has 2...
    >>> check_backbone_widths(dict(hp, audio_encoder_dim=768))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: hparams declare audio_encoder_dim=768, which matches no ...
    """
    loaded = loaded_widths(hparams["llm"], hparams["encoder"])
    skip = LOBE_WIDTH_FIELDS | set(extra_fields)
    checked = {}
    for field, value in hparams.items():
        if field in loaded:
            if int(value) != loaded[field]:
                raise ValueError(
                    f"hparams declare {field}={value} but the loaded "
                    f"backbone has {loaded[field]}; override "
                    f"--{field}={loaded[field]} or give a matching checkpoint"
                )
            checked[field] = loaded[field]
        elif field.endswith("_dim") and field not in skip:
            raise ValueError(
                f"hparams declare {field}={value}, which matches no loaded "
                f"backbone width (known: {sorted(loaded)}); name the encoder "
                "stream it sizes (<stream>_dim) or list it as a lobe width"
            )
    return checked
