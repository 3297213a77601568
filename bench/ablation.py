"""Ablation of the bridge model (issue #7 points 2 and 3, arXiv 2312.03668's comparisons).

    .venv/bin/python -m bench.ablation [--minutes 3] [--samples 0] [--train 512] [--eval 40]

Every configuration trains on the same precomputed frozen Whisper-base frames
(data/base/features/train, the first `--train` clips), in the same batch order (seed),
for the same budget (`--minutes` of training and/or `--samples`, whichever ends first),
then decodes greedily the synthetic held-out clips (features/test rows 200..) and the
real-speech dev set (data/dev/dev.tsv). Compared:
- bridge: conv (kernel 4 stride 2, twice, as nue-asr, then Linear; from scratch) vs ctc
  (recipes.shipped.ctc_bridge_config, warm-started from the shipped bridge, since a
  CTC head from scratch learns nothing in a CPU budget);
- what trains: bridge only / bridge + LoRA r=16 on the LM's attention / bridge + full LM;
- the auxiliary CTC loss for the ctc bridge: weight 0.3 vs 0;
- + encoder top layers: bridge + LoRA + the encoder's last blocks and final norm (its
  convolutional front end and lower blocks frozen); these rows read the frames of the block
  below (computed once from the corpus audio, cached), every other row the final frames;
- a reference row: the shipped bridge + shipped LoRA, untrained here, so the figures of the
  short-budget rows can be read against a model that does transcribe.
Each finished configuration is appended at once to data/ablation/results.jsonl and is
skipped when the script runs again, so an interrupted run keeps its rows.
Timings exclude the encoder (frames are precomputed): the decoding real-time factor is
bridge + LM time per second of audio.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine.models.config import BridgeConfig, DecodeConfig, ModelConfig, PromptConfig

FRAME_RATE = 50.0  # Whisper encoder frames per second of audio
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]


@dataclass
class Spec:
    """One row of the table."""
    name: str
    bridge: str  # "conv" | "ctc"
    train: str  # "bridge" | "lora" | "full" | "shipped" (the shipped LoRA, nothing trains: a reference)
    ctc_weight: float = 0.0
    encoder_layers: int = 0  # the encoder's top blocks that train too (their input frames are precomputed)


@dataclass
class Budget:
    minutes: float = 3.0  # training time per configuration (0 = no limit)
    samples: int = 0  # training samples per configuration (0 = no limit)
    batch_size: int = 8
    seed: int = 0
    lr: float = 5e-4  # bridge and LoRA
    lm_lr: float = 5e-5  # the LM's own weights, when they train
    warmup: int = 10


@dataclass
class Setup:
    """What every configuration shares: how to get a fresh LM, the two bridge configs, the prompt."""
    make_lm: Callable[[], tuple]  # -> (lm, tokenizer), fresh each call (full-LM training changes it)
    conv: BridgeConfig
    ctc: BridgeConfig
    prompt: PromptConfig = field(default_factory=PromptConfig)
    decode: DecodeConfig = field(default_factory=lambda: DecodeConfig(tokens_per_second=6.0, extra_tokens=12))
    warm_start: Callable | None = None  # (ctc bridge) -> None
    lora_targets: list[str] = field(default_factory=lambda: list(ATTENTION))
    shipped_lora: Path | None = None  # peft adapter of the "shipped" reference row
    encoder_top: Callable[[int], torch.nn.Module] | None = None  # k -> a fresh copy of the encoder's last k blocks + norm


class EncoderTop(torch.nn.Module):
    """The encoder's last blocks and final norm, run on the frames of the block below them."""

    def __init__(self, blocks: list[torch.nn.Module], norm: torch.nn.Module):
        super().__init__()
        self.blocks, self.norm = torch.nn.ModuleList(blocks), norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, None)
            x = x[0] if isinstance(x, tuple) else x
        return self.norm(x)


