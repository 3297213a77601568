"""Audio in, Transcript out: the one entry point the CLI, the app and the trainer use.

    audio -> VAD chunks (<= ~30 s) -> encoder+bridge (ONNX Runtime) -> LM decoding (torch)

Long work reports `progress(fraction, message)` and checks `cancel()` between chunks.

Text on silence: every chunk `transcribe` cuts is asked of the VAD again once the model
has written something for it. Where the VAD hears (next to) no speech, the text is
invented, whatever the model family (the bridge family has no no-speech token of its own
to ask): the chunk is flagged "no-speech" and its text dropped (kept, flagged, with
`keep_no_speech`). Repetition loops are cut by the decoders and flagged
"dropped-repetition".
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from engine.audio import FAINT_SPEECH, SAMPLE_RATE, VAD_WINDOW, AudioChunk, load_audio, split_on_speech
from engine.backend import Backend, ChunkResult, Timing
from engine.decoding.hints import DEFAULT_HINT_MODE, heard_surely, select_hints, uses_terms, word_confidences
from engine.decoding.term_pass import DEFAULT_MARGIN, FLAG, TermIndex, improve, likely_terms
from engine.errors import StenoError
from engine.speakers.diarize import parse_speakers
from engine.text.doses import unsure_key_words, write_doses
from engine.text.transcript import Segment, Transcript, Word

log = logging.getLogger("steno")
GUARD_FLAGS = ("no-speech", "dropped-repetition")

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]

# A chunk "holds speech" when the VAD (probability >= 0.5 per 32 ms window) hears at
# least 0.1 s of it (the splitter's own shortest word) and at least 5% of the chunk. Lenient
# on purpose: the splitter already chose these chunks, and dropping real words is worse
# than keeping a flagged doubt. Silence, hiss and music sit far below both.
SPEECH_MIN_SECONDS = 0.1
SPEECH_MIN_FRACTION = 0.05
# A chunk the VAD hears only faintly keeps its text, flagged "faint-speech", where the model
# gives speech at least this probability (Whisper on whispered and creaky speech: 0.77-0.95;
# on silence, noise, hum, tones and music: 0.05-0.4).
MODEL_SPEECH_MIN = 0.5
# In a chunk shorter than this the VAD hears a short word only in part (its 32 ms windows
# begin with no context: a spoken digit of 0.2 s reaches 0.5 in 2 of 7 windows), so the
# model's word counts as Whisper's own no-speech rule counts it: speech probability at least 0.4.
SHORT_CHUNK_SECONDS = 1.0
MODEL_SPEECH_MIN_SHORT = 0.4
# The rest of a chunk the model left unfinished is decoded with the text before it as
# previous text (Whisper's long-form conditioning), at most this much of it.
CONTEXT_CHARS = 600


class Cancelled(StenoError):
    """The user stopped the job; nothing was written."""


class Transcriber:
    """A loaded model (bridge or Whisper family) ready to transcribe files or arrays."""

    def __init__(self, model: str | Path | None = None, adapter: str | Path | None = None, device: str = "auto",
                 beam_size: int | None = None, batch_size: int = 8, precision: str | None = None):
        """precision: None decodes from int8 weights on a CPU (engine.decoding.int8: 2-2.5x faster
        steps) and keeps the encoder graph in fp32; "int8" also runs a Whisper encoder graph
        in int8 (the fastest); "fp32" runs every part in fp32 (a GPU always does)."""
        from engine.models.folder import check_folder
        from engine.models.registry import model_id, resolve_model

        self.folder = resolve_model(model)
        self.config = check_folder(self.folder)  # one clear line if anything is missing
        self.model_id = model_id(self.folder)
        self.beam_size = beam_size or self.config.decode.beam_size
        self.batch_size = batch_size
        self.timing = Timing()
        self.keep_no_speech = False  # True: text the VAD says was made up on silence stays, flagged
        self.hint_mode = DEFAULT_HINT_MODE  # how a word list is used: one of HINT_MODES
        # With a word list, whole terms scored against the audio after decoding (engine.decoding.term_pass)
        self.term_pass = True
        self.term_margin = DEFAULT_MARGIN
        self._term_index: tuple[tuple[str, ...], TermIndex] | None = None
        if self.config.family == "whisper":
            from engine.whisper.backend import WhisperBackend

            self.backend: Backend = WhisperBackend(self.folder, self.config, device, precision="int8" if precision == "int8" else None,
                                          decoder_precision=precision)
        else:
            from engine.bridge.backend import BridgeBackend

            self.backend = BridgeBackend(self.folder, self.config, device, precision)
        self.adapter_meta = None
        if adapter is not None:
            self.set_adapter(adapter)

    @property
    def device_text(self) -> str:
        """What runs where, in words (an adapter with its own bridge reopens the session)."""
        return self.backend.device_text

    @property
    def name(self) -> str:
        return self.config.name or self.folder.name

    def set_adapter(self, adapter: str | Path | None) -> None:
        """Switch adapters without reloading the base model (None = no adapter)."""
        self.adapter_meta = self.backend.set_adapter(adapter, self.model_id)

    def transcribe(self, source: str | Path | np.ndarray, *, hints: list[str] | None = None,
                   beam_size: int | None = None, progress: ProgressFn | None = None,
                   cancel: CancelFn | None = None, speakers: int | str | None = None,
                   profiles: list | None = None) -> Transcript:
        """speakers: None for no speaker labels, "auto" to find how many speak, or their number
        (engine.speakers); `profiles` (engine.speakers.profiles.Profile) name the voices they
        match. A failure of the speaker labelling keeps the transcript, unlabelled, and says
        why in meta["speakers_error"]."""
        count = None if speakers is None else parse_speakers(speakers)
        progress = progress or (lambda f, m: None)
        cancel = cancel or (lambda: False)
        if isinstance(source, np.ndarray):
            audio, name = np.asarray(source, dtype=np.float32), None
        else:
            progress(0.0, f"reading {Path(source).name}")
            audio, name = load_audio(source), str(source)
        duration = len(audio) / SAMPLE_RATE
        progress(0.0, "finding speech")
        chunks = split_on_speech(audio, max_seconds=self.config.max_segment_seconds,
                                 progress=lambda f: progress(0.1 * f, "finding speech"))
        if cancel():
            raise Cancelled("transcription cancelled", name)
        progress(0.1, f"transcribing {len(chunks)} segment{'s' * (len(chunks) != 1)}")
        share = 0.9 if speakers is None else 0.8
        segments = self.transcribe_chunks(chunks, hints=hints, beam_size=beam_size, vad_check=True,
                                          progress=lambda f, m: progress(0.1 + share * f, m), cancel=cancel,
                                          source=name)
        meta = {"model_id": self.model_id, "device": self.device_text,
                "adapter": (self.adapter_meta or {}).get("name"),
                "word_times": "estimated" if self.config.family == "bridge" else "decoder"}
        if speakers is not None:
            segments = self._label_speakers(audio, chunks, segments, count, profiles, meta,
                                            lambda f: progress(0.9 + 0.1 * f, "telling speakers apart"), cancel, name)
        progress(1.0, "done")
        return Transcript(segments=segments, source=name, model=self.name, duration=duration, meta=meta)

    def _label_speakers(self, audio: np.ndarray, chunks: list[AudioChunk], segments: list[Segment],
                        count: int | None, profiles: list | None, meta: dict, progress: Callable[[float], None],
                        cancel: CancelFn, name: str | None) -> list[Segment]:
        """Segments with speaker names; on a failure, the same segments unlabelled, the reason
        in meta["speakers_error"] and the log: the words matter more than the names."""
        from engine.speakers.labels import label_speakers

        def check() -> None:
            if cancel():
                raise Cancelled("transcription cancelled", name)

        progress(0.0)
        try:
            labelled, found = label_speakers(audio, segments, count, profiles=profiles, chunks=chunks,
                                             progress=progress, check=check)
        except Cancelled:
            raise
        except Exception as e:  # noqa: BLE001 - any failure here must not cost the transcript
            reason = str(e) if isinstance(e, StenoError) else f"{type(e).__name__}: {e}"
            log.warning("%s: speakers not labelled (%s)", name or "audio", reason)
            for seg in segments:
                seg.speaker = None
                for w in seg.words:
                    w.speaker = None
            meta["speakers_error"] = reason
            return segments
        meta["speakers"] = len({s.speaker for s in labelled if s.speaker})
        if count is not None and found.speakers < count:
            meta["speakers_note"] = f"asked for {count} speakers, the speech held only {found.speakers}"
        return labelled

    def transcribe_chunks(self, chunks: list[AudioChunk], *, hints: list[str] | None = None,
                          beam_size: int | None = None, progress: ProgressFn | None = None,
                          cancel: CancelFn | None = None, vad_check: bool = False,
                          source: str | None = None) -> list[Segment]:
        """Segments for chunks the caller cut (of the file `source`, for the log). `vad_check`
        asks the VAD whether each chunk that got text holds speech (`transcribe` does);
        without it the chunks are taken as speech.

        Where the model leaves a chunk unfinished (ChunkResult.covered), the rest of it is
        decoded again on its own, as often as that still moves on, while the VAD hears
        speech in it: a sentence at a window's end is never simply dropped."""
        progress = progress or (lambda f, m: None)
        cancel = cancel or (lambda: False)
        beam = self.beam_size if beam_size is None else beam_size
        if not isinstance(beam, int) or beam < 1:
            raise StenoError(f"beam size must be a whole number of at least 1, not {beam!r}")
        parts: list[list[tuple[AudioChunk, ChunkResult]]] = [[] for _ in chunks]
        work, owners = list(chunks), list(range(len(chunks)))
        counter = _Counter(len(chunks), progress)
        contexts = None
        while work:
            results = self._decode_all(work, hints, beam, vad_check, counter, cancel, contexts)
            tails, tail_owners = [], []
            for i, chunk, r in zip(owners, work, results):
                parts[i].append((chunk, r))
                tail = _unfinished_rest(chunk, r)
                if tail is not None and heard(tail.audio, tail.speech_probs, FAINT_SPEECH):
                    tails.append(tail)
                    tail_owners.append(i)
            counter.total += len(tails)
            work, owners = tails, tail_owners
            contexts = [" ".join(r.text for _, r in parts[i])[-CONTEXT_CHARS:] for i in owners]
        self.timing.audio_seconds += sum(len(c.audio) for c in chunks) / SAMPLE_RATE
        for pieces in parts:
            for c, r in pieces:
                _log_removed(c, r, source)
        return [_as_written(s) for pieces in parts for c, r in pieces for s in chunk_segments(c, r)]

    def _decode_all(self, chunks: list[AudioChunk], hints: list[str] | None, beam: int, vad_check: bool,
                    counter: "_Counter", cancel: CancelFn, contexts: list[str] | None = None) -> list[ChunkResult]:
        """One result per chunk, decoded in batches of similar lengths; a chunk with its own
        `contexts` entry (the text before it) is decoded on its own."""
        results: list[ChunkResult | None] = [None] * len(chunks)
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i].audio))  # similar lengths batch well
        batch = self.batch_size if beam == 1 and contexts is None else 1
        for b in range(0, len(order), batch):
            if cancel():
                raise Cancelled("transcription cancelled")
            idx = order[b:b + batch]
            context = contexts[idx[0]] if contexts is not None else None
            outs = self._decode([chunks[i].audio for i in idx], hints, beam, context)
            for i, r in zip(idx, outs):
                if vad_check and r.text.strip() and not holds_speech(chunks[i].audio, chunks[i].speech_probs):
                    r = _faint_speech(r) if vouched_faint(chunks[i], r) else _no_speech(r, self.keep_no_speech)
                results[i] = r
            counter.add(len(idx))
        return results

    def _decode(self, clips: list[np.ndarray], hints: list[str] | None, beam: int,
                context: str | None = None) -> list[ChunkResult]:
        """`_decode_listed`, then with a word list the term pass (engine.decoding.term_pass):
        whole terms put in where the audio scores them within `term_margin` of the text."""
        out = self._decode_listed(clips, hints, beam, context)
        if not hints or not self.term_pass:
            return out
        index = self.term_index(hints)
        return [improve(r, clip, index, self.backend, context, self.term_margin) for clip, r in zip(clips, out)]

    def term_index(self, terms: list[str]) -> TermIndex:
        """The term pass's index of `terms`, kept for the next call with the same list."""
        key = tuple(terms)
        if self._term_index is None or self._term_index[0] != key:
            self._term_index = (key, TermIndex.build(terms))
        return self._term_index[1]

    def _decode_listed(self, clips: list[np.ndarray], hints: list[str] | None, beam: int,
                       context: str | None = None) -> list[ChunkResult]:
        """Without a word list, one decode. With one (`hint_mode`, HINT_MODES): "bias" decodes
        once with the terms boosted; "score" once as without a list (the term pass alone then
        uses it). "prompt" and "both" first transcribe each clip without
        hints; only the terms that look like something in that draft go into its prompt
        (`engine.decoding.hints.select_hints`, at most the model's `max_hint_terms`; "both"
        also boosts them), and the hinted transcript replaces the draft only if it writes one
        of them where the draft heard something like it (`engine.decoding.hints.uses_terms`):
        a list of words that are not said changes nothing. A draft in which no word the model
        was unsure of looks like a term (`engine.decoding.term_pass.likely_terms`, through the
        list's index) is not decoded again."""
        if hints and self.hint_mode == "bias":
            return self.backend.transcribe_batch(clips, hints=None, beam_size=beam, timing=self.timing,
                                                 context=context, bias_terms=hints)
        drafts = self.backend.transcribe_batch(clips, hints=None, beam_size=beam, timing=self.timing, context=context)
        if not hints or self.hint_mode == "score":
            return drafts
        limit = self.config.prompt.max_hint_terms
        out = []
        for clip, draft in zip(clips, drafts):
            sure = word_confidences(draft.token_texts, draft.logprobs)
            if heard_surely(draft.text, sure):
                out.append(draft)
                continue
            if not likely_terms(self.term_index(hints), draft.token_texts, draft.logprobs, 1):
                out.append(draft)  # no unsure word looks like a term: no second decode
                continue
            picked = select_hints(hints, draft.text, limit)
            hinted = self.backend.transcribe_batch([clip], hints=picked, beam_size=beam, timing=self.timing,
                                                   context=context,
                                                   bias_terms=picked if self.hint_mode == "both" else None)[0] \
                if picked else None
            out.append(hinted if hinted is not None and uses_terms(draft.text, hinted.text, picked, sure) else draft)
        return out


