"""Every spoken word reaches the transcript: window joins, utterance edges, and the guards.

The real tiny.en (installed by CI from its pinned package) decodes espeak-ng recordings
built so that the old pipeline lost words: a sentence beside a 30-second window's end
(Whisper's lone opening timestamp, which was dropped) and whispered first and last words
(which the VAD scored below its threshold and cut off).
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from bench.longform import pause_after
from engine.audio import VAD_FRAME_S, AudioChunk, _plan_chunks
from engine.backend import ChunkResult, Span, Timing
from engine.text.metrics import normalize
from tests.conftest import espeak

SR = 16000
ROOT = Path(__file__).resolve().parents[2]


def _say(text: str, tmp_path: Path, voice: str, rate: int = 165) -> np.ndarray:
    wav = espeak(text, tmp_path / "say.wav", voice=voice, rate=rate)
    audio, rate_in = sf.read(wav, dtype="float32")
    return soxr.resample(audio, rate_in, SR)


def _present(reference: str, text: str) -> bool:
    """At least half of the reference's words appear, in order, in `text`."""
    import jiwer

    ref = normalize(reference).split()
    out = jiwer.process_words(" ".join(ref), normalize(text) or "-")
    return sum(c.ref_end_idx - c.ref_start_idx for c in out.alignments[0] if c.type == "equal") >= len(ref) / 2


# ------------------------------------------------------------------ chunk planning (no model)


def _probs(seconds: float, spans: list[tuple[float, float, float]]) -> np.ndarray:
    probs = np.full(int(seconds / VAD_FRAME_S), 0.01, np.float32)
    for a, b, p in spans:
        probs[int(a / VAD_FRAME_S):int(b / VAD_FRAME_S)] = p
    return probs


def _plan(probs: np.ndarray) -> list[tuple[float, float]]:
    return _plan_chunks(probs, len(probs) * VAD_FRAME_S, 30.0, min_silence_s=0.3, pad_s=0.2, threshold=0.5,
                        max_gap_s=2.0)


def test_faint_speech_beside_a_region_stays_in_its_chunk():
    """A whispered word (VAD 0.2-0.4) 0.5 s before and after voiced speech is kept."""
    probs = _probs(10.0, [(2.0, 2.4, 0.3), (2.9, 5.0, 0.95), (5.6, 6.2, 0.2)])
    (start, end), = _plan(probs)
    assert start <= 2.0 and end >= 6.2


def test_faint_sound_far_from_speech_is_not_taken_in():
    """Hum that the VAD half-hears stays out when it is not next to speech: no chunk of noise."""
    probs = _probs(20.0, [(1.0, 1.5, 0.2), (8.0, 10.0, 0.95), (17.0, 19.0, 0.3)])
    (start, end), = _plan(probs)
    assert 7.0 <= start <= 8.0 and 10.0 <= end <= 11.0


def test_a_recording_heard_only_faintly_goes_to_the_model_whole():
    """Whispered words the VAD scores 0.3-0.45, too far apart to join, are not dropped: with
    nothing surer in the file, all of it is decoded (the model's speech check then decides)."""
    probs = _probs(40.0, [(1.0, 1.3, 0.4), (3.5, 3.8, 0.35), (6.0, 6.4, 0.45)])
    assert _plan(probs) == [(0.0, pytest.approx(30.0, abs=1.0)), (pytest.approx(30.0, abs=1.0), 40.0)]
    assert _plan(_probs(40.0, [(1.0, 1.3, 0.2)])) == []  # hiss and hum stay under FAINT_SPEECH


# ------------------------------------------------------------------ where a bridge model's LM stopped


def _frames(labels: list[int], n_labels: int = 12) -> np.ndarray:
    """CTC frame log-probabilities whose best label per frame is `labels` (0: blank)."""
    logp = np.full((len(labels), n_labels), -9.0, np.float32)
    logp[np.arange(len(labels)), labels] = -0.01
    return logp


TOKEN_TO_LABEL = np.arange(12)  # token t is CTC label t (0 is blank)
HEARD = [0, 1, 0, 2, 0, 0, 3, 0, 4, 0, 0, 5, 0, 6, 0, 7, 0, 8, 0, 9, 0]  # 21 frames of 0.5 s


