"""Runs a bridge model: encoder+bridge in ONNX Runtime, the LM in torch.

Loops: the decoders cut an n-gram of up to 16 tokens said `max_repeats` times in a row
while decoding. A whole sentence said over and over is longer than that and runs to the
length limit instead, so the end of each result is checked once more for a phrase of 8 to
64 tokens repeated one time fewer (as the Whisper backend does): cut to one copy, flagged
"dropped-repetition". Text on silence is the Transcriber's VAD check.

A ctc bridge's graph also returns its frame log-probabilities; with `decode.ctc_weight` set
(the default model: 0.7), greedy decoding weighs each next token by the CTC prefix score
too (engine/decoding/ctc_prefix.py), which keeps the LM to what was said.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from engine.backend import ChunkResult, RecentEncodings, Timing
from engine.bridge.coverage import covered_seconds
from engine.bridge.encoder import SpeechEncoder, encoder_inputs, min_input_samples
from engine.bridge.export import ensure_onnx, fresh_graph, record_sources
from engine.bridge.folder import load_model
from engine.decoding.biasing import DEFAULT_BONUS, make_bias
from engine.decoding.ctc_prefix import CTCPrefixScorer, penalize_blank
from engine.decoding.int8 import cache_fingerprint, choose_precision, decoding_model, load_int8, save_int8
from engine.decoding.lexicon import Lexicon, TokenTexts, WordEnds
from engine.decoding.search import (
    PHRASE_MAX,
    PHRASE_MIN,
    CausalLMStep,
    CTCGuide,
    Decoded,
    JointScorer,
    LogProbScorer,
    LoopCut,
    MinLength,
    beam_search,
    find_repeat,
    greedy,
)
from engine.models.config import ModelConfig
from engine.models.fingerprint import tensors_fingerprint
from engine.models.folder import BRIDGE_WEIGHTS
from engine.runtime import create_session, decoder_threads, run_outputs, torch_device


def cut_phrase_loop(d: Decoded, max_repeats: int) -> bool:
    """Cut a long phrase repeated `max_repeats - 1` times at the end of `d` to one copy, kept
    from where the loop began; flag it. (A huge max_repeats, as in a raw-decoding test,
    switches this off too.)"""
    found = find_repeat(d.tokens, max(2, max_repeats - 1), PHRASE_MIN, PHRASE_MAX)
    if found is None:
        return False
    start, n = found
    while start > 0 and d.tokens[start - 1] == d.tokens[start - 1 + n]:  # the loop may begin mid-phrase
        start -= 1
    d.removed = d.tokens[start + n:] + d.removed
    del d.tokens[start + n:]
    del d.logprobs[start + n:]
    d.flags = [f for f in d.flags if f != "max-length"] + ["dropped-repetition"]
    return True


# The int8 LM layers made from the folder's weights, kept for the next start (hidden: not part
# of the model's files, its id or its manifest).
INT8_CACHE = ".cache/lm.int8.pt"


class BridgeBackend:
    def __init__(self, folder: Path, config: ModelConfig, device: str = "auto", decoder_precision: str | None = None):
        self.folder = folder
        self.config = config
        self.device = torch_device(device)
        # the LM decodes in int8 on a CPU unless asked otherwise (engine.decoding.int8); figures in docs/model_history.md
        self.decoder_precision = choose_precision(decoder_precision, self.device)
        graph = fresh_graph(folder)
        # on CPU first: the ONNX export reads CPU tensors; the torch speech encoder only to export or check the graph
        # a Llama LM in engine.bridge.llama (no transformers model code), any other in transformers
        self.model = load_model(folder, speech=graph is None, plain_lm=True)
        self.base_lm = self.model.lm  # without an adapter
        self._token_texts: TokenTexts | None = None  # for decode.unknown_word_penalty, made on first use
        self.requested_device = device
        if graph is None:
            graph = ensure_onnx(self.model, folder)
            record_sources(folder)
        self.model.encoder = None  # the graph runs it: the torch copy (80 MB for Whisper base) is read again if needed
        self.model.lm.to(self.device)
        # the LM before the graph's session: reading its int8 cache briefly holds it twice (130 MB), under a lower peak
        self.decoding_lm = self._base_decoding_lm()  # the LM, or its int8 copy
        self._open_session(graph)
        self._bridge_swapped = False
        self._tries: dict = {}  # the last word list's prefix tree (engine.decoding.biasing.make_bias)
        self.bias_bonus = DEFAULT_BONUS

    def _open_session(self, onnx_path: Path) -> None:
        self.session, self.onnx_device = create_session(onnx_path, self.requested_device, prepack=False)
        self.encodings = RecentEncodings()  # a new graph (an adapter's own bridge): new outputs
        self.device_text = (f"encoder+bridge on {self.onnx_device.upper()} (ONNX Runtime), "
                            f"LM on {self.device.upper()} (torch, {self.decoder_precision})")

    def set_adapter(self, adapter: str | Path | None, base_model_id: str) -> dict | None:
        """Swap the LoRA adapter (and its bridge, if it has one) in place; None restores the base."""
        from engine.models.adapters import ADAPTER_BRIDGE, apply_adapter

        had_lora = self.model.lm is not self.base_lm
        if had_lora:  # peft's wrapper removes its LoRA layers; a merged plain LM is let go
            self.model.lm = self.model.lm.unload() if hasattr(self.model.lm, "unload") else self.base_lm
        if self._bridge_swapped:
            self.model.bridge.load_state_dict(load_file(self.folder / BRIDGE_WEIGHTS))  # not kept: 50 MB
            self._open_session(self._graph(self.folder))
            self._bridge_swapped = False
        meta = None
        if adapter is not None:
            meta = apply_adapter(self.model, adapter, base_model_id)
            self.model.lm.to(self.device)
            if (Path(adapter) / ADAPTER_BRIDGE).is_file():  # its own graph, beside its bridge
                self._bridge_swapped = True
                self._open_session(self._graph(adapter))
        if adapter is not None:  # one new decoding copy per swap (int8: quantising takes seconds)
            self.decoding_lm = decoding_model(self.model.lm, self.decoder_precision)
        elif had_lora:
            self.decoding_lm = self._base_decoding_lm()
        return meta

    def _graph(self, folder: str | Path) -> Path:
        """The encoder+bridge graph for the bridge now loaded, beside it in `folder`: made
        through the torch encoder, which is read again for it (it is let go after loading)."""
        if self.model.encoder is None:
            self.model.encoder = SpeechEncoder.load(self.config.encoder, self.folder / "encoder").eval()
            self.model.sync_label_embeddings()  # left unsynced while the graph ran without them
        return ensure_onnx(self.model, folder)

    def _base_decoding_lm(self):
        """The LM without an adapter, as it decodes. In int8, its int8 layers are read from the
        folder's cache when they were made from these weights: quantising took seconds of every
        start, and touched every fp32 weight, which made all 540 MB of them resident (the LM's
        weights file is memory-mapped, so untouched weights cost no memory)."""
        if self.decoder_precision != "int8":
            return decoding_model(self.model.lm, self.decoder_precision)
        fingerprint = cache_fingerprint(tensors_fingerprint(self.folder / "lm", lambda name: True, {"lm": 1}))
        kept = load_int8(self.model.lm, self.folder / INT8_CACHE, fingerprint)
        if kept is not None:
            return kept
        lm = decoding_model(self.model.lm, self.decoder_precision)
        save_int8(lm, self.folder / INT8_CACHE, fingerprint, linear_only=True)
        return lm

    def speech(self, audio: np.ndarray) -> np.ndarray:
        return self.speech_outputs(audio)[0]

    def speech_outputs(self, audio: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs for one clip, batch axis dropped: the LM input vectors (N, D),
        and for a ctc bridge its frame log-probabilities (T', labels); run once for a clip
        decoded twice."""
        return self.encodings.get(audio, self._run_graph)

    def _run_graph(self, audio: np.ndarray) -> list[np.ndarray]:
        audio = np.asarray(audio, dtype=np.float32)
        if len(audio) < min_input_samples(self.config.encoder):
            audio = np.pad(audio, (0, min_input_samples(self.config.encoder) - len(audio)))
        return [x[0] for x in run_outputs(self.session, encoder_inputs(self.config.encoder, audio))]

    def token_texts(self) -> TokenTexts:
        if self._token_texts is None:
            labels = self.model.bridge.token_to_label.cpu().numpy()
            self._token_texts = TokenTexts.of(self.model.tokenizer, len(labels), np.nonzero(labels > 0)[0])
        return self._token_texts

    def word_ends(self, hints: list[str] | None) -> WordEnds:
        """The unknown-word check for one call: English words plus this call's hint terms."""
        return WordEnds(self.token_texts(), Lexicon.english(hints or ()), self.config.decode.unknown_word_penalty)

    def max_new_tokens(self, seconds: float) -> int:
        d = self.config.decode
        return int(d.tokens_per_second * seconds + d.extra_tokens + 0.5)

    @torch.no_grad()
    def transcribe_batch(self, clips: list[np.ndarray], *, hints: list[str] | None, beam_size: int,
                         timing: Timing, context: str | None = None,
                         bias_terms: list[str] | None = None) -> list[ChunkResult]:
        """`context` is not read: the bridge models were not trained with previous text."""
        t0 = time.perf_counter()
        outputs = [self.speech_outputs(c) for c in clips]
        speech = [torch.from_numpy(o[0]).to(self.device) for o in outputs]
        t1 = time.perf_counter()
        hint_text = ", ".join(hints) if hints else None
        lm_in, _ = self.model.lm_inputs(speech, hints=[hint_text] * len(clips) if hint_text else None)
        limits = [self.max_new_tokens(len(c) / 16000) for c in clips]
        eos = self.model.tokenizer.eos_token_id
        d = self.config.decode
        guide = None
        if d.ctc_weight > 0 and all(len(o) > 1 for o in outputs):
            guide = CTCGuide([CTCPrefixScorer(penalize_blank(o[1], d.ctc_blank_penalty)) for o in outputs],
                             self.model.bridge.token_to_label.cpu().numpy(), d.ctc_weight,
                             word_ends=self.word_ends(hints) if d.unknown_word_penalty > 0 else None,
                             word_bonus=d.word_bonus, token_texts=self.token_texts() if d.word_bonus else None)
        step, cut = CausalLMStep(self.decoding_lm, lm_in), LoopCut(d.max_repeats)
        tok = self.model.tokenizer
        bias = make_bias(bias_terms, tok, None, self._tries, self.bias_bonus)
        with decoder_threads(self.device):
            if beam_size > 1 and guide is not None:  # the joint scorer keeps the end out until min_new_tokens itself
                decoded = [beam_search(step, limits[0], beam_size, JointScorer(guide, eos, d.min_new_tokens),
                                       cut_loop=cut, bias=bias)]
            elif beam_size > 1:
                decoded = [beam_search(step, limits[0], beam_size, LogProbScorer(eos, d.length_penalty),
                                       MinLength(eos, d.min_new_tokens), cut, bias)]
            else:
                decoded = greedy(step, limits, eos, MinLength(eos, d.min_new_tokens), guide, cut, bias)
        for x in decoded:
            if "dropped-repetition" not in x.flags:
                cut_phrase_loop(x, d.max_repeats)
        t2 = time.perf_counter()
        timing.encoder_seconds += t1 - t0
        timing.decoder_seconds += t2 - t1
        timing.tokens += sum(len(x.tokens) for x in decoded)
        return [self._result(x, o, len(c) / 16000) for x, o, c in zip(decoded, outputs, clips)]

    def term_tokens(self, text: str) -> list[int]:
        return self.model.tokenizer.encode(text, add_special_tokens=False)

    def decode_tokens(self, tokens: list[int]) -> str:
        return self.model.tokenizer.decode(tokens, skip_special_tokens=True)

    @torch.no_grad()
    def score_tokens(self, clip: np.ndarray, sequences: list[list[int]], context: str | None = None,
                     hints: list[str] | None = None) -> list[tuple[float, list[float]]]:
        """Per sequence: its joint score as decoding ranks it ((1 - w) x the LM's log-prob of
        the tokens and the end token + w x the CTC head's log-prob of the whole transcript,
        w = decode.ctc_weight), and the LM's per-token log-probs; all in one LM pass."""
        outputs = self.speech_outputs(clip)
        speech = torch.from_numpy(outputs[0]).to(self.device)
        eos = self.model.tokenizer.eos_token_id
        targets = [list(s) + ([eos] if eos is not None else []) for s in sequences]
        hint = ", ".join(hints) if hints else None
        lm_in, labels = self.model.lm_inputs([speech] * len(targets), targets=targets,
                                             hints=[hint] * len(targets) if hint else None)
        with decoder_threads(self.device):
            out = self.decoding_lm(inputs_embeds=lm_in.embeds, attention_mask=lm_in.attention_mask,
                                   position_ids=lm_in.position_ids, use_cache=False)
        logp = out.logits[:, :-1].float().log_softmax(-1)
        labels = labels[:, 1:]
        w = self.config.decode.ctc_weight if len(outputs) > 1 else 0.0
        if w > 0:
            to_label = self.model.bridge.token_to_label.cpu().numpy()
            frames = torch.from_numpy(penalize_blank(outputs[1], self.config.decode.ctc_blank_penalty)).float()
        results = []
        for i, seq in enumerate(sequences):
            at = labels[i] != -100
            lps = logp[i][at].gather(-1, labels[i][at][:, None])[:, 0].tolist()
            total = sum(lps)
            if w > 0:
                lab = to_label[list(seq)] if seq else np.zeros(0, dtype=np.int64)
                ctc = -float("inf") if (lab <= 0).any() else -float(torch.nn.functional.ctc_loss(
                    frames[:, None], torch.as_tensor(lab)[None], [len(frames)], [len(lab)], blank=0, reduction="sum"))
                total = (1 - w) * total + w * ctc
            results.append((total, lps[:len(seq)]))
        return results

    def _result(self, x: Decoded, outputs: list[np.ndarray], seconds: float) -> ChunkResult:
        """A decode as a ChunkResult; with a ctc bridge, `covered` where the LM stopped short of
        what the head heard (engine/bridge/coverage.py)."""
        tok = self.model.tokenizer
        covered = None
        if len(outputs) > 1:
            covered = covered_seconds(outputs[1], x.tokens, self.model.bridge.token_to_label.cpu().numpy(), seconds)
        flags = x.flags if covered is None else [f for f in x.flags if f != "max-length"]
        return ChunkResult(text=tok.decode(x.tokens, skip_special_tokens=True), tokens=x.tokens,
                           token_texts=[tok.decode([t], skip_special_tokens=True) for t in x.tokens],
                           logprobs=x.logprobs, flags=flags, covered=covered,
                           removed=tok.decode(x.removed, skip_special_tokens=True).strip())