def whisper_top(encoder, k: int) -> EncoderTop:
    """A trainable copy of a WhisperEncoder's last k blocks and its final layer norm."""
    import copy

    return EncoderTop([copy.deepcopy(b) for b in encoder.layers[len(encoder.layers) - k:]],
                      copy.deepcopy(encoder.layer_norm)).train()


def model_frames(model, frames: torch.Tensor) -> torch.Tensor:
    """One clip's stored frames -> what the bridge reads: through the trained encoder blocks, if any."""
    top = getattr(model, "encoder_top", None)
    return top(frames.float()[None])[0] if top is not None else frames.float()


def default_specs() -> list[Spec]:
    return [
        Spec("conv / bridge only", "conv", "bridge"),
        Spec("conv / bridge + LoRA", "conv", "lora"),
        Spec("conv / bridge + full LM", "conv", "full"),
        Spec("ctc / bridge only / ctc 0.3", "ctc", "bridge", 0.3),
        Spec("ctc / bridge + LoRA / ctc 0.3", "ctc", "lora", 0.3),
        Spec("ctc / bridge + LoRA / ctc 0", "ctc", "lora", 0.0),
        Spec("ctc / bridge + full LM / ctc 0.3", "ctc", "full", 0.3),
        Spec("conv / bridge + LoRA + encoder top 2 blocks", "conv", "lora", 0.0, 2),
        Spec("ctc / bridge + LoRA + encoder top 2 blocks / ctc 0.3", "ctc", "lora", 0.3, 2),
        Spec("reference: shipped ctc bridge + shipped LoRA, no training", "ctc", "shipped", 0.3),
    ]


# ---- model ---------------------------------------------------------------------------------
def build_model(spec: Spec, setup: Setup, in_dim: int, seed: int):
    """A SpeechLM without encoder (frames are precomputed) and the parameter groups to train:
    (model, bridge params, LM params, encoder params)."""
    from dataclasses import replace

    from engine.bridge.bridge import build_bridge
    from engine.bridge.model import SpeechLM

    lm, tokenizer = setup.make_lm()
    bcfg = replace(setup.conv if spec.bridge == "conv" else setup.ctc, ctc_loss_weight=spec.ctc_weight)
    config = ModelConfig(family="bridge", bridge=bcfg, prompt=setup.prompt, decode=setup.decode, name=spec.name)
    torch.manual_seed(seed)
    emb = lm.get_input_embeddings()
    bridge = build_bridge(bcfg, in_dim, emb.embedding_dim, emb.num_embeddings)
    if spec.bridge == "ctc" and setup.warm_start is not None:
        setup.warm_start(bridge)
    model = SpeechLM(config, None, bridge, lm, tokenizer)
    if spec.train == "shipped":  # what the shipped model scores on the same clips: the pipeline's yardstick
        from peft import PeftModel

        model.lm = PeftModel.from_pretrained(model.lm, setup.shipped_lora)
        for p in model.parameters():
            p.requires_grad_(False)
        return model, [], [], []
    for p in model.lm.parameters():
        p.requires_grad_(spec.train == "full")
    if spec.train == "lora":
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(seed)
        model.lm = get_peft_model(model.lm, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                                       target_modules=setup.lora_targets, bias="none",
                                                       task_type="CAUSAL_LM"))
    for p in model.bridge.parameters():
        p.requires_grad_(True)
    encoder_params = []
    if spec.encoder_layers:
        if setup.encoder_top is None:
            raise ValueError(f"{spec.name}: this setup has no encoder blocks to train")
        model.encoder_top = setup.encoder_top(spec.encoder_layers)
        encoder_params = list(model.encoder_top.parameters())
        for p in encoder_params:
            p.requires_grad_(True)
    lm_params = [p for p in model.lm.parameters() if p.requires_grad]
    return model, list(model.bridge.parameters()), lm_params, encoder_params


