"""Stage 3 of the default model: the CTC bridge feeds SmolLM2, which learns to read it.

    .venv/bin/python -m recipes.stages lm --work data/base [--minutes 60] [--device auto]

The bridge starts from the stage-2 CTC head; its posterior-weighted LM embeddings give the
LM near-text from step one. Bridge (full) and LoRA on the LM's attention and MLP train
together on next-token cross-entropy plus the auxiliary CTC loss (arXiv 2312.03668's ctc
bridge with LoRA). A share of the samples carries a vocabulary hint in the prompt (some
words of the sentence among distractors), so the shipped model can use the hints a user
gives. The schedule is fitted to the time given: after a few timed steps the total step
count is set so the cosine decay ends at the deadline. Checkpoints (`work/lm/ckpt.pt`) and
resume; every evaluation logs loss and greedy dev WER (held-out voices, and the real
speech dev set when `--dev` is given, for reporting only: nothing is chosen on it).

Output, in `work/lm/final/` (what `ship` copies into resources/default/): steno.json,
bridge.safetensors (fp16), lora/ (peft adapter), log.jsonl.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from pathlib import Path

import numpy as np
import torch

from engine.models.config import DecodeConfig, EncoderConfig, ModelConfig, PromptConfig
from recipes.features import load_features
from recipes.pretrained import ensure_lm, load_whisper_encoder
from recipes.shipped import (
    SHIPPED,
    ctc_bridge_config,
    head_layers,
    shipped_head,
    shipped_layers,
    shipped_vocabulary,
    warm_start_head,
)

STAGE = "lm"
PROMPT = PromptConfig(prefix="<|im_start|>user\nTranscribe the speech.\n",
                      separator="<|im_end|>\n<|im_start|>assistant\n", add_bos=False,
                      max_hint_terms=7)  # as many as sample_hint puts in a training prompt
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def default_config(token_ids: list[int], layers: int = 3) -> ModelConfig:
    """The default model's config around a ctc bridge over `token_ids`."""
    return ModelConfig(family="bridge", encoder=EncoderConfig(kind="whisper"), bridge=ctc_bridge_config(token_ids, layers),
                       prompt=PROMPT, decode=DecodeConfig(tokens_per_second=6.0, extra_tokens=12, ctc_weight=0.7),
                       name="steno-default-en", language="en")


# ---- vocabulary hints ----------------------------------------------------------------------
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")


def rare_words(text: str) -> list[str]:
    """Words a user would list as vocabulary: long ones and names (capitalised mid-sentence)."""
    words = _WORD.findall(text)
    return [w for i, w in enumerate(words) if len(w) >= 8 or (i > 0 and w[0].isupper() and len(w) > 3)]


def sample_hint(text: str, pool: list[str], rng: random.Random) -> str | None:
    """1-3 of the sentence's rare words among 0-4 distractors, shuffled; None if it has none."""
    own = sorted(set(rare_words(text)))
    if not own:
        return None
    words = rng.sample(own, min(len(own), rng.randint(1, 3)))
    words += [w for w in rng.sample(pool, min(len(pool), rng.randint(0, 4))) if w not in words]
    rng.shuffle(words)
    return ", ".join(words)