def _vad(audio: np.ndarray, probs: np.ndarray | None) -> np.ndarray:
    """The VAD's probabilities for `audio`: `probs` where known already (from the run over the
    whole file), else computed."""
    from engine.audio import speech_probabilities

    return speech_probabilities(audio) if probs is None else probs


def heard(audio: np.ndarray, probs: np.ndarray | None, threshold: float) -> bool:
    """Whether the VAD gives any 32 ms of `audio` at least `threshold`."""
    probs = _vad(audio, probs)
    return bool(len(probs)) and float(probs.max()) >= threshold


def vouched_faint(chunk: AudioChunk, r: ChunkResult) -> bool:
    """Text on a chunk the VAD hears only faintly (whispered, creaky, breathy speech) stands
    where the model itself is sure it heard speech (ChunkResult.speech_prob; the bridge
    family has no such witness). Silence, hiss, hum and tones are neither: see FAINT_SPEECH."""
    short = len(chunk.audio) < SHORT_CHUNK_SECONDS * SAMPLE_RATE
    return r.speech_prob is not None and r.speech_prob >= (MODEL_SPEECH_MIN_SHORT if short else MODEL_SPEECH_MIN) \
        and heard(chunk.audio, chunk.speech_probs, FAINT_SPEECH)


def holds_speech(audio: np.ndarray, probs: np.ndarray | None = None) -> bool:
    """Whether the VAD hears speech in `audio` (see SPEECH_MIN_SECONDS / _FRACTION); `probs`,
    the VAD's probabilities for it where they are known already, saves running it again."""
    from engine.audio import VAD_FRAME_S

    probs = _vad(audio, probs)
    speech = int((probs >= 0.5).sum())
    return speech * VAD_FRAME_S >= SPEECH_MIN_SECONDS and speech >= SPEECH_MIN_FRACTION * len(probs)


