#!/usr/bin/env python3
"""PAL: PLITS vs attention-only LAL vs encoder-aware PAL integration of
audio encoders into a frozen LLM (Alex et al., "PAL: Probing Audio
Encoders via LLMs").

* PLITS (``hparams/plits.yaml``): fused Whisper + BEATs features -> window
  Q-Former -> audio tokens spliced into the LLM input (every layer, FFN
  included).
* LAL (``hparams/lal.yaml``): the same tokens enter only as extra
  attention keys/values of the chosen layers; queries and FFNs see text
  only (``audiollm_lobes.injection.lal.AttentionOnlyInjector``).
* PAL (``hparams/pal.yaml``): per-encoder routing; Whisper tokens (own
  Q-Former) through PLITS, BEATs tokens (own Q-Former) through LAL.

Single-stage multitask training over sound-event classification,
captioning, spoken QA, emotion and ASR with the same step budget for all
three; per-task test metrics, trainable-parameter count, and the measured
train step time and peak memory of the run in ``summary.json`` /
``results.md``.

``PALBrain`` generalises the shared loop with a routing table::

    wav ─► FusedEncoder ─► per-stream features (or the fused features)
        ─► one connector per routed stream ─► PALRouter
        ─► PLITS tokens: spliced into the sequence (``assemble_plits``)
        ─► LAL tokens: per-layer K/V of ``injector`` (loss and decoding
           then run through the injector instead of ``llm.loss/generate``)

Hparams on top of ``AudioLLMBrain``'s: ``routes`` (``name -> "plits" |
"lal"``), ``connectors`` (``name -> connector``, one per route, each
also listed in ``modules:`` so that it trains, and under DDP has its
gradients averaged), ``modules.injector`` (``AttentionOnlyInjector``)
when a route is ``"lal"``. The route name ``"fused"`` means the
encoder's fused output; any other names must be exactly the
``FusedEncoder``'s streams, each then getting its own connector
(``audiollm_lobes.injection.pal.check_routes``).

To run (from the repo root or from this folder; the toy world is built
on first use)::

    python recipes/PAL/train.py hparams/plits.yaml
    python recipes/PAL/train.py hparams/lal.yaml --kv_projection=new
    python recipes/PAL/train.py hparams/pal.yaml
    torchrun --nproc_per_node=2 recipes/PAL/train.py hparams/pal.yaml \\
        --distributed_backend=gloo        # DDP (nccl on GPUs)

Authors
 * audiollm-lobes developers, 2026
"""

import logging
import statistics
import sys
import time

import speechbrain as sb
from speechbrain.utils.distributed import run_on_main

from audiollm_lobes.backbone_widths import check_backbone_widths
from audiollm_lobes.brain import AudioLLMBrain
from audiollm_lobes.cli import load_recipe_hparams
from audiollm_lobes.data.datasets import build_datasets, recipe_baselines
from audiollm_lobes.data.manifest import ManifestError
from audiollm_lobes.data.sampling import train_loader_kwargs
from audiollm_lobes.injection.pal import FUSED, PALRouter, check_routes
from audiollm_lobes.peak_memory import peak_rss_mb
from audiollm_lobes.reporting import (
    summary_head,
    write_summary,
)
from audiollm_lobes.trainable import count_parameters

logger = logging.getLogger(__name__)