def n_params(params) -> int:
    return sum(p.numel() for p in {id(p): p for p in params}.values())


# ---- training and decoding -----------------------------------------------------------------
def train(model, bridge_params, lm_params, items, budget: Budget, spec: Spec, log=print,
          encoder_params=()) -> dict:
    """Same batches for every configuration (seeded), until the time or sample budget ends.
    Pretrained weights (the LM's own, the encoder's blocks) learn at `lm_lr`; new ones at `lr`."""
    groups = [{"params": bridge_params, "lr": budget.lr}]
    if lm_params:
        groups.append({"params": lm_params, "lr": budget.lr if spec.train == "lora" else budget.lm_lr})
    if encoder_params:
        groups.append({"params": list(encoder_params), "lr": budget.lm_lr})
    base = [g["lr"] for g in groups]
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    params = bridge_params + lm_params + list(encoder_params)
    rng = random.Random(budget.seed)
    model.train()
    deadline = time.time() + 60 * budget.minutes if budget.minutes > 0 else float("inf")
    t0, step, seen, losses = time.time(), 0, 0, []
    while time.time() < deadline and (budget.samples <= 0 or seen < budget.samples):
        idx = [rng.randrange(len(items)) for _ in range(budget.batch_size)]
        out = model.loss_from_frames([model_frames(model, items[i][0]) for i in idx], [items[i][1] for i in idx])
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * min(1.0, (step + 1) / budget.warmup)
        opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step, seen = step + 1, seen + len(idx)
        losses.append(out["loss"].item())
        if step % 10 == 0:
            log(f"  {spec.name}: step {step} samples {seen} loss {np.mean(losses[-10:]):.3f} "
                f"{time.time() - t0:.0f}s")
    secs = time.time() - t0
    return {"steps": step, "train_samples": seen, "train_seconds": round(secs, 1),
            "train_samples_per_s": round(seen / max(secs, 1e-9), 3),
            "final_loss": round(float(np.mean(losses[-10:])), 4) if losses else None}


def speech_vectors(model, frames: torch.Tensor) -> torch.Tensor:
    """One clip's frames (T, D) -> LM input vectors (N, lm_dim), as the exported bridge does."""
    from engine.bridge.bridge import CTCBridge

    out = model.bridge(model_frames(model, frames)[None])
    return (out[0] if isinstance(model.bridge, CTCBridge) else out)[0]


@torch.no_grad()
def transcribe(model, frames: list[torch.Tensor], batch_size: int = 16) -> tuple[list[str], float, list[int]]:
    """Greedy transcripts, the bridge + LM seconds they took, and LM speech positions per clip."""
    from engine.decoding.search import CausalLMStep, LoopCut, MinLength, greedy

    model.eval()
    d = model.config.decode
    hyps, positions, t0 = [], [], time.time()
    for s in range(0, len(frames), batch_size):
        chunk = frames[s:s + batch_size]
        speech = [speech_vectors(model, f) for f in chunk]
        positions += [v.shape[0] for v in speech]
        lm_in, _ = model.lm_inputs(speech)
        limits = [int(d.tokens_per_second * f.shape[0] / FRAME_RATE + d.extra_tokens) for f in chunk]
        eos = model.tokenizer.eos_token_id
        decoded = greedy(CausalLMStep(model.lm, lm_in), limits, eos, MinLength(eos, d.min_new_tokens),
                         cut_loop=LoopCut(d.max_repeats))
        hyps += [model.tokenizer.decode(x.tokens, skip_special_tokens=True).strip() for x in decoded]
    return hyps, time.time() - t0, positions


def evaluate(model, name: str, items: list[tuple[torch.Tensor, str]]) -> dict:
    from engine.text.metrics import error_rates

    if not items:
        return {}
    hyps, secs, positions = transcribe(model, [f for f, _ in items])
    audio = sum(f.shape[0] for f, _ in items) / FRAME_RATE
    rates = error_rates([t for _, t in items], hyps)
    return {f"{name}_wer": round(rates.wer, 4), f"{name}_cer": round(rates.cer, 4),
            f"{name}_rtf": round(secs / audio, 4), f"{name}_positions_per_s": round(sum(positions) / audio, 2),
            f"{name}_sample": hyps[0]}


