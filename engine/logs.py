"""How the libraries underneath speak: quietly, since our own progress is what users read.

Kept apart from engine.runtime so that the CLI can set this up before parsing its
arguments without importing torch, transformers or ONNX Runtime (`steno --help` stays
instant).
"""

from __future__ import annotations

import logging
import os
import sys

NOISY = ("transformers", "torch", "peft")


def quiet_libraries() -> None:
    """Silence transformers' info logs and "Loading weights" bars, whether or not it is
    imported yet: the environment is what it reads when it is."""
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