class PALBrain(AudioLLMBrain):
    """AudioLLMBrain routing each audio stream to PLITS or LAL.

    See the module docstring for the hparams. ``audio_tokens`` returns the
    PLITS tokens (possibly none) and keeps the LAL tokens of the current
    batch in ``self.lal_audio``; ``llm_loss``/``llm_generate`` run the
    injector with them when there are any.

    It also records the wall time of every training step and the
    process's peak resident memory (``efficiency()``), so that runs can
    report what they cost.
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
        #: ``{route: key of its connector in self.modules}``
        self.connector_keys = connector_module_keys(
            self._hp("connectors", None) or {}, self.modules
        )
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
            "streams",
            lambda w, lens: encoder(w, lens, return_streams=True)[2],
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
        # through self.modules: DDP averages only what its wrapper computed
        tokens = {
            name: self.modules[self.connector_keys[name]](*streams[name])
            for name in self.routes
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
        seq : PLITSSequence
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
        return self.modules.injector(
            seq.embeds, seq.mask, lal, lal_mask, labels=seq.labels
        )

    def llm_generate(self, seq, batch, stage):
        """Decoding continuing from the LAL KV cache (if any): greedy, or
        beam search with ``num_beams`` > 1.

        Arguments
        ---------
        seq : PLITSSequence
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
        return self.unwrap("injector").generate(
            lal,
            lal_mask,
            seq.embeds,
            seq.mask,
            max_new_tokens=self._hp("max_new_tokens", 48),
            num_beams=self._hp("num_beams", 1),
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


def connector_module_keys(connectors, modules):
    """Which key of ``modules`` holds each route's connector.

    A connector trains (and, under DDP, has its gradients averaged) only
    when it is called through ``modules``, so each one must be there.

    Arguments
    ---------
    connectors : dict
        ``{route: connector}`` (the hparams' ``connectors``).
    modules : dict or torch.nn.ModuleDict
        The Brain's modules (before any DDP wrapping).

    Returns
    -------
    dict
        ``{route: module key}``.

    Example
    -------
    >>> import torch
    >>> a, b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    >>> connector_module_keys({"whisper": a}, {"w_conn": a, "other": b})
    {'whisper': 'w_conn'}
    >>> connector_module_keys({"beats": b}, {"w_conn": a})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: connectors.beats is not in modules: add it there ...
    """
    keys = {}
    for route, connector in connectors.items():
        found = [k for k, m in modules.items() if m is connector]
        if not found:
            raise ValueError(
                f"connectors.{route} is not in modules: add it there (e.g. "
                f"{route}_connector: !ref <...>) so that it trains and DDP "
                "averages its gradients"
            )
        keys[route] = found[0]
    return keys


def trainable_parts(modules):
    """Trainable parameter counts per module, LoRA weights apart.

    LoRA weights (``lora_`` in their name) count as ``llm_lora`` whichever
    module holds the LLM (``llm`` under PLITS, ``injector`` under LAL/PAL
    with ``llm_finetune: lora``); a parameter reached from several modules
    counts once, so the parts add up to ``count_parameters(modules)``.

    Arguments
    ---------
    modules : dict or torch.nn.ModuleDict
        The Brain's modules.

    Returns
    -------
    dict
        ``{part: count}`` of the parts with trainable parameters.

    Example
    -------
    >>> import torch
    >>> lin = torch.nn.Linear(2, 2)
    >>> llm = torch.nn.Module()
    >>> llm.lora_A = torch.nn.Linear(2, 1, bias=False)
    >>> holder = torch.nn.Module()
    >>> holder.map, holder.llm = torch.nn.Linear(2, 1), llm
    >>> trainable_parts({"connector": lin, "injector": holder, "llm": llm})
    {'connector': 6, 'injector': 3, 'llm_lora': 2}
    """
    seen, parts = set(), {}
    for name, module in modules.items():
        for param_name, param in module.named_parameters():
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            part = "llm_lora" if "lora_" in param_name else name
            parts[part] = parts.get(part, 0) + param.numel()
    return parts


def efficiency_lines(efficiency):
    """Markdown lines reporting a run's measured step time and memory.

    Arguments
    ---------
    efficiency : dict
        From ``PALBrain.efficiency()``.

    Returns
    -------
    list of str
        Lines to append to ``results.md``.

    Example
    -------
    >>> efficiency_lines({"train_steps": 3, "train_step_seconds_median": 0.5,
    ...     "train_step_seconds_mean": 0.6, "peak_rss_mb": 900.0})[2]
    'train step time: median 0.500 s, mean 0.600 s over 2 steps'
    """
    steps = efficiency["train_steps"]
    timed = max(steps - 1, 1) if steps else 0
    lines = ["", f"train steps: {steps}"]
    if efficiency["train_step_seconds_median"] is not None:
        lines.append(
            "train step time: median "
            f"{efficiency['train_step_seconds_median']:.3f} s, mean "
            f"{efficiency['train_step_seconds_mean']:.3f} s over {timed} "
            f"step{'s' if timed != 1 else ''}"
        )
    if efficiency["peak_rss_mb"] is not None:
        lines.append(
            f"peak RSS after training: {efficiency['peak_rss_mb']:.0f} MiB "
            "(whole process: frozen weights, data and activations)"
        )
    return lines


def main(argv):
    """Trains, tests, writes the summary (see the module docstring)."""
    hparams, run_opts = load_recipe_hparams(argv, __file__)
    check_backbone_widths(hparams)
    datasets = build_datasets(hparams)
    brain = PALBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    n_trainable = count_parameters(brain.modules)
    parts = trainable_parts(brain.modules)
    logger.info("routes: %s", brain.routes)
    logger.info("trainable parameters: %d %s", n_trainable, parts)
    hparams["baselines"] = recipe_baselines(hparams, datasets)
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_kwargs(hparams, datasets["train"]),
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    efficiency = brain.efficiency()
    logger.info("efficiency: %s", efficiency)
    brain.evaluate(
        datasets["test"],
        min_key="loss",
        test_loader_kwargs=hparams["test_dataloader_opts"],
    )
    summary = {
        "experiment": hparams.get("experiment"),
        "test": brain.test_summary,
        "baselines": hparams["baselines"],
        "trainable_parameters": n_trainable,
        "trainable_parameters_by_part": parts,
        "llm_finetune": hparams.get("llm_finetune", "none"),
        "routes": brain.routes,
        "efficiency": efficiency,
    }
    routes = ", ".join(f"{k} -> {v}" for k, v in brain.routes.items())
    lines = summary_head(brain.test_summary, hparams["baselines"], n_trainable)
    by_part = ", ".join(f"{k} {v:,}" for k, v in parts.items())
    lines += [
        "",
        f"trainable parameters by part: {by_part} (LLM fine-tuning: "
        f"{summary['llm_finetune']})",
        "",
        f"routes: {routes}",
    ] + efficiency_lines(efficiency)
    run_on_main(write_summary, args=[hparams["output_folder"], summary, lines])


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except ManifestError as err:
        # one clear report of every bad example, no deep traceback
        sys.exit(f"PAL: the data manifests have problems:\n{err}")
