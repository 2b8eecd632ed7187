"""Ways audio tokens enter a frozen causal LM, laid out like the PAL paper.

* ``plits``: PLITS, the audio tokens spliced into the input embeddings
  (``assemble_plits``, ``pack_segments``, ``PLITSSequence``);
* ``lal``: LAL, the audio tokens as extra attention keys/values of chosen
  layers only (``AttentionOnlyInjector``, running on a ``CausalLM``);
* ``pal``: PAL, a per-encoder choice between the two (``PALRouter``,
  ``check_routes``).

The public names are re-exported here, e.g.
``from audiollm_lobes.injection import assemble_plits``.

Authors
 * audiollm-lobes developers, 2026
"""

from audiollm_lobes.injection.lal import (
    AUDIO_ROPE,
    KV_PROJECTIONS,
    LAL_ATTENTION,
    AttentionOnlyInjector,
    lal_attention_forward,
    text_attention_mask,
)
from audiollm_lobes.injection.pal import (
    FUSED,
    ROUTES,
    PALRouter,
    PALRouting,
    check_routes,
)
from audiollm_lobes.injection.plits import (
    PLITSSequence,
    assemble_plits,
    pack_segments,
)

__all__ = [
    "AUDIO_ROPE",
    "FUSED",
    "KV_PROJECTIONS",
    "LAL_ATTENTION",
    "ROUTES",
    "AttentionOnlyInjector",
    "PALRouter",
    "PALRouting",
    "PLITSSequence",
    "assemble_plits",
    "check_routes",
    "lal_attention_forward",
    "pack_segments",
    "text_attention_mask",
]
