"""A bridge LM's tokenizer read straight from its tokenizer.json by `tokenizers`.

transformers' fast tokenizer wraps the very same object, but importing and loading it costs
2-4 s and about 130 MB of every start (it imports sympy on the way; docs/startup.md). For
the tokenizers transformers only wraps (`TokenizersBackend`, `PreTrainedTokenizerFast`:
no class of its own, no clean-up of spaces, no extra loading arguments) the ids and text are
the same: tests/engine/test_llama.py checks them over the whole vocabulary. Any other
tokenizer (nue-asr's slow one) is read by transformers as before.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import ModelFolderError, first_line

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
WRAPPERS = ("TokenizersBackend", "PreTrainedTokenizerFast")  # transformers classes that add nothing


class PlainTokenizer:
    """encode / decode / special token ids as SpeechLM and the bridge backend use them."""

    def __init__(self, folder: str | Path, settings: dict):
        from tokenizers import Tokenizer

        path = Path(folder) / TOKENIZER_FILE
        try:
            self.backend_tokenizer = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises its own Exception subclass for bad files
            raise ModelFolderError(f"cannot load the LM's tokenizer ({first_line(e)})", path) from None
        self.bos_token_id = self._special_id(settings.get("bos_token"))
        self.eos_token_id = self._special_id(settings.get("eos_token"))
        self.pad_token_id = self._special_id(settings.get("pad_token"))

    def _special_id(self, token) -> int | None:
        if isinstance(token, dict):  # {"content": "<s>", ...}, as older files write it
            token = token.get("content")
        return None if token is None else self.backend_tokenizer.token_to_id(token)

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.backend_tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)


def plain_tokenizer(folder: str | Path, kwargs: dict) -> PlainTokenizer | None:
    """The folder's tokenizer read by `tokenizers` alone, or None where transformers' class
    would do more than wrap it (then transformers reads it)."""
    folder = Path(folder)
    if kwargs or not (folder / TOKENIZER_FILE).is_file():
        return None
    try:
        settings = json.loads((folder / TOKENIZER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(settings, dict) or settings.get("tokenizer_class") not in WRAPPERS
            or settings.get("clean_up_tokenization_spaces") or settings.get("add_prefix_space") is not None):
        return None
    return PlainTokenizer(folder, settings)
