"""Runs a Whisper-family model: the encoder in ONNX Runtime, Whisper's own decoder in torch.

It implements engine.backend.Backend, as the bridge models do, so the CLI, progress,
exporters and the trainer's evaluation work unchanged (the folder: engine.models.folder;
the encoder graph: engine.whisper.encoder). The search itself is engine.decoding.search's,
shared with the bridge family; this module adds Whisper's step, rules and loop cut.

Decoding follows Whisper's rules (timestamp tokens in pairs, non-decreasing, the first
one within 1 s; blank and non-speech tokens suppressed) so that greedy output matches
faster-whisper on the same weights. Guards that Whisper itself lacks or applies
elsewhere: a no-speech check that also asks the VAD, and a repetition-loop cut. Both
drop text and say so in the chunk's flags.

Nothing here imports transformers' modeling code (about 160 MB of memory): the decoder
is engine.whisper.model, the encoder a graph; transformers' encoder is loaded only to
export that graph.
"""

from __future__ import annotations

import functools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.backend import ChunkResult, RecentEncodings, Span, Timing
from engine.decoding import search
from engine.decoding.biasing import DEFAULT_BONUS, make_bias
from engine.decoding.int8 import cache_fingerprint, choose_precision, decoding_model, load_int8, save_int8
from engine.decoding.search import Decoded, LogProbScorer, LoopCut, find_repeat
from engine.errors import ModelFolderError, StenoError, first_line
from engine.models.config import ModelConfig
from engine.models.fingerprint import tensors_fingerprint
from engine.models.folder import WHISPER_DIR, check_whisper_folder
from engine.runtime import create_session, decoder_threads, run_session, torch_device
from engine.whisper.encoder import PRECISION, WINDOW, ensure_encoder_onnx, log_mel
from engine.whisper.model import decoder_skeleton, is_decoder_tensor, load_decoder, pad_batch
from engine.whisper.tokenizer import WhisperTokenizer

SAMPLE_RATE = 16000
SECONDS_PER_TIMESTAMP = 0.02
MAX_INITIAL_TIMESTAMP = 50  # the first timestamp within 1 s, as Whisper does
# No timestamp later than this past a clip's end: on a short clip tiny.en closed "This is the
# Montreal Force" at 10.28 s of a 1.8 s clip and wrote nothing more, losing the last word.
# Closing at a round time a little on is common and harmless (2.00 on a 0.25 s digit): held
# to 1 s past the end, base wrote "for the next four." there instead of "for".
TIMESTAMP_PAST_END = 5.0
MAX_PROMPT_TOKENS = 223
# A clip the model left unfinished is decoded again from where it stopped, unless that is
# within this many seconds of either end (too little gained, or no progress made).
MIN_RESUME_SECONDS = 0.5  # Whisper keeps the previous-text prompt under half its 448 context
# Whisper's own test for a silent window: no-speech probability above 0.6 *and* an average
# log-probability below -1. The VAD is a second witness: a likely no-speech window where
# the VAD hears almost no speech is dropped even when the decoder is confident (that is
# what a hallucinated "Thank you." on noise looks like).
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
VAD_SPEECH_FRACTION = 0.2
# A clip this short is mostly padding in Whisper's 30 s window, and its no-speech probability
# says as much about the padding as about the clip: a spoken digit of 0.3 s scores 0.6-0.7
# (faster-whisper, which pads with zeros instead, 0.45-0.55). There the VAD is the witness
# for speech: text on a short clip it hears as speech over at least VAD_SURE_FRACTION of
# its length stands, however unsure the model.
SHORT_CLIP_SECONDS = 2.0
VAD_SURE_FRACTION = 0.5
# A phrase of 8 to 64 tokens said 3 times in a row is a loop (engine.decoding.search.LoopCut).
PHRASE_REPEATS = 3
# People say a short word over and over ("uh, uh, uh, uh, uh, uh"; "no, no, no, no"): an
# n-gram is a loop only from this many copies on, whatever an older steno.json says (5 cut
# a speaker's six "uh"s); Whisper's own loops run on to the length limit, far beyond it.
FILLER_REPEATS = 8
FILLER_NGRAM = 4  # ... and an n-gram this short is held at FILLER_REPEATS - 1 copies (`filler_limit`)
# Segments decoded together on a CPU. Each holds its own cross-attention keys/values
# (37 MB for base over a 30 s window). Measured on a 155 s file, base, 2 threads: batch
# 1/2/4/8 took RTF 0.117/0.098/0.101/0.091 at peak memory 871/916/1008/1055 MB; 2 keeps
# most of the gain under the 1 GB target.
CPU_BATCH = 2
# The int8 decoder made from the folder's weights, kept for the next start (hidden: not part
# of the model's files, its id or its manifest).
INT8_CACHE = ".cache/decoder.int8.pt"


