"""Use a trained model: load a run folder or an export, answer on audio.

:class:`AudioLLM` rebuilds a trained model from a folder:

* a **run folder** (``results/LiSTEN/dps/1234``): the ``hyperparams.yaml``
  SpeechBrain saved (overrides applied), the recipe's code copied there by
  :func:`audiollm_lobes.cli.load_recipe_hparams` (``train.py`` and its
  helpers), ``backbones.json``, and the checkpoint with the lowest
  validation loss under ``save/`` (the one the recipe tests);
* an **export** (:func:`audiollm_lobes.export.export_model`): the same
  files, with the trained weights in ``lobes.safetensors`` (no pickle).

The hparams build the modules (backbones from their sources, lobes at
their trained sizes), the recipe's ``Brain`` class wraps them, and the
trained weights are loaded. Answers come from the Brain's own
:meth:`~audiollm_lobes.brain.AudioLLMBrain.generate_batch`, the decoding of
its test step, on examples built like its test set (the audio front door
of :mod:`audiollm_lobes.data.audio`: any format, rate and channel count;
the prompt pipeline of :mod:`audiollm_lobes.data.pipeline`; the recipe's
own items, :meth:`~audiollm_lobes.brain.AudioLLMBrain.add_dataset_items`):
a model answers on a file as its recipe's test answered on it.

Loading runs the folder's Python files, as SpeechBrain's
``foreign_class`` does: load only folders you trust. The weights of an
export are read without pickle.

The backbones are those the hparams name (``llm_source``,
``whisper_source``, ...); ``sources={"llm_source": path}`` points a field
elsewhere (e.g. the same checkpoint in another place). The loaded
backbones must be those the model was trained on: widths and tokenizer
are compared with ``backbones.json``
(:func:`~audiollm_lobes.backbone_widths.check_backbone_signature`).

Authors
 * audiollm-lobes developers, 2026
"""

import importlib.util
import inspect
import json
import logging
import re
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

import soundfile as sf
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataloader import make_dataloader
from tqdm import tqdm

from audiollm_lobes.atomic import write_text
from audiollm_lobes.backbone_widths import (
    backbone_signature,
    check_backbone_signature,
)
from audiollm_lobes.brain import AudioLLMBrain
from audiollm_lobes.cli import BACKBONES_FILE, resolve_precision
from audiollm_lobes.data.audio import measure_audio
from audiollm_lobes.data.datasets import (
    check_instruction_overrides,
    override_instructions,
    validation_options,
)
from audiollm_lobes.data.pipeline import load_entries, make_dataset
from audiollm_lobes.data.tasks import task_definitions
from audiollm_lobes.data.templates import AUDIO_MARKER, TEXT_MARKER
from audiollm_lobes.toyworld.sources import resolve_source
from audiollm_lobes.trainable import find_trainable_checkpoint

logger = logging.getLogger(__name__)

#: The hparams SpeechBrain saved in a run folder (and an export holds).
HPARAMS_FILE = "hyperparams.yaml"
#: What an export is (see :mod:`audiollm_lobes.export`).
MODEL_INFO_FILE = "model.json"
#: An export's trained weights.
LOBES_FILE = "lobes.safetensors"


class ModelFolderError(ValueError):
    """A folder that does not hold a model this module can load."""


def recorded_value(hparams_text, key):
    """The value of a top-level ``key: value`` line of a saved hparams file.

    Arguments
    ---------
    hparams_text : str
        The text of a ``hyperparams.yaml``.
    key : str
        A top-level key.

    Returns
    -------
    str or None
        The value as written (None when the key is absent or empty).

    Example
    -------
    >>> recorded_value("a: 1\\nllm_source: toy://tiny/lm  # the LM\\n",
    ...                "llm_source")
    'toy://tiny/lm'
    """
    match = re.search(
        rf"^{re.escape(key)}:[ \t]*([^#\n]*?)[ \t]*(?:#.*)?$",
        hparams_text,
        flags=re.M,
    )
    if match is None or not match.group(1):
        return None
    return match.group(1).strip("'\"")


