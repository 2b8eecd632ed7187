"""The doctest examples of the recipes' own modules.

``pytest --doctest-modules`` collects the package only (every recipe has a
``train.py``, and the recipes import their helpers by bare names), so the
recipe modules' examples run here, imported as the recipes import them.
"""

import doctest

import pytest
from conftest import load_recipe_module

MODULES = [
    ("LiSTEN", "train"),
    ("PAL", "train"),
    ("Wav2Prompt", "train"),
    ("Wav2Prompt", "text_prompts"),
    ("Wav2Prompt", "compare"),
]


@pytest.mark.parametrize("recipe, module", MODULES)
def test_recipe_module_examples(recipe, module):
    loaded = load_recipe_module(recipe, module)
    result = doctest.testmod(loaded, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{recipe}/{module}.py has no example"
    assert result.failed == 0