# ---- model ---------------------------------------------------------------------------------
def lora_lm(lm_dir: Path, rank: int, init_lora: Path | None = None, log=print):
    """SmolLM2 (frozen, fp32) with a fresh LoRA of `rank`, or `init_lora`'s (a peft adapter
    folder, such as the shipped one) to warm-start from; and its tokenizer."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    lm = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=torch.float32)
    for p in lm.parameters():
        p.requires_grad_(False)
    torch.manual_seed(0)  # LoRA's A matrices are random
    lm = get_peft_model(lm, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05, target_modules=LORA_TARGETS,
                                       bias="none", task_type="CAUSAL_LM"))
    if init_lora is not None:
        result = set_peft_model_state_dict(lm, load_file(init_lora / "adapter_model.safetensors"))
        if result.unexpected_keys:
            raise SystemExit(f"{init_lora}: adapter does not fit (r={rank}?): {result.unexpected_keys[:3]}")
        log(f"LoRA from {init_lora}")
    return tokenizer, lm


def build(work: Path, device: str, rank: int, log=print):
    """SpeechLM (whisper encoder, stage-2 bridge, SmolLM2 + fresh LoRA) and its token vocabulary."""
    from engine.bridge.bridge import CTCBridge
    from engine.bridge.encoder import SpeechEncoder
    from engine.bridge.model import SpeechLM

    tokenizer, lm = lora_lm(ensure_lm(work), rank, log=log)
    vocab_file = work / "ctc" / "vocab.json"
    token_ids = json.loads(vocab_file.read_text()) if vocab_file.is_file() else shipped_vocabulary()
    ctc_ckpt = work / "ctc" / "ckpt.pt"
    head_state = torch.load(ctc_ckpt, weights_only=False, map_location="cpu")["head"] if ctc_ckpt.is_file() else None
    config = default_config(token_ids, head_layers(head_state) if head_state is not None else shipped_layers())
    encoder = SpeechEncoder(config.encoder, load_whisper_encoder("whisper-base", work / "pretrained"))
    for p in encoder.parameters():
        p.requires_grad_(False)
    bridge = CTCBridge(config.bridge, encoder.hidden_size, lm.config.hidden_size, lm.config.vocab_size)
    if head_state is not None:
        bridge.load_state_dict(head_state)
        log(f"bridge from {ctc_ckpt}")
    else:
        log(f"bridge from {shipped_head()} (step {warm_start_head(bridge, token_ids)})")
    return SpeechLM(config, encoder, bridge, lm, tokenizer).to(device), token_ids


def build_on_cache(work: Path, token_ids: list[int], device: str, rank: int, init_lora: Path | None = None, log=print):
    """SmolLM2 + LoRA for a frozen bridge whose outputs are cached: no encoder, no bridge
    layers (the cache holds what they would give)."""
    from engine.bridge.model import SpeechLM

    tokenizer, lm = lora_lm(ensure_lm(work), rank, init_lora, log)
    return SpeechLM(default_config(token_ids), None, None, lm, tokenizer).to(device)


@torch.no_grad()
def transcribe_speech(model, speech: list[torch.Tensor], frames: list[int],
                      hints: list[str | None] | None = None) -> list[str]:
    """Greedy transcripts of one batch from the bridge's LM input vectors (`frames`: each
    clip's encoder frames, 50 a second, which set its token budget as at inference)."""
    from engine.decoding.search import CausalLMStep, LoopCut, MinLength, greedy

    model.eval()
    d = model.config.decode
    lm_in, _ = model.lm_inputs(speech, hints=hints)
    limits = [int(d.tokens_per_second * n / 50 + d.extra_tokens) for n in frames]
    eos = model.tokenizer.eos_token_id
    decoded = greedy(CausalLMStep(model.lm, lm_in), limits, eos, MinLength(eos, d.min_new_tokens),
                     cut_loop=LoopCut(d.max_repeats))
    return [model.tokenizer.decode(x.tokens, skip_special_tokens=True).strip() for x in decoded]


@torch.no_grad()
def transcribe_frames(model, frames: list[torch.Tensor], hints: list[str | None] | None = None,
                      batch_size: int = 32) -> list[str]:
    """Greedy transcripts from encoder frames: the bridge runs per clip (as its ONNX graph
    does at inference), the LM decodes a batch at once."""
    model.eval()
    device = next(model.lm.parameters()).device
    out = []
    for s in range(0, len(frames), batch_size):
        chunk = frames[s:s + batch_size]
        speech = [model.bridge(f.to(device).float()[None])[0][0] for f in chunk]
        out += transcribe_speech(model, speech, [f.shape[0] for f in chunk], hints[s:s + batch_size] if hints else None)
    return out


def real_dev_frames(work: Path, dev_tsv: Path, device: str, encoder=None) -> list[tuple[torch.Tensor, str]]:
    """Encoder frames of the real-speech dev set (data/dev/dev.tsv: audio<TAB>reference);
    `encoder` (a loaded WhisperEncoder) saves loading it again."""
    from engine.audio import load_audio
    from engine.features import whisper_log_mel
    from engine.whisper.encoder import whisper_forward

    if encoder is None:
        encoder = load_whisper_encoder("whisper-base", work / "pretrained").to(device)
    items = []
    for line in dev_tsv.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rel, text = line.split("\t")[:2]
            mel = torch.from_numpy(whisper_log_mel(load_audio(dev_tsv.parent / rel)))[None].to(device)
            with torch.no_grad():
                items.append((whisper_forward(encoder, mel, None)[0].half(), text))
    return items


