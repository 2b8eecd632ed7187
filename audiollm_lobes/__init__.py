"""audiollm-lobes: reusable SpeechBrain lobes that teach frozen text LLMs
to listen (LiSTEN, PAL, Wav2Prompt), with a built-in offline toy world.

Authors
 * audiollm-lobes developers, 2026
"""

__version__ = "0.1.0"
