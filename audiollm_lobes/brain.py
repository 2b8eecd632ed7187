"""AudioLLMBrain: the train/eval loop pieces every audio-LLM recipe reuses.

A recipe's hparams provide the lobes; the Brain wires them:

    wav ─► ``encoder`` (frozen) ─► ``connector`` ─► audio tokens
    instruction ─► LLM embeddings; optional ``prompt_pool`` picks soft
    prompts from (audio, instruction) ─► PLITS assembly ─► frozen ``llm``
    ─► CE on answer tokens + each lobe's auxiliary losses

In VALID/TEST it also decodes with the LLM's batched KV-cached generation
and scores every task with its metric (built-in tasks, and tasks declared
in the hparams' ``task_definitions``, see :mod:`audiollm_lobes.data.tasks`).

The hooks, in the order ``compute_forward`` calls them (override one, not
the loop): ``encode_audio`` -> ``audio_tokens`` -> ``select_prompts`` ->
``build_sequence`` -> ``llm_loss`` (and ``llm_generate`` when decoding).
Which recipe overrides what:

* LiSTEN uses the loop as it is (its lobes differ in YAML only) and adds
  a ``k_eval`` sweep around ``evaluate``.
* PAL overrides ``encode_audio`` (per-stream features), ``audio_tokens``
  (routing) and ``llm_loss`` / ``llm_generate`` (the LAL injector).
* Wav2Prompt replaces ``compute_forward`` and ``compute_objectives``
  (SpeechBrain's own hooks) while reusing the pieces above: its training
  step weighs three losses (CE, embedding MSE, CIF quantity) and its test
  step decodes two systems per batch (the speech prompts and an
  ASR-then-LLM cascade), which one CE-plus-decode loop cannot express.

Frozen-encoder features can be cached per clip
(:mod:`audiollm_lobes.feature_cache`); trainable parameters are what the
``Checkpointer`` saves (:mod:`audiollm_lobes.trainable`).

Multi-process training (``torchrun ... --distributed_backend=gloo|nccl``)
is SpeechBrain's DDP: each module with trainable parameters is wrapped in
``DistributedDataParallel``, which averages the gradients of what its
``forward`` computed and nothing else. So every computation that trains
calls ``self.modules.<name>(...)`` (the LLM's and the injector's losses
too: their ``forward`` takes ``labels``), and attributes or other methods
of a module are reached through :meth:`AudioLLMBrain.unwrap`. Every
process validates and tests on the whole set (same weights, same
results); only the main process writes checkpoints and reports. The
random generators of every process are part of the checkpoint
(:mod:`audiollm_lobes.rng_state`), so a killed run resumes exactly.

Expected hparams (``self.hparams``):
    ``llm`` (``CausalLM``), ``encoder`` (``(wav, lens) -> (feats, mask)``),
    ``connector`` (``(feats, mask) -> (tokens, mask)``), optional
    ``prompt_pool`` (``PromptPool``/``SoftPrompt``), optional
    ``aux_loss_weights`` (dict: name -> weight), ``max_new_tokens``,
    ``num_beams``, ``valid_decode`` (bool), ``output_folder``,
    ``train_logger``, ``checkpointer``, optional ``lr_scheduler``.

Authors
 * audiollm-lobes developers, 2026
"""

import logging
import time
from pathlib import Path

import speechbrain as sb
import torch
import yaml
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.distributed import ddp_broadcast, if_main_process

from audiollm_lobes.atomic import write_text
from audiollm_lobes.data.tasks import make_task_metrics
from audiollm_lobes.feature_cache import (
    drop_audio,
    open_feature_cache,
    precompute_features,
)
from audiollm_lobes.injection import assemble_plits
from audiollm_lobes.masks import relative_lengths_to_mask
from audiollm_lobes.reporting import results_table, write_results
from audiollm_lobes.rng_state import RNGState

logger = logging.getLogger(__name__)


