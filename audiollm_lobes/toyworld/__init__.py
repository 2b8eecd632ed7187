"""The built-in offline toy world: generated speech, sounds, tasks, backbones.

Modules: ``grammar`` (sentences, translations, answers), ``speech``
(espeak-ng synthesis with speakers and styles), ``sounds`` (synthetic
sound events and scenes), ``world`` (``build_world``: audio, manifests,
text corpora), ``backbones`` (toy LM and encoders).

Authors
 * audiollm-lobes developers, 2026
"""
