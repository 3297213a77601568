"""Whisper's tokenizer, read straight from the folder's tokenizer.json by `tokenizers`.

transformers' WhisperTokenizer wraps the very same tokenizer, but importing and loading it
costs about 0.6 s and 50 MB of every start. The ids and text are the same (checked over the
whole vocabulary and random token sequences in tests/engine/test_whisper_tokenizer.py),
including transformers' one difference: timestamp tokens decode to nothing.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import ModelFolderError, first_line

TOKENIZER_FILE = "tokenizer.json"
FIRST_TIMESTAMP = "<|0.00|>"


class WhisperTokenizer:
    """encode / decode / get_vocab as the decoding code and the trainer's prompts use them."""

    def __init__(self, path: str | Path):
        from tokenizers import Tokenizer

        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises its own Exception subclass for bad files
            raise ModelFolderError(f"cannot load the Whisper tokenizer ({first_line(e)})", path) from None
        self._vocab = self._tokenizer.get_vocab(with_added_tokens=True)
        self._timestamp_begin = self._vocab.get(FIRST_TIMESTAMP, len(self._vocab))

    @classmethod
    def from_folder(cls, sub: str | Path) -> "WhisperTokenizer":
        return cls(Path(sub) / TOKENIZER_FILE)

    def __len__(self) -> int:
        return len(self._vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int]) -> str:
        """Special tokens are kept in the text, timestamps left out, as transformers does."""
        return self._tokenizer.decode([int(i) for i in ids if i < self._timestamp_begin], skip_special_tokens=False)
