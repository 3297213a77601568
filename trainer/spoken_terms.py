"""Training clips made from a word list or documents: sentences holding the terms, spoken by TTS voices.

Why: a Whisper-family model learns only from audio, and a bridge model learns a spelling far
better from audio than from text alone. Without any recording by the user, sentences that hold
each term (the documents' own sentences where they have one, else short carrier sentences),
spoken by many TTS voices (trainer/voices.py: espeak-ng accents and variants, piper and
Kokoro where installed) and roughened by the same augmentation as the default model's corpus,
teach the model how each term sounds and how it is spelt. The trainer's rehearsal sentences
still go beside them, so general speech is not forgotten.

Clip i is a pure function of (its sentence, i, seed): made once into a cache folder, reused
by a resumed or repeated run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from trainer.records import MIN_PAIRS, DataReport, Pair, Progress
from trainer.voices import SR, Voice, all_voices, augment, available, by_engine, pick_voice, synthesize

DEFAULT_COUNT = 48  # the fewest training sentences by default: 4 per term for a 12-term list
PER_TERM = 4  # a longer list gets this many per term by default, up to MAX_DEFAULT
MAX_DEFAULT = 400  # about an hour of CPU encoding and training for a Whisper-base model; --spoken N for more
MAX_COUNT = 2000
# Voices no training clip uses: the held-out clips' voices here, and bench/biasing.py's test voices.
EVAL_VOICES = ["espeak:en-gb-x-rp+f4", "espeak:en-us+m7"]
BENCH_VOICES = ["espeak:en+f2", "espeak:en-us-nyc"]

TEMPLATES = [
    "Please note {t} in the record.", "We discussed {t} again this morning.", "The report mentions {t} twice.",
    "I wrote {t} on the list yesterday.", "{t} came up at the end of the meeting.",
    "Can you check the spelling of {t} for me?", "She said {t} would be the main topic.",
    "He asked about {t} before he left.", "The next item is {t}.", "Make sure {t} is written correctly.",
    "They brought up {t} during the call.", "Compare {t} with {u} in the notes.", "Then we went on to {t}.",
    "Write {t}, then {u}, and read them back.", "Nobody mentioned {t} until today.", "Is {t} on the new list?",
]
EVAL_TEMPLATES = ["At the start of the visit we talked about {t}.", "The letter from last week names {t}.",
                  "Remind me to look up {t} tonight.", "Both {t} and {u} were in the summary."]


def default_count(n_terms: int) -> int:
    """Sentences to speak for a list of n_terms when the user does not say."""
    return max(DEFAULT_COUNT, min(PER_TERM * n_terms, MAX_DEFAULT))


def fill(template: str, terms: list[str], i: int, rng: random.Random) -> str:
    """The template with term i (and another term for {u}) put in."""
    t = terms[i % len(terms)]
    others = [x for x in terms if x != t] or [t]
    text = template.format(t=t, u=rng.choice(others))
    return text[0].upper() + text[1:]


def document_sentences(texts: list[str], terms: list[str]) -> list[str]:
    """The documents' sentences that hold a term (whole words): the user's own contexts."""
    from engine.decoding.hints import said_terms

    return [s for s in texts if 3 <= len(s.split()) <= 30 and said_terms(s, terms)]


def sentences(terms: list[str], texts: list[str], count: int, seed: int) -> list[str]:
    """`count` sentences: each term in turn, in one of the documents' sentences that hold it when
    there is one (every other time), else in a carrier sentence."""
    rng = random.Random(seed)
    own = document_sentences(texts, terms)
    out = []
    for i in range(count):
        term = terms[i % len(terms)].lower()
        theirs = [s for s in own if term in s.lower()]
        if theirs and i // len(terms) % 2 == 0:
            out.append(rng.choice(theirs))
        else:
            out.append(fill(rng.choice(TEMPLATES), terms, i, rng))
    return out


def eval_sentences(terms: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(f"eval/{seed}")
    return [fill(EVAL_TEMPLATES[i % len(EVAL_TEMPLATES)], terms, i, rng) for i in range(count)]


def train_voices() -> list[str]:
    """Installed voices, less the held-out and benchmark ones."""
    kept = set(EVAL_VOICES) | set(BENCH_VOICES)
    return [v.id for v in all_voices() if v.id not in kept and available(v)]


def speak(folder: Path, texts: list[str], voices: list[str], seed: int, roughen: bool, what: str, say, cancel
          ) -> list[Pair]:
    """Each text spoken into folder/NNNN.wav (kept if already there); [] entries for a cancel."""
    folder.mkdir(parents=True, exist_ok=True)
    groups = by_engine(voices)
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(texts):
            if cancel():
                break
            rng = random.Random(f"{seed}/{i}/{text}")
            voice = pick_voice(groups, rng)
            key = hashlib.sha256(f"{voice}/{text}".encode()).hexdigest()[:10]
            wav = folder / f"{i:04d}-{key}.wav"
            if not wav.is_file():
                say(f"speaking {what} {i + 1}/{len(texts)}")
                engine, name = voice.split(":", 1)
                audio = synthesize(Voice(engine, name), text, rng, Path(tmp))
                if roughen:
                    audio, _ = augment(audio, np.random.default_rng(rng.getrandbits(32)))
                part = wav.with_suffix(".part.wav")
                sf.write(part, audio, SR)
                part.replace(wav)
            pairs.append(Pair(wav, text, seconds=sf.info(wav).duration, source=f"spoken:{voice}"))
    return pairs


def add_spoken_terms(data: DataReport, folder: Path, count: int = DEFAULT_COUNT, seed: int = 0,
                     callback=None, cancel=None) -> DataReport:
    """`data` with `count` spoken term sentences added to its training pairs, and, when it has no
    held-out pairs, a sixth as many (at least 4) spoken by held-out voices to measure on. Unchanged when there
    are no terms, no TTS voice is installed, or count is 0; a count under MIN_PAIRS is raised to it."""
    callback = callback or (lambda p: None)
    cancel = cancel or (lambda: False)
    voices = train_voices()
    if count <= 0 or not data.terms or not voices:
        return data
    count = min(max(count, MIN_PAIRS), MAX_COUNT)  # fewer could not be trained on
    terms = data.terms
    say = lambda m: callback(Progress(0, 0, 0, None, None, None, m))  # noqa: E731
    train = speak(folder / "train", sentences(terms, data.texts, count, seed), voices, seed, True,
                  "your terms", say, cancel)
    held = []
    if not data.eval_pairs and not cancel():
        eval_voices = [v for v in EVAL_VOICES if available(Voice(*v.split(":", 1)))]
        if eval_voices:
            held = speak(folder / "eval", eval_sentences(terms, max(4, count // 6), seed), eval_voices, seed, False,
                         "held-out term sentences", say, cancel)
    return dataclasses.replace(data, pairs=data.pairs + train, eval_pairs=data.eval_pairs + held,
                               eval_source=data.eval_source or ("spoken term sentences" if held else None))
