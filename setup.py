"""Installs audiollm-lobes: lobes that teach frozen text LLMs to listen."""

from setuptools import find_packages, setup

setup(
    name="audiollm-lobes",
    version="0.1.0",
    description=(
        "SpeechBrain lobes and recipes for audio LLMs "
        "(LiSTEN, PAL, Wav2Prompt) with an offline toy world"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["audiollm_lobes", "audiollm_lobes.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
        "torchaudio>=2.1",
        "speechbrain>=1.0",
        "transformers>=4.45",
        "hyperpyyaml>=1.2",
        "sentencepiece>=0.2",
        "jiwer>=3.0",
        "sacrebleu>=2.4",
        "accelerate>=0.30",
        "soundfile>=0.12",
        "peft>=0.12",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "numpy>=1.24",
    ],
    extras_require={"dev": ["pytest>=7", "ruff>=0.5"]},
    entry_points={
        "console_scripts": [
            "audiollm-toyworld=audiollm_lobes.toyworld.__main__:main",
        ]
    },
)