def relocate_hparams(hparams_text, replacements):
    """Replaces whole scalar values of a saved hparams text.

    SpeechBrain saves hparams with every reference resolved, so a value
    (a source, the output folder) is written wherever it was used; each is
    replaced where it is the whole scalar or its prefix (a path under the
    output folder).

    Arguments
    ---------
    hparams_text : str
        The text of a ``hyperparams.yaml``.
    replacements : dict
        ``{old value: new value}``.

    Returns
    -------
    str
        The new text.

    Example
    -------
    >>> text = "out: res/1\\nsave: res/1/save\\nlm: [a]\\n  - a\\nother: ab\\n"
    >>> print(relocate_hparams(text, {"res/1": "/tmp/x", "a": "b"}))
    out: /tmp/x
    save: /tmp/x/save
    lm: [a]
      - b
    other: ab
    <BLANKLINE>
    """
    for old, new in replacements.items():
        if not old or old == new:
            continue
        hparams_text = re.sub(
            rf"(?m)(^[ \t]*(?:- |[\w.-]+: ))['\"]?{re.escape(old)}"
            rf"(?=['\"]?(?:/[^\n#]*)?[ \t]*(?:#.*)?$)",
            lambda m, new=new: m.group(1) + new,
            hparams_text,
        )
    return hparams_text


def load_recipe_code(folder):
    """Imports the recipe script (``train.py``) kept in a model folder.

    The folder is put first on ``sys.path`` while it runs, so the script
    imports its helpers by their bare names as in its recipe folder; the
    module gets a name of its own (from the folder's path), so that
    several models load side by side.

    Arguments
    ---------
    folder : str or Path
        A run folder or an export.

    Returns
    -------
    module
        The imported script.
    """
    folder = Path(folder).resolve()
    script = folder / "train.py"
    if not script.is_file():
        raise ModelFolderError(
            f"{folder} holds no train.py: the recipe's code is copied into "
            "every run folder (runs made before that was so: copy "
            "recipes/<Method>/train.py and its helper .py files there)"
        )
    name = f"audiollm_model_{zlib.crc32(str(folder).encode()):08x}"
    if name in sys.modules:
        return sys.modules[name]
    helpers = [p.stem for p in folder.glob("*.py") if p != script]
    # helpers of another model folder imported under the same bare name
    shadowed = {h: sys.modules.pop(h) for h in helpers if h in sys.modules}
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(name, script)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(name, None)
        raise
    finally:
        sys.path.remove(str(folder))
        for helper in helpers:
            sys.modules.pop(helper, None)
        sys.modules.update(shadowed)
    return module


def brain_class(module, folder):
    """The one ``AudioLLMBrain`` subclass defined by a recipe script.

    Arguments
    ---------
    module : module
        From :func:`load_recipe_code`.
    folder : str or Path
        For the error message.

    Returns
    -------
    type
        The Brain class.
    """
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, AudioLLMBrain)
        and obj.__module__ == module.__name__
    ]
    if not found:
        return AudioLLMBrain
    if len(found) > 1:
        raise ModelFolderError(
            f"{folder}/train.py defines several Brain classes "
            f"({sorted(c.__name__ for c in found)}); expected one"
        )
    return found[0]


def _audio_item(item, index, folder, sample_rate, max_seconds=None):
    """A path for one input (arrays and tensors written to ``folder``)."""
    if isinstance(item, (str, Path)):
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"input {index}: no audio file {path}")
        try:  # decoded once: NaN/inf or empty audio fail here, named
            measure = measure_audio(path)
        except ValueError as err:
            raise ValueError(f"input {index}: {err}") from None
        if measure.nonfinite or measure.seconds <= 0:
            raise ValueError(
                f"input {index}: {path} holds {measure.nonfinite} non-finite "
                f"samples over {measure.seconds:.2f} s; expected finite audio"
            )
        if max_seconds is not None and measure.seconds > max_seconds:
            raise ValueError(
                f"input {index}: {path} lasts {measure.seconds:.1f} s, more "
                f"than the model's max_audio_seconds ({max_seconds} s)"
            )
        return str(path)
    data = torch.as_tensor(item).detach().cpu().float()
    if sample_rate is None:
        raise ValueError(
            f"input {index}: a waveform needs its sample_rate (the rate it "
            "was recorded at; it is resampled to the model's)"
        )
    if data.dim() == 2:  # (channels, samples): the front door downmixes
        data = data.T
    elif data.dim() != 1:
        raise ValueError(
            f"input {index}: expected a waveform (samples,) or (channels, "
            f"samples), got shape {tuple(data.shape)}"
        )
    if data.numel() == 0 or not bool(torch.isfinite(data).all()):
        raise ValueError(f"input {index}: the waveform is empty or not finite")
    seconds = data.shape[0] / float(sample_rate)
    if max_seconds is not None and seconds > max_seconds:
        raise ValueError(
            f"input {index}: the waveform lasts {seconds:.1f} s, more than "
            f"the model's max_audio_seconds ({max_seconds} s)"
        )
    path = Path(folder) / f"input{index}.wav"
    # float32 WAV: exact samples, read back through the same front door
    sf.write(path, data.numpy(), int(sample_rate), subtype="FLOAT")
    return str(path)


