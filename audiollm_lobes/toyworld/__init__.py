"""The built-in offline toy world: generated speech, sounds, tasks, backbones.

Modules: ``grammar`` (sentences, translations, answers), ``speech``
(espeak-ng synthesis with speakers and styles), ``sounds`` (synthetic
sound events and scenes), ``world`` (``build_world``: audio, manifests,
text corpora), ``backbones`` (``build_backbones``: tokenizer, toy LM and
encoders), ``sources`` (``toy://`` sources). The toy backbones:
``toy_lm`` (tokenizer and Llama), ``toy_encoders`` (builds both
encoders), ``toy_whisper``, ``toy_beats``; what they share: ``training``
(learning-rate schedule, length-bucketed batches), ``clips`` (labelled
clips of a world, batching); ``probes`` (linear probes on frozen
features).

Authors
 * audiollm-lobes developers, 2026
"""
