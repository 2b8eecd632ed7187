"""AudioLLMBrain: the train/eval loop pieces every audio-LLM recipe reuses.

A recipe's hparams provide the lobes; the Brain wires them:

    wav ─► ``encoder`` (frozen) ─► ``connector`` ─► audio tokens
    instruction ─► LLM embeddings; optional ``prompt_pool`` picks soft
    prompts from (audio, instruction) ─► PLITS assembly ─► frozen ``llm``
    ─► CE on answer tokens + each lobe's auxiliary losses

In VALID/TEST it also decodes with the LLM's batched KV-cached generation
and scores every task with ``metrics.TaskMetrics``. Recipes subclass it
and override ``audio_tokens``, ``select_prompts`` or ``build_sequence``
(PAL's LAL, Wav2Prompt's CIF) rather than rewriting the loop.

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

import json
import logging
import os
import time
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)

from audiollm_lobes.injection import assemble_plits
from audiollm_lobes.metrics import TaskMetrics, format_table, write_results

logger = logging.getLogger(__name__)


def lengths_to_mask(rel_lens, max_len):
    """Boolean mask from SpeechBrain relative lengths.

    Arguments
    ---------
    rel_lens : torch.Tensor
        ``(batch,)`` relative lengths in ``[0, 1]``.
    max_len : int
        Padded length.

    Returns
    -------
    torch.Tensor
        ``(batch, max_len)`` bool, True on valid positions.

    Example
    -------
    >>> lengths_to_mask(torch.tensor([1.0, 0.5]), 4).long().tolist()
    [[1, 1, 1, 1], [1, 1, 0, 0]]
    """
    abs_lens = torch.round(rel_lens * max_len).long()
    positions = torch.arange(max_len, device=rel_lens.device)
    return positions[None, :] < abs_lens[:, None]


def count_parameters(module, trainable_only=True):
    """Counts the (trainable) parameters of a module.

    Arguments
    ---------
    module : torch.nn.Module
        Any module.
    trainable_only : bool
        Count only parameters with ``requires_grad``.

    Returns
    -------
    int
        Number of scalar parameters.

    Example
    -------
    >>> count_parameters(torch.nn.Linear(3, 2))
    8
    """
    return sum(
        p.numel()
        for p in module.parameters()
        if p.requires_grad or not trainable_only
    )


@register_checkpoint_hooks
class TrainableState:
    """Checkpoints only the trainable parameters of some modules.

    Frozen backbones (LLM, encoders) are never copied into checkpoints;
    LoRA weights living inside the LLM are (they require grad).

    Arguments
    ---------
    modules : dict or torch.nn.Module
        Modules whose trainable parameters to save.

    Example
    -------
    >>> lin = torch.nn.Linear(2, 2)
    >>> frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    >>> state = TrainableState({"a": lin, "b": frozen})
    >>> sorted(state.state_dict())
    ['a.bias', 'a.weight']
    """

    def __init__(self, modules):
        if isinstance(modules, torch.nn.Module):
            modules = {"module": modules}
        self.modules = modules

    def _extra_state_modules(self):
        """``(key, submodule)`` for every submodule with extra state."""
        base = torch.nn.Module.get_extra_state
        for mod_name, module in self.modules.items():
            if module is None:
                continue
            for sub_name, sub in module.named_modules():
                if type(sub).get_extra_state is not base:
                    prefix = f"{mod_name}.{sub_name}" if sub_name else mod_name
                    yield f"{prefix}._extra_state", sub

    def state_dict(self):
        """Returns the trainable parameters, keyed ``<module>.<name>``,
        and the extra state (``get_extra_state``, e.g. a
        :class:`~audiollm_lobes.prompt_pool.PromptPool`'s random generator)
        of submodules that define one, keyed ``<module>.<sub>._extra_state``.
        """
        out = {}
        for mod_name, module in self.modules.items():
            if module is None:
                continue
            for name, param in module.named_parameters():
                if param.requires_grad:
                    out[f"{mod_name}.{name}"] = param.detach().cpu()
        for key, sub in self._extra_state_modules():
            out[key] = sub.get_extra_state()
        return out

    @mark_as_saver
    def save(self, path):
        """Saves the trainable parameters to ``path``."""
        torch.save(self.state_dict(), path)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Loads trainable parameters (and extra state) saved by ``save``.

        A checkpoint without a submodule's extra state (written before it
        was saved) loads with a warning; the submodule keeps its current
        state.
        """
        del end_of_epoch
        saved = torch.load(path, map_location="cpu")
        extra = dict(self._extra_state_modules())
        expected = set(self.state_dict()) - set(extra)
        missing = sorted(expected - set(saved))
        if missing:
            raise RuntimeError(
                f"checkpoint {path} lacks trainable parameters {missing[:5]}"
            )
        with torch.no_grad():
            for mod_name, module in self.modules.items():
                if module is None:
                    continue
                for name, param in module.named_parameters():
                    key = f"{mod_name}.{name}"
                    if key in saved:
                        param.copy_(saved[key].to(param.device))
        for key, sub in extra.items():
            if key in saved:
                sub.set_extra_state(saved[key])
            else:
                logger.warning(
                    "checkpoint %s has no %s; that state starts afresh",
                    path,
                    key,
                )


class AudioLLMBrain(sb.Brain):
    """Shared Brain for audio LLM recipes (see the module docstring)."""

    # ------------------------------------------------------------ set-up
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        encoder = getattr(self.modules, "encoder", None)
        if self._hp("cache_encoder_features", False) and encoder is not None:
            # Cached features are computed once, under no_grad: whatever the
            # encoder holds (e.g. FusedEncoder's per-stream LayerNorms)
            # cannot train, so it is frozen and not counted as trainable.
            encoder.requires_grad_(False)

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
        """The frozen causal LM wrapper."""
        return self.hparams.llm

    def _hp(self, name, default=None):
        return getattr(self.hparams, name, default)

    # ------------------------------------------------------------ pieces
    def encode_audio(self, batch):
        """Runs the (frozen) encoder: ``(feats, mask)``.

        With ``cache_encoder_features: True`` in the hparams, the features
        of each clip are kept in memory (CPU) after their first pass, keyed
        by the audio path(s), and reused on later epochs and by the other
        tasks that share the clip. Only valid for frozen, deterministic
        encoders (the default).
        """
        if not self._hp("cache_encoder_features", False):
            wavs, wav_lens = batch.sig
            return self.modules.encoder(wavs, wav_lens)
        fused = self.cached_features(
            batch, lambda w, lens: {"fused": self.modules.encoder(w, lens)}
        )
        return fused["fused"]

    def cached_features(self, batch, run, cache_name="_feature_cache"):
        """Frozen-encoder outputs of a batch, computed once per clip.

        Clips not seen before are encoded together (cropped to the longest
        of them) under ``no_grad``; every output is kept on the CPU,
        unpadded, keyed by the batch's ``audio_key``, and the batch is
        re-padded from the cache.

        Arguments
        ---------
        batch : PaddedBatch
            With ``audio_key``, and ``sig`` unless every clip is cached
            (see :meth:`precompute_features`).
        run : callable
            ``(wavs (batch, samples), rel_lens (batch,)) -> {name: (feats
            (batch, frames, dim), mask (batch, frames))}``.
        cache_name : str
            Attribute holding the cache (one per kind of output).

        Returns
        -------
        dict
            ``{name: (feats, mask)}`` on ``self.device``, right-padded.
        """
        cache = self.__dict__.setdefault(cache_name, {})
        keys = list(batch.audio_key)
        missing = [i for i, k in enumerate(keys) if k not in cache]
        if missing:
            if not hasattr(batch, "sig"):
                raise RuntimeError(
                    f"{len(missing)} clip(s) of batch {list(batch.id)[:3]} "
                    f"are not in the feature cache ({keys[missing[0]]!r}) "
                    "and the batch carries no audio ('sig'): the dataset's "
                    "features were not all precomputed"
                )
            wavs, wav_lens = batch.sig
            index = torch.tensor(missing, device=wavs.device)
            sub_lens = wav_lens[index]
            # crop to the longest clip of the sub-batch
            longest = sub_lens.max()
            n_samples = int(torch.ceil(longest * wavs.shape[1]))
            with torch.no_grad():
                outputs = run(wavs[index, :n_samples], sub_lens / longest)
            for row, i in enumerate(missing):
                cache[keys[i]] = {
                    name: feats[row, : int(mask[row].sum())].detach().cpu()
                    for name, (feats, mask) in outputs.items()
                }
        out = {}
        for name in cache[keys[0]]:
            items = [cache[k][name] for k in keys]
            lengths = torch.tensor([len(x) for x in items])
            feats = torch.nn.utils.rnn.pad_sequence(items, batch_first=True)
            mask = torch.arange(feats.shape[1])[None] < lengths[:, None]
            out[name] = (feats.to(self.device), mask.to(self.device))
        return out

    def make_dataloader(
        self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs
    ):
        """SpeechBrain's loader, after precomputing the dataset's features.

        With ``precompute_encoder_features: True`` (and
        ``cache_encoder_features: True``) in the hparams, the frozen
        encoder's features of every distinct clip of ``dataset`` are
        computed first (:meth:`precompute_features`) and the dataset then
        stops reading audio: each training step costs only the trainable
        part, not a pass over 32 wav files.
        """
        if (
            self._hp("precompute_encoder_features", False)
            and self._hp("cache_encoder_features", False)
            and hasattr(dataset, "pipeline")
        ):
            self.precompute_features(dataset, stage)
        return super().make_dataloader(
            dataset, stage, ckpt_prefix=ckpt_prefix, **loader_kwargs
        )

    def precompute_features(self, dataset, stage, batch_size=32):
        """Fills the feature cache for every distinct clip of ``dataset``.

        Clips are encoded once each (examples sharing a clip, e.g. the ASR
        and translation entries of one utterance, share its features),
        shortest first so that batches hold little padding, under the
        stage's precision (SpeechBrain's ``training_ctx`` or
        ``evaluation_ctx``), through :meth:`encode_audio`, so subclasses
        with their own caches (e.g. per-stream features) fill those. The
        dataset's ``sig`` output is then dropped, so later loaders read no
        audio.

        Arguments
        ---------
        dataset : speechbrain.dataio.dataset.DynamicItemDataset
            With ``id``, ``audio_key``, ``duration`` and ``sig``.
        stage : sb.Stage
            Chooses the precision context.
        batch_size : int
            Clips per encoder pass.
        """
        outputs = list(dataset.pipeline.output_mapping)
        if "sig" not in outputs:
            return  # already precomputed
        with dataset.output_keys_as(["id", "audio_key"]):
            rows = [dataset[i] for i in range(len(dataset))]
        first = {}
        for row in rows:
            first.setdefault(row["audio_key"], row["id"])
        keep = set(first.values())
        todo = dataset.filtered_sorted(
            key_test={"id": lambda eid: eid in keep}, sort_key="duration"
        )
        loader = sb.dataio.dataloader.make_dataloader(
            todo, batch_size=batch_size
        )
        context = (
            self.training_ctx
            if stage == sb.Stage.TRAIN
            else self.evaluation_ctx
        )
        self.modules.eval()
        with torch.no_grad(), context:
            for batch in loader:
                self.encode_audio(batch.to(self.device))
        logger.info(
            "precomputed encoder features of %d clips (%d examples)",
            len(keep),
            len(rows),
        )
        dataset.set_output_keys([k for k in outputs if k != "sig"])

    def audio_tokens(self, feats, mask, batch, stage):
        """Maps encoder features to LLM-width audio tokens with a mask."""
        del batch, stage
        return self.modules.connector(feats, mask)

    def text_segment(self, batch, key):
        """Ids and mask of a padded token field of the batch."""
        ids, rel = getattr(batch, key)
        return ids, lengths_to_mask(rel, ids.shape[1])

    def select_prompts(self, audio, audio_mask, batch, stage):
        """Soft prompts before BOS: ``(prompts, mask, aux_losses)``."""
        pool = getattr(self.modules, "prompt_pool", None)
        if pool is None:
            return None, None, {}
        before, before_mask = self.text_segment(batch, "before_ids")
        after, after_mask = self.text_segment(batch, "after_ids")
        text = torch.cat([self.llm.embed(before), self.llm.embed(after)], 1)
        text_mask = torch.cat([before_mask, after_mask], 1)
        out = pool(audio, audio_mask, text, text_mask)
        if getattr(pool, "recording", False):
            pool.record(list(batch.task))
        aux = {}
        if out.key_loss is not None and out.key_loss.requires_grad:
            aux["key_loss"] = out.key_loss
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
        injection); the default is ``llm.loss`` on the PLITS sequence.

        Arguments
        ---------
        seq : PackedSequence
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
        return self.llm.loss(seq.embeds, seq.mask, seq.labels, seq.position_ids)

    def llm_generate(self, seq, batch, stage):
        """Decodes continuations of an assembled prompt sequence.

        Override together with ``llm_loss``; the default is the wrapper's
        batched KV-cached ``llm.generate`` with ``max_new_tokens`` and
        ``num_beams`` from the hparams.

        Arguments
        ---------
        seq : PackedSequence
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
            gen = self.build_sequence(
                batch,
                audio,
                audio_mask,
                prompts,
                prompts_mask,
                with_answer=False,
            )
            tokens = self.llm_generate(gen, batch, stage)
            out["hyps"] = self.llm.decode(tokens.tolist())
        return out

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
        """Resets the loss parts and the per-task metrics."""
        self.loss_parts = {}
        self.task_metrics = TaskMetrics()
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
        self.test_summary = self.task_metrics.summarize()
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
            format_table(self.test_summary, self._hp("baselines", None)),
        )

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Steps a per-step LR scheduler when one is given."""
        scheduler = self._hp("lr_scheduler", None)
        if scheduler is not None and should_step:
            scheduler(self.optimizer)


def write_json_atomic(obj, path):
    """Writes JSON to ``path`` through a temporary file (never half-written).

    Arguments
    ---------
    obj : object
        JSON-serialisable object.
    path : str or Path
        Destination.

    Example
    -------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.json"
    >>> write_json_atomic({"a": 1}, p)
    >>> json.loads(p.read_text())
    {'a': 1}
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False))
    os.replace(tmp, path)
