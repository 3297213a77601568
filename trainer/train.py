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
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from engine.errors import StenoError
from engine.files import atomic_dir, atomic_path, atomic_write_text
from engine.models.adapters import ADAPTER_BRIDGE, ADAPTER_META
from trainer.prompts import sample_hints
from trainer.records import AdapterResult, DataReport, Pair, Progress, Scores, TrainSettings

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
        from engine.bridge.folder import load_model

        self.model = load_model(folder)
        self.config = self.model.config
        self.settings: TrainSettings | None = None

    def encode(self, audio, device: str) -> torch.Tensor:
        """(frames, dim) encoder output for one clip, exactly what the ONNX graph computes first."""
        from engine.bridge.encoder import encoder_inputs, min_input_samples

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
    from engine.models.registry import steno_home
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
    from engine.text.metrics import error_rates, term_recall
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


@dataclass
class RunState:
    """Where training stands. Every checkpoint holds it (as a dict), so a resumed run goes on
    from the same step with the same early-stopping record and history."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # epochs finished
    best_loss: float | None = None  # the lowest held-out loss at an epoch's end
    bad_epochs: int = 0  # epochs since that loss was last lowered
    done: bool = False
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)  # a row per epoch, for the adapter's JSON
    train_seconds: float = 0.0  # summed over the processes that worked on this run


@dataclass
class Run:
    """One call of `train`: what it works on, where it reports, and how far it has got."""

    data: DataReport
    settings: TrainSettings
    out_dir: Path
    folder: Path  # the base model
    config: object  # its ModelConfig
    base_id: str
    device: str
    work: Path  # checkpoints, cached frames and state.json
    fingerprint: str
    saved: dict  # state.json: the fingerprint, then the base model's scores once measured
    callback: Callable[[Progress], None]
    cancel: Callable[[], bool]
    state: RunState = field(default_factory=RunState)
    micro_per_epoch: int = 0  # batches an epoch; known once the data is read
    steps_per_epoch: int = 0  # optimizer steps an epoch (grad_accum batches each)
    total: int = 0  # optimizer steps of the whole run

    def say(self, message: str) -> None:
        self.callback(Progress(self.state.step, self.total, self.state.epoch, None, None, None, message))

    def cancelled(self, before: Scores) -> AdapterResult:
        self.say("cancelled: run again with resume to continue")
        return AdapterResult(self.out_dir, before, Scores.unmeasured(), False, True, self.state.step, 0.0)


@dataclass
class Clips:
    """What the loop trains on: frames and lengths of the user's, held-out and rehearsal
    clips, and the text-only sentences as token ids (bridge family)."""

    train_frames: list[torch.Tensor]
    train_seconds: list[float]
    eval_frames: list[torch.Tensor]
    eval_seconds: list[float]
    rehearsal: list[Pair]
    rehearsal_frames: list[torch.Tensor]
    rehearsal_seconds: list[float]
    texts: list[list[int]]


@dataclass
class Learner:
    """The trainable weights, their optimizer, and a copy of the weights of the best epoch."""

    params: list[tuple[str, nn.Parameter]]
    opt: torch.optim.Optimizer
    best: dict[str, torch.Tensor] | None = None


@dataclass
class Pace:
    """This process's share of the run: the time-left estimate and the smoothed loss shown.
    Not checkpointed: a resumed run estimates from its own steps."""

    clock: float  # when this process began training
    started: float  # time since then not yet added to RunState.train_seconds
    steps: int = 0
    running_loss: float | None = None


@dataclass
class EpochOrder:
    """An epoch's shuffles of the items, the text sentences and the rehearsal clips."""

    items: list[int]
    texts: list[int]
    rehearsal: list[int]


