"""PALBrain: AudioLLMBrain with per-stream routing to PLITS and/or LAL.

PAL (Alex et al.) integrates each audio encoder in its own way: its
tokens are either spliced into the LLM input (PLITS) or injected as
attention keys/values only (LAL, ``lal.AttentionOnlyInjector``). This
Brain generalises the shared loop with a routing table::

    wav ─► FusedEncoder ─► per-stream features (or the fused features)
        ─► one connector per routed stream ─► PALRouter
        ─► PLITS tokens: spliced into the sequence (``assemble_plits``)
        ─► LAL tokens: per-layer K/V of ``injector`` (loss and decoding
           then run through the injector instead of ``llm.loss/generate``)

Expected hparams, on top of ``AudioLLMBrain``'s:
    ``routes`` (dict ``name -> "plits" | "lal"``), ``connectors`` (dict
    ``name -> connector``, one per route), ``modules.injector``
    (``AttentionOnlyInjector``) when a route is ``"lal"``. The route
    name ``"fused"`` (``FUSED``) means the encoder's fused output; any
    other names must be exactly the ``FusedEncoder``'s streams, each then
    getting its own connector.

It also records the wall time of every training step and the process's
peak resident memory (``efficiency()``), so that runs can report what
they cost.

Authors
 * audiollm-lobes developers, 2026
"""

import resource
import statistics
import time

import speechbrain as sb

from audiollm_lobes.brain import AudioLLMBrain
from audiollm_lobes.lal import ROUTES, PALRouter

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
        Beam size for decoding (LAL decodes greedily only).

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
    ...              ["a", "b"], True, 1)
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
    if to_lal and int(num_beams) != 1:
        raise ValueError(
            f"num_beams={num_beams}: LAL decoding is greedy; set num_beams: 1"
        )
    return per_stream


class PALBrain(AudioLLMBrain):
    """AudioLLMBrain routing each audio stream to PLITS or LAL.

    See the module docstring for the hparams. ``audio_tokens`` returns the
    PLITS tokens (possibly none) and keeps the LAL tokens of the current
    batch in ``self.lal_audio``; ``llm_loss``/``llm_generate`` run the
    injector with them when there are any.

    Example
    -------
    >>> PALBrain.llm_loss.__name__
    'llm_loss'
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        encoder = self.modules.encoder
        streams = getattr(encoder, "stream_dims", None)
        self.routes = dict(self._hp("routes", None) or {})
        self.per_stream = check_routes(
            self.routes,
            self._hp("connectors", None),
            None if streams is None else list(streams),
            getattr(self.modules, "injector", None) is not None,
            self._hp("num_beams", 1),
        )
        self.router = PALRouter(self.routes)
        self.lal_audio = (None, None)
        self.step_times = []
        self.peak_rss_mb = None

    # ------------------------------------------------------------ audio
    def encode_audio(self, batch):
        """Fused ``(feats, mask)``, or ``({stream: (feats, mask)}, None)``.

        Per-stream features are cached like the fused ones (by audio key,
        on the CPU) with ``cache_encoder_features: True``.
        """
        if not self.per_stream:
            return super().encode_audio(batch)
        encoder = self.modules.encoder
        if not self._hp("cache_encoder_features", False):
            wavs, wav_lens = batch.sig
            _, _, streams = encoder(wavs, wav_lens, return_streams=True)
            return streams, None
        streams = self.cached_features(
            batch,
            lambda w, lens: encoder(w, lens, return_streams=True)[2],
            cache_name="_stream_cache",
        )
        return {name: streams[name] for name in self.routes}, None

    def audio_tokens(self, feats, mask, batch, stage):
        """Connects and routes the streams; returns the PLITS tokens.

        Arguments
        ---------
        feats : torch.Tensor or dict
            ``(batch, frames, dim)`` fused features, or per-stream
            ``{name: (feats, mask)}`` from ``encode_audio``.
        mask : torch.Tensor or None
            ``(batch, frames)`` for fused features.
        batch : PaddedBatch
            Unused.
        stage : sb.Stage
            Unused.

        Returns
        -------
        tokens : torch.Tensor
            ``(batch, n_plits, llm_dim)``; ``n_plits`` is 0 when every
            stream goes to LAL.
        mask : torch.Tensor
            ``(batch, n_plits)`` boolean.
        """
        del batch, stage
        streams = feats if isinstance(feats, dict) else {FUSED: (feats, mask)}
        connectors = self.hparams.connectors
        tokens = {
            name: connectors[name](*streams[name]) for name in self.routes
        }
        routed = self.router(tokens)
        self.lal_audio = (routed.lal, routed.lal_mask)
        if routed.plits is not None:
            return routed.plits, routed.plits_mask
        lal = routed.lal
        empty = lal.new_zeros(lal.shape[0], 0, lal.shape[2])
        return empty, routed.lal_mask[:, :0]

    # -------------------------------------------------------------- LLM
    def llm_loss(self, seq, batch, stage):
        """CE through the injector when LAL tokens exist, else ``llm.loss``.

        Arguments
        ---------
        seq : PackedSequence
            The PLITS part of the input, with labels.
        batch : PaddedBatch
            The batch.
        stage : sb.Stage
            The stage.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        lal, lal_mask = self.lal_audio
        if lal is None:
            return super().llm_loss(seq, batch, stage)
        return self.modules.injector.loss(
            seq.embeds, seq.mask, seq.labels, audio=lal, audio_mask=lal_mask
        )

    def llm_generate(self, seq, batch, stage):
        """Greedy decoding continuing from the LAL KV cache (if any).

        Arguments
        ---------
        seq : PackedSequence
            The prompt (PLITS part), without answer.
        batch : PaddedBatch
            The batch.
        stage : sb.Stage
            The stage.

        Returns
        -------
        torch.LongTensor
            ``(batch, n_new)`` token ids.
        """
        lal, lal_mask = self.lal_audio
        if lal is None:
            return super().llm_generate(seq, batch, stage)
        return self.modules.injector.generate(
            lal,
            lal_mask,
            seq.embeds,
            seq.mask,
            max_new_tokens=self._hp("max_new_tokens", 48),
        )

    # ------------------------------------------------------- efficiency
    def fit_batch(self, batch):
        """One optimisation step, timed (wall clock)."""
        start = time.perf_counter()
        loss = super().fit_batch(batch)
        self.step_times.append(time.perf_counter() - start)
        return loss

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Records the peak RSS after each training epoch, then as usual."""
        if stage == sb.Stage.TRAIN:
            self.peak_rss_mb = peak_rss_mb()
        super().on_stage_end(stage, stage_loss, epoch)

    def efficiency(self):
        """Measured cost of the training steps of this process.

        Returns
        -------
        dict
            ``train_steps``; ``train_step_seconds_median`` and ``_mean``
            over the steps after the first (warm-up; all steps when there
            is only one); ``peak_rss_mb`` of the process at the end of
            training (includes the frozen weights and the data).

        Example
        -------
        >>> PALBrain.efficiency.__name__
        'efficiency'
        """
        times = self.step_times[1:] or self.step_times
        return {
            "train_steps": len(self.step_times),
            "train_step_seconds_median": (
                statistics.median(times) if times else None
            ),
            "train_step_seconds_mean": (
                statistics.fmean(times) if times else None
            ),
            "peak_rss_mb": self.peak_rss_mb,
        }


def peak_rss_mb():
    """Peak resident memory of this process so far, in MiB (Linux).

    Returns
    -------
    float
        ``ru_maxrss`` (KiB on Linux) / 1024.

    Example
    -------
    >>> peak_rss_mb() > 0
    True
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
