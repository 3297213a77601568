"""Stage 3 of the default model: the CTC bridge feeds SmolLM2, which learns to read it.

    .venv/bin/python -m trainer.base_recipe lm --work data/base [--minutes 60] [--device auto]

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

from engine.config import DecodeConfig, EncoderConfig, ModelConfig, PromptConfig

STAGE = "lm"
PROMPT = PromptConfig(prefix="<|im_start|>user\nTranscribe the speech.\n",
                      separator="<|im_end|>\n<|im_start|>assistant\n", add_bos=False,
                      max_hint_terms=7)  # as many as sample_hint puts in a training prompt
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def default_config(token_ids: list[int], layers: int = 3) -> ModelConfig:
    from trainer.base_recipe import ctc_bridge_config

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
    words += [w for w in rng.sample(pool, rng.randint(0, 4)) if w not in words]
    rng.shuffle(words)
    return ", ".join(words)


# ---- model ---------------------------------------------------------------------------------
def build(work: Path, device: str, rank: int, log=print):
    """SpeechLM (whisper encoder, stage-2 bridge, SmolLM2 + fresh LoRA) and its token vocabulary."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.bridge import CTCBridge
    from engine.encoder import SpeechEncoder
    from engine.model import SpeechLM
    from trainer.base_recipe import SHIPPED, _load_shipped, ensure_lm, head_layers, load_whisper_encoder, shipped_layers

    lm_dir = ensure_lm(work)
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    lm = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=torch.float32)
    vocab_file = work / "ctc" / "vocab.json"
    token_ids = json.loads((vocab_file if vocab_file.is_file() else SHIPPED / "ctc_vocab.json").read_text())
    ctc_ckpt = work / "ctc" / "ckpt.pt"
    head_state = torch.load(ctc_ckpt, weights_only=False, map_location="cpu")["head"] if ctc_ckpt.is_file() else None
    config = default_config(token_ids, head_layers(head_state) if head_state is not None else shipped_layers())
    encoder = SpeechEncoder(config.encoder, load_whisper_encoder("whisper-base", work / "pretrained"))
    bridge = CTCBridge(config.bridge, encoder.hidden_size, lm.config.hidden_size, lm.config.vocab_size)
    if head_state is not None:
        bridge.load_state_dict(head_state)
        log(f"bridge from {ctc_ckpt}")
    else:
        log(f"bridge from {SHIPPED} (step {_load_shipped(bridge, token_ids)})")
    model = SpeechLM(config, encoder, bridge, lm, tokenizer)
    for p in model.parameters():
        p.requires_grad_(False)
    torch.manual_seed(0)
    model.lm = get_peft_model(model.lm, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05,
                                                   target_modules=LORA_TARGETS, bias="none", task_type="CAUSAL_LM"))
    for p in model.bridge.parameters():
        p.requires_grad_(True)
    return model.to(device), token_ids


@torch.no_grad()
def transcribe_frames(model, frames: list[torch.Tensor], hints: list[str | None] | None = None,
                      batch_size: int = 32) -> list[str]:
    """Greedy transcripts from encoder frames: the bridge runs per clip (as its ONNX graph
    does at inference), the LM decodes a batch at once."""
    from engine.decode import greedy

    model.eval()
    device = next(model.lm.parameters()).device
    d = model.config.decode
    out = []
    for s in range(0, len(frames), batch_size):
        chunk = frames[s:s + batch_size]
        speech = [model.bridge(f.to(device).float()[None])[0][0] for f in chunk]
        lm_in, _ = model.lm_inputs(speech, hints=hints[s:s + batch_size] if hints else None)
        limits = [int(d.tokens_per_second * f.shape[0] / 50 + d.extra_tokens) for f in chunk]
        decoded = greedy(model.lm, lm_in, limits, model.tokenizer.eos_token_id, d.min_new_tokens, d.max_repeats)
        out += [model.tokenizer.decode(x.tokens, skip_special_tokens=True).strip() for x in decoded]
    return out


def real_dev_frames(work: Path, dev_tsv: Path, device: str, encoder=None) -> list[tuple[torch.Tensor, str]]:
    """Encoder frames of the real-speech dev set (data/dev/dev.tsv: audio<TAB>reference);
    `encoder` (a loaded WhisperEncoder) saves loading it again."""
    from engine.audio import load_audio
    from engine.encoder import _whisper_forward
    from engine.features import whisper_log_mel
    from trainer.base_recipe import load_whisper_encoder

    if encoder is None:
        encoder = load_whisper_encoder("whisper-base", work / "pretrained").to(device)
    items = []
    for line in dev_tsv.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rel, text = line.split("\t")[:2]
            mel = torch.from_numpy(whisper_log_mel(load_audio(dev_tsv.parent / rel)))[None].to(device)
            with torch.no_grad():
                items.append((_whisper_forward(encoder, mel, None)[0].half(), text))
    return items


# ---- training ------------------------------------------------------------------------------
def train_lm_stage(work: Path, minutes: float = 60.0, device: str = "cpu", batch_size: int = 32, lr: float = 5e-4,
                   rank: int = 16, hint_share: float = 0.25, eval_every: int = 500, dev_tsv: Path | None = None,
                   log=print) -> Path:
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    from engine.metrics import error_rates
    from trainer.base_recipe import load_features

    t_start = time.time()
    deadline = t_start + 60 * minutes
    model, token_ids = build(work, device, rank, log)
    train = load_features(work, "train")
    dev = load_features(work, "test")[:200]
    if device != "cpu":
        train = [(f.to(device), t) for f, t in train]
    real = real_dev_frames(work, dev_tsv, device, model.encoder.model) if dev_tsv else []
    pool = sorted({w for _, t in train for w in rare_words(t)})
    stage = work / STAGE
    stage.mkdir(parents=True, exist_ok=True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    rng = random.Random(0)
    step, total = 0, None
    ckpt = stage / "ckpt.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False, map_location=device)
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
        torch.save({"bridge": model.bridge.state_dict(), "lora": get_peft_model_state_dict(model.lm),
                    "opt": opt.state_dict(), "step": step, "total": total, "rng": rng.getstate()}, tmp)
        tmp.rename(ckpt)

    def evaluate(losses: list[float]) -> dict:
        hyps = transcribe_frames(model, [f for f, _ in dev])
        rates = error_rates([t for _, t in dev], hyps)
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

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else torch.autocast(
        "cpu", enabled=False)
    model.train()
    model.encoder.eval()
    losses: list[float] = []
    timed_from = None
    while time.time() < deadline and (total is None or step < total):
        idx = [rng.randrange(len(train)) for _ in range(batch_size)]
        texts = [train[i][1] for i in idx]
        hints = [sample_hint(t, pool, rng) if rng.random() < hint_share else None for t in texts]
        with autocast:
            out = model.loss_from_frames([train[i][0].float() for i in idx], texts, hints)
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
            log(f"step {step}/{total} loss {np.mean(losses[-50:]):.3f} ce {out['ce'].item():.3f} "
                f"ctc {out['ctc'].item():.3f} {time.time() - t_start:.0f}s")
        if step % eval_every == 0:
            evaluate(losses)
            losses = []
            save()
    evaluate(losses)
    save()
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
