"""LoRA training on a user's data, for both model families.

    bridge:  frozen encoder -> frames (computed once, cached) -> bridge (frozen | LoRA | full)
             -> LM with LoRA -> next-token loss on the transcript;
             text-only sentences -> LM with LoRA -> causal-LM loss, weighted by text_weight
    whisper: frozen encoder -> frames (cached) -> decoder with LoRA (trainer/whisper.py)

A family is a small object (`BridgeTrainee`, `WhisperTrainee`) with the same few methods;
the loop, checkpoints, evaluation and saving here are shared. The state of a run
(trainable weights, AdamW moments, RNG, position in the epoch, best held-out loss) is
checkpointed into `.NAME.work/` beside the adapter, so a cancelled or crashed run resumes
exactly: the batch order is a pure function of (seed, epoch) and the RNG state is
restored, which makes the result bit-identical to an uninterrupted run on the same device.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import logging
import math
import random
import shutil
import time
import warnings
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from engine.adapters import ADAPTER_BRIDGE, ADAPTER_META
from engine.errors import StenoError
from engine.files import atomic_dir, atomic_path, atomic_write_text
from trainer.api import AdapterResult, DataReport, Pair, Progress, Scores, TrainSettings
from trainer.prompts import sample_hints

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
STATE = "state.json"
MAX_TEXT_TOKENS = 128
ADAPTER_FORMAT = 1

# LoRA targets per LM family: (attention, MLP). Module names are matched as suffixes.
LORA_TARGETS = {
    "gpt2": (["c_attn"], ["mlp.c_fc", "mlp.c_proj"]),
    "gpt_neox": (["query_key_value"], ["dense_h_to_4h", "dense_4h_to_h"]),
    "llama": (["q_proj", "v_proj"], ["gate_proj", "up_proj", "down_proj"]),
    "mistral": (["q_proj", "v_proj"], ["gate_proj", "up_proj", "down_proj"]),
    "qwen2": (["q_proj", "v_proj"], ["gate_proj", "up_proj", "down_proj"]),
    "qwen3": (["q_proj", "v_proj"], ["gate_proj", "up_proj", "down_proj"]),
    "gemma": (["q_proj", "v_proj"], ["gate_proj", "up_proj", "down_proj"]),
    "gemma2": (["q_proj", "v_proj"], ["gate_proj", "up_proj", "down_proj"]),
}


def work_dir(out_dir: Path) -> Path:
    """Checkpoints and cached frames live beside the adapter, hidden, so replacing the
    adapter folder atomically never touches them and `list_adapters` never sees them."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.work"


class _Cancelled(Exception):
    pass


# --------------------------------------------------------------------------- model set-up


def default_target_modules(lm: nn.Module, train_mlp: bool = False) -> list[str]:
    """The LM family's attention projections (plus its MLP with train_mlp)."""
    config = getattr(lm, "config", None)
    kind = getattr(config, "model_type", "")
    if kind in LORA_TARGETS:
        attn, mlp = LORA_TARGETS[kind]
        return attn + (mlp if train_mlp else [])
    names = {n.rsplit(".", 1)[-1] for n, _ in lm.named_modules()}
    for attn, mlp in LORA_TARGETS.values():
        if set(attn) <= names:
            return attn + ([m for m in mlp if m.rsplit(".", 1)[-1] in names] if train_mlp else [])
    raise StenoError(f"no known attention layers in this {kind or 'unknown'} LM: set target_modules")


def _uses_conv1d(lm: nn.Module, targets: list[str]) -> bool:
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(m, Conv1D) and any(n == t or n.endswith("." + t) for t in targets)
               for n, m in lm.named_modules())


