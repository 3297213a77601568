"""Runs a Whisper-family model: the encoder in ONNX Runtime, Whisper's own decoder in torch.

The same engine API as the bridge models (`BridgeBackend`), so the CLI, progress, exporters
and the trainer's evaluation work unchanged. A model folder of this family holds

    steno.json              ModelConfig with family "whisper"
    whisper/                WhisperForConditionalGeneration + WhisperProcessor (transformers)
    encoder_bridge.onnx     the encoder alone as an ONNX graph, rebuilt when stale
    encoder_bridge.json     the fingerprint of the encoder weights that graph was made from

Decoding follows Whisper's rules (timestamp tokens in pairs, non-decreasing, the first
one within 1 s; blank and non-speech tokens suppressed) so that greedy output matches
faster-whisper on the same weights. Guards that Whisper itself lacks or applies
elsewhere: a no-speech check that also asks the VAD, and a repetition-loop cut. Both
drop text and say so in the chunk's flags.

Nothing here imports transformers' modeling code (about 160 MB of memory): the decoder
is engine.whisper_model, the encoder a graph; transformers' encoder is loaded only to
export that graph.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.config import ModelConfig
from engine.decode import find_repeat
from engine.errors import ModelFolderError, StenoError
from engine.features import whisper_log_mel
from engine.runtime import create_session, run_session, torch_device
from engine.quantize import choose_precision, decoding_model
from engine.whisper_model import Cache, load_decoder

WHISPER_DIR = "whisper"
GRAPH_NAME, GRAPH_META = "encoder_bridge.onnx", "encoder_bridge.json"  # = engine.folder.ONNX_NAME/META
GRAPH_INT8_NAME, GRAPH_INT8_META = "encoder_bridge.int8.onnx", "encoder_bridge.int8.json"
SAMPLE_RATE = 16000
SECONDS_PER_TIMESTAMP = 0.02
N_SAMPLES_30S = 480_000
N_FRAMES_30S = 3000
MAX_INITIAL_TIMESTAMP = 50  # the first timestamp within 1 s, as Whisper does
MAX_PROMPT_TOKENS = 223  # Whisper keeps the previous-text prompt under half its 448 context
# Whisper's own test for a silent window: no-speech probability above 0.6 *and* an average
# log-probability below -1. The VAD is a second witness: a likely no-speech window where
# the VAD hears almost no speech is dropped even when the decoder is confident (that is
# what a hallucinated "Thank you." on noise looks like).
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
VAD_SPEECH_FRACTION = 0.2
# A phrase of 8 to 64 tokens said 3 times in a row is a loop (see WhisperBackend._cut_loop).
PHRASE_REPEATS, PHRASE_MIN, PHRASE_MAX = 3, 8, 64
# One decoding step is a chain of small matrix products: a second thread mostly waits on
# the first, and on a busy machine (other processes on the cores) it slowed steps tenfold.
DECODER_THREADS = 1
# Segments decoded together on a CPU. Each holds its own cross-attention keys/values
# (37 MB for base over a 30 s window). Measured on a 155 s file, base, 2 threads: batch
# 1/2/4/8 took RTF 0.117/0.098/0.101/0.091 at peak memory 871/916/1008/1055 MB; 2 keeps
# most of the gain under the 1 GB target.
CPU_BATCH = 2
# What the encoder is fed (measured in docs/whisper_backend.md):
#   "30s"       the clip's audio padded with silence to a 30 s window, as Whisper was trained
#   "clip"      only the frames that cover the clip: 4-5x cheaper encoder, but the decoder then
#               runs on past the end of the speech (dev WER 22% tiny.en, 52% base, against
#               4.3% and 2.2% at 30 s), so it is not used
#   "30s-zeros" the clip's log-mel padded with zeros to 30 s, which is what faster-whisper
#               does; kept to prove the weights against it frame for frame
WINDOWS = ("30s", "clip", "30s-zeros")
WINDOW = "30s"
# The encoder graph's weights: "fp32" (the default: transcripts equal faster-whisper's fp32
# ones on the dev set) or "int8" (dynamically quantised: RTF 20-30% lower, same dev WER;
# `Transcriber(precision="int8")`, `--precision int8`).
PRECISION = "fp32"


def check_whisper_folder(folder: str | Path) -> None:
    """Fail with one clear line if a Whisper-family folder is missing a part."""
    folder = Path(folder)
    sub = folder / WHISPER_DIR
    needs = {"config.json": "the model config", "generation_config.json": "the decoding config",
             "tokenizer.json": "the tokenizer", "tokenizer_config.json": "the tokenizer config"}
    for name, what in needs.items():
        if not (sub / name).is_file():
            raise ModelFolderError(f"incomplete model folder: {WHISPER_DIR}/{name} ({what}) is missing", folder)
    if not any(sub.glob("*.safetensors")):
        raise ModelFolderError(f"incomplete model folder: {WHISPER_DIR}/ has no weights", folder)


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
class Hypothesis:
    """One decoded segment: all sampled tokens (text and timestamps) and their log-probs."""

    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    eot_logprob: float = 0.0
    flags: list[str] = field(default_factory=list)
    no_speech_prob: float = 0.0

    def avg_logprob(self) -> float:
        """Whisper's measure: the sum over tokens and the end token, per token."""
        return (sum(self.logprobs) + self.eot_logprob) / (len(self.tokens) + 1)