# ---- CTC compression: what it loses -------------------------------------------------------
def _align(ref: list[int], hyp: list[int]) -> list[tuple[str, int | None, int | None]]:
    """Levenshtein alignment: ("ok"|"sub"|"del"|"ins", ref token, hyp token)."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), dtype=np.int32)
    d[:, 0], d[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    ops, i, j = [], n, m
    while i or j:
        if i and j and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            ops.append(("ok" if ref[i - 1] == hyp[j - 1] else "sub", ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and d[i, j] == d[i - 1, j] + 1:
            ops.append(("del", ref[i - 1], None))
            i -= 1
        else:
            ops.append(("ins", None, hyp[j - 1]))
            j -= 1
    return ops[::-1]


@torch.no_grad()
def ctc_compression_report(model, items: list[tuple[torch.Tensor, str]], examples: int = 4) -> dict:
    """How the CTC bridge's compression fails: clips whose compressed length is below the
    number of target tokens, and reference tokens that no non-blank run carries (dropped
    as blank, merged into a neighbour's run, or outside the head's vocabulary)."""
    bridge, tok = model.bridge, model.tokenizer
    ids = model.config.bridge.ctc_token_ids
    in_vocab = set(ids) if ids is not None else None
    short = oov = dels = subs = total = 0
    dropped, cases = Counter(), []
    for frames, text in items:
        _, logits = bridge.frame_states(model_frames(model, frames)[None])
        labels, runs, prev = logits[0].argmax(-1).tolist(), [], 0
        for lab in labels:
            if lab != 0 and lab != prev:
                runs.append(lab if ids is None else ids[lab - 1])
            prev = lab
        ref = tok.encode(text, add_special_tokens=False)
        total += len(ref)
        short += max(1, len(runs)) < len(ref)
        oov += sum(t not in in_vocab for t in ref) if in_vocab is not None else 0
        ops = _align(ref, runs)
        lost = [r for op, r, _ in ops if op == "del"]
        dels += len(lost)
        subs += sum(op == "sub" for op, _, _ in ops)
        dropped.update(tok.decode([t]) for t in lost)
        if lost and len(cases) < examples:
            cases.append({"reference": text, "ctc": tok.decode(runs),
                          "dropped": [tok.decode([t]) for t in lost]})
    n = max(1, len(items))
    return {"ctc_clips_shorter_than_tokens": round(short / n, 4), "ctc_ref_tokens": total,
            "ctc_deleted_tokens": round(dels / max(1, total), 4), "ctc_substituted_tokens": round(subs / max(1, total), 4),
            "ctc_oov_tokens": round(oov / max(1, total), 4),
            "ctc_top_dropped": [f"{t!r}x{c}" for t, c in dropped.most_common(12)], "ctc_examples": cases}


# ---- one configuration, and the table ------------------------------------------------------
def run_config(spec: Spec, setup: Setup, train_items, synth_items, real_items, budget: Budget, log=print) -> dict:
    """Build, train and evaluate one configuration: one result row."""
    model, bridge_params, lm_params, encoder_params = build_model(spec, setup, train_items[0][0].shape[1], budget.seed)
    row = {"name": spec.name, **asdict(spec), "budget": asdict(budget),
           "trainable_params": n_params(bridge_params + lm_params + encoder_params),
           "bridge_params": n_params(bridge_params), "lm_trainable_params": n_params(lm_params),
           "encoder_trainable_params": n_params(encoder_params)}
    if spec.bridge == "conv":
        row["conv_positions_per_s_by_stride"] = FRAME_RATE / model.config.bridge.total_stride
    if spec.train == "shipped":
        row.update(steps=0, train_samples=0, train_seconds=0.0, train_samples_per_s=0.0, final_loss=None)
    else:
        row.update(train(model, bridge_params, lm_params, train_items, budget, spec, log, encoder_params))
    row.update(evaluate(model, "synth", synth_items))
    row.update(evaluate(model, "real", real_items))
    if spec.bridge == "ctc":
        row.update(ctc_compression_report(model, synth_items))
    row["time"] = time.time()
    return row


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _speed(r: dict) -> str:
    alone = r.get("alone_samples_per_s")
    return f"{r['train_samples_per_s']:.2f}" if alone is None else f"{alone:.2f} ({r['train_samples_per_s']:.2f})"


def measure_speed(specs: list[Spec], setup: Setup, train_items, budget: Budget, steps: int, out: Path,
                  lower: Callable[[int], tuple] | None = None, log=print) -> None:
    """Training samples/s of each row again, rows one after another with nothing else
    running: `steps` batches after one warm-up batch. Written into the rows of `out` as
    `alone_samples_per_s` (the run's own figure depends on what else the machine did)."""
    from dataclasses import replace

    rows = read_rows(out)
    for spec in specs:
        if spec.train == "shipped":
            continue
        items = lower(spec.encoder_layers)[0] if spec.encoder_layers else train_items
        model, bridge, lm, encoder = build_model(spec, setup, items[0][0].shape[1], budget.seed)
        quiet = lambda m: None  # noqa: E731
        train(model, bridge, lm, items, replace(budget, minutes=0, samples=budget.batch_size), spec, quiet, encoder)
        speed = train(model, bridge, lm, items, replace(budget, minutes=0, samples=steps * budget.batch_size), spec,
                      quiet, encoder)["train_samples_per_s"]
        log(f"{spec.name}: {speed:.2f} samples/s alone")
        for r in rows:
            if r["name"] == spec.name:
                r["alone_samples_per_s"] = speed
    tmp = out.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(out)


def markdown_table(rows: list[dict]) -> str:
    head = ("| configuration | trainable params | train samples (s) | samples/s: alone (in the run) | final loss "
            "| synth WER / CER % "
            "| real WER / CER % | decode RTF synth / real | LM positions / s speech |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['trainable_params'] / 1e6:.2f}M | {r['train_samples']} ({r['train_seconds']:.0f}) "
            f"| {_speed(r)} | {r['final_loss']} | {_pct(r.get('synth_wer'))} / {_pct(r.get('synth_cer'))} "
            f"| {_pct(r.get('real_wer'))} / {_pct(r.get('real_cer'))} "
            f"| {r.get('synth_rtf', float('nan')):.2f} / {r.get('real_rtf', float('nan')):.2f} "
            f"| {r.get('synth_positions_per_s', float('nan')):.1f} |")
    return "\n".join(lines)


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_all(specs: list[Spec], setup: Setup, train_items, synth_items, real_items, budget: Budget,
            out: Path, log=print, lower: Callable[[int], tuple] | None = None) -> list[dict]:
    """Every configuration not yet in `out` (JSON lines), each appended as soon as it is done.
    Rows that train the encoder's top k blocks read `lower(k)`: (train, synth, real) items of
    the frames below those blocks, the same clips in the same order."""
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {r["name"] for r in read_rows(out)}
    for spec in specs:
        if spec.name in done:
            log(f"{spec.name}: already in {out}, skipped")
            continue
        log(f"{spec.name}: start")
        items = lower(spec.encoder_layers) if spec.encoder_layers else (train_items, synth_items, real_items)
        row = run_config(spec, setup, *items, budget, log)
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
        log(f"{spec.name}: {json.dumps({k: v for k, v in row.items() if not k.startswith('ctc_ex')})}")
    names = [s.name for s in specs]
    return sorted([r for r in read_rows(out) if r["name"] in names], key=lambda r: names.index(r["name"]))


# ---- the real setup ------------------------------------------------------------------------
def load_shards(folder: Path, start: int, count: int) -> list[tuple[torch.Tensor, str]]:
    """Rows start..start+count of a features split, reading only the shards they lie in."""
    items, offset = [], 0
    for shard in sorted(folder.glob("[0-9]*.npz")):
        if ".tmp" in shard.name:
            continue
        if offset >= start + count:
            break
        with np.load(shard) as data:
            frames, lengths, texts = data["frames"], data["lengths"], data["texts"]
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        for i, text in enumerate(texts):
            if start <= offset + i < start + count:
                items.append((torch.from_numpy(frames[bounds[i]:bounds[i + 1]].copy()), str(text)))
        offset += len(texts)
    return items


def real_setup(work: Path) -> Setup:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recipes.lm_stage import PROMPT
    from recipes.pretrained import ensure_lm
    from recipes.shipped import SHIPPED, ctc_bridge_config, shipped_layers, warm_start_head

    lm_dir = ensure_lm(work)
    token_ids = json.loads((SHIPPED / "ctc_vocab.json").read_text())

    def make_lm():
        return AutoModelForCausalLM.from_pretrained(lm_dir, dtype=torch.float32), AutoTokenizer.from_pretrained(lm_dir)

    return Setup(make_lm=make_lm, conv=BridgeConfig(kind="conv", kernel_sizes=[4, 4], strides=[2, 2]),
                 ctc=ctc_bridge_config(token_ids, shipped_layers()), prompt=PROMPT,
                 warm_start=lambda bridge: warm_start_head(bridge, token_ids), shipped_lora=SHIPPED / "model" / "lora",
                 encoder_top=lambda k: whisper_top(_whisper(work), k))


def _whisper(work: Path):
    from recipes.pretrained import load_whisper_encoder

    return load_whisper_encoder("whisper-base", work / "pretrained")


@torch.no_grad()
def lower_frames(encoder, paths: list[Path], k: int) -> list[torch.Tensor]:
    """The frames below the encoder's last k blocks (fp16, as the feature shards store theirs)."""
    from engine.audio import load_audio
    from engine.features import whisper_log_mel
    from engine.whisper.encoder import whisper_forward

    return [whisper_forward(encoder, torch.from_numpy(whisper_log_mel(load_audio(p)))[None],
                             len(encoder.layers) - k)[0].half() for p in paths]


def lower_items(work: Path, corpus: Path, dev_tsv: Path, cache_dir: Path, n_train: int, n_eval: int, k: int,
                finals: tuple, log=print) -> tuple:
    """(train, synth, real) items of the frames below the last k blocks: the clips of the
    feature shards (corpus train rows 0.., test rows 200..) and the dev set, cached. Checks
    that the frozen blocks on them give back the stored final frames, so both kinds of row
    read the same clips."""
    from recipes.features import read_split

    cache = cache_dir / f"lower_{k}_{n_train}_{n_eval}.pt"
    if cache.is_file():
        return torch.load(cache)
    encoder = _whisper(work)
    splits = {"train": [p for p, _ in read_split(corpus, "train")[:n_train]],
              "synth": [p for p, _ in read_split(corpus, "test")[200:200 + n_eval]],
              "real": [dev_tsv.parent / line.split("\t")[0] for line in dev_tsv.read_text(encoding="utf-8").splitlines()
                       if line.strip()] if dev_tsv.is_file() else []}
    out = []
    for (name, paths), final in zip(splits.items(), finals):
        log(f"encoder frames below the top {k} blocks: {name}, {len(paths)} clips")
        frames = lower_frames(encoder, paths, k)
        if len(frames) != len(final):
            raise ValueError(f"{name}: {len(frames)} clips in {corpus}, {len(final)} in the feature shards")
        top = whisper_top(encoder, k).eval()
        with torch.no_grad():
            for f, (g, _) in zip(frames[:4], final[:4]):
                gap = (top(f.float()[None])[0] - g.float()).abs().max().item()
                if f.shape[0] != g.shape[0] or gap > 0.1:
                    raise ValueError(f"{name}: corpus clip does not match its stored frames (max gap {gap:.3f})")
        out.append([(f, t) for f, (_, t) in zip(frames, final)])
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tuple(out), cache)
    return tuple(out)