def unwrap_module(module):
    """The module inside a ``DistributedDataParallel``/``DataParallel``
    wrapper (any module, unchanged, when it is not wrapped).

    Arguments
    ---------
    module : torch.nn.Module or None
        A module, maybe wrapped.

    Returns
    -------
    torch.nn.Module or None
        The inner module.

    Example
    -------
    >>> lin = torch.nn.Linear(2, 2)
    >>> unwrap_module(torch.nn.DataParallel(lin)) is lin
    True
    >>> unwrap_module(lin) is lin
    True
    """
    wrappers = (
        torch.nn.parallel.DistributedDataParallel,
        torch.nn.DataParallel,
    )
    return module.module if isinstance(module, wrappers) else module


@register_checkpoint_hooks
class AudioLLMBrain(sb.Brain):
    """Shared Brain for audio LLM recipes (see the module docstring)."""

    # ------------------------------------------------------------ set-up
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: ``{name: FeatureCache}`` (see :meth:`cached_features`).
        self.feature_caches = {}
        encoder = getattr(self.modules, "encoder", None)
        if self._hp("cache_encoder_features", False) and encoder is not None:
            # Cached features are computed once, under no_grad: whatever the
            # encoder holds (e.g. FusedEncoder's per-stream LayerNorms)
            # cannot train, so it is frozen and not counted as trainable.
            encoder.requires_grad_(False)
        #: Loss parts of a training epoch resumed from an intra-epoch
        #: checkpoint (see :meth:`_recover`).
        self._resumed_loss_parts = None
        if self.checkpointer is not None and self.distributed_launch:
            # Every process must see one checkpoint folder: SpeechBrain's
            # --debug gives each process a temporary folder of its own, so
            # the main process would delete checkpoints the others do not
            # list, and the collectives of the deletion would never match
            # (the run hangs after its second epoch).
            folder = ddp_broadcast(str(self.checkpointer.checkpoints_dir))
            self.checkpointer.checkpoints_dir = Path(folder)

    def init_optimizers(self):
        """One optimizer over the trainable parameters only."""
        params = [p for p in self.modules.parameters() if p.requires_grad]
        if self.opt_class is None:
            return
        self.optimizer = self.opt_class(params)
        self.optimizers_dict = {"opt_class": self.optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)

    @property
    def llm(self):
        """The ``CausalLM`` itself (unwrapped), for embeddings, tokenizer
        and decoding; a loss that trains goes through ``self.modules.llm``
        (see :meth:`llm_loss`)."""
        return self.unwrap("llm")

    def unwrap(self, name, default=None):
        """The module ``name`` of ``self.modules``, outside any DDP wrapper.

        SpeechBrain wraps each module with trainable parameters in
        ``DistributedDataParallel`` under ``torchrun``. Computations that
        train must call the wrapper (``self.modules.<name>(...)``): DDP
        averages the gradients only of what its ``forward`` computed.
        Everything else (attributes, other methods: ``embed``,
        ``generate``, ``start_recording``, ``k_eval``, ``isinstance``
        tests) is reached on the inner module through this helper.

        Arguments
        ---------
        name : str
            A key of ``modules:``; when absent, the hparam of that name
            (e.g. an LLM given only in the hparams), else ``default``.
        default : object
            Returned when neither exists.

        Returns
        -------
        torch.nn.Module or object
            The inner module.
        """
        if name in self.modules:
            return unwrap_module(self.modules[name])
        return self._hp(name, default)

    def _hp(self, name, default=None):
        return getattr(self.hparams, name, default)

    # ------------------------------------------------------------ pieces
    def encode_audio(self, batch):
        """Runs the (frozen) encoder: ``(feats, mask)``.

        With ``cache_encoder_features: True`` in the hparams, the features
        of each clip are kept after their first pass, keyed by the audio
        path(s), and reused on later epochs and by the other tasks that
        share the clip: in memory (CPU) by default, on disk with
        ``feature_cache: disk`` (see :meth:`cached_features`). Only valid
        for frozen, deterministic encoders (the default).
        """
        if not self._hp("cache_encoder_features", False):
            wavs, wav_lens = batch.sig
            return self.modules.encoder(wavs, wav_lens)
        fused = self.cached_features(
            batch,
            "fused",
            lambda w, lens: {"fused": self.modules.encoder(w, lens)},
        )
        return fused["fused"]

    def cached_features(self, batch, name, run):
        """Outputs of ``run`` for a batch, from the feature cache ``name``.

        The cache is made on first use from the hparams (all optional):
        ``feature_cache`` (``memory``, the default, or ``disk``: sharded
        files under ``feature_cache_folder``, default
        ``$AUDIOLLM_LOBES_HOME/features``, in a folder named by the
        fingerprint of ``modules.encoder``, the cache name and the
        ``sample_rate``, so a changed encoder never reuses features),
        ``feature_cache_dtype`` (``float32`` or ``float16`` on disk),
        ``feature_cache_shard_mb`` (64) and ``feature_cache_read``
        (``file`` or ``mmap``); see :mod:`audiollm_lobes.feature_cache`.

        Arguments
        ---------
        batch : PaddedBatch
            With ``audio_key`` (and ``sig`` unless every clip is cached).
        name : str
            The cache (one per kind of output, e.g. fused or per-stream).
        run : callable
            ``(wavs, rel_lens) -> {output: (feats, mask)}``.

        Returns
        -------
        dict
            ``{output: (feats, mask)}`` on ``self.device``, right-padded.
        """
        if name not in self.feature_caches:
            kind = self._hp("feature_cache", "memory") or "memory"
            self.feature_caches[name] = open_feature_cache(
                kind,
                run,
                encoder=getattr(self.modules, "encoder", None),
                name=name,
                folder=self._hp("feature_cache_folder", None),
                extra={"sample_rate": self._hp("sample_rate", 16000)},
                dtype=self._hp("feature_cache_dtype", "float32"),
                shard_megabytes=self._hp("feature_cache_shard_mb", 64),
                read=self._hp("feature_cache_read", "file"),
            )
        return self.feature_caches[name].features(batch, self.device)

    def make_dataloader(
        self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs
    ):
        """SpeechBrain's loader, after precomputing the dataset's features.

        With ``precompute_encoder_features: True`` (and
        ``cache_encoder_features: True``) in the hparams, the frozen
        encoder's features of every distinct clip of ``dataset`` are
        computed first (:func:`~audiollm_lobes.feature_cache.
        precompute_features`, through :meth:`encode_audio`, so subclasses
        with their own caches fill those) and the dataset then stops
        reading audio: each training step costs only the trainable part.
        Clips already in the cache (e.g. on disk from an earlier or killed
        run) are skipped without reading their audio; a progress bar shows
        on a terminal (not with ``--noprogressbar``). With a disk cache
        under DDP only the main process encodes and writes; the others
        wait, then read. In ``--debug`` runs nothing is precomputed: the
        few debug batches encode (and cache) their own clips.

        A ``sampler`` or ``batch_sampler`` with ``set_epoch`` in the train
        loader options (``steps_per_epoch``, ``task_sampling_weights``,
        ``dynamic_batching``: :func:`~audiollm_lobes.data.sampling.
        train_loader_kwargs`) is given each epoch's number, so that every
        epoch draws other examples.
        """
        if (
            self._hp("precompute_encoder_features", False)
            and self._hp("cache_encoder_features", False)
            and hasattr(dataset, "pipeline")
        ):
            if self.debug:
                logger.info(
                    "debug run: encoder features are not precomputed; the "
                    "debug batches encode their own clips"
                )
            else:
                context = (
                    self.training_ctx
                    if stage == sb.Stage.TRAIN
                    else self.evaluation_ctx
                )
                self.modules.eval()

                def is_cached(key):
                    caches = self.feature_caches.values()
                    return bool(caches) and all(key in c for c in caches)

                def precompute():
                    precompute_features(
                        dataset,
                        lambda batch: self.encode_audio(batch.to(self.device)),
                        context,
                        is_cached=is_cached,
                        progress=False if self.noprogressbar else None,
                    )
                    for cache in self.feature_caches.values():
                        cache.flush()

                disk = self._hp("feature_cache", "memory") == "disk"
                if disk and self.distributed_launch:
                    sb.utils.distributed.run_on_main(
                        precompute, post_func=drop_audio, post_args=[dataset]
                    )
                else:
                    precompute()
        loader = super().make_dataloader(
            dataset, stage, ckpt_prefix=ckpt_prefix, **loader_kwargs
        )
        # SpeechBrain gives each epoch's number (set_epoch) only to samplers
        # it made itself or, under DDP, wrapped; a sampler of the recipe's
        # (steps_per_epoch, task_sampling_weights, dynamic_batching) would
        # otherwise draw the same examples in the same order every epoch
        sampler = loader_kwargs.get("batch_sampler") or loader_kwargs.get(
            "sampler"
        )
        if (
            stage == sb.Stage.TRAIN
            and not self.distributed_launch
            and hasattr(sampler, "set_epoch")
        ):
            self.train_sampler = sampler
        return loader

    def audio_tokens(self, feats, mask, batch, stage):
        """Maps encoder features to LLM-width audio tokens with a mask."""
        del batch, stage
        return self.modules.connector(feats, mask)

    def text_segment(self, batch, key):
        """Ids and mask of a padded token field of the batch."""
        ids, rel = getattr(batch, key)
        return ids, relative_lengths_to_mask(rel, ids.shape[1])

    def select_prompts(self, audio, audio_mask, batch, stage):
        """Soft prompts before BOS: ``(prompts, mask, aux_losses)``."""
        pool = getattr(self.modules, "prompt_pool", None)
        if pool is None:
            return None, None, {}
        inner = unwrap_module(pool)
        before, before_mask = self.text_segment(batch, "before_ids")
        after, after_mask = self.text_segment(batch, "after_ids")
        text = torch.cat([self.llm.embed(before), self.llm.embed(after)], 1)
        text_mask = torch.cat([before_mask, after_mask], 1)
        out = pool(audio, audio_mask, text, text_mask)
        if getattr(inner, "recording", False):
            inner.record(list(batch.task))
        aux = {}
        if out.key_loss is not None and out.key_loss.requires_grad:
            aux["key_loss"] = out.key_loss
        # further auxiliary losses of the lobe (e.g. the attention
        # selector's entropy_loss), each weighted by aux_loss_weights[name]
        for name, value in (getattr(out, "aux_losses", None) or {}).items():
            if value is not None and value.requires_grad:
                aux[name] = value
        return out.prompts, out.prompt_mask, aux

    def build_sequence(
        self, batch, audio, audio_mask, prompts, prompts_mask, with_answer
    ):
        """Assembles the LLM input (PLITS by default)."""
        before, before_mask = self.text_segment(batch, "before_ids")
        after, after_mask = self.text_segment(batch, "after_ids")
        answer = answer_mask = None
        if with_answer:
            answer, answer_mask = self.text_segment(batch, "answer_ids")
        return assemble_plits(
            self.llm.embed,
            before,
            before_mask,
            audio,
            audio_mask,
            after,
            after_mask,
            answer,
            answer_mask,
            prompts=prompts,
            prompts_mask=prompts_mask,
        )

    def llm_loss(self, seq, batch, stage):
        """CE of the frozen LLM on an assembled sequence's answer tokens.

        Override to run the LLM differently (e.g. PAL's attention-only
        injection); the default runs ``self.modules.llm`` with the labels
        of the PLITS sequence (through the DDP wrapper when the LLM
        trains, e.g. with LoRA).

        Arguments
        ---------
        seq : PLITSSequence
            From ``build_sequence(..., with_answer=True)``.
        batch : PaddedBatch
            The batch (for overrides).
        stage : sb.Stage
            The stage (for overrides).

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        del batch, stage
        llm = self.modules.llm if "llm" in self.modules else self.llm
        out = llm(
            seq.embeds,
            seq.mask,
            position_ids=seq.position_ids,
            labels=seq.labels,
        )
        return out.loss

    def llm_generate(self, seq, batch, stage):
        """Decodes continuations of an assembled prompt sequence.

        Override together with ``llm_loss``; the default is the wrapper's
        batched KV-cached ``llm.generate`` with ``max_new_tokens`` and
        ``num_beams`` and ``repetition_penalty`` (1.0: none) from the
        hparams.

        Arguments
        ---------
        seq : PLITSSequence
            From ``build_sequence(..., with_answer=False)``.
        batch : PaddedBatch
            The batch (for overrides).
        stage : sb.Stage
            The stage (for overrides).

        Returns
        -------
        torch.LongTensor
            ``(batch, n_new)`` generated token ids.
        """
        del batch, stage
        return self.llm.generate(
            seq.embeds,
            seq.mask,
            max_new_tokens=self._hp("max_new_tokens", 48),
            num_beams=self._hp("num_beams", 1),
            repetition_penalty=self._hp("repetition_penalty", 1.0),
        )

    # ------------------------------------------------------- Brain hooks
    def compute_forward(self, batch, stage):
        """Encoder -> connector -> prompts -> LLM (+ decoding in eval)."""
        batch = batch.to(self.device)
        feats, feat_mask = self.encode_audio(batch)
        audio, audio_mask = self.audio_tokens(feats, feat_mask, batch, stage)
        prompts, prompts_mask, aux = self.select_prompts(
            audio, audio_mask, batch, stage
        )
        seq = self.build_sequence(
            batch, audio, audio_mask, prompts, prompts_mask, with_answer=True
        )
        ce = self.llm_loss(seq, batch, stage)
        out = {"ce": ce, "aux": aux, "hyps": None}
        decode = stage == sb.Stage.TEST or (
            stage == sb.Stage.VALID and self._hp("valid_decode", True)
        )
        if decode:
            out["hyps"] = self.decode_hypotheses(
                batch, audio, audio_mask, prompts, prompts_mask, stage
            )
        return out

    def decode_hypotheses(
        self, batch, audio, audio_mask, prompts, prompts_mask, stage
    ):
        """Decoded answers of a batch whose audio tokens (and prompts) are
        computed: the prompt sequence without answer, ``llm_generate``,
        detokenised. The test step and :meth:`generate_batch` both end
        here, so a trained model answers alike in both.

        Returns
        -------
        list of str
            One hypothesis per example.
        """
        gen = self.build_sequence(
            batch, audio, audio_mask, prompts, prompts_mask, with_answer=False
        )
        tokens = self.llm_generate(gen, batch, stage)
        return self.llm.decode(tokens.tolist())

    def generate_batch(self, batch):
        """Answers of a batch without targets (inference).

        The test step's decoding (:meth:`compute_forward` in
        ``sb.Stage.TEST``) without its loss: the batch needs ``sig`` (or
        cached features), ``audio_key``, ``before_ids`` and ``after_ids``
        (no ``answer_ids``). Call it in eval mode under ``torch.no_grad()``
        (:class:`audiollm_lobes.inference.AudioLLM` does). Recipes whose
        test step decodes differently override it (Wav2Prompt).

        Arguments
        ---------
        batch : PaddedBatch
            The examples.

        Returns
        -------
        list of str
            One answer per example.
        """
        stage = sb.Stage.TEST
        batch = batch.to(self.device)
        feats, feat_mask = self.encode_audio(batch)
        audio, audio_mask = self.audio_tokens(feats, feat_mask, batch, stage)
        prompts, prompts_mask, _ = self.select_prompts(
            audio, audio_mask, batch, stage
        )
        return self.decode_hypotheses(
            batch, audio, audio_mask, prompts, prompts_mask, stage
        )

    def add_dataset_items(self, dataset, entries, training=True):
        """Adds the recipe's own dataset items to a dataset of
        :func:`~audiollm_lobes.data.pipeline.make_dataset` (none here;
        Wav2Prompt adds its text-task prompts). ``train.py`` and
        :class:`~audiollm_lobes.inference.AudioLLM` both call it, so the
        examples a trained model answers are built like its test set.

        Arguments
        ---------
        dataset : speechbrain.dataio.dataset.DynamicItemDataset
            The dataset.
        entries : dict
            ``{id: entry}`` it was built from.
        training : bool
            False for examples without targets (inference).

        Returns
        -------
        DynamicItemDataset
            The same dataset.
        """
        del entries, training
        return dataset

    def compute_objectives(self, predictions, batch, stage):
        """CE on answer tokens plus weighted auxiliary losses."""
        weights = self._hp("aux_loss_weights", {}) or {}
        loss = predictions["ce"]
        for name, value in predictions["aux"].items():
            loss = loss + float(weights.get(name, 1.0)) * value
        self._accumulate("ce", predictions["ce"])
        for name, value in predictions["aux"].items():
            self._accumulate(name, value)
        if predictions["hyps"] is not None:
            self.task_metrics.append(
                list(batch.task),
                list(batch.id),
                predictions["hyps"],
                list(batch.target),
            )
        return loss

    def _accumulate(self, name, value):
        total, count = self.loss_parts.get(name, (0.0, 0))
        self.loss_parts[name] = (total + float(value.detach()), count + 1)

    def on_stage_start(self, stage, epoch=None):
        """Resets the loss parts (restores them in a training epoch resumed
        from an intra-epoch checkpoint) and the per-task metrics."""
        self.loss_parts = {}
        if stage == sb.Stage.TRAIN and self._resumed_loss_parts is not None:
            self.loss_parts = self._resumed_loss_parts
        self._resumed_loss_parts = None
        self.task_metrics = make_task_metrics(
            self._hp("task_definitions", None)
        )
        self.stage_start = time.time()

    def stage_stats(self, stage, stage_loss):
        """Loss, each loss part, and per-task metrics of a stage."""
        stats = {"loss": stage_loss}
        for name, (total, count) in self.loss_parts.items():
            stats[name] = total / max(count, 1)
        if stage != sb.Stage.TRAIN and len(self.task_metrics):
            for task, values in self.task_metrics.summarize().items():
                for metric, value in values.items():
                    if metric != "n":
                        stats[f"{task}/{metric}"] = value
        stats["seconds"] = time.time() - self.stage_start
        return stats

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs, steps the LR schedule, checkpoints, writes test results."""
        stats = self.stage_stats(stage, stage_loss)
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"]
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lr},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            if self.checkpointer is not None:
                self.checkpointer.save_and_keep_only(
                    meta={"loss": stats["loss"]},
                    min_keys=["loss"],
                    num_to_keep=1,
                )
            return
        self.hparams.train_logger.log_stats(
            stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
            test_stats=stats,
        )
        # every process evaluates the whole test set (identical weights,
        # so identical results); only the main one writes them
        self.test_summary = self.task_metrics.summarize()
        if not if_main_process():
            return
        out_dir = Path(self.hparams.output_folder)
        name = self._hp("test_results_name", "test_results")
        write_results(
            self.test_summary,
            out_dir / f"{name}.json",
            baselines=self._hp("baselines", None),
        )
        self.task_metrics.write_predictions(out_dir / f"{name}_hyps.jsonl")
        logger.info(
            "test results:\n%s",
            results_table(
                [("value", self.test_summary)], self._hp("baselines", None)
            ),
        )

    def on_fit_batch_start(self, batch, should_step):
        """Restores the random generators of an intra-epoch checkpoint
        once more (:meth:`~audiollm_lobes.rng_state.RNGState.
        apply_pending`): re-entering the epoch drew from them."""
        if self.checkpointer is not None:
            for obj in self.checkpointer.recoverables.values():
                if isinstance(obj, RNGState):
                    obj.apply_pending()

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Steps a per-step LR scheduler when one is given."""
        scheduler = self._hp("lr_scheduler", None)
        if scheduler is not None and should_step:
            scheduler(self.optimizer)

    # -------------------------------------------------- checkpoint state
    @mark_as_saver
    def _save(self, path):
        """SpeechBrain's loop state plus the loss parts of the epoch."""
        state = {
            "step": self.step,
            "avg_train_loss": float(self.avg_train_loss),
            "optimizer_step": self.optimizer_step,
            "loss_parts": {
                name: [float(total), int(count)]
                for name, (total, count) in getattr(
                    self, "loss_parts", {}
                ).items()
            },
        }
        write_text(path, yaml.safe_dump(state))

    @mark_as_loader
    def _recover(self, path, end_of_epoch):
        """Restores the loop state; an intra-epoch checkpoint also gives
        the training epoch its loss parts so far."""
        super()._recover(path, end_of_epoch)
        with open(path, encoding="utf-8") as fin:
            parts = yaml.safe_load(fin).get("loss_parts") or {}
        self._resumed_loss_parts = None
        if not end_of_epoch:
            self._resumed_loss_parts = {
                name: (float(total), int(count))
                for name, (total, count) in parts.items()
            }