def test_a_bridge_lm_that_stops_early_covers_only_what_it_wrote():
    from engine.bridge.coverage import covered_seconds

    covered = covered_seconds(_frames(HEARD), [1, 2, 3, 4], TOKEN_TO_LABEL, seconds=10.5)
    assert covered == pytest.approx((8 + 11 + 1) / 2 * 0.5)  # between "4" (frame 8) and "5" (frame 11)


@pytest.mark.parametrize("written", [[1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 5, 6, 7, 8, 10],
                                     [1, 2, 3, 4, 10, 11, 10, 11], []])
def test_a_bridge_lm_that_wrote_to_the_end_or_its_own_way_covers_all(written):
    """All heard; all but head noise at the end; the LM went on with other words (a
    paraphrase: decoding again would say it twice); nothing in common."""
    from engine.bridge.coverage import covered_seconds

    assert covered_seconds(_frames(HEARD), written, TOKEN_TO_LABEL, seconds=10.5) is None


# ------------------------------------------------------------------ an unfinished window is decoded on


class HalfBackend:
    """Says a window longer than 2 s holds "first part" and stops halfway (as Whisper's lone
    opening timestamp does); a shorter clip holds "second part"."""

    device_text = "test"

    def __init__(self):
        self.calls: list[tuple[float, str | None]] = []

    def transcribe_batch(self, clips, *, hints, beam_size, timing, context=None):
        out = []
        for clip in clips:
            seconds = len(clip) / SR
            self.calls.append((seconds, context))
            if seconds > 2.0:
                half = seconds / 2
                out.append(ChunkResult("first part", [1, 2], [" first", " part"], [-0.1, -0.1], [],
                                       [Span(0.0, half, "first part", [" first", " part"], [-0.1, -0.1])],
                                       covered=half))
            else:
                out.append(ChunkResult("second part", [3, 4], [" second", " part"], [-0.1, -0.1], [],
                                       [Span(0.0, seconds, "second part", [" second", " part"], [-0.1, -0.1])]))
        return out

    def set_adapter(self, adapter, base_model_id):
        return None


class UntimedHalfBackend(HalfBackend):
    """As a bridge model says it: the same texts and stop, without timed spans."""

    def transcribe_batch(self, clips, **kw):
        return [dataclasses.replace(r, spans=[]) for r in super().transcribe_batch(clips, **kw)]


@pytest.mark.parametrize("backend", [HalfBackend, UntimedHalfBackend])
def test_the_rest_of_an_unfinished_window_is_decoded_with_the_text_before_it(tiny_model_dir, tmp_path, backend):
    from engine.transcriber import Transcriber

    tr = Transcriber(tiny_model_dir, device="cpu")
    tr.backend = backend()
    audio = _say("please check the dose of insulin tonight", tmp_path, "en-us", rate=110)
    chunk = AudioChunk(10.0, 10.0 + len(audio) / SR, audio)
    segments = tr.transcribe_chunks([chunk])
    assert [s.text for s in segments] == ["first part", "second part"]
    half = len(audio) / SR / 2
    assert segments[0].end == pytest.approx(10.0 + half, abs=0.01)
    assert segments[1].start == pytest.approx(10.0 + half, abs=0.01)
    assert segments[1].end == pytest.approx(chunk.end, abs=0.002)
    assert tr.backend.calls[1] == (pytest.approx(half, abs=0.01), "first part")


def test_a_lone_opening_timestamp_marks_the_rest_unfinished(real_transcriber):
    """Whisper's tokens <|0.00|> text <|2.00|><|2.00|> (end): the first segment is kept, and
    the clip is unfinished from 2.00 s on; a closed last segment finishes the clip."""
    from engine.whisper.backend import Hypothesis

    b = real_transcriber.backend
    ts = b.vocab.timestamp_begin
    words = b.tokenizer.encode(" Take two tablets.", add_special_tokens=False)
    audio = np.zeros(6 * SR, np.float32)
    lone = Hypothesis([ts] + words + [ts + 100, ts + 100], [-0.1] * (len(words) + 3))
    r = b._result(lone, audio)
    assert r.covered == pytest.approx(2.0) and r.text == "Take two tablets." and r.spans[-1].end == pytest.approx(2.0)
    closed = Hypothesis([ts] + words + [ts + 100], [-0.1] * (len(words) + 2))
    assert b._result(closed, audio).covered is None
    cut = Hypothesis([ts] + words + [ts + 100, ts + 110] + words, [-0.1] * (2 * len(words) + 3), ["max-length"])
    r = b._result(cut, audio)
    assert r.covered == pytest.approx(2.0) and r.text == "Take two tablets." and "max-length" not in r.flags


