"""Preparation scripts: a real corpus on disk -> this project's manifests.

One module per corpus, SpeechBrain style. Each has a function
``prepare_<corpus>(data_folder, save_folder, ..., skip_prep=False)`` that
reads the corpus in its official distribution layout and writes
``<save_folder>/manifests/<split>/<task>.json`` (the layout
:func:`audiollm_lobes.data.datasets.manifest_paths` reads), and a command
line::

    python -m audiollm_lobes.data.prepare.librispeech \\
        --data_folder /corpora/LibriSpeech --save_folder /data/prepared

Several corpora can be prepared into one ``save_folder``; a task file
then holds the entries of every corpus of that task (e.g. Clotho and
AudioCaps both add to ``captioning.json``), and preparing a corpus again
replaces its own entries only. What they share (skipping when done,
atomic writing, missing-file reports, instruction choice) is in
:mod:`audiollm_lobes.data.prepare.preparation`. The per-corpus commands
are listed in ``docs/data.md``.

Authors
 * audiollm-lobes developers, 2026
"""

#: The corpora with a preparation module, by module name.
CORPORA = (
    "librispeech",
    "covost2",
    "mustc",
    "iemocap",
    "voxceleb1",
    "clotho",
    "audiocaps",
    "esc50",
    "slurp",
    "librisqa",
)