# ---------------------------------------------------------------------- encoder graph


def ensure_encoder_onnx(folder: str | Path, precision: str = "fp32") -> Path:
    """The folder's encoder graph, exported again when the encoder's weights changed.

    The check hashes the encoder's tensors straight from the weights file: a transcriber
    whose graph is fresh never holds a torch copy of the encoder. precision "int8" gives
    a dynamically quantised copy of the graph (int8 weights), cached beside it.
    """
    folder = Path(folder)
    sub = folder / WHISPER_DIR
    fingerprint = encoder_fingerprint(sub)
    onnx_path = _fresh_graph(folder, GRAPH_NAME, GRAPH_META, fingerprint)
    if onnx_path is None:
        from engine.export import ensure_graph  # transformers' modeling code: only when exporting

        encoder = load_hf_encoder(sub)
        example = torch.randn(1, encoder.config.num_mel_bins, 400)
        onnx_path = ensure_graph(WhisperEncoderGraph(encoder), folder, fingerprint, example, time_axis=2)
    if precision == "fp32":
        return onnx_path
    if precision != "int8":
        raise ValueError(f"precision must be fp32 or int8, not {precision!r}")
    int8_path = _fresh_graph(folder, GRAPH_INT8_NAME, GRAPH_INT8_META, fingerprint)
    if int8_path is None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from engine.files import atomic_path, atomic_write_text

        int8_path = folder / GRAPH_INT8_NAME
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser's advice to pre-process is for image models
        try:
            with atomic_path(int8_path) as tmp:
                quantize_dynamic(onnx_path, tmp, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        atomic_write_text(folder / GRAPH_INT8_META, json.dumps({"fingerprint": fingerprint, "quantized": "int8"}))
    return int8_path


def _fresh_graph(folder: Path, name: str, meta: str, fingerprint: str) -> Path | None:
    path, meta_path = folder / name, folder / meta
    if path.is_file() and meta_path.is_file():
        try:
            if json.loads(meta_path.read_text()).get("fingerprint") == fingerprint:
                return path
        except (json.JSONDecodeError, OSError):
            pass
    return None


class WhisperEncoderGraph(torch.nn.Module):
    """Whisper's encoder on the frames given (any length up to 30 s): what goes to ONNX.

    The same computation as engine.encoder._whisper_forward, with one change: attention
    is computed for blocks of ATTENTION_BLOCK query frames at a time. Whisper's encoder
    attention is not causal, so the result is the same, but ONNX Runtime then holds one
    block's attention weights instead of all 1500 x 1500 per head: for base, the run's
    memory peak fell from about 200 MB to 60 MB over the session's own, at equal speed.
    """

    ATTENTION_BLOCK = 250

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder
        self.max_frames = encoder.embed_positions.weight.shape[0]  # 1500: a traced loop needs a fixed count

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        gelu = torch.nn.functional.gelu
        e = self.encoder
        x = gelu(e.conv2(gelu(e.conv1(mel)))).permute(0, 2, 1)
        x = x + e.embed_positions.weight[: x.shape[1]]
        for layer in e.layers:
            x = x + self._attention(layer.self_attn, layer.self_attn_layer_norm(x))
            x = x + layer.fc2(gelu(layer.fc1(layer.final_layer_norm(x))))
        return e.layer_norm(x)

    def _attention(self, attn, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        heads = attn.num_heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, heads, d // heads).transpose(1, 2)

        q, k, v = split(attn.q_proj(h) * attn.scaling), split(attn.k_proj(h)), split(attn.v_proj(h))
        blocks = [torch.softmax(q[:, :, i:i + self.ATTENTION_BLOCK] @ k.transpose(-1, -2), dim=-1) @ v
                  for i in range(0, self.max_frames, self.ATTENTION_BLOCK)]
        out = torch.cat(blocks, dim=2)
        return attn.out_proj(out.transpose(1, 2).reshape(b, t, d))


def load_hf_encoder(sub: Path):
    """transformers' WhisperEncoder with its weights from the folder (for the export)."""
    from safetensors import safe_open
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    try:
        config = WhisperConfig.from_pretrained(sub)
        with torch.device("meta"):
            encoder = WhisperEncoder(config)
        state = {}
        for path in sorted(sub.glob("*.safetensors")):
            with safe_open(str(path), "pt") as f:
                for key in f.keys():
                    if key.startswith("model.encoder."):
                        state[key[len("model.encoder."):]] = f.get_tensor(key).float()
    except Exception as e:  # OSError, ValueError, safetensors' own errors
        raise ModelFolderError(f"cannot read the Whisper encoder ({_first_line(e)})", sub) from None
    missing, _ = encoder.load_state_dict(state, strict=False, assign=True)
    if missing:
        raise ModelFolderError(f"Whisper weights lack model.encoder.{missing[0]}", sub)
    return encoder.eval()


def encoder_fingerprint(sub: Path) -> str:
    """sha256 over the encoder's tensors (names, dtypes, shapes, bytes) in the safetensors files."""
    h = hashlib.sha256(json.dumps({"graph": "whisper-encoder", "version": 2}).encode())  # 2: blocked attention
    for path in sorted(Path(sub).glob("*.safetensors")):
        header, start = _safetensors_header(path)
        with open(path, "rb") as f:
            for name in sorted(k for k in header if k.startswith("model.encoder.")):
                info = header[name]
                h.update(f"{name}{info['dtype']}{info['shape']}".encode())
                a, b = info["data_offsets"]
                f.seek(start + a)
                left = b - a
                while left > 0:
                    chunk = f.read(min(left, 1 << 22))
                    if not chunk:
                        raise ModelFolderError("weights file is truncated", path)
                    h.update(chunk)
                    left -= len(chunk)
    return h.hexdigest()


def _safetensors_header(path: Path) -> tuple[dict, int]:
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size < 100 << 20:
                raise ValueError("bad header size")
            header = json.loads(f.read(size))
    except (OSError, ValueError) as e:
        raise ModelFolderError(f"unreadable weights file ({_first_line(e)})", path) from None
    return header, 8 + size


# ---------------------------------------------------------------------- features


def log_mel(audio: np.ndarray, n_mels: int, window: str = WINDOW) -> np.ndarray:
    """(1, n_mels, frames): the encoder's input for one clip (see WINDOWS)."""
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, not {window!r}")
    mel = whisper_log_mel(audio, n_mels, pad_to_30s=window == "30s")
    if window == "30s-zeros":
        mel = np.pad(mel, ((0, 0), (0, N_FRAMES_30S - mel.shape[1])))
    return mel[None]


# ---------------------------------------------------------------------- the backend


def prompt_tokens(tokenizer, vocab: Vocab, hints: list[str] | None) -> list[int]:
    """[<|startofprev|> + the user's terms as previous text] + the start-of-transcript tokens
    (the trainer builds its hint prompts with this too)."""
    tokens: list[int] = []
    terms = [h.strip() for h in hints or [] if h.strip()]
    if terms:
        words = tokenizer.encode(" " + ", ".join(terms), add_special_tokens=False)[:MAX_PROMPT_TOKENS]
        tokens = [vocab.sot_prev] + words
    return tokens + list(vocab.prefix)


class WhisperBackend:
    def __init__(self, folder: Path, config: ModelConfig, device: str = "auto", window: str | None = None,
                 precision: str | None = None, decoder_precision: str | None = None):
        from transformers import WhisperTokenizer

        self.folder = Path(folder)
        self.config = config
        self.window = window or WINDOW
        check_whisper_folder(self.folder)
        self.device = torch_device(device)
        sub = self.folder / WHISPER_DIR
        self.precision = precision or PRECISION
        self.graph_path = ensure_encoder_onnx(self.folder, self.precision)
        self.session, self.onnx_device = create_session(self.graph_path, device)
        # int8 on a CPU unless asked otherwise (engine.quantize); figures in docs/whisper_backend.md
        self.decoder_precision = choose_precision(decoder_precision, self.device)
        fp32 = load_decoder(sub).to(self.device)
        self.dims = fp32.dims
        self.whisper = fp32  # fp32, peft-wrapped while an adapter is set; None in int8 (`_int8_only`)
        self._decoder = self._int8_only(decoding_model(fp32, self.decoder_precision))
        try:
            self.tokenizer = WhisperTokenizer.from_pretrained(sub)
            generation = json.loads((sub / "generation_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelFolderError(f"cannot load the Whisper tokenizer ({_first_line(e)})", self.folder) from None
        self.vocab = Vocab.from_tokenizer(self.tokenizer, generation)
        self.n_mels = self.dims.n_mels
        self.max_positions = self.dims.n_ctx
        self.device_text = (f"Whisper encoder on {self.onnx_device.upper()} (ONNX Runtime), "
                            f"decoder on {self.device.upper()} (torch, {self.decoder_precision})")

    # ------------------------------------------------------------------ adapters

    def set_adapter(self, adapter: str | Path | None, base_model_id: str) -> dict | None:
        """Swap the decoder's LoRA adapter (peft); None restores the base model. A bad adapter
        changes nothing. In int8 the fp32 weights are read again from the model folder, the
        adapter applied and merged into a new int8 copy, and only that copy is kept."""
        from peft import PeftModel

        from engine.adapters import apply_adapter, check_adapter

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
        """(1, frames, d): the encoder output for one clip."""
        out = run_session(self.session, log_mel(audio, self.n_mels, self.window))
        return torch.from_numpy(out).to(self.device)

    # ------------------------------------------------------------------ decoder

    def prompt(self, hints: list[str] | None) -> list[int]:
        return prompt_tokens(self.tokenizer, self.vocab, hints)

    def _filter(self, logits: torch.Tensor, histories: list[list[int]]) -> torch.Tensor:
        """Log-probs (B, V) after Whisper's suppression and timestamp rules, per row's history."""
        v = self.vocab
        ts = v.timestamp_begin
        logits = logits.float().clone()
        logits[:, v.suppress] = -np.inf
        for i, h in enumerate(histories):
            row = logits[i]
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

    def _cut_loop(self, h: Hypothesis) -> bool:
        """Cut a repeated phrase (timestamps ignored) to one copy and flag it.

        Two tests: any n-gram up to 16 tokens repeated `max_repeats` times in a row (as for
        the bridge models), and a whole phrase of PHRASE_MIN..PHRASE_MAX tokens said
        PHRASE_REPEATS times in a row, which is how Whisper loops ("Thank you. Thank you.
        Thank you."): too long for the first test to catch within the token budget.
        """
        text_pos = [i for i, t in enumerate(h.tokens) if t < self.vocab.eot]
        text = [h.tokens[i] for i in text_pos]
        loop = find_repeat(text, self.config.decode.max_repeats, 1, 16) or find_repeat(
            text, PHRASE_REPEATS, PHRASE_MIN, PHRASE_MAX)
        if loop is None:
            return False
        start, gram = loop
        cut = text_pos[start + gram]
        del h.tokens[cut:]
        del h.logprobs[cut:]
        h.flags.append("dropped-repetition")
        return True

    def max_new_tokens(self, seconds: float, prompt_len: int) -> int:
        d = self.config.decode
        wanted = int(d.tokens_per_second * seconds + d.extra_tokens + 0.5)
        return max(1, min(wanted, self.max_positions // 2, self.max_positions - prompt_len - 1))

    def _prefill(self, prompt: list[int], enc: torch.Tensor, enc_mask: torch.Tensor | None,
                 batch: int) -> tuple[Cache, torch.Tensor, torch.Tensor]:
        """Run the prompt: the cache, the no-speech probabilities (B,) and the next logits (B, V).

        No-speech is the probability of <|nocaptions|> right after <|startoftranscript|>,
        read before any suppression, as Whisper does.
        """
        model = self._model()
        cache = model.new_cache()
        tokens = torch.tensor([prompt] * batch, device=self.device)
        logits = model(tokens, enc, cache, enc_mask, keep=[prompt.index(self.vocab.sot), len(prompt) - 1])
        no_speech = logits[:, 0].float().softmax(-1)[:, self.vocab.no_speech]
        return cache, no_speech, logits[:, 1]

    @torch.no_grad()
    def greedy(self, encoded: list[torch.Tensor], prompt: list[int], limits: list[int]) -> list[Hypothesis]:
        """Greedy decoding of several segments as one batch (one KV cache, cross-attention masked)."""
        batch = len(encoded)
        enc, enc_mask = _pad_batch(encoded)
        cache, no_speech, logits = self._prefill(prompt, enc, enc_mask, batch)
        model = self._model()
        hyps = [Hypothesis(no_speech_prob=float(p)) for p in no_speech]
        done = [False] * batch
        for _ in range(max(limits)):
            logp = self._filter(logits, [h.tokens for h in hyps])
            best = logp.argmax(-1)
            for i, h in enumerate(hyps):
                if done[i]:
                    continue
                tok = int(best[i])
                if tok == self.vocab.eot:
                    h.eot_logprob = float(logp[i, tok])
                    done[i] = True
                    continue
                h.tokens.append(tok)
                h.logprobs.append(float(logp[i, tok]))
                if self._cut_loop(h):
                    done[i] = True
                elif len(h.tokens) >= limits[i]:
                    h.flags.append("max-length")
                    done[i] = True
            if all(done):
                break
            logits = model(best[:, None], enc, cache, enc_mask)[:, -1]
        return hyps

    @torch.no_grad()
    def beam_search(self, encoded: torch.Tensor, prompt: list[int], limit: int, beam_size: int) -> Hypothesis:
        """Beam search for one segment, its beams as the batch. beam_size=1 gives `greedy`'s output.

        The beams share the segment's cross-attention keys/values (computed once, never
        copied or reordered); only the self-attention cache follows the beams. Finished
        hypotheses are ranked by log-probability per token (Whisper's length norm).
        """
        cache, no_speech, logits = self._prefill(prompt, encoded, None, 1)
        model = self._model()
        length_penalty = self.config.decode.length_penalty
        beams = [Hypothesis()]
        scores = torch.zeros(1, device=self.device)
        finished: list[tuple[float, Hypothesis]] = []

        def finish(h: Hypothesis, score: float) -> None:
            finished.append((score / max(1, len(h.tokens)) ** length_penalty, h))

        for _ in range(limit):
            logp = self._filter(logits, [b.tokens for b in beams])
            total = scores[:, None] + logp
            vocab = logp.shape[-1]
            top_scores, top_idx = total.flatten().topk(min(2 * beam_size, total.numel()))
            new_beams, new_scores, sources, tokens = [], [], [], []
            for score, idx in zip(top_scores.tolist(), top_idx.tolist()):
                if score == -np.inf:
                    break
                src, tok = divmod(idx, vocab)
                parent = beams[src]
                if tok == self.vocab.eot:
                    finish(Hypothesis(list(parent.tokens), list(parent.logprobs), float(logp[src, tok])), score)
                    continue
                cand = Hypothesis(parent.tokens + [tok], parent.logprobs + [float(logp[src, tok])])
                if self._cut_loop(cand):
                    finish(cand, score)
                    continue
                new_beams.append(cand)
                new_scores.append(score)
                sources.append(src)
                tokens.append(tok)
                if len(new_beams) == beam_size:
                    break
            if len(finished) >= beam_size or not new_beams:
                break  # as many finished hypotheses as beams
            cache.reorder(torch.tensor(sources, device=self.device))
            beams, scores = new_beams, torch.tensor(new_scores, device=self.device)
            logits = model(torch.tensor(tokens, device=self.device)[:, None], encoded, cache)[:, -1]
        else:
            for b, score in zip(beams, scores.tolist()):
                b.flags.append("max-length")
                finish(b, score)
        best = max(finished, key=lambda x: x[0])[1] if finished else beams[0]
        best.no_speech_prob = float(no_speech[0])
        return best

    # ------------------------------------------------------------------ results

    def _spans(self, tokens: list[int], logprobs: list[float], duration: float) -> list:
        """Timed pieces of text from Whisper's timestamp pairs; unclosed text ends at the clip's end."""
        from engine.transcriber import Span

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

    def _result(self, h: Hypothesis, audio: np.ndarray):
        from engine.transcriber import ChunkResult

        duration = len(audio) / SAMPLE_RATE
        flags = list(h.flags)
        text_tokens = [t for t in h.tokens if t < self.vocab.eot]
        if text_tokens and h.no_speech_prob > NO_SPEECH_THRESHOLD:
            if h.avg_logprob() < LOGPROB_THRESHOLD or _vad_speech_fraction(audio) < VAD_SPEECH_FRACTION:
                return ChunkResult(text="", tokens=[], token_texts=[], logprobs=[], flags=flags + ["no-speech"])
        text_lps = [lp for t, lp in zip(h.tokens, h.logprobs) if t < self.vocab.eot]
        return ChunkResult(text=self.tokenizer.decode(text_tokens).strip(), tokens=text_tokens,
                           token_texts=[self.tokenizer.decode([t]) for t in text_tokens], logprobs=text_lps,
                           flags=flags, spans=self._spans(h.tokens, h.logprobs, duration))

    @torch.no_grad()
    def transcribe_batch(self, clips: list[np.ndarray], *, hints: list[str] | None, beam_size: int, timing):
        """Encode and decode `clips`, at most CPU_BATCH of them together on a CPU."""
        step = CPU_BATCH if self.device == "cpu" else max(1, len(clips))
        out = []
        for i in range(0, len(clips), step):
            out += self._transcribe_group(clips[i:i + step], hints, beam_size, timing)
        return out

    def _transcribe_group(self, clips: list[np.ndarray], hints: list[str] | None, beam_size: int, timing):
        t0 = time.perf_counter()
        encoded = [self.encode(c) for c in clips]
        t1 = time.perf_counter()
        prompt = self.prompt(hints)
        limits = [self.max_new_tokens(len(c) / SAMPLE_RATE, len(prompt)) for c in clips]
        with _torch_threads(DECODER_THREADS if self.device == "cpu" else None):
            if beam_size > 1:
                hyps = [self.beam_search(e, prompt, n, beam_size) for e, n in zip(encoded, limits)]
            else:
                hyps = self.greedy(encoded, prompt, limits)
        t2 = time.perf_counter()
        timing.encoder_seconds += t1 - t0
        timing.decoder_seconds += t2 - t1
        timing.tokens += sum(len(h.tokens) for h in hyps)
        return [self._result(h, c) for h, c in zip(hyps, clips)]


@contextlib.contextmanager
def _torch_threads(n: int | None):
    """Run a block with torch limited to `n` threads, then restore the previous setting."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _pad_batch(encoded: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stack (1, T_i, d) encoder outputs into (B, T, d) plus an additive cross-attention mask."""
    lengths = [e.shape[1] for e in encoded]
    if len(set(lengths)) == 1:
        return torch.cat(encoded), None
    longest = max(lengths)
    enc = torch.cat([torch.nn.functional.pad(e, (0, 0, 0, longest - e.shape[1])) for e in encoded])
    mask = torch.zeros(len(encoded), 1, 1, longest, device=enc.device)
    for i, n in enumerate(lengths):
        mask[i, ..., n:] = float("-inf")
    return enc, mask


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
        raise StenoError(f"unreadable adapter weights ({_first_line(e)})", path) from None
    if any(".encoder." in k for k in keys):
        raise StenoError("adapter changes the Whisper encoder; Steno adapts only the decoder", adapter)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


__all__ = ["WhisperBackend", "check_whisper_folder", "ensure_encoder_onnx", "log_mel", "Vocab"]