def prepare(model, settings: TrainSettings) -> list[tuple[str, nn.Parameter]]:
    """Freeze everything, add LoRA to the LM (and the bridge if asked); the trainable params."""
    from peft import LoraConfig, get_peft_model, inject_adapter_in_model

    for p in model.parameters():
        p.requires_grad_(False)
    torch.manual_seed(settings.seed)  # LoRA's A matrices are random
    targets = list(settings.target_modules or default_target_modules(model.lm, settings.train_mlp))
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=targets, bias="none", task_type="CAUSAL_LM",
                        fan_in_fan_out=_uses_conv1d(model.lm, targets))
    try:
        with warnings.catch_warnings():  # peft calls a transformers method deprecated in v5
            warnings.simplefilter("ignore", FutureWarning)
            model.lm = get_peft_model(model.lm, config)
    except ValueError as e:
        raise StenoError(f"cannot put LoRA on the LM ({str(e).splitlines()[0]})") from None
    if settings.bridge == "full":
        for p in model.bridge.parameters():
            p.requires_grad_(True)
    elif settings.bridge == "lora":
        # linear layers only: the bridge reads its convolutions' kernel sizes to know output lengths
        names = [n for n, m in model.bridge.named_modules() if isinstance(m, nn.Linear)]
        inject_adapter_in_model(LoraConfig(r=settings.rank, lora_alpha=settings.alpha,
                                           lora_dropout=settings.dropout, target_modules=names), model.bridge)
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def plain_bridge_state(bridge: nn.Module) -> dict[str, torch.Tensor]:
    """The bridge's weights with any LoRA merged in: what `bridge.safetensors` holds."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    b = copy.deepcopy(bridge).cpu()
    for name, module in list(b.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent, _, attr = name.rpartition(".")
            setattr(b.get_submodule(parent) if parent else b, attr, module.get_base_layer())
    return {k: v.detach().contiguous() for k, v in b.state_dict().items()}


# --------------------------------------------------------------------------- frames


def _clip_key(model_key: str, path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{model_key}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]


def speech_frames(trainee, pairs: list[Pair], cache: Path, model_key: str, device: str, say, cancel
                  ) -> tuple[list[torch.Tensor], list[float]]:
    """Frozen-encoder frames of each clip's speech (the span the VAD finds, as the
    transcriber will see it) and that span's length, computed once and cached on disk."""
    from safetensors.torch import load_file, save_file

    from engine.audio import SAMPLE_RATE, load_audio, split_on_speech

    cache.mkdir(parents=True, exist_ok=True)
    frames, seconds = [], []
    for i, pair in enumerate(pairs):
        if cancel():
            raise _Cancelled
        path = cache / f"{_clip_key(model_key, pair.audio)}.safetensors"
        if path.is_file():
            try:
                blob = load_file(path)
                frames.append(blob["frames"])
                seconds.append(float(blob["seconds"]))
                continue
            except Exception:  # a damaged cache file is recomputed
                path.unlink(missing_ok=True)
        say(f"encoding audio {i + 1}/{len(pairs)}")
        audio = load_audio(pair.audio)
        chunks = split_on_speech(audio, max_seconds=trainee.config.max_segment_seconds)
        if chunks:
            audio = audio[round(chunks[0].start * SAMPLE_RATE): round(chunks[-1].end * SAMPLE_RATE)]
        with torch.no_grad():
            f = trainee.encode(audio, device).to(trainee.cache_dtype).cpu().contiguous()
        with atomic_path(path) as tmp:
            save_file({"frames": f, "seconds": torch.tensor(len(audio) / SAMPLE_RATE)}, str(tmp))
        frames.append(f)
        seconds.append(len(audio) / SAMPLE_RATE)
    return frames, seconds


