"""Rehearsal: everyday sentences spoken by TTS voices, trained on beside the user's data.

Why: an adapter trained only on sentences that each hold a new word learns to write such
words into ordinary speech too (measured on whisper-tiny.en: general WER +34% relative,
docs/trainer.md). A small batch of everyday sentences with exact transcripts next to each
batch of the user's clips keeps ordinary words written as the base model wrote them. The
audio is made on the user's machine with espeak-ng (setup.sh installs it): only the text
ships, in `resources/rehearsal/general.txt`.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
from pathlib import Path

import soundfile as sf

from trainer.records import Pair
from trainer.voices import SR, Voice, synthesize

SENTENCES = Path(__file__).resolve().parent.parent / "resources" / "rehearsal" / "general.txt"
# espeak-ng voices, several accents and variants; none of bench/adaptation.py's test voices.
VOICES = ["en-us", "en-gb-x-rp", "en-gb-scotland+m2", "en-029", "en-us+m3", "en+f2", "en-gb-x-gbcwmd",
          "en-us+f3", "en+m5", "en-gb-x-rp+f5"]


def sentences() -> list[str]:
    """The rehearsal sentences shipped with Steno (comments and blank lines skipped)."""
    lines = SENTENCES.read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


def sentences_key() -> str:
    """Short hash of the sentence file: spoken audio made from an older file is not reused."""
    return hashlib.sha256(SENTENCES.read_bytes()).hexdigest()[:8]


def available() -> bool:
    return shutil.which("espeak-ng") is not None


def rehearsal_pairs(folder: Path, count: int, seed: int = 0, cancel=lambda: False, say=lambda m: None
                    ) -> list[Pair]:
    """`count` rehearsal sentences spoken into `folder` (made once, reused by later runs) as
    training pairs; [] when espeak-ng is missing or count is 0. Clip i's sentence, voice,
    rate and pitch are a pure function of (i, seed), so a resumed run sees the same audio."""
    if count <= 0 or not available():
        return []
    rng = random.Random(seed)
    chosen = sentences()
    rng.shuffle(chosen)
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            if cancel():
                break
            text = chosen[i % len(chosen)]
            voice = VOICES[i % len(VOICES)]
            voice_rng = random.Random(f"{seed}/{i}")
            wav = folder / f"{i:04d}.wav"
            if not wav.is_file():
                say(f"speaking rehearsal sentences {i + 1}/{count}")
                audio = synthesize(Voice("espeak", voice), text, voice_rng, Path(tmp))
                part = wav.with_suffix(".part.wav")
                sf.write(part, audio, SR)
                part.replace(wav)
            pairs.append(Pair(wav, text, source=f"rehearsal:{voice}"))
    return pairs
