"""Long vocabulary lists: each clip's prompt gets the terms most like a first transcript."""

import random
import string

import numpy as np

from engine.hints import MAX_PROMPT_TERMS, select_hints


def _fillers(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(6, 11))) for _ in range(n)]


def test_misheard_terms_are_selected_from_a_thousand():
    terms = _fillers(998)
    terms.insert(100, "amlodipine")
    terms.insert(700, "Kowalczyk")
    picked = select_hints(terms, "Start am low dipine and call mister Kovalchik today.")
    assert len(picked) == MAX_PROMPT_TERMS
    assert "amlodipine" in picked and "Kowalczyk" in picked
    assert picked == [t for t in terms if t in set(picked)]  # the user's order is kept


def test_a_short_list_goes_in_whole():
    terms = _fillers(12)
    assert select_hints(terms, "anything at all") == terms
    assert select_hints(_fillers(50), "", limit=50) == _fillers(50)


def test_transcriber_cuts_a_long_list_per_clip(tiny_model_dir):
    from engine.transcriber import Transcriber

    tr = Transcriber(tiny_model_dir, device="cpu")
    calls = []
    real = tr.backend.transcribe_batch

    def spy(clips, *, hints, beam_size, timing):
        calls.append((len(clips), None if hints is None else list(hints)))
        return real(clips, hints=hints, beam_size=beam_size, timing=timing)

    tr.backend.transcribe_batch = spy
    audio = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)
    from engine.audio import AudioChunk

    chunks = [AudioChunk(audio=audio, start=0.0, end=1.0), AudioChunk(audio=audio[:8000], start=2.0, end=2.5)]
    long_list = _fillers(500)
    tr.transcribe_chunks(chunks, hints=long_list)
    assert calls[0] == (2, None)  # the hint-free draft of both clips, batched
    assert [n for n, _ in calls[1:]] == [1, 1]
    for _, hints in calls[1:]:
        assert len(hints) == MAX_PROMPT_TERMS and set(hints) <= set(long_list)
    calls.clear()
    tr.transcribe_chunks(chunks, hints=long_list[:10])
    assert calls == [(2, long_list[:10])]