class BridgeTrainee:
    """A bridge model (encoder -> bridge -> causal LM) as the training loop sees it."""

    family, target = "bridge", "lm"
    cache_dtype = torch.float32  # clip-length frames are small; keep them exact

    def __init__(self, folder: Path):
        from engine.folder import load_model

        self.model = load_model(folder)
        self.config = self.model.config
        self.settings: TrainSettings | None = None

    def encode(self, audio, device: str) -> torch.Tensor:
        """(frames, dim) encoder output for one clip, exactly what the ONNX graph computes first."""
        from engine.encoder import encoder_inputs, min_input_samples

        need = min_input_samples(self.config.encoder)
        if len(audio) < need:
            audio = torch.nn.functional.pad(torch.from_numpy(audio), (0, need - len(audio))).numpy()
        self.model.encoder.to(device)
        return self.model.encoder(torch.from_numpy(encoder_inputs(self.config.encoder, audio)).to(device))[0]

    def prepare(self, settings: TrainSettings) -> list[tuple[str, nn.Parameter]]:
        self.settings = settings
        params = prepare(self.model, settings)
        self.model.encoder.to("cpu")  # its work is done: frames are cached
        return params

    def to(self, device: str) -> None:
        self.model.lm.to(device)
        self.model.bridge.to(device)

    def train_mode(self) -> None:
        self.model.eval()  # the frozen parts: no dropout
        self.model.lm.train()
        self.model.bridge.train(self.settings.bridge != "frozen")

    def eval(self) -> None:
        self.model.eval()

    def speech_loss(self, frames: list[torch.Tensor], texts: list[str], seconds: list[float],
                    hints: list[list[str] | None] | None = None) -> torch.Tensor:
        """The model's loss; hints go into the prompt as the backend puts them (comma-separated)."""
        hint_text = [", ".join(h) if h else None for h in hints] if hints and any(hints) else None
        return self.model.loss_from_frames([f.float() for f in frames], texts, hint_text)["loss"]

    def text_ids(self, text: str) -> list[int]:
        return text_ids(self.model, text)

    def text_loss(self, batch: list[list[int]], device: str) -> torch.Tensor:
        return text_loss(self.model, batch, device)

    def lora_config(self):
        return self.model.lm.peft_config["default"]

    def save(self, folder: Path) -> None:
        """peft's files for the LM, plus the bridge (LoRA merged) when it was trained."""
        from safetensors.torch import save_file

        self.model.lm.save_pretrained(str(folder))
        if self.settings.bridge != "frozen":
            save_file(plain_bridge_state(self.model.bridge), str(folder / ADAPTER_BRIDGE))


def load_trainee(folder: Path, config):
    if config.family == "whisper":
        from trainer.whisper import WhisperTrainee

        return WhisperTrainee(folder, config)
    if config.family == "bridge":
        return BridgeTrainee(folder)
    raise StenoError(f"adapters cannot be trained for the {config.family!r} model family", folder)


# --------------------------------------------------------------------------- losses


def text_ids(model, text: str) -> list[int]:
    tok = model.tokenizer
    bos = [tok.bos_token_id] if model.config.prompt.add_bos and tok.bos_token_id is not None else []
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    return bos + tok.encode(text, add_special_tokens=False)[:MAX_TEXT_TOKENS] + eos


def text_loss(model, batch: list[list[int]], device: str) -> torch.Tensor:
    """Causal LM cross-entropy on plain text (right-padded, padding masked)."""
    width = max(len(ids) for ids in batch)
    ids = torch.zeros(len(batch), width, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    for i, row in enumerate(batch):
        ids[i, :len(row)] = torch.as_tensor(row)
        mask[i, :len(row)] = 1
    ids, mask = ids.to(device), mask.to(device)
    logits = model.lm(input_ids=ids, attention_mask=mask, use_cache=False).logits
    labels = ids.masked_fill(mask == 0, -100)
    return nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                       ignore_index=-100)


def _rehearsal(trainee, s: TrainSettings, cache: Path, base_id: str, device: str, say, cancel):
    """Everyday sentences spoken by espeak-ng (trainer/rehearsal.py), their frames and lengths."""
    from engine.models import steno_home
    from trainer.rehearsal import available, rehearsal_pairs, sentences_key

    if s.rehearsal <= 0:
        return [], [], []
    if not available():
        say("espeak-ng is not installed: training without rehearsal sentences")
        log.warning("espeak-ng not found: no rehearsal sentences")
        return [], [], []
    # spoken once per machine and seed (about 2.6 s of audio a sentence), reused by every later run
    folder = steno_home() / "cache" / f"rehearsal-{sentences_key()}-{s.seed}"
    pairs = rehearsal_pairs(folder, s.rehearsal, s.seed, cancel, say)
    if cancel():
        raise _Cancelled
    frames, seconds = speech_frames(trainee, pairs, cache, base_id, device, say, cancel)
    return pairs, frames, seconds


def held_out_loss(trainee, frames: list[torch.Tensor], texts: list[str], seconds: list[float], batch_size: int,
                  device: str) -> float:
    """Mean loss over the held-out clips, in eval mode (the caller sets training mode again)."""
    trainee.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(frames), batch_size):
            f = [x.to(device) for x in frames[i:i + batch_size]]
            total += trainee.speech_loss(f, texts[i:i + batch_size], seconds[i:i + batch_size]).item() * len(f)
    return total / max(len(frames), 1)