class AudioLLM:
    """A trained audio LLM, loaded from a run folder or an export.

    Arguments
    ---------
    brain : AudioLLMBrain
        The recipe's Brain around the loaded modules.
    folder : Path
        Where it was loaded from.
    checkpoint : str
        Which trained weights (a checkpoint file or the export's).

    Example
    -------
    >>> model = AudioLLM.from_folder("results/LiSTEN/dps/1234")
    ... # doctest: +SKIP
    >>> model.generate(["a.wav", "b.flac"], "<audio> Transcribe the speech.")
    ... # doctest: +SKIP
    ['the red ball is on the table', 'two cats sleep in the kitchen']
    """

    def __init__(self, brain, folder, checkpoint):
        self.brain = brain
        self.folder = Path(folder)
        self.checkpoint = str(checkpoint)

    # ------------------------------------------------------------ loading
    @classmethod
    def from_folder(cls, folder, device="cpu", sources=None, overrides=None):
        """Rebuilds a trained model from a run folder or an export.

        Arguments
        ---------
        folder : str or Path
            A run folder (``hyperparams.yaml``, ``train.py``, ``save/``)
            or an export (``model.json``, ``lobes.safetensors``).
        device : str
            ``"cpu"``, ``"cuda:0"``, ...
        sources : dict, optional
            ``{field: source}``: backbones elsewhere than recorded, e.g.
            ``{"llm_source": "/models/llama"}``; the field names are the
            hparams' (``backbones.json`` lists them).
        overrides : dict, optional
            Further hparams overrides (e.g. ``{"max_new_tokens": 100}``).

        Returns
        -------
        AudioLLM
            In eval mode.
        """
        folder = Path(folder)
        hparams_file = folder / HPARAMS_FILE
        if not hparams_file.is_file():
            raise ModelFolderError(
                f"{folder} is not a model folder: no {HPARAMS_FILE} (expected "
                "a run folder such as results/LiSTEN/dps/1234, or an export)"
            )
        exported = (folder / MODEL_INFO_FILE).is_file()
        checkpoint = (
            folder / LOBES_FILE
            if exported
            else find_trainable_checkpoint(folder)
        )
        text = hparams_file.read_text(encoding="utf-8")
        recorded = {
            field: recorded_value(text, field)
            for field in re.findall(r"(?m)^(\w+_source):", text)
        }
        work = Path(tempfile.mkdtemp(prefix="audiollm_model_"))
        replacements = {recorded_value(text, "output_folder"): str(work)}
        for field, source in (sources or {}).items():
            old = recorded_value(text, field)
            if old is None:
                raise ModelFolderError(
                    f"sources: {folder}/{HPARAMS_FILE} has no field {field!r}"
                    f" (its sources: {sorted(recorded)})"
                )
            replacements[old] = str(source)
        text = relocate_hparams(text, replacements)
        signature_file = folder / BACKBONES_FILE
        expected = None
        if signature_file.is_file():
            expected = json.loads(signature_file.read_text(encoding="utf-8"))
        try:
            hparams = load_hyperpyyaml(text, overrides or {})
        except Exception as err:
            trained = ", ".join(f"{k}={v}" for k, v in sorted(recorded.items()))
            given = ", ".join(
                f"{k}={v}" for k, v in sorted((sources or {}).items())
            )
            raise ModelFolderError(
                f"{folder}: could not build the model from its hparams: "
                f"{type(err).__name__}: {err}\n(trained with: "
                f"{trained or 'see its hyperparams.yaml'}"
                + (f"; given: {given}" if given else "")
                + "; point a field elsewhere with sources={field: path} / "
                "--source field=path)"
            ) from err
        finally:
            shutil.rmtree(work, ignore_errors=True)
        loaded = backbone_signature(hparams)
        if expected is not None:
            check_backbone_signature(expected, loaded, where=str(folder))
        else:
            logger.warning(
                "%s has no %s: its backbones cannot be checked",
                folder,
                BACKBONES_FILE,
            )
        for key in ("precision", "eval_precision"):
            if key in hparams:
                hparams[key] = resolve_precision(hparams[key], device)
        module = load_recipe_code(folder)
        brain = brain_class(module, folder)(
            modules=hparams["modules"],
            hparams=hparams,
            run_opts={"device": device, "noprogressbar": True},
            checkpointer=None,
        )
        state = hparams["checkpointer"].recoverables["trainable"]
        if exported:
            from audiollm_lobes.export import read_lobes

            state.load_state_dict(
                read_lobes(checkpoint), source=str(checkpoint)
            )
        else:
            state.load(checkpoint)
        # features are cached by file path: at inference a path may hold
        # other audio from one call to the next (or from training)
        brain.hparams.cache_encoder_features = False
        brain.modules.eval()
        logger.info("loaded %s (weights: %s)", folder, checkpoint)
        return cls(brain, folder, checkpoint)

    @property
    def hparams(self):
        """The model's hparams (a dict)."""
        return self.brain.hparams.__dict__

    @property
    def sample_rate(self):
        """The rate the model's encoders read (every input is resampled)."""
        return int(self.hparams.get("sample_rate", 16000))

    # ------------------------------------------------------------ answers
    def instruction_for(self, instruction=None, task=None):
        """The instruction of an input: given, or the task's first one.

        An instruction without the ``<audio>`` marker gets the audio in
        front (``"<audio> " + instruction``); ``<text>`` (a text-task
        template, as Wav2Prompt's) stands for the audio too.

        Arguments
        ---------
        instruction : str, optional
            The instruction.
        task : str, optional
            A task of the model's task table (built-in or declared).

        Returns
        -------
        str
            An instruction with one ``<audio>`` marker.
        """
        if instruction is None:
            if task is None:
                raise ValueError("give an instruction or a task")
            table = task_definitions(self.hparams.get("task_definitions"))
            if task not in table:
                raise ValueError(
                    f"unknown task {task!r}; known: {sorted(table)}"
                )
            return table[task].instructions[0]
        instruction = instruction.replace(TEXT_MARKER, AUDIO_MARKER)
        count = instruction.count(AUDIO_MARKER)
        if count == 0:
            return f"{AUDIO_MARKER} {instruction}"
        if count > 1:
            raise ValueError(
                f"instruction {instruction!r}: expected at most one "
                f"{AUDIO_MARKER} marker"
            )
        return instruction

    def generate(
        self,
        audio,
        instruction=None,
        task=None,
        sample_rate=None,
        batch_size=8,
        num_beams=None,
        max_new_tokens=None,
    ):
        """Answers an instruction on each audio input.

        Arguments
        ---------
        audio : str, Path, array, tensor, or a list of them
            Audio files (any format and rate the front door reads), or
            waveforms ``(samples,)`` / ``(channels, samples)`` at
            ``sample_rate``.
        instruction : str or list of str, optional
            One per input, or one for all (see :meth:`instruction_for`).
        task : str, optional
            The task (for Wav2Prompt: ``asr`` is answered with the ASR
            prompt, other tasks with their text templates); with no
            instruction, the task's first instruction is used.
        sample_rate : int, optional
            The rate of waveform inputs.
        batch_size : int
            Inputs decoded together.
        num_beams, max_new_tokens : int, optional
            Decoding options (default: the run's).

        Returns
        -------
        list of str or str
            One answer per input (a single string for a single input).
        """
        single = not isinstance(audio, (list, tuple))
        items = [audio] if single else list(audio)
        if isinstance(instruction, (list, tuple)):
            if len(instruction) != len(items):
                raise ValueError(
                    f"{len(instruction)} instructions for {len(items)} inputs"
                )
            instructions = list(instruction)
        else:
            instructions = [instruction] * len(items)
        work = Path(tempfile.mkdtemp(prefix="audiollm_inputs_"))
        try:
            entries = {}
            for i, (item, text) in enumerate(zip(items, instructions)):
                entry = {
                    "wav": _audio_item(
                        item,
                        i,
                        work,
                        sample_rate,
                        self.hparams.get("max_audio_seconds"),
                    ),
                    "task": task or "custom",
                    "instruction": self.instruction_for(text, task),
                    "target": "",
                }
                if text is not None:
                    entry["text_instruction"] = entry["instruction"].replace(
                        AUDIO_MARKER, TEXT_MARKER
                    )
                entries[f"input{i}"] = entry
            hyps = self._answer(
                entries,
                batch_size=batch_size,
                num_beams=num_beams,
                max_new_tokens=max_new_tokens,
                progress=False,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        answers = [hyps[f"input{i}"] for i in range(len(items))]
        return answers[0] if single else answers

    def generate_manifest(
        self,
        manifests,
        data_root=None,
        batch_size=None,
        max_per_manifest=None,
        num_beams=None,
        max_new_tokens=None,
        progress=None,
    ):
        """Answers every example of manifests (validated first).

        Arguments
        ---------
        manifests : str or list of str
            SpeechBrain JSON manifests (this toolkit's format).
        data_root : str, optional
            Value of ``{data_root}`` (default: the run's data folder).
        batch_size : int, optional
            Default: the run's test batch size.
        max_per_manifest : int, optional
            The first N examples of each manifest.
        num_beams, max_new_tokens : int, optional
            Decoding options (default: the run's).
        progress : bool, optional
            A progress bar (default: on a terminal).

        Returns
        -------
        list of dict
            ``{"id", "task", "hyp", "ref"}`` in manifest order (as the
            recipes' ``*_hyps.jsonl``).
        """
        if isinstance(manifests, (str, Path)):
            manifests = [manifests]
        if data_root is None and self.hparams.get("data_folder"):
            data_root = resolve_source(self.hparams["data_folder"])
        table = task_definitions(self.hparams.get("task_definitions"))
        options = validation_options(self.hparams, table)
        options["audio_check_store"] = None
        entries = load_entries(
            [str(m) for m in manifests],
            str(data_root or ""),
            sample_rate=self.sample_rate,
            max_per_manifest=max_per_manifest,
            **options,
        )
        override_instructions(
            entries,
            check_instruction_overrides(
                self.hparams.get("instruction_overrides"), table
            ),
        )
        if batch_size is None:
            opts = self.hparams.get("test_dataloader_opts") or {}
            batch_size = opts.get("batch_size", 8)
        hyps = self._answer(
            entries,
            batch_size=batch_size,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            progress=progress,
        )
        return [
            {
                "id": ex_id,
                "task": entry.get("task"),
                "hyp": hyps[ex_id],
                "ref": entry.get("target"),
            }
            for ex_id, entry in entries.items()
        ]

    def _answer(self, entries, batch_size, num_beams, max_new_tokens, progress):
        """``{id: answer}`` of entries, decoded in batches in order."""
        brain = self.brain
        dataset = make_dataset(
            entries,
            brain.llm,
            sample_rate=self.sample_rate,
            prompt_format=self.hparams.get("prompt_format"),
        )
        dataset = brain.add_dataset_items(dataset, entries, training=False)
        loader = make_dataloader(
            dataset, batch_size=int(batch_size), collate_fn=PaddedBatch
        )
        decoding = {"num_beams": num_beams, "max_new_tokens": max_new_tokens}
        saved = {k: getattr(brain.hparams, k, None) for k in decoding}
        for key, value in decoding.items():
            if value is not None:
                setattr(brain.hparams, key, int(value))
        if progress is None:
            progress = sys.stderr.isatty()
        out = {}
        brain.modules.eval()
        try:
            with torch.no_grad(), brain.evaluation_ctx:
                for batch in tqdm(loader, disable=not progress, unit="batch"):
                    out.update(zip(batch.id, brain.generate_batch(batch)))
        finally:
            for key, value in saved.items():
                setattr(brain.hparams, key, value)
        return out

    # ------------------------------------------------------------- export
    def export(self, out_folder):
        """Writes a self-contained export (see :mod:`audiollm_lobes.export`).

        Arguments
        ---------
        out_folder : str or Path
            The export's folder (replaced atomically if it exists).

        Returns
        -------
        Path
            ``out_folder``.
        """
        from audiollm_lobes.export import export_model

        return export_model(self, out_folder)


def write_answers(rows, path):
    """Writes ``generate_manifest`` rows as JSON lines (atomically).

    Arguments
    ---------
    rows : list of dict
        The rows.
    path : str or Path
        The ``.jsonl`` file.
    """
    write_text(
        path,
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
    )