class _Counter:
    """Progress over chunks, whose number grows when unfinished rests are decoded again."""

    def __init__(self, total: int, progress: ProgressFn):
        self.total, self.done, self.progress = total, 0, progress
        self.started = time.perf_counter()

    def add(self, n: int) -> None:
        self.done += n
        eta = (time.perf_counter() - self.started) / self.done * (self.total - self.done)
        self.progress(self.done / self.total, f"segment {self.done}/{self.total}, about {eta:.0f} s left")


def _unfinished_rest(chunk: AudioChunk, r: ChunkResult) -> AudioChunk | None:
    """The part of `chunk` after what its result covers, or None when it covers it all."""
    if r.covered is None:
        return None
    skip = int(round(r.covered * SAMPLE_RATE))
    if skip <= 0 or skip >= len(chunk.audio):
        return None
    probs = None if chunk.speech_probs is None else chunk.speech_probs[skip // VAD_WINDOW:]
    return AudioChunk(chunk.start + skip / SAMPLE_RATE, chunk.end, chunk.audio[skip:], probs)


def _as_written(segment: Segment) -> Segment:
    """Doses written as clinicians write them ("75 mg"); a segment whose meaning hangs on a
    word the model was unsure of (a number, a unit, "stop", "left"...) is flagged."""
    segment = write_doses(segment)
    if unsure_key_words(segment) and "unsure-key-word" not in segment.flags:
        segment.flags.append("unsure-key-word")
    return segment


def _faint_speech(r: ChunkResult) -> ChunkResult:
    return dataclasses.replace(r, flags=r.flags + ["faint-speech"])


def _no_speech(r: ChunkResult, keep: bool) -> ChunkResult:
    flags = r.flags + ["no-speech"]
    if keep:
        return dataclasses.replace(r, flags=flags)
    return ChunkResult(text="", tokens=[], token_texts=[], logprobs=[], flags=flags,
                       removed=" ".join(t for t in (r.text.strip(), r.removed) if t))


def _log_removed(chunk: AudioChunk, r: ChunkResult, source: str | None) -> None:
    """Say in the log what a guard took out, and why, and what the term pass replaced:
    nothing is dropped or changed silently."""
    if r.replaced:
        log.info("%s%.1f-%.1f s: word list term put in: %s", f"{source}: " if source else "", chunk.start, chunk.end,
                 r.replaced)
    if r.removed:
        why = [f for f in r.flags if f in GUARD_FLAGS] or ["a guard"]
        log.warning("%s%.1f-%.1f s: %s removed %r", f"{source}: " if source else "", chunk.start, chunk.end,
                    " and ".join(why), r.removed)


def chunk_segments(chunk: AudioChunk, r: ChunkResult) -> list[Segment]:
    """One segment per chunk, or one per timed span where the model gave its own times.

    A "dropped-repetition" flag and the text a guard removed go on the span where the loop
    was cut (the last); other flags concern the whole chunk and go on every span.
    """
    spans = [sp for sp in r.spans if sp.text.strip()]
    if not spans:
        return [_segment(chunk, r)]
    out = []
    for i, sp in enumerate(spans):
        last = i == len(spans) - 1
        flags = [f for f in r.flags if f != "dropped-repetition" or last]
        start, end = chunk.start + sp.start, chunk.start + sp.end
        conf = float(np.exp(np.mean(sp.logprobs))) if sp.logprobs else None
        mine = _replaced_in(r.replaced, sp.text)
        out.append(Segment(start=round(start, 3), end=round(end, 3), text=sp.text.strip(),
                           words=_estimated_words(start, end, sp.token_texts, sp.logprobs), confidence=conf,
                           flags=[f for f in flags if f != FLAG or mine], removed=r.removed if last else "",
                           replaced=mine))
    return out


def _segment(chunk: AudioChunk, r: ChunkResult) -> Segment:
    conf = float(np.exp(np.mean(r.logprobs))) if r.logprobs else None
    end = chunk.end if r.covered is None else round(chunk.start + r.covered, 3)  # the rest is its own segment
    return Segment(start=chunk.start, end=end, text=r.text.strip(),
                   words=_estimated_words(chunk.start, end, r.token_texts, r.logprobs), confidence=conf,
                   flags=list(r.flags), removed=r.removed, replaced=r.replaced)


def _replaced_in(replaced: str, text: str) -> str:
    """The term pass's replacements (`ChunkResult.replaced`) whose term is in `text`."""
    from engine.text.metrics import normalize

    padded = f" {normalize(text)} "
    return "; ".join(x for x in replaced.split("; ") if x and f" {normalize(x.rsplit(' -> ', 1)[-1])} " in padded)


def _estimated_words(start: float, end: float, token_texts: list[str], logprobs: list[float]) -> list[Word]:
    """Words with a confidence from their tokens' probabilities, timed in proportion to their
    characters across [start, end] (a chunk, or a span the model timed itself)."""
    words: list[tuple[str, list[float]]] = []
    for piece, lp in zip(token_texts, logprobs):
        if not words or piece[:1].isspace():
            words.append((piece.strip(), [lp]))
        else:
            words[-1] = (words[-1][0] + piece, words[-1][1] + [lp])
    words = [(w, lps) for w, lps in words if w]
    total = sum(len(w) for w, _ in words) or 1
    out, t = [], start
    span = end - start
    for w, lps in words:
        dur = span * len(w) / total
        out.append(Word(w, round(t, 3), round(t + dur, 3), float(np.exp(min(lps)))))
        t += dur
    return out