@dataclass
class Vocab:
    """The token ids Whisper's decoding rules need, read off its tokenizer."""

    eot: int
    sot: int
    sot_prev: int
    no_speech: int
    timestamp_begin: int
    prefix: list[int]  # <|startoftranscript|> (+ <|en|><|transcribe|> for multilingual models)
    suppress: list[int]

    @classmethod
    def from_tokenizer(cls, tokenizer, generation_config) -> "Vocab":
        """generation_config: transformers' GenerationConfig or the dict of generation_config.json."""
        vocab = tokenizer.get_vocab()
        gen = generation_config if isinstance(generation_config, dict) else generation_config.to_dict()

        def token(*names: str) -> int:
            for name in names:
                if name in vocab:
                    return vocab[name]
            raise StenoError(f"the Whisper tokenizer has none of {names}")

        eot, sot, ts = token("<|endoftext|>"), token("<|startoftranscript|>"), token("<|0.00|>")
        prefix = [sot]
        if gen.get("is_multilingual"):
            prefix += [token("<|en|>"), token("<|transcribe|>")]  # English only, as the issue says
        # Everything between eot and the timestamps is a control token (sot, languages, tasks,
        # <|notimestamps|>, <|nocaptions|>): never part of a transcript.
        suppress = set(gen.get("suppress_tokens") or []) | set(range(eot + 1, ts))
        return cls(eot=eot, sot=sot, sot_prev=token("<|startofprev|>"), no_speech=token("<|nospeech|>", "<|nocaptions|>"),
                   timestamp_begin=ts, prefix=prefix, suppress=sorted(suppress))


@dataclass
class Hypothesis(Decoded):
    """One decoded segment (text and timestamp tokens) with the window's no-speech probability."""

    no_speech_prob: float = 0.0

    @classmethod
    def of(cls, d: Decoded, no_speech_prob: float) -> "Hypothesis":
        return cls(**vars(d), no_speech_prob=no_speech_prob)

    def avg_logprob(self) -> float:
        """Whisper's measure: the sum over tokens and the end token, per token."""
        return (sum(self.logprobs) + self.eos_logprob) / (len(self.tokens) + 1)


class DecoderStep:
    """Whisper's decoder over one batch (engine.decoding.search.Step). The prompt run also
    gives the no-speech probability: that of <|nocaptions|> right after
    <|startoftranscript|>, read before any suppression, as Whisper does."""

    def __init__(self, model, prompt: list[int], enc: torch.Tensor, enc_mask: torch.Tensor | None, rows: int,
                 sot_index: int, no_speech_id: int):
        self.model, self.prompt, self.enc, self.enc_mask, self.rows = model, prompt, enc, enc_mask, rows
        self.sot_index, self.no_speech_id = sot_index, no_speech_id
        self.cache = model.new_cache()
        self.no_speech: torch.Tensor | None = None  # (rows,), once the prompt has run

    def prefill(self) -> torch.Tensor:
        tokens = torch.tensor([self.prompt] * self.rows, device=self.enc.device)
        logits = self.model(tokens, self.enc, self.cache, self.enc_mask, keep=[self.sot_index, len(self.prompt) - 1])
        self.no_speech = logits[:, 0].float().softmax(-1)[:, self.no_speech_id]
        return logits[:, 1]

    def next(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens[:, None], self.enc, self.cache, self.enc_mask)[:, -1]

    def reorder(self, sources: list[int]) -> None:
        self.cache.reorder(torch.tensor(sources, device=self.enc.device))


# ---------------------------------------------------------------------- the backend