# ------------------------------------------------------------------ the real tiny.en


def test_every_sentence_beside_a_window_join_is_kept(real_transcriber, tmp_path):
    """About a minute of sentences from two voices, pauses placed on the 30-second marks.
    Without decoding on from Whisper's lone opening timestamp, tiny.en lost two sentences."""
    lines = (ROOT / "resources" / "rehearsal" / "general.txt").read_text(encoding="utf-8").splitlines()
    pool = [s.strip() for s in lines if s.strip() and not s.startswith("#")]
    rng = random.Random(2)
    parts, refs, t = [], [], 0.0
    for i, text in enumerate(rng.sample(pool, 22)):
        audio = _say(text, tmp_path, ("en-us", "en-gb+f2")[i % 2])
        parts.append(audio)
        refs.append(text)
        t += len(audio) / SR
        pause = pause_after(t, rng, longest=1.0)
        parts.append(np.zeros(int(pause * SR), np.float32))
        t += pause
        if t > 62:
            break
    transcript = real_transcriber.transcribe(np.concatenate(parts))
    lost = [r for r in refs if not _present(r, transcript.text)]
    assert lost == [], transcript.text


def test_whispered_first_and_last_words_are_kept(real_transcriber, tmp_path):
    z = np.zeros(SR // 2, np.float32)
    audio = np.concatenate([z, _say("Nurse", tmp_path, "en-us+whisper", 150),
                            _say("please check the dose of the insulin", tmp_path, "en-us", 150),
                            _say("tonight", tmp_path, "en-us+whisper", 150), z])
    words = normalize(real_transcriber.transcribe(audio).text).split()
    assert words[0] == "nurse" and words[-1] == "tonight", words


def test_a_whispered_recording_is_transcribed_and_flagged(real_transcriber, tmp_path):
    """The VAD never reaches 0.5 on this whispered sentence (espeak-ng's whisper voice)."""
    audio = _say("we saw deer in the woods", tmp_path, "en-us+whisper", 110)
    segment, = real_transcriber.transcribe(audio).segments
    assert {"deer", "woods"} <= set(normalize(segment.text).split()), segment.text
    assert "faint-speech" in segment.flags


@pytest.mark.parametrize("kind", ["silence", "noise", "tone", "hum"])
def test_silence_noise_and_tones_still_give_nothing(real_transcriber, kind):
    n = 40 * SR
    t = np.arange(n) / SR
    rng = np.random.default_rng(1)
    audio = {"silence": np.zeros(n), "noise": rng.standard_normal(n) * 0.05,
             "tone": 0.3 * np.sin(2 * np.pi * 440 * t),
             "hum": 0.1 * np.sin(2 * np.pi * 50 * t) + rng.standard_normal(n) * 0.01}[kind].astype(np.float32)
    assert real_transcriber.transcribe(audio).text == ""


def _word_clip(word: str, tmp_path: Path, voice: str, seconds: float) -> np.ndarray:
    """`word` said quickly, cut to its sound and to `seconds`: a spoken digit's clip."""
    audio = _say(word, tmp_path, voice, 260)
    sound = np.flatnonzero(np.abs(audio) > 0.01)
    audio = audio[sound[0]:sound[-1] + 1][:int(seconds * SR)]
    return np.pad(audio, (0, int(seconds * SR) - len(audio)))


def test_a_word_alone_in_a_short_clip_is_kept(real_transcriber, tmp_path):
    """A 0.4 s clip holding one word. Whisper's no-speech probability is high on a window
    that is mostly padding (0.6-0.7), and the word was removed as no-speech."""
    segment, = real_transcriber.transcribe(_word_clip("seven", tmp_path, "en-gb+f2", 0.4)).segments
    assert normalize(segment.text) == "seven" and "no-speech" not in segment.flags, (segment.text, segment.removed)


@pytest.mark.parametrize("kind", ["silence", "noise", "tone", "hum", "click"])
def test_short_silence_noise_and_tones_still_give_nothing(real_transcriber, kind):
    """The short-clip rules (the model's word where the VAD hears too little) invent nothing
    on 0.4 s of sound that is not speech, by the VAD's chunks or decoded whole."""
    n = int(0.4 * SR)
    t = np.arange(n) / SR
    rng = np.random.default_rng(2)
    audio = {"silence": np.zeros(n), "noise": rng.standard_normal(n) * 0.05,
             "tone": 0.3 * np.sin(2 * np.pi * 440 * t),
             "hum": 0.1 * np.sin(2 * np.pi * 50 * t) + rng.standard_normal(n) * 0.01,
             "click": np.where(np.abs(t - 0.2) < 0.005, 0.8, 0.0)}[kind].astype(np.float32)
    assert real_transcriber.transcribe(audio).text == ""
    segment, = real_transcriber.transcribe_chunks([AudioChunk(0.0, 0.4, audio)], vad_check=True)
    assert segment.text == ""


def test_the_last_words_stay_when_whisper_times_a_segment_past_the_clip(real_transcriber, tmp_path):
    """tiny.en closed "This is the Montreal Force" at 10.28 s of this 1.8 s clip and wrote
    nothing more: timestamps past the clip's end are not allowed."""
    words = normalize(real_transcriber.transcribe(_say("this is the montreal forced aligner", tmp_path, "en-us",
                                                      200)).text).split()
    assert "montreal" in words and words.index("montreal") + 2 < len(words), words


def test_no_speech_clip_decoded_directly_has_no_rest_to_decode(real_transcriber):
    audio = np.zeros(5 * SR, np.float32)
    r = real_transcriber.backend.transcribe_batch([audio], hints=None, beam_size=1, timing=Timing())[0]
    assert r.covered is None



# ------------------------------------------------------------------ faint speech and the model's word


class SureBackend:
    """Writes "montreal forced aligner" for any clip, with a given probability of speech."""

    device_text = "test"

    def __init__(self, speech_prob: float | None):
        self.speech_prob = speech_prob

    def transcribe_batch(self, clips, *, hints, beam_size, timing, context=None):
        return [ChunkResult("montreal forced aligner", [1, 2, 3], [" montreal", " forced", " aligner"],
                            [-0.2] * 3, [], speech_prob=self.speech_prob) for _ in clips]

    def set_adapter(self, adapter, base_model_id):
        return None


@pytest.mark.parametrize("vad, model, kept", [(0.45, 0.9, True), (0.45, 0.2, False), (0.45, None, False),
                                              (0.02, 0.9, False)],
                         ids=["faint-and-sure", "faint-and-unsure", "faint-no-witness", "silent-and-sure"])
def test_text_on_faint_speech_stands_on_the_models_word(tiny_model_dir, vad, model, kept):
    """Whispered or creaky speech (VAD under 0.5) keeps its text, flagged, where the model is
    sure it heard speech; silence never does, and a family without a witness stays strict."""
    from engine.transcriber import Transcriber

    tr = Transcriber(tiny_model_dir, device="cpu")
    tr.backend = SureBackend(model)
    audio = np.zeros(3 * SR, np.float32)
    chunk = AudioChunk(0.0, 3.0, audio, np.full(int(3.0 / VAD_FRAME_S), vad, np.float32))
    [seg] = tr.transcribe_chunks([chunk], vad_check=True)
    if kept:
        assert seg.text == "montreal forced aligner" and "faint-speech" in seg.flags
    else:
        assert seg.text == "" and "no-speech" in seg.flags and seg.removed == "montreal forced aligner"


@pytest.mark.parametrize("seconds, model, kept", [(0.3, 0.45, True), (0.3, 0.3, False), (3.0, 0.45, False)],
                         ids=["short-at-whispers-bar", "short-and-unsure", "long-at-whispers-bar"])
def test_in_a_chunk_too_short_for_the_vad_the_model_judges_at_whispers_bar(tiny_model_dir, seconds, model, kept):
    """A spoken digit of 0.2-0.3 s, faintly heard by the VAD: the model's speech probability
    counts from 0.4, Whisper's own no-speech bar, where a longer chunk needs 0.5."""
    from engine.transcriber import Transcriber

    tr = Transcriber(tiny_model_dir, device="cpu")
    tr.backend = SureBackend(model)
    audio = np.zeros(int(seconds * SR), np.float32)
    chunk = AudioChunk(0.0, seconds, audio, np.full(max(1, int(seconds / VAD_FRAME_S)), 0.45, np.float32))
    [seg] = tr.transcribe_chunks([chunk], vad_check=True)
    assert (seg.text == "montreal forced aligner") == kept and ("no-speech" in seg.flags) != kept
