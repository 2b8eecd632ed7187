"""Installs audiollm-lobes: lobes that teach frozen text LLMs to listen.

Every distribution below is imported by the package, a recipe, a benchmark
or a test (``tests/unit/test_packaging.py`` checks both directions and that
the installed versions satisfy these bounds). Where a lower bound comes
from an API the code needs, the comment names it; "tested" means the unit
tests passed with exactly that version installed.
"""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    # transformers' own floor (it disables PyTorch below 2.2); tested with
    # 2.14 only
    "torch>=2.2",
    # SpeechBrain's audio loading; released in step with torch
    "torchaudio>=2.2",
    # 1.1.0: speechbrain.utils.seed_everything (1.0.2), BEATs (1.0.3) and
    # no torchaudio.list_audio_backends() at import (gone in torchaudio
    # 2.9); tested (but a toy BEATs saved by >= 1.1.2, with weight-norm
    # parametrizations, does not load in older versions). <2: the toy
    # BEATs uses BEATs(ckp_path=...).cfg and its {"cfg", "model"} layout
    "speechbrain>=1.1.0,<2",
    # 5.4: the tokenizers-backed LlamaTokenizer(vocab=, merges=) of the toy
    # LM (5.0), from_pretrained(dtype=) and DynamicCache(config=) (4.56),
    # AttentionInterface (by 4.53), Whisper encoder layers returning a tensor
    # (5.4); tested. <5.40: lal.py plugs into the attention interface and
    # the KV cache, and the past_key_values= keyword that llm.py and lal.py
    # pass is announced for removal in 5.40
    "transformers>=5.4,<5.40",
    # inject_adapter_in_model (0.5); 0.12 tested with transformers 5.4
    "peft>=0.12",
    "hyperpyyaml>=1.2",
    # yaml.safe_dump / safe_load of the training state (brain.py)
    "pyyaml>=5.4",
    "sentencepiece>=0.2",
    # process_words / process_characters
    "jiwer>=3.0",
    "sacrebleu>=2.4",
    "soundfile>=0.12",
    "scipy>=1.10",
    "safetensors>=0.4.3",
    # the toy world's build lock, on any OS
    "filelock>=3.0",
    # peak memory on Windows (audiollm_lobes/peak_memory.py); POSIX uses
    # the standard library
    'psutil>=5.6; platform_system == "Windows"',
    "matplotlib>=3.7",
    "tqdm>=4.60",
    "numpy>=1.24",
]

EXTRAS_REQUIRE = {
    # tokenizers: the tests build special-token variants of the toy
    # tokenizer (transformers >= 5.4 needs >= 0.22 anyway)
    "dev": ["pytest>=7", "ruff>=0.5", "packaging>=21", "tokenizers>=0.22"],
    # CausalLM(device_map=...) (yaml: llm_device_map): transformers needs
    # accelerate to place weights while loading
    "device-map": ["accelerate>=1.1.0"],
}

setup(
    name="audiollm-lobes",
    version="0.1.0",
    description=(
        "SpeechBrain lobes and recipes for audio LLMs "
        "(LiSTEN, PAL, Wav2Prompt) with an offline toy world"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    packages=find_packages(include=["audiollm_lobes", "audiollm_lobes.*"]),
    # transformers 5 needs Python 3.10
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            "audiollm-toyworld=audiollm_lobes.toyworld.__main__:main",
            "audiollm-compare=audiollm_lobes.compare:main",
            "audiollm-generate=audiollm_lobes.generate:main",
            "audiollm-export=audiollm_lobes.export:main",
        ]
    },
)