# ---- training ------------------------------------------------------------------------------
def train_lm_stage(work: Path, minutes: float = 60.0, device: str = "cpu", batch_size: int = 32, lr: float = 5e-4,
                   rank: int = 16, hint_share: float = 0.25, eval_every: int = 500, dev_tsv: Path | None = None,
                   speech_cache: Path | None = None, init_lora: Path | None = None, log=print) -> Path:
    """Train bridge + LoRA on precomputed encoder frames, or with `speech_cache` (a folder
    with train.npz and test.npz from recipes/speech_cache.py) LoRA alone on a frozen
    bridge's cached outputs. Every evaluation also keeps the adapter (`lm/snapshots/`).
    Returns the final model folder, or with `speech_cache` the last adapter snapshot."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import save_file

    from engine.text.metrics import error_rates

    t_start = time.time()
    deadline = t_start + 60 * minutes
    real = []
    if speech_cache is None:
        model, token_ids = build(work, device, rank, log)
        train = load_features(work, "train")
        dev = load_features(work, "test")[:200]
        if device != "cpu":
            train = [(f.to(device), t) for f, t in train]
        real = real_dev_frames(work, dev_tsv, device, model.encoder.model) if dev_tsv else []
        train_texts, dev_texts = [t for _, t in train], [t for _, t in dev]

        def batch_loss(idx: list[int], hints: list[str | None]) -> dict:
            return model.loss_from_frames([train[i][0].float() for i in idx], [train[i][1] for i in idx], hints)

        def transcribe_dev() -> list[str]:
            return transcribe_frames(model, [f for f, _ in dev])
    else:
        from recipes.speech_cache import load_cache, speech_vectors, to_device

        train_cache = to_device(load_cache(speech_cache / "train.npz"), device)
        dev_cache = to_device(load_cache(speech_cache / "test.npz"), device)
        if train_cache.token_ids != dev_cache.token_ids:
            raise SystemExit(f"{speech_cache}: train.npz and test.npz come from different bridges")
        model = build_on_cache(work, train_cache.token_ids, device, rank, init_lora, log)
        table = model.lm.get_input_embeddings().weight
        train_texts, dev_texts = train_cache.texts, dev_cache.texts[:200]

        def batch_loss(idx: list[int], hints: list[str | None]) -> dict:
            speech = speech_vectors(train_cache, idx, table.detach())
            ce = model.loss_from_speech(speech, [model.target_ids(train_cache.texts[i]) for i in idx], hints)
            return {"loss": ce, "ce": ce}

        def transcribe_dev() -> list[str]:
            hyps = []
            for s in range(0, len(dev_texts), 32):
                idx = list(range(s, min(s + 32, len(dev_texts))))
                hyps += transcribe_speech(model, speech_vectors(dev_cache, idx, table.detach()),
                                          [dev_cache.frames[i] for i in idx])
            return hyps
    pool = sorted({w for t in train_texts for w in rare_words(t)})
    stage = work / STAGE
    stage.mkdir(parents=True, exist_ok=True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    rng = random.Random(0)
    step, total = 0, None
    ckpt = stage / "ckpt.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False, map_location=device)
        if model.bridge is not None:
            model.bridge.load_state_dict(state["bridge"])
        set_peft_model_state_dict(model.lm, state["lora"])
        opt.load_state_dict(state["opt"])
        step, total = state["step"], state["total"]
        rng.setstate(state["rng"])
        log(f"resumed stage {STAGE} at step {step} of {total}")
    warmup = 200

    def lr_factor(s: int) -> float:
        return min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, total)))))

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"bridge": model.bridge.state_dict() if model.bridge is not None else None,
                    "lora": get_peft_model_state_dict(model.lm),
                    "opt": opt.state_dict(), "step": step, "total": total, "rng": rng.getstate()}, tmp)
        tmp.rename(ckpt)
        snapshots = stage / "snapshots"
        snapshots.mkdir(exist_ok=True)
        adapter = {k: v.detach().cpu().half().contiguous() for k, v in get_peft_model_state_dict(model.lm).items()}
        save_file(adapter, snapshots / f"step_{step:05d}.tmp")
        (snapshots / f"step_{step:05d}.tmp").rename(snapshots / f"step_{step:05d}.safetensors")

    def evaluate(losses: list[float]) -> dict:
        hyps = transcribe_dev()
        rates = error_rates(dev_texts, hyps)
        entry = {"stage": STAGE, "step": step, "total": total, "loss": float(np.mean(losses)) if losses else None,
                 "dev_wer": rates.wer, "dev_cer": rates.cer, "sample": hyps[0], "time": time.time()}
        if real:
            real_hyps = transcribe_frames(model, [f for f, _ in real])
            real_rates = error_rates([t for _, t in real], real_hyps)
            entry.update(real_wer=real_rates.wer, real_cer=real_rates.cer, real_sample=real_hyps[-1])
        with open(stage / "log.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
        log(json.dumps(entry))
        model.train()
        return entry

    # fp32 on CUDA too, no autocast: under bf16 autocast LoRA alone on the cached bridge goes
    # NaN within a few hundred steps, and fp32 is no slower (the step is Python-bound)
    model.train()
    if model.encoder is not None:
        model.encoder.eval()
    losses: list[float] = []
    timed_from = None
    if step == 0 and speech_cache is not None:
        evaluate([])  # where the warm start stands
    first = step  # at least one step, even when that evaluation used up a short budget
    while (step == first or time.time() < deadline) and (total is None or step < total):
        idx = [rng.randrange(len(train_texts)) for _ in range(batch_size)]
        texts = [train_texts[i] for i in idx]
        hints = [sample_hint(t, pool, rng) if rng.random() < hint_share else None for t in texts]
        out = batch_loss(idx, hints)
        for g in opt.param_groups:
            g["lr"] = lr * lr_factor(step) if total else lr * min(1.0, (step + 1) / warmup)
        opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        losses.append(out["loss"].item())
        if total is None:  # fit the schedule to the time left, measured after warm-up of the kernels
            if step == 5:
                timed_from = (time.time(), step)
            elif step == 25:
                per_step = (time.time() - timed_from[0]) / (step - timed_from[1])
                evals = 0.05  # evaluation share of the time, roughly
                total = step + int((deadline - time.time()) * (1 - evals) / per_step)
                eval_every = max(eval_every, total // 8)  # at most ~8 evaluations
                log(f"{per_step * 1000:.0f} ms/step: schedule set to {total} steps, evaluation every {eval_every}")
        if step % 50 == 0:
            ctc = f" ctc {out['ctc'].item():.3f}" if "ctc" in out else ""
            log(f"step {step}/{total} loss {np.mean(losses[-50:]):.3f} ce {out['ce'].item():.3f}{ctc} "
                f"{time.time() - t_start:.0f}s")
        if step % eval_every == 0:
            evaluate(losses)
            losses = []
            save()
    if not (step == 0 and speech_cache is not None):  # (step 0 is evaluated already)
        evaluate(losses)
    save()
    if speech_cache is not None:  # the bridge is the shipped one: `swap-lora` makes a model of any snapshot
        return stage / "snapshots" / f"step_{step:05d}.safetensors"
    return export_final(model, stage)


def export_final(model, stage: Path) -> Path:
    """bridge (fp16) + LoRA adapter + config + log: everything the default model adds to the
    pretrained parts, written atomically into `stage/final`."""
    from safetensors.torch import load_file, save_file

    from engine.files import atomic_dir

    final = stage / "final"
    with atomic_dir(final) as tmp:
        save_file({k: v.detach().cpu().half().contiguous() for k, v in model.bridge.state_dict().items()},
                  tmp / "bridge.safetensors")
        model.lm.save_pretrained(tmp / "lora")
        adapter = tmp / "lora" / "adapter_model.safetensors"  # fp16: half the size, same transcripts
        save_file({k: v.half().contiguous() for k, v in load_file(adapter).items()}, adapter)
        model.config.save(tmp)
        (tmp / "log.jsonl").write_bytes((stage / "log.jsonl").read_bytes())
    return final


def lora_into_model(adapter: Path, out: Path, shipped_model: Path | None = None) -> Path:
    """A model folder like resources/default/model with its LoRA weights replaced by
    `adapter` (a snapshot from a frozen-bridge run; same rank and targets as shipped). The
    shipped figures are dropped, as `head_into_model` does."""
    import shutil

    from safetensors.torch import load_file, save_file

    from engine.files import atomic_dir

    shipped_model = shipped_model or SHIPPED / "model"
    weights = load_file(adapter)
    have = set(load_file(shipped_model / "lora" / "adapter_model.safetensors"))
    if set(weights) != have:
        raise SystemExit(f"{adapter}: its LoRA weights do not match the shipped adapter's ({len(weights)} vs {len(have)} tensors)")
    config = ModelConfig.load(shipped_model)
    config.metrics = {}  # they belong to the old adapter: measured again (python -m bench.default_model --record)
    with atomic_dir(out) as tmp:
        shutil.copytree(shipped_model, tmp, dirs_exist_ok=True)
        save_file({k: v.half().contiguous() for k, v in weights.items()}, tmp / "lora" / "adapter_model.safetensors")
        config.save(tmp)
        log = adapter.parent.parent / "log.jsonl"
        if log.is_file():
            shutil.copy2(log, tmp / "log.jsonl")
    return out