def real_dev(work: Path, dev_tsv: Path, cache: Path) -> list[tuple[torch.Tensor, str]]:
    """The real-speech dev frames, through the encoder once and cached."""
    if cache.is_file():
        return torch.load(cache)
    if not dev_tsv.is_file():
        return []
    from recipes.lm_stage import real_dev_frames

    items = real_dev_frames(work, dev_tsv, "cpu")
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(items, cache)
    return items


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("data/base"))
    p.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="the audio of the feature shards "
                   "(for the rows that train the encoder's top blocks)")
    p.add_argument("--dev", type=Path, default=Path("data/dev/dev.tsv"))
    p.add_argument("--out", type=Path, default=Path("data/ablation/results.jsonl"))
    p.add_argument("--minutes", type=float, default=3.0, help="training minutes per configuration (0: no limit)")
    p.add_argument("--samples", type=int, default=0, help="training samples per configuration (0: no limit)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--train", type=int, default=512, help="training subset: the first N clips of features/train")
    p.add_argument("--eval", type=int, default=40, help="synthetic eval clips: features/test rows 200..200+N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="*", default=None, help="configuration names to run (default: all)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--report", action="store_true", help="only print the table of the rows already in --out")
    p.add_argument("--speed", type=int, default=0, metavar="STEPS",
                   help="instead: time STEPS training batches of every row, one after another, into --out")
    args = p.parse_args()
    if args.report:
        print_report(read_rows(args.out))
        return
    from engine.logs import quiet_libraries

    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    say = lambda m: print(m, flush=True)  # noqa: E731
    budget = Budget(minutes=args.minutes, samples=args.samples, batch_size=args.batch_size, seed=args.seed)
    train_items = load_shards(args.work / "features" / "train", 0, args.train)
    synth = load_shards(args.work / "features" / "test", 200, args.eval)
    real = real_dev(args.work, args.dev, args.out.parent / "real_dev_frames.pt")
    say(f"train {len(train_items)} clips, synthetic eval {len(synth)}, real dev {len(real)}; budget {budget}")
    specs = [s for s in default_specs() if not args.only or s.name in args.only]
    lower = lambda k: lower_items(args.work, args.corpus, args.dev, args.out.parent, args.train, args.eval, k,  # noqa: E731
                                  (train_items, synth, real), say)
    if args.speed:
        measure_speed(specs, real_setup(args.work), train_items, budget, args.speed, args.out, lower, say)
        print_report(read_rows(args.out))
        return
    print_report(run_all(specs, real_setup(args.work), train_items, synth, real, budget, args.out, say, lower))


def print_report(rows: list[dict], say=print) -> None:
    """The markdown table, then what the CTC compression loses in each ctc row."""
    say(markdown_table(rows))
    for r in rows:
        if "ctc_examples" in r:
            say(f"\n{r['name']}: clips shorter than their tokens {_pct(r['ctc_clips_shorter_than_tokens'])}%, "
                f"tokens deleted {_pct(r['ctc_deleted_tokens'])}%, substituted {_pct(r['ctc_substituted_tokens'])}%, "
                f"outside the head's vocabulary {_pct(r['ctc_oov_tokens'])}%; most dropped: {r['ctc_top_dropped']}")
            for c in r["ctc_examples"]:
                say(f"  ref: {c['reference']}\n  ctc: {c['ctc']}\n  dropped: {c['dropped']}")


if __name__ == "__main__":
    main()