def _order(n: int, seed: int, epoch: int) -> list[int]:
    """The epoch's shuffle, a pure function of (seed, epoch): what makes resume exact."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist() if n else []


def lr_at(step: int, total: int, s: TrainSettings) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < s.warmup_steps:
        return s.learning_rate * (step + 1) / (s.warmup_steps + 1)
    progress = min(1.0, (step - s.warmup_steps) / max(1, total - s.warmup_steps))
    return s.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


# --------------------------------------------------------------------------- evaluation


def score(folder: Path, adapter: Path | None, pairs: list[Pair], terms: list[str], device: str, say, cancel
          ) -> tuple[Scores, list[dict]]:
    """Transcribe the held-out clips the way `steno transcribe` does and score them."""
    from engine.metrics import error_rates, term_recall
    from engine.transcriber import Cancelled, Transcriber

    if not pairs:
        return Scores.unmeasured(), []
    tr = Transcriber(folder, adapter=adapter, device=device)
    hyps = []
    for i, p in enumerate(pairs):
        if cancel():
            raise _Cancelled
        say(f"evaluating {'the adapter' if adapter else 'the base model'} {i + 1}/{len(pairs)}")
        try:
            hyps.append(tr.transcribe(p.audio, cancel=cancel).text)
        except Cancelled:
            raise _Cancelled from None
    refs = [p.text for p in pairs]
    rates = error_rates(refs, hyps)
    rows = [{"audio": str(p.audio), "reference": r, "hypothesis": h} for p, r, h in zip(pairs, refs, hyps)]
    return Scores(rates.wer, rates.cer, term_recall(terms, refs, hyps)), rows


# --------------------------------------------------------------------------- checkpoints


def fingerprint(base_id: str, data: DataReport, s: TrainSettings) -> str:
    """What a checkpoint is valid for: same base model, data and hyper-parameters."""
    skip = ("device", "checkpoint_every", "evaluate", "frames_cache")
    settings = {k: v for k, v in asdict(s).items() if k not in skip}
    h = hashlib.sha256(json.dumps({"base": base_id, "settings": settings, "terms": data.terms}, sort_keys=True,
                                  default=str).encode())
    for p in data.pairs + [Pair(Path("--eval--"), "")] + data.eval_pairs:
        h.update(f"{p.audio}\t{p.text}\n".encode())
    for t in data.texts:
        h.update(t.encode() + b"\n")
    return h.hexdigest()[:24]


def _save_checkpoint(path: Path, fp: str, run: dict, params, opt, best) -> None:
    blob = {"fingerprint": fp, "run": run, "trainable": {n: p.detach().cpu().clone() for n, p in params},
            "optimizer": opt.state_dict(), "best": best,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    try:
        with atomic_path(path) as tmp:
            torch.save(blob, tmp)
    except OSError as e:
        raise _disk_error(e, "writing a checkpoint", path.parent) from None


def _load_checkpoint(path: Path, fp: str, device: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        log.warning("ignoring an unreadable checkpoint %s (%s)", path, e)
        return None
    return blob if blob.get("fingerprint") == fp else None


def _set_params(params, values: dict) -> None:
    with torch.no_grad():
        for n, p in params:
            p.copy_(values[n].to(p.device))


def _disk_error(e: OSError, doing: str, path: Path) -> StenoError:
    if e.errno == errno.ENOSPC:
        return StenoError(f"disk full while {doing}; nothing was replaced (free some space and run again to resume)",
                          path)
    return StenoError(f"cannot write while {doing} ({e.strerror or e})", path)


# --------------------------------------------------------------------------- the run


def train(base_model, data: DataReport, out_dir: Path, s: TrainSettings, callback, cancel, resume: bool
          ) -> AdapterResult:
    from engine.folder import check_folder
    from engine.models import model_id, resolve_model
    from engine.runtime import torch_device

    callback = callback or (lambda p: None)
    cancel = cancel or (lambda: False)
    _check_settings(s)
    data.check()
    folder = resolve_model(base_model)
    config = check_folder(folder)
    if config.family == "whisper" and s.bridge != "frozen":
        raise StenoError("a Whisper-family model has no bridge to train (use bridge frozen)", folder)
    if config.family == "whisper" and not data.pairs:
        raise StenoError("text-only adaptation needs a bridge model: a Whisper-family model learns from "
                         "recordings with transcripts", folder)
    try:
        device = torch_device(s.device)
    except RuntimeError as e:
        raise StenoError(str(e)) from None
    base_id = model_id(folder)
    work = work_dir(out_dir)
    fp = fingerprint(base_id, data, s)
    if not resume and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    state_path = work / STATE
    state = {}
    if state_path.is_file():
        try:
            state = json.loads(state_path.read_text())
        except (json.JSONDecodeError, OSError):
            state = {}
    if state.get("fingerprint") != fp:
        if state:
            callback(Progress(0, 0, 0, None, None, None, "data or settings changed: starting over"))
        (work / CHECKPOINT).unlink(missing_ok=True)
        state = {"fingerprint": fp}

    pos = {"step": 0, "total": 0, "epoch": 0}

    def say(message: str) -> None:
        callback(Progress(pos["step"], pos["total"], pos["epoch"], None, None, None, message))

    def cancelled_result(before: Scores) -> AdapterResult:
        say("cancelled: run again with resume to continue")
        return AdapterResult(out_dir, before, Scores.unmeasured(), False, True, pos["step"], 0.0)

    # 1. the base model on the held-out clips
    before = Scores.from_dict(state.get("before"))
    if before is None:
        try:
            before, rows = score(folder, None, data.eval_pairs, data.terms, s.device, say, cancel) \
                if s.evaluate else (Scores.unmeasured(), [])
        except _Cancelled:
            return cancelled_result(Scores.unmeasured())
        state.update(before=before.to_dict(), before_rows=rows)
        atomic_write_text(state_path, json.dumps(state, indent=1))

    # 2. frames of every clip through the frozen encoder
    say("loading the base model")
    trainee = load_trainee(folder, config)
    if trainee.family == "whisper" and data.texts:
        say(f"{len(data.texts)} text sentences not used: a Whisper-family model learns from recordings only")
    try:
        cache = Path(s.frames_cache) if s.frames_cache else work / "frames"
        frames, seconds = speech_frames(trainee, data.pairs + data.eval_pairs, cache, base_id, device, say, cancel)
    except _Cancelled:
        return cancelled_result(before)
    except OSError as e:
        raise _disk_error(e, "caching audio frames", work) from None
    n = len(data.pairs)
    train_frames, eval_frames, train_seconds_, eval_seconds = frames[:n], frames[n:], seconds[:n], seconds[n:]
    try:
        rehearsal, rehearsal_frames, rehearsal_seconds = _rehearsal(trainee, s, cache, base_id, device, say,
                                                                    cancel)
    except _Cancelled:
        return cancelled_result(before)
    except OSError as e:
        raise _disk_error(e, "speaking rehearsal sentences", work) from None

    # 3. LoRA and the optimiser
    params = trainee.prepare(s)
    trainee.to(device)
    texts = [trainee.text_ids(t) for t in data.texts] if trainee.family == "bridge" else []
    n_items = len(data.pairs) or len(texts)
    micro_per_epoch = math.ceil(n_items / s.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / s.grad_accum)
    total = s.epochs * steps_per_epoch
    pos["total"] = total
    opt = torch.optim.AdamW([p for _, p in params], lr=s.learning_rate, weight_decay=s.weight_decay)
    run = {"step": 0, "epoch": 0, "best_loss": None, "bad_epochs": 0, "done": False, "stopped_early": False,
           "history": [], "train_seconds": 0.0}
    best = None
    ckpt_path = work / CHECKPOINT
    blob = _load_checkpoint(ckpt_path, fp, device) if resume else None
    if blob is not None:
        _set_params(params, blob["trainable"])
        opt.load_state_dict(blob["optimizer"])
        run, best = blob["run"], blob["best"]
        torch.set_rng_state(blob["rng"].cpu())
        if blob["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([r.cpu() for r in blob["cuda_rng"]])
        pos.update(step=run["step"], epoch=run["epoch"])
        say(f"resuming at step {run['step']} of {total}")
    else:
        torch.manual_seed(s.seed)

    def checkpoint() -> None:
        _save_checkpoint(ckpt_path, fp, run, params, opt, best)

    # 4. the training loop
    trainee.train_mode()
    clock = started = time.perf_counter()
    steps_here, running = 0, None
    while not run["done"]:
        epoch = run["epoch"]
        order = _order(n_items, s.seed, epoch)
        text_order = _order(len(texts), s.seed + 1, epoch) if data.pairs else order
        rehearsal_order = _order(len(rehearsal), s.seed + 2, epoch)
        losses = []
        for step_in_epoch in range(run["step"] - epoch * steps_per_epoch, steps_per_epoch):
            if cancel():
                run["train_seconds"] += time.perf_counter() - started
                checkpoint()
                return cancelled_result(before)
            lr = lr_at(run["step"], total, s)
            for g in opt.param_groups:
                g["lr"] = lr
            micro = range(step_in_epoch * s.grad_accum, min((step_in_epoch + 1) * s.grad_accum, micro_per_epoch))
            opt.zero_grad(set_to_none=True)
            step_loss = 0.0
            for m in micro:
                idx = order[m * s.batch_size:(m + 1) * s.batch_size]
                loss = torch.zeros((), device=device)
                hint_rng = random.Random(f"{s.seed}/{epoch}/{m}")  # a function of the position: resume stays exact
                if data.pairs:
                    f = [train_frames[i].to(device) for i in idx]
                    said = [data.pairs[i].text for i in idx]
                    loss = loss + trainee.speech_loss(f, said, [train_seconds_[i] for i in idx],
                                                      [sample_hints(t, data.terms, hint_rng, s.hint_share)
                                                       for t in said])
                if rehearsal:
                    per = max(1, s.batch_size // 2)
                    r_idx = [rehearsal_order[(m * per + j) % len(rehearsal)] for j in range(per)]
                    said = [rehearsal[i].text for i in r_idx]
                    loss = loss + s.rehearsal_weight * trainee.speech_loss(
                        [rehearsal_frames[i].to(device) for i in r_idx], said, [rehearsal_seconds[i] for i in r_idx],
                        [sample_hints(t, data.terms, hint_rng, s.hint_share) for t in said])
                if texts:
                    t_idx = idx if not data.pairs else [text_order[(m * s.batch_size + j) % len(texts)]
                                                        for j in range(len(idx))]
                    loss = loss + s.text_weight * trainee.text_loss([texts[i] for i in t_idx], device)
                (loss / len(micro)).backward()
                step_loss += loss.item() / len(micro)
            if s.max_grad_norm:
                nn.utils.clip_grad_norm_([p for _, p in params], s.max_grad_norm)
            opt.step()
            run["step"] += 1
            steps_here += 1
            losses.append(step_loss)
            running = step_loss if running is None else 0.9 * running + 0.1 * step_loss
            pos["step"] = run["step"]
            eta = (time.perf_counter() - clock) / steps_here * (total - run["step"])
            callback(Progress(run["step"], total, epoch + 1, running, run["history"][-1]["eval_loss"]
                              if run["history"] else None, eta,
                              f"epoch {epoch + 1}/{s.epochs}, step {run['step']}/{total}, loss {running:.3f}"))
            if s.checkpoint_every and run["step"] % s.checkpoint_every == 0:
                checkpoint()
        # end of an epoch: held-out loss decides whether to go on
        run["epoch"] = epoch = epoch + 1
        pos["epoch"] = epoch
        eval_loss = held_out_loss(trainee, eval_frames, [p.text for p in data.eval_pairs], eval_seconds,
                                  s.batch_size, device) \
            if eval_frames else None
        trainee.train_mode()
        run["history"].append({"epoch": epoch, "step": run["step"], "lr": lr_at(run["step"] - 1, total, s),
                               "train_loss": sum(losses) / len(losses) if losses else None, "eval_loss": eval_loss})
        if eval_loss is not None:
            if run["best_loss"] is None or eval_loss < run["best_loss"] - 1e-4:
                run["best_loss"], run["bad_epochs"] = eval_loss, 0
                best = {n: p.detach().cpu().clone() for n, p in params}
            else:
                run["bad_epochs"] += 1
                if run["bad_epochs"] >= s.patience:
                    run["stopped_early"] = True
        callback(Progress(run["step"], total, epoch, running, eval_loss, None,
                          f"epoch {epoch} done: held-out loss {eval_loss:.3f}" if eval_loss is not None
                          else f"epoch {epoch} done"))
        if run["stopped_early"] or epoch >= s.epochs:
            run["done"] = True
            if best is not None:
                _set_params(params, best)  # keep the epoch with the best held-out loss
        run["train_seconds"] += time.perf_counter() - started
        started = time.perf_counter()
        checkpoint()
    train_seconds = run["train_seconds"]

    # 5. save (atomically), measuring the adapter from its own folder before it replaces the old one
    trainee.eval()
    opt.state.clear()  # free the AdamW moments before evaluation loads another model copy
    meta = _meta(out_dir, folder, config, base_id, data, s, before, run, device, trainee, len(rehearsal))
    try:
        with atomic_dir(out_dir) as tmp:
            trainee.save(tmp)
            write_meta(tmp, meta)
            after, rows = score(folder, tmp, data.eval_pairs, data.terms, s.device, say, cancel) \
                if s.evaluate else (Scores.unmeasured(), [])
            meta["after"] = after.to_dict()
            meta["examples"] = [dict(r, before=b["hypothesis"]) for r, b in
                                zip(rows, state.get("before_rows") or [{}] * len(rows)) if "hypothesis" in b][:20]
            write_meta(tmp, meta)
    except _Cancelled:
        return cancelled_result(before)
    except OSError as e:
        raise _disk_error(e, "saving the adapter", out_dir) from None
    shutil.rmtree(work, ignore_errors=True)
    say(f"saved {out_dir}")
    return AdapterResult(out_dir, before, after, run["stopped_early"], False, run["step"], train_seconds)


def write_meta(folder: Path, meta: dict) -> None:
    atomic_write_text(Path(folder) / ADAPTER_META, json.dumps(meta, indent=2, allow_nan=False) + "\n")


def _meta(out_dir, folder, config, base_id, data, s, before, run, device, trainee, rehearsal_pairs: int) -> dict:
    lora = trainee.lora_config()
    targets = lora.target_modules
    return {
        "format": "steno-adapter", "format_version": ADAPTER_FORMAT, "name": Path(out_dir).name,
        "target": trainee.target, "base_model_id": base_id, "base_model_name": config.name or Path(folder).name,
        "base_model_path": str(Path(folder).resolve()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "lora": {"rank": lora.r, "alpha": lora.lora_alpha, "dropout": lora.lora_dropout,
                 "target_modules": targets if isinstance(targets, str) else sorted(targets)},
        "bridge": s.bridge, "hyperparameters": json.loads(json.dumps(asdict(s), default=str)),
        "data": {**data.to_dict(), "rehearsal_pairs": rehearsal_pairs}, "terms": data.terms[:500],
        "before": before.to_dict(), "after": None,
        "training": {"steps": run["step"], "epochs": run["epoch"], "stopped_early": run["stopped_early"],
                     "best_eval_loss": run["best_loss"], "seconds": round(run["train_seconds"], 1),
                     "device": device, "history": run["history"]},
    }


def _check_settings(s: TrainSettings) -> None:
    problems = []
    if s.bridge not in ("frozen", "lora", "full"):
        problems.append(f"bridge must be frozen, lora or full, not {s.bridge!r}")
    for name in ("rank", "alpha", "epochs", "batch_size", "grad_accum"):
        if getattr(s, name) < 1:
            problems.append(f"{name} must be at least 1")
    if not 0 <= s.dropout < 1:
        problems.append("dropout must be in [0, 1)")
    if not s.learning_rate > 0:
        problems.append("learning_rate must be positive")
    if s.warmup_steps < 0 or s.patience < 1:
        problems.append("warmup_steps must be >= 0 and patience >= 1")
    if problems:
        raise StenoError("bad training settings: " + "; ".join(problems))