def train(base_model, data: DataReport, out_dir: Path, s: TrainSettings, callback, cancel, resume: bool
          ) -> AdapterResult:
    run = open_run(base_model, data, Path(out_dir), s, callback or (lambda p: None), cancel or (lambda: False),
                   resume)
    try:
        try:
            before = score_base(run)
        except _Cancelled:
            return run.cancelled(Scores.unmeasured())
        try:
            trainee, clips = encode(run)
            learner = start(run, trainee, clips, resume)
            train_epochs(run, trainee, clips, learner)
            return save_adapter(run, trainee, learner, before, len(clips.rehearsal))
        except _Cancelled:
            return run.cancelled(before)
    except (StenoError, OSError):
        drop_work_without_progress(run.work)
        raise


def drop_work_without_progress(work: Path) -> None:
    """A failed run (full or read-only disk, bad data) leaves no work folder behind unless it
    holds a checkpoint to resume from: then the error says to run again."""
    if not (work / CHECKPOINT).is_file():
        shutil.rmtree(work, ignore_errors=True)


def check_out_dir(out_dir: Path, marker: str = ADAPTER_META, what: str = "an adapter") -> None:
    """An adapter (or merged model) replaces `out_dir` whole when it is saved: refuse anything
    but a new or empty folder or an earlier one of its kind (it holds `marker`), before any
    work, so no file of the user's is lost."""
    if out_dir.exists() and not out_dir.is_dir():
        raise StenoError(f"not a folder: {what} is saved as a new folder (choose another --out)", out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / marker).is_file():
        raise StenoError(f"folder holds files that are not {what}'s, and saving would replace it "
                         "(choose a new folder for --out)", out_dir)


def open_run(base_model, data: DataReport, out_dir: Path, s: TrainSettings, callback, cancel, resume: bool) -> Run:
    """Check the settings, data and base model; open the work folder, starting over there
    when resume is off or the data or settings differ from the run it holds."""
    from engine.models.folder import check_folder
    from engine.models.registry import model_id, resolve_model
    from engine.runtime import torch_device

    _check_settings(s)
    data.check()  # before the model is looked for: what the data lacks is said first
    folder = resolve_model(base_model)
    config = check_folder(folder)
    data.check(config.family)
    if config.family == "whisper" and s.bridge != "frozen":
        raise StenoError("a Whisper-family model has no bridge to train (use bridge frozen)", folder)
    try:
        device = torch_device(s.device)
    except RuntimeError as e:
        raise StenoError(str(e)) from None
    base_id = model_id(folder)
    check_out_dir(out_dir)
    work = work_dir(out_dir)
    fp = fingerprint(base_id, data, s)
    try:
        if not resume and work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        drop_work_without_progress(work)
        raise _disk_error(e, "making the work folder", work.parent) from None
    saved = _read_state(work / STATE)
    if saved.get("fingerprint") != fp:
        if saved:
            callback(Progress(0, 0, 0, None, None, None, "data or settings changed: starting over"))
        (work / CHECKPOINT).unlink(missing_ok=True)
        saved = {"fingerprint": fp}
    return Run(data, s, out_dir, folder, config, base_id, device, work, fp, saved, callback, cancel)


