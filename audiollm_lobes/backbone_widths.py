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

A trained model also records what it expects of its backbones
(:func:`backbone_signature`: the sources, these widths, the tokenizer's
vocabulary fingerprint and special ids, the sample rate), in
``backbones.json`` of its run folder or export. Loading it on other
backbones (:class:`audiollm_lobes.inference.AudioLLM`) is refused by
:func:`check_backbone_signature`, with both sides named.

Authors
 * audiollm-lobes developers, 2026
"""

import hashlib
import json

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


def tokenizer_signature(llm):
    """What identifies an LLM's tokenizer: class, size, vocabulary hash,
    special ids.

    Arguments
    ---------
    llm : audiollm_lobes.llm.CausalLM
        The LLM (``tokenizer``, ``bos_id``, ``eos_ids``, ``pad_id``).

    Returns
    -------
    dict
        ``{"class", "vocab_size", "vocab_sha256", "bos_id", "eos_ids",
        "pad_id"}`` (JSON-ready).

    Example
    -------
    >>> import tempfile
    >>> from audiollm_lobes.llm import CausalLM
    >>> from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
    >>> llm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
    >>> sig = tokenizer_signature(llm)
    >>> sig["vocab_size"] == len(llm.tokenizer), len(sig["vocab_sha256"])
    (True, 64)
    """
    tokenizer = llm.tokenizer
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    digest = hashlib.sha256(
        json.dumps(vocab, ensure_ascii=False).encode("utf-8")
    ).hexdigest()
    return {
        "class": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "vocab_sha256": digest,
        "bos_id": llm.bos_id,
        "eos_ids": sorted(int(i) for i in llm.eos_ids),
        "pad_id": llm.pad_id,
    }


def backbone_signature(hparams):
    """What a model trained with these hparams expects of its backbones.

    Arguments
    ---------
    hparams : dict
        Loaded hparams with ``llm`` and ``encoder``; every string field
        ending in ``_source`` is recorded as a source.

    Returns
    -------
    dict
        ``{"sources": {field: source}, "widths": {field: int},
        "tokenizer": tokenizer_signature, "sample_rate": int}``.

    Example
    -------
    >>> import tempfile
    >>> from types import SimpleNamespace as NS
    >>> from audiollm_lobes.llm import CausalLM
    >>> from audiollm_lobes.toyworld.toy_lm import make_tiny_lm_folder
    >>> llm = CausalLM(make_tiny_lm_folder(tempfile.mkdtemp()))
    >>> sig = backbone_signature({"llm": llm, "llm_source": "my/lm",
    ...     "encoder": NS(output_dim=12)})
    >>> sig["sources"], sig["widths"]["encoder_dim"], sig["sample_rate"]
    ({'llm_source': 'my/lm'}, 12, 16000)
    """
    return {
        "sources": {
            key: value
            for key, value in hparams.items()
            if key.endswith("_source") and isinstance(value, str)
        },
        "widths": loaded_widths(hparams["llm"], hparams.get("encoder")),
        "tokenizer": tokenizer_signature(hparams["llm"]),
        "sample_rate": int(hparams.get("sample_rate", 16000)),
    }


def _describe(signature, field):
    source = signature.get("sources", {}).get(field)
    return f" ({field}: {source})" if source else ""


def check_backbone_signature(expected, loaded, where="the model"):
    """Refuses backbones other than those a model was trained with.

    Arguments
    ---------
    expected : dict
        The recorded :func:`backbone_signature` (``backbones.json``).
    loaded : dict
        The signature of the backbones loaded now.
    where : str
        Names the model in the message (e.g. its folder).

    Raises
    ------
    ValueError
        One line per difference, naming the field, the recorded value
        with its source and the loaded value with its source.

    Example
    -------
    >>> old = {"sources": {"llm_source": "a"}, "widths": {"llm_dim": 8},
    ...        "tokenizer": {"vocab_size": 10}, "sample_rate": 16000}
    >>> check_backbone_signature(old, old)
    >>> new = {"sources": {"llm_source": "b"}, "widths": {"llm_dim": 16},
    ...        "tokenizer": {"vocab_size": 10}, "sample_rate": 16000}
    >>> check_backbone_signature(old, new, "run/1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
     ...
    ValueError: run/1 was trained on other backbones than those loaded:
      llm_dim: trained with 8 (llm_source: a), loaded 16 (llm_source: b)...
    """
    lines = []
    for field, value in sorted(expected.get("widths", {}).items()):
        got = loaded.get("widths", {}).get(field)
        if got != value:
            source = "llm_source" if field.startswith("llm") else None
            if source is None:
                stream = field[: -len("_dim")]
                source = f"{stream}_source"
                if source not in expected.get("sources", {}):
                    source = None
            was = _describe(expected, source) if source else ""
            now = _describe(loaded, source) if source else ""
            lines.append(
                f"  {field}: trained with {value}{was}, loaded {got}{now}"
            )
    old_tok = expected.get("tokenizer") or {}
    new_tok = loaded.get("tokenizer") or {}
    differ = [k for k in sorted(old_tok) if old_tok.get(k) != new_tok.get(k)]
    if differ:
        shown = ", ".join(
            f"{k} {old_tok.get(k)!r} vs {new_tok.get(k)!r}"
            for k in differ
            if k != "vocab_sha256"
        )
        if "vocab_sha256" in differ:
            shown = (shown + ", " if shown else "") + "vocabulary differs"
        lines.append(
            "  tokenizer: trained with the tokenizer of"
            f"{_describe(expected, 'llm_source') or ' its LLM'}, loaded the "
            f"tokenizer of{_describe(loaded, 'llm_source') or ' another'}: "
            + shown
        )
    old_rate, new_rate = expected.get("sample_rate"), loaded.get("sample_rate")
    if old_rate is not None and old_rate != new_rate:
        lines.append(f"  sample_rate: trained with {old_rate}, now {new_rate}")
    if lines:
        raise ValueError(
            f"{where} was trained on other backbones than those loaded:\n"
            + "\n".join(lines)
            + "\n(point the sources at the backbones it was trained with; "
            "they are listed in its backbones.json)"
        )