def prompt_tokens(tokenizer, vocab: Vocab, hints: list[str] | None, context: str | None = None) -> list[int]:
    """[<|startofprev|> + the user's terms + `context`, the text just before the clip, as
    previous text] + the start-of-transcript tokens (the trainer builds its hint prompts
    with this too). Over MAX_PROMPT_TOKENS, the oldest previous text goes first."""
    terms = [h.strip() for h in hints or [] if h.strip()]
    words = tokenizer.encode(" " + ", ".join(terms), add_special_tokens=False) if terms else []
    if context and context.strip():
        words += tokenizer.encode(" " + context.strip(), add_special_tokens=False)
    if not words:
        return list(vocab.prefix)
    return [vocab.sot_prev] + words[-MAX_PROMPT_TOKENS:] + list(vocab.prefix)


class WhisperBackend:
    def __init__(self, folder: Path, config: ModelConfig, device: str = "auto", window: str | None = None,
                 precision: str | None = None, decoder_precision: str | None = None):
        self.folder = Path(folder)
        self.config = config
        self.window = window or WINDOW
        check_whisper_folder(self.folder)
        self.device = torch_device(device)
        sub = self.folder / WHISPER_DIR
        self.precision = precision or PRECISION
        # int8 on a CPU unless asked otherwise (engine.decoding.int8); figures in docs/whisper_backend.md
        self.decoder_precision = choose_precision(decoder_precision, self.device)
        self.whisper = None  # fp32, peft-wrapped while an adapter is set; None in int8 (`_int8_only`)
        # The decoder is read in a second thread while the encoder's session and the tokenizer
        # are made: packing its int8 layers (about 1 s for base) and ONNX Runtime's start both
        # run outside the GIL, so on two cores or more the start is the longer of the two.
        with ThreadPoolExecutor(1, thread_name_prefix="steno-decoder") as pool:
            decoder = pool.submit(self._base_decoder)
            self.graph_path = ensure_encoder_onnx(self.folder, self.precision)
            self.session, self.onnx_device = create_session(self.graph_path, device)
            try:
                self.tokenizer = WhisperTokenizer.from_folder(sub)
                generation = json.loads((sub / "generation_config.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise ModelFolderError(f"cannot load the Whisper tokenizer ({first_line(e)})", self.folder) from None
            self._decoder = decoder.result()
        self.dims = self._decoder.dims
        self.vocab = Vocab.from_tokenizer(self.tokenizer, generation)
        self._tries: dict = {}  # the last word list's prefix tree (engine.decoding.biasing.make_bias)
        self.encodings = RecentEncodings()  # an adapter changes only the decoder: they stay valid
        # The last decode's cross-attention keys per clip, by its encoder output's identity: the
        # term pass scores the same clip next (`score_tokens`), and making them again was most of its cost.
        self._cross: list[tuple[torch.Tensor, list]] = []
        self.bias_bonus = DEFAULT_BONUS
        self.n_mels = self.dims.n_mels
        self.max_positions = self.dims.n_ctx
        self.device_text = (f"Whisper encoder on {self.onnx_device.upper()} (ONNX Runtime), "
                            f"decoder on {self.device.upper()} (torch, {self.decoder_precision})")

    # ------------------------------------------------------------------ adapters

    def set_adapter(self, adapter: str | Path | None, base_model_id: str) -> dict | None:
        """Swap the decoder's LoRA adapter (peft); None restores the base model. A bad adapter
        changes nothing. In int8 the fp32 weights are read again from the model folder, the
        adapter applied and merged into a new int8 copy, and only that copy is kept."""
        self._cross = []  # keys made by the decoder being replaced
        if adapter is None and self.decoder_precision == "int8":
            self.whisper = None
            self._decoder = self._base_decoder()
            return None
        from peft import PeftModel

        from engine.models.adapters import apply_adapter, check_adapter

        if adapter is not None:
            meta = check_adapter(adapter, base_model_id)
            if meta.get("target", "lm") != "whisper":
                raise StenoError(f"adapter is for a {meta.get('target', 'lm')!r} model, not a Whisper model", adapter)
            _refuse_encoder_lora(Path(adapter))
        if self.whisper is None:
            self.whisper = load_decoder(self.folder / WHISPER_DIR).to(self.device)
        elif isinstance(self.whisper, PeftModel):
            self.whisper = self.whisper.unload()  # removes the LoRA layers, base weights untouched
        meta = apply_adapter(self, adapter, base_model_id) if adapter is not None else None
        self.whisper.to(self.device)
        self._decoder = self._int8_only(decoding_model(self.whisper, self.decoder_precision))
        return meta

    def _base_decoder(self):
        """What decodes without an adapter. In int8 that is the copy kept in the folder's cache
        when it was made from these weights (quantising took 1-2 s of every start), else one
        quantised now and kept; the fp32 weights are then never read."""
        sub = self.folder / WHISPER_DIR
        int8 = self.decoder_precision == "int8"
        if int8:
            fingerprint = cache_fingerprint(tensors_fingerprint(sub, is_decoder_tensor, {"whisper-decoder": 1}))
            kept = load_int8(decoder_skeleton(sub), self.folder / INT8_CACHE, fingerprint)
            if kept is not None:
                return kept
        self.whisper = load_decoder(sub).to(self.device)
        decoder = self._int8_only(decoding_model(self.whisper, self.decoder_precision))
        if int8:
            save_int8(decoder, self.folder / INT8_CACHE, fingerprint)
        return decoder

    def _int8_only(self, decoder):
        """In int8, keep only the int8 copy (the fp32 decoder goes), its token table in fp16:
        a step looks up one row of it (the projection has its own int8 copy). Base's peak on
        a 155 s file: 1020 -> 933 MB (docs/whisper_backend.md)."""
        if self.decoder_precision != "int8":
            return decoder
        self.whisper = None
        table = decoder.model.decoder.embed_tokens
        table.weight = torch.nn.Parameter(table.weight.detach().half(), requires_grad=False)
        return decoder

    def _model(self):
        return self._decoder

    # ------------------------------------------------------------------ encoder

    def encode(self, audio: np.ndarray) -> torch.Tensor:
        """(1, frames, d): the encoder output for one clip (run once for a clip decoded twice)."""
        return self.encodings.get(audio, lambda a: torch.from_numpy(
            run_session(self.session, log_mel(a, self.n_mels, self.window))).to(self.device))

    # ------------------------------------------------------------------ decoder

    def prompt(self, hints: list[str] | None, context: str | None = None) -> list[int]:
        return prompt_tokens(self.tokenizer, self.vocab, hints, context)

    def _filter(self, logits: torch.Tensor, histories: list[list[int]],
                ends: list[float] | float | None = None) -> torch.Tensor:
        """Log-probs (B, V) after Whisper's suppression and timestamp rules, per row's history;
        `ends`, each row's clip length in seconds (or one for all), bounds its timestamps."""
        v = self.vocab
        ts = v.timestamp_begin
        logits = logits.float().clone()
        logits[:, v.suppress] = -np.inf
        for i, h in enumerate(histories):
            row = logits[i]
            end = ends[i] if isinstance(ends, list) else ends
            if end is not None:
                row[ts + 1 + round((end + TIMESTAMP_PAST_END) / SECONDS_PER_TIMESTAMP):] = -np.inf
            held = filler_limit(h, v.eot)
            if held is not None:
                row[held] = -np.inf
            if not h:  # the first token: a timestamp within the first second (so never blank or eot)
                row[:ts] = -np.inf
                row[ts + MAX_INITIAL_TIMESTAMP + 1:] = -np.inf
                continue
            last_ts = h[-1] >= ts
            pair_closed = len(h) < 2 or h[-2] >= ts
            if last_ts and pair_closed:
                row[ts:] = -np.inf  # after an opening (or a closed pair): text or the end
            elif last_ts:
                row[:v.eot] = -np.inf  # after a closing timestamp: another timestamp or the end
            stamps = [t for t in h if t >= ts]
            if stamps:  # time never goes back; a new pair may open where the last closed
                floor = stamps[-1] if (last_ts and not pair_closed) else stamps[-1] + 1
                row[ts:floor] = -np.inf
        logp = logits.log_softmax(-1)
        # Where the timestamps together outweigh the likeliest text token, a timestamp comes next.
        force = logp[:, ts:].logsumexp(-1) > logp[:, :ts].max(-1).values
        if force.any():
            logits[force, :ts] = -np.inf
            logp = logits.log_softmax(-1)
        return logp

    def max_new_tokens(self, seconds: float, prompt_len: int) -> int:
        d = self.config.decode
        wanted = int(d.tokens_per_second * seconds + d.extra_tokens + 0.5)
        return max(1, min(wanted, self.max_positions // 2, self.max_positions - prompt_len - 1))

    def _step(self, prompt: list[int], enc: torch.Tensor, enc_mask: torch.Tensor | None, rows: int) -> "DecoderStep":
        return DecoderStep(self._model(), prompt, enc, enc_mask, rows, prompt.index(self.vocab.sot),
                           self.vocab.no_speech)

    def _loop_cut(self) -> LoopCut:
        """Any n-gram up to 16 tokens said `max_repeats` times (at least FILLER_REPEATS), or a
        whole phrase said PHRASE_REPEATS times; timestamps ignored."""
        return LoopCut(max(self.config.decode.max_repeats, FILLER_REPEATS), PHRASE_REPEATS, text_below=self.vocab.eot)

    def _bias(self, terms: list[str] | None):
        return make_bias(terms, self.tokenizer, self.vocab.eot, self._tries, self.bias_bonus)

    def greedy(self, encoded: list[torch.Tensor], prompt: list[int], limits: list[int],
               bias_terms: list[str] | None = None, ends: list[float] | None = None) -> list[Hypothesis]:
        """Greedy decoding of several segments as one batch (one KV cache, cross-attention masked);
        `ends`: each segment's length in seconds, past which no timestamp is written."""
        enc, enc_mask = pad_batch(encoded)
        step = self._step(prompt, enc, enc_mask, len(encoded))
        decoded = search.greedy(step, limits, self.vocab.eot, functools.partial(self._filter, ends=ends),
                                cut_loop=self._loop_cut(),
                                bias=self._bias(bias_terms))
        self._keep_cross(encoded, step.cache, enc_mask)
        return [Hypothesis.of(d, float(p)) for d, p in zip(decoded, step.no_speech)]

    def beam_search(self, encoded: torch.Tensor, prompt: list[int], limit: int, beam_size: int,
                    bias_terms: list[str] | None = None, end: float | None = None) -> Hypothesis:
        """Beam search for one segment, its beams as the batch. beam_size=1 gives `greedy`'s output.

        The beams share the segment's cross-attention keys/values (computed once, never
        copied or reordered); only the self-attention cache follows the beams. Finished
        hypotheses are ranked by log-probability per token (Whisper's length norm).
        """
        step = self._step(prompt, encoded, None, 1)
        d = search.beam_search(step, limit, beam_size, LogProbScorer(self.vocab.eot, self.config.decode.length_penalty),
                               functools.partial(self._filter, ends=end), self._loop_cut(), self._bias(bias_terms))
        self._keep_cross([encoded], step.cache, None)
        return Hypothesis.of(d, float(step.no_speech[0]))

    # ------------------------------------------------------------------ scoring (the term pass)

    def _keep_cross(self, encoded: list[torch.Tensor], cache, enc_mask) -> None:
        """Keep each clip's cross-attention keys from a decode (only unpadded: a padded row's
        keys differ from its own clip's), the last CPU_BATCH clips'."""
        if enc_mask is not None or any(kv is None for kv in cache.cross_kv):
            self._cross = []
            return
        kept = [(e, [(k[i:i + 1], v[i:i + 1]) for k, v in cache.cross_kv]) for i, e in enumerate(encoded)]
        self._cross = (self._cross + kept)[-CPU_BATCH:]  # a group's clips; 37 MB each for base

    def _scoring_cache(self, enc: torch.Tensor):
        cache = self._model().new_cache()
        for e, kv in self._cross:
            if e is enc:
                cache.cross_kv = list(kv)
        return cache

    def term_tokens(self, text: str) -> list[int]:
        return [t for t in self.tokenizer.encode(text, add_special_tokens=False) if t < self.vocab.eot]

    def decode_tokens(self, tokens: list[int]) -> str:
        return self.tokenizer.decode([t for t in tokens if t < self.vocab.eot])

    @torch.no_grad()
    def score_tokens(self, clip: np.ndarray, sequences: list[list[int]], context: str | None = None,
                     hints: list[str] | None = None) -> list[tuple[float, list[float]]]:
        """Per sequence: the sum of its teacher-forced log-probs (text tokens and the end
        token) and those of its text tokens, in Whisper's no-timestamps mode (the same for
        every sequence, so their sums compare), over the clip's cached encoder output: the
        prompt and the tokens all sequences begin with run once, then the rows from there."""
        prompt = self.prompt(hints, context) + [self.tokenizer.get_vocab()["<|notimestamps|>"]]
        rows = [list(s) + [self.vocab.eot] for s in sequences]
        same = 0  # the tokens every row begins with: run once, as one row
        while all(len(r) > same + 1 for r in rows) and len({r[same] for r in rows}) == 1:
            same += 1
        width = max(len(r) for r in rows) - same
        rest = torch.tensor([r[same:] + [self.vocab.eot] * (width - len(r) + same) for r in rows], device=self.device)
        model = self._model()
        with decoder_threads(self.device):
            enc = self.encode(clip)
            cache = self._scoring_cache(enc)
            shared = torch.tensor([prompt + rows[0][:same]], device=self.device)
            head = model(shared, enc, cache, keep=list(range(len(prompt) - 1, len(prompt) + same)))
            cache.reorder(torch.zeros(len(rows), dtype=torch.long, device=self.device))
            tail = model(rest[:, :-1], enc, cache) if width > 1 else head[:, :0]
        logits = torch.cat([head.expand(len(rows), -1, -1), tail], dim=1).float()  # position k predicts token k
        logits[:, :, self.vocab.suppress] = -np.inf
        logits[:, :, self.vocab.timestamp_begin:] = -np.inf
        logp = logits.log_softmax(-1)
        out = []
        for i, r in enumerate(rows):
            lps = logp[i, torch.arange(len(r)), torch.tensor(r, device=logp.device)].tolist()
            out.append((sum(lps), lps[:-1]))
        return out

    # ------------------------------------------------------------------ results

    def _spans(self, tokens: list[int], logprobs: list[float], duration: float) -> list:
        """Timed pieces of text from Whisper's timestamp pairs; unclosed text ends at the clip's end."""
        ts = self.vocab.timestamp_begin
        spans, start, text, lps, prev_end = [], None, [], [], 0.0

        def close(end: float) -> None:
            s = min(max(start if start is not None else prev_end, prev_end), duration)
            e = min(max(end, s), duration)
            if text:
                spans.append(Span(s, e, self.tokenizer.decode(text).strip(),
                                  [self.tokenizer.decode([t]) for t in text], list(lps)))

        for tok, lp in zip(tokens, logprobs):
            if tok >= ts:
                t = (tok - ts) * SECONDS_PER_TIMESTAMP
                if start is None and not text:
                    start = t
                else:
                    close(t)
                    prev_end = min(max(t, prev_end), duration)
                    start, text, lps = None, [], []
            else:
                text.append(tok)
                lps.append(lp)
        close(duration)
        return spans

    def _finished_part(self, h: Hypothesis, duration: float) -> tuple[int, float | None]:
        """How many of `h.tokens` make up segments the model finished, and the time where
        the unfinished rest of the clip begins (None: the model finished the clip).

        Whisper ends a window with a lone opening timestamp when it hears a segment begin
        that it judges cut off at the window's end; its own long-form loop then seeks to
        that time. A decode stopped by the length limit or a loop cut also leaves the clip
        unfinished after its last closed segment. Kept: text the model closed, and text it
        ended (end token) without a closing timestamp.
        """
        ts = self.vocab.timestamp_begin
        ended = not ({"max-length", "dropped-repetition"} & set(h.flags))
        opening, has_text, last_close = None, False, None
        for k, tok in enumerate(h.tokens):
            if tok < ts:
                has_text = True
            elif opening is None:
                opening, has_text = k, False
            else:
                opening, last_close = None, k
        if opening is not None and not has_text and ended:
            cut, resume = opening, (h.tokens[opening] - ts) * SECONDS_PER_TIMESTAMP
        elif not ended and last_close is not None:
            cut, resume = last_close + 1, (h.tokens[last_close] - ts) * SECONDS_PER_TIMESTAMP
        else:
            return len(h.tokens), None
        if resume < MIN_RESUME_SECONDS or duration - resume < MIN_RESUME_SECONDS:
            return len(h.tokens), None  # nothing gained by decoding it again
        return cut, resume

    def _result(self, h: Hypothesis, audio: np.ndarray):
        duration = len(audio) / SAMPLE_RATE
        flags = list(h.flags)
        keep, covered = self._finished_part(h, duration)
        tokens, logprobs = h.tokens[:keep], h.logprobs[:keep]
        if covered is not None:  # the rest is decoded again: its partial text and flags go
            flags = [f for f in flags if f not in ("max-length", "dropped-repetition")]
        text_tokens = [t for t in tokens if t < self.vocab.eot]
        text = self.tokenizer.decode(text_tokens).strip()
        if text_tokens and h.no_speech_prob > NO_SPEECH_THRESHOLD:
            vad = _vad_speech_fraction(audio)
            unsure = h.avg_logprob() < LOGPROB_THRESHOLD
            if unsure and duration < SHORT_CLIP_SECONDS and vad >= VAD_SURE_FRACTION:
                unsure = False  # a short clip the VAD hears as speech: see SHORT_CLIP_SECONDS
            if unsure or vad < VAD_SPEECH_FRACTION:
                return ChunkResult(text="", tokens=[], token_texts=[], logprobs=[], flags=flags + ["no-speech"],
                                   removed=text, speech_prob=1.0 - h.no_speech_prob)
        text_lps = [lp for t, lp in zip(tokens, logprobs) if t < self.vocab.eot]
        removed = "" if covered is not None else self.tokenizer.decode([t for t in h.removed if t < self.vocab.eot])
        return ChunkResult(text=text, tokens=text_tokens,
                           token_texts=[self.tokenizer.decode([t]) for t in text_tokens], logprobs=text_lps,
                           flags=flags, spans=self._spans(tokens, logprobs, covered or duration), covered=covered,
                           removed=removed.strip(), speech_prob=1.0 - h.no_speech_prob)

    @torch.no_grad()
    def transcribe_batch(self, clips: list[np.ndarray], *, hints: list[str] | None, beam_size: int,
                         timing: Timing, context: str | None = None,
                         bias_terms: list[str] | None = None) -> list[ChunkResult]:
        """Encode and decode `clips`, at most CPU_BATCH of them together on a CPU; `context`,
        the text said just before, is read as previous text, as Whisper's long-form loop does."""
        step = CPU_BATCH if self.device == "cpu" else max(1, len(clips))
        out = []
        for i in range(0, len(clips), step):
            out += self._transcribe_group(clips[i:i + step], hints, beam_size, timing, context, bias_terms)
        return out

    def _transcribe_group(self, clips: list[np.ndarray], hints: list[str] | None, beam_size: int, timing,
                          context: str | None, bias_terms: list[str] | None = None):
        t0 = time.perf_counter()
        encoded = [self.encode(c) for c in clips]
        t1 = time.perf_counter()
        prompt = self.prompt(hints, context)
        limits = [self.max_new_tokens(len(c) / SAMPLE_RATE, len(prompt)) for c in clips]
        with decoder_threads(self.device):
            if beam_size > 1:
                hyps = [self.beam_search(e, prompt, n, beam_size, bias_terms, len(c) / SAMPLE_RATE)
                        for e, n, c in zip(encoded, limits, clips)]
            else:
                hyps = self.greedy(encoded, prompt, limits, bias_terms, [len(c) / SAMPLE_RATE for c in clips])
        t2 = time.perf_counter()
        timing.encoder_seconds += t1 - t0
        timing.decoder_seconds += t2 - t1
        timing.tokens += sum(len(h.tokens) for h in hyps)
        return [self._result(h, c) for h, c in zip(hyps, clips)]


def filler_limit(history: list[int], text_below: int) -> int | None:
    """The token that would begin an 8th copy of a short n-gram (up to 4 tokens) that the text
    ends with 7 copies of, or None. Whisper (tiny.en above all) writes more "uh"s than were
    said; held there, it must go on to what came after them instead of looping until a loop
    cut ends the window and takes the rest of it along."""
    text = [t for t in history if t < text_below]
    found = find_repeat(text, FILLER_REPEATS - 1, 1, FILLER_NGRAM)
    return None if found is None else text[-found[1]]


def _vad_speech_fraction(audio: np.ndarray) -> float:
    from engine.audio import speech_probabilities

    probs = speech_probabilities(audio)
    return float((probs >= 0.5).mean()) if len(probs) else 0.0


def _refuse_encoder_lora(adapter: Path) -> None:
    """The encoder runs from its ONNX graph: an adapter that changes it would be silently ignored."""
    from safetensors import safe_open

    path = adapter / "adapter_model.safetensors"
    if not path.is_file():
        return
    try:
        with safe_open(str(path), "pt") as f:
            keys = list(f.keys())
    except Exception as e:  # safetensors has its own error types
        raise StenoError(f"unreadable adapter weights ({first_line(e)})", path) from None
    if any(".encoder." in k for k in keys):
        raise StenoError("adapter changes the Whisper encoder; Steno adapts only the decoder", adapter)