def _read_state(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return {}


def score_base(run: Run) -> Scores:
    """The base model's scores on the held-out pairs: measured once, kept in state.json for a resumed run."""
    before = Scores.from_dict(run.saved.get("before"))
    if before is None:
        s, data = run.settings, run.data
        before, rows = score(run.folder, None, data.eval_pairs, data.terms, s.device, run.say, run.cancel) \
            if s.evaluate else (Scores.unmeasured(), [])
        run.saved.update(before=before.to_dict(), before_rows=rows)
        try:
            atomic_write_text(run.work / STATE, json.dumps(run.saved, indent=1))
        except OSError as e:
            raise _disk_error(e, "writing the training state", run.work) from None
    return before


def encode(run: Run):
    """Load the base model and turn the data into what the loop reads: every clip through the
    frozen encoder (cached), the rehearsal clips too, and the text sentences as token ids."""
    s, data = run.settings, run.data
    run.say("loading the base model")
    trainee = load_trainee(run.folder, run.config)
    if trainee.family == "whisper" and data.texts:
        run.say(f"{len(data.texts)} text sentences not used: a Whisper-family model learns from recordings only")
    cache = Path(s.frames_cache) if s.frames_cache else run.work / "frames"
    try:
        frames, seconds = speech_frames(trainee, data.pairs + data.eval_pairs, cache, run.base_id, run.device,
                                        run.say, run.cancel)
    except OSError as e:
        raise _disk_error(e, "caching audio frames", run.work) from None
    try:
        rehearsal, rehearsal_frames, rehearsal_seconds = _rehearsal(trainee, s, cache, run.base_id, run.device,
                                                                    run.say, run.cancel)
    except OSError as e:
        raise _disk_error(e, "speaking rehearsal sentences", run.work) from None
    n = len(data.pairs)
    texts = [trainee.text_ids(t) for t in data.texts] if trainee.family == "bridge" else []
    return trainee, Clips(frames[:n], seconds[:n], frames[n:], seconds[n:], rehearsal, rehearsal_frames,
                          rehearsal_seconds, texts)


def start(run: Run, trainee, clips: Clips, resume: bool) -> Learner:
    """LoRA on the model, the step counts, and AdamW; then the checkpoint's weights, moments,
    RunState and RNG when there is one to resume from (else the RNG is seeded)."""
    s = run.settings
    params = trainee.prepare(s)
    trainee.to(run.device)
    n_items = len(run.data.pairs) or len(clips.texts)
    run.micro_per_epoch = math.ceil(n_items / s.batch_size)
    run.steps_per_epoch = math.ceil(run.micro_per_epoch / s.grad_accum)
    run.total = s.epochs * run.steps_per_epoch
    learner = Learner(params, torch.optim.AdamW([p for _, p in params], lr=s.learning_rate,
                                                weight_decay=s.weight_decay))
    blob = _load_checkpoint(run.work / CHECKPOINT, run.fingerprint, run.device) if resume else None
    if blob is None:
        torch.manual_seed(s.seed)
        return learner
    _set_params(params, blob["trainable"])
    learner.opt.load_state_dict(blob["optimizer"])
    run.state, learner.best = RunState(**blob["run"]), blob["best"]
    torch.set_rng_state(blob["rng"].cpu())
    if blob["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([r.cpu() for r in blob["cuda_rng"]])
    run.say(f"resuming at step {run.state.step} of {run.total}")
    return learner


def checkpoint(run: Run, learner: Learner) -> None:
    _save_checkpoint(run.work / CHECKPOINT, run.fingerprint, asdict(run.state), learner.params, learner.opt,
                     learner.best)


def train_epochs(run: Run, trainee, clips: Clips, learner: Learner) -> None:
    """Epochs of optimizer steps until the last one or early stopping, reporting each step and
    checkpointing every `checkpoint_every` steps and at each epoch's end. On cancel: a
    checkpoint, then _Cancelled."""
    s, state = run.settings, run.state
    trainee.train_mode()
    now = time.perf_counter()
    pace = Pace(clock=now, started=now)
    while not state.done:
        epoch = state.epoch
        order = epoch_order(run, clips, epoch)
        losses = []
        for step_in_epoch in range(state.step - epoch * run.steps_per_epoch, run.steps_per_epoch):
            if run.cancel():
                state.train_seconds += time.perf_counter() - pace.started
                checkpoint(run, learner)
                raise _Cancelled
            loss = optimizer_step(run, trainee, clips, learner, order, epoch, step_in_epoch)
            losses.append(loss)
            report_step(run, pace, epoch, loss)
            if s.checkpoint_every and state.step % s.checkpoint_every == 0:
                checkpoint(run, learner)
        end_epoch(run, trainee, clips, learner, pace, losses)


def epoch_order(run: Run, clips: Clips, epoch: int) -> EpochOrder:
    """With audio pairs the text sentences have their own shuffle; text-only, the items are them."""
    seed = run.settings.seed
    items = _order(len(run.data.pairs) or len(clips.texts), seed, epoch)
    texts = _order(len(clips.texts), seed + 1, epoch) if run.data.pairs else items
    return EpochOrder(items, texts, _order(len(clips.rehearsal), seed + 2, epoch))


def optimizer_step(run: Run, trainee, clips: Clips, learner: Learner, order: EpochOrder, epoch: int,
                   step_in_epoch: int) -> float:
    """One AdamW step over `grad_accum` batches at the scheduled learning rate; their mean loss."""
    s = run.settings
    lr = lr_at(run.state.step, run.total, s)
    for g in learner.opt.param_groups:
        g["lr"] = lr
    micro = range(step_in_epoch * s.grad_accum, min((step_in_epoch + 1) * s.grad_accum, run.micro_per_epoch))
    learner.opt.zero_grad(set_to_none=True)
    step_loss = 0.0
    for m in micro:
        loss = batch_loss(run, trainee, clips, order, epoch, m)
        (loss / len(micro)).backward()
        step_loss += loss.item() / len(micro)
    if s.max_grad_norm:
        nn.utils.clip_grad_norm_([p for _, p in learner.params], s.max_grad_norm)
    learner.opt.step()
    run.state.step += 1
    return step_loss


def batch_loss(run: Run, trainee, clips: Clips, order: EpochOrder, epoch: int, m: int) -> torch.Tensor:
    """Batch m of the epoch: the user's clips, half a batch of rehearsal clips and as many
    text sentences, each loss weighted by its setting."""
    s, data, device = run.settings, run.data, run.device
    idx = order.items[m * s.batch_size:(m + 1) * s.batch_size]
    loss = torch.zeros((), device=device)
    hint_rng = random.Random(f"{s.seed}/{epoch}/{m}")  # a function of the position: resume stays exact
    if data.pairs:
        said = [data.pairs[i].text for i in idx]
        loss = loss + trainee.speech_loss([clips.train_frames[i].to(device) for i in idx], said,
                                          [clips.train_seconds[i] for i in idx],
                                          [sample_hints(t, data.terms, hint_rng, s.hint_share) for t in said])
    if clips.rehearsal:
        per = max(1, s.batch_size // 2)
        r_idx = [order.rehearsal[(m * per + j) % len(clips.rehearsal)] for j in range(per)]
        said = [clips.rehearsal[i].text for i in r_idx]
        loss = loss + s.rehearsal_weight * trainee.speech_loss(
            [clips.rehearsal_frames[i].to(device) for i in r_idx], said, [clips.rehearsal_seconds[i] for i in r_idx],
            [sample_hints(t, data.terms, hint_rng, s.hint_share) for t in said])
    if clips.texts:
        t_idx = idx if not data.pairs else [order.texts[(m * s.batch_size + j) % len(clips.texts)]
                                            for j in range(len(idx))]
        loss = loss + s.text_weight * trainee.text_loss([clips.texts[i] for i in t_idx], device)
    return loss


def report_step(run: Run, pace: Pace, epoch: int, loss: float) -> None:
    """Progress after a step: the smoothed loss, the last held-out loss, and the time left
    at this process's pace so far."""
    state = run.state
    pace.steps += 1
    pace.running_loss = loss if pace.running_loss is None else 0.9 * pace.running_loss + 0.1 * loss
    eta = (time.perf_counter() - pace.clock) / pace.steps * (run.total - state.step)
    eval_loss = state.history[-1]["eval_loss"] if state.history else None
    run.callback(Progress(state.step, run.total, epoch + 1, pace.running_loss, eval_loss, eta,
                          f"epoch {epoch + 1}/{run.settings.epochs}, step {state.step}/{run.total}, "
                          f"loss {pace.running_loss:.3f}"))


def end_epoch(run: Run, trainee, clips: Clips, learner: Learner, pace: Pace, losses: list[float]) -> None:
    """The held-out loss decides whether to go on (patience) and which epoch's weights to
    keep; the last epoch restores the best ones. Ends with a checkpoint."""
    s, state = run.settings, run.state
    state.epoch = epoch = state.epoch + 1
    eval_loss = held_out_loss(trainee, clips.eval_frames, [p.text for p in run.data.eval_pairs], clips.eval_seconds,
                              s.batch_size, run.device) \
        if clips.eval_frames else None
    trainee.train_mode()
    state.history.append({"epoch": epoch, "step": state.step, "lr": lr_at(state.step - 1, run.total, s),
                          "train_loss": sum(losses) / len(losses) if losses else None, "eval_loss": eval_loss})
    if eval_loss is not None:
        if state.best_loss is None or eval_loss < state.best_loss - 1e-4:
            state.best_loss, state.bad_epochs = eval_loss, 0
            learner.best = {n: p.detach().cpu().clone() for n, p in learner.params}
        else:
            state.bad_epochs += 1
            if state.bad_epochs >= s.patience:
                state.stopped_early = True
    run.callback(Progress(state.step, run.total, epoch, pace.running_loss, eval_loss, None,
                          f"epoch {epoch} done: held-out loss {eval_loss:.3f}" if eval_loss is not None
                          else f"epoch {epoch} done"))
    if state.stopped_early or epoch >= s.epochs:
        state.done = True
        if learner.best is not None:
            _set_params(learner.params, learner.best)
    state.train_seconds += time.perf_counter() - pace.started
    pace.started = time.perf_counter()
    checkpoint(run, learner)


def save_adapter(run: Run, trainee, learner: Learner, before: Scores, rehearsal_pairs: int) -> AdapterResult:
    """Write the adapter atomically, measuring it from its own folder before it replaces the
    old one; then remove the work folder."""
    s, data = run.settings, run.data
    trainee.eval()
    learner.opt.state.clear()  # free the AdamW moments before evaluation loads another model copy
    meta = _meta(run, trainee, before, rehearsal_pairs)
    try:
        with atomic_dir(run.out_dir) as tmp:
            trainee.save(tmp)
            write_meta(tmp, meta)
            after, rows = score(run.folder, tmp, data.eval_pairs, data.terms, s.device, run.say, run.cancel) \
                if s.evaluate else (Scores.unmeasured(), [])
            meta["after"] = after.to_dict()
            meta["examples"] = [dict(r, before=b["hypothesis"]) for r, b in
                                zip(rows, run.saved.get("before_rows") or [{}] * len(rows)) if "hypothesis" in b][:20]
            write_meta(tmp, meta)
    except OSError as e:
        raise _disk_error(e, "saving the adapter", run.out_dir) from None
    shutil.rmtree(run.work, ignore_errors=True)
    run.say(f"saved {run.out_dir}")
    state = run.state
    return AdapterResult(run.out_dir, before, after, state.stopped_early, False, state.step, state.train_seconds)


def write_meta(folder: Path, meta: dict) -> None:
    atomic_write_text(Path(folder) / ADAPTER_META, json.dumps(meta, indent=2, allow_nan=False) + "\n")


def _meta(run: Run, trainee, before: Scores, rehearsal_pairs: int) -> dict:
    lora = trainee.lora_config()
    targets = lora.target_modules
    state, folder = run.state, Path(run.folder)
    return {
        "format": "steno-adapter", "format_version": ADAPTER_FORMAT, "name": Path(run.out_dir).name,
        "target": trainee.target, "base_model_id": run.base_id, "base_model_name": run.config.name or folder.name,
        "base_model_path": str(folder.resolve()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "lora": {"rank": lora.r, "alpha": lora.lora_alpha, "dropout": lora.lora_dropout,
                 "target_modules": targets if isinstance(targets, str) else sorted(targets)},
        "bridge": run.settings.bridge, "hyperparameters": json.loads(json.dumps(asdict(run.settings), default=str)),
        "data": {**run.data.to_dict(), "rehearsal_pairs": rehearsal_pairs}, "terms": run.data.terms[:500],
        "before": before.to_dict(), "after": None,
        "training": {"steps": state.step, "epochs": state.epoch, "stopped_early": state.stopped_early,
                     "best_eval_loss": state.best_loss, "seconds": round(state.train_seconds, 1),
                     "device": run.device, "history": state.history},
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
