"""The default model's training stages, each resumable, run from the command line.

    .venv/bin/python -m recipes.stages features --corpus data/corpus --work data/base
    .venv/bin/python -m recipes.stages ctc --work data/base [--minutes 60]
    .venv/bin/python -m recipes.stages lm --work data/base [--minutes 60]      # a GPU
    .venv/bin/python -m recipes.stages ship --work data/base

1. features (recipes/features.py): the frozen Whisper encoder's frames of every corpus clip,
   stored once as fp16 shards, so the later stages never pay for the encoder again.
2. ctc (here): a CTC head over the LM's own tokens (those the corpus uses) learns on those
   frames without the LM in the loop: minutes per epoch on a CPU. It becomes the ctc
   bridge, whose posterior-weighted LM embeddings give the LM near-text inputs from the
   first step of stage 3.
3. lm (recipes/lm_stage.py): bridge + LoRA with the LM.
swap-head and swap-lora put a new head or adapter into a copy of the shipped model to try
it out; cache writes the shipped bridge's outputs for LoRA alone (recipes/speech_cache.py);
ship copies a model folder into resources/default (recipes/shipped.py). Every stage
checkpoints often (`ckpt.pt`) and logs loss and dev WER to `log.jsonl`. The recipe's place
in the project: docs/design.md, "The lab: recipes and benches".
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch

from engine.decoding.ctc_prefix import best_path
from recipes.features import extract_features, load_features
from recipes.lm_stage import lora_into_model, train_lm_stage
from recipes.pretrained import ensure_lm
from recipes.shipped import (
    SHIPPED,
    append_log,
    ctc_bridge_config,
    head_layers,
    ship_ctc_head,
    ship_model,
    shipped_bridge,
    shipped_head,
    shipped_layers,
    shipped_vocabulary,
    warm_start_head,
)

SPLIT_SHARE = 0.15  # of the single-token words of 4+ letters, spelled in two pieces
FRAMES_PER_SECOND = 50  # of the Whisper encoder


def split_words(tokenizer, ids: list[int], rng: random.Random, share: float = SPLIT_SHARE,
                allowed: set[int] | None = None) -> list[int]:
    """The same text in other tokens: some whole-word tokens cut in two at a random letter.

    Why: a head that only ever saw a word as its one BPE token cannot write a word it never
    heard (a name, a rare word), since it never learned the pieces. Spelling some known
    words in pieces teaches it to (BPE-dropout, done on words). The decoded text is
    unchanged. With `allowed`, only cuts whose pieces are all in it are made.
    """
    out: list[int] = []
    for t in ids:
        word = tokenizer.decode([t])
        core = word.lstrip(" ")
        if len(core) >= 4 and core.isalpha() and rng.random() < share:
            cut = len(word) - len(core) + rng.randint(2, len(core) - 2)
            pieces = tokenizer.encode(word[:cut], add_special_tokens=False) + \
                tokenizer.encode(word[cut:], add_special_tokens=False)
            if tokenizer.decode(pieces) == word and (allowed is None or all(p in allowed for p in pieces)):
                out.extend(pieces)
                continue
        out.append(t)
    return out


def grown_vocabulary(shipped: list[int], tokenizer, texts: list[str], seed: int = 0) -> list[int]:
    """The shipped head's labels first (so its rows keep their places), then every other
    token the corpus uses, whole or as split_words pieces."""
    rng = random.Random(seed)
    ids: set[int] = set()
    for t in texts:
        whole = tokenizer.encode(t, add_special_tokens=False)
        ids.update(whole)
        ids.update(split_words(tokenizer, whole, rng, share=0.5))
    have = set(shipped)
    return list(shipped) + sorted(ids - have)


def train_ctc_head(work: Path, lm_name: str = "smollm2", minutes: float = 60.0, batch_size: int = 16,
                   lr: float = 1e-3, eval_every: int = 500, device: str = "cpu", log=print, ship: bool = True,
                   more: list[Path] = (), dev_work: Path | None = None, layers: int | None = None,
                   repeat_work: int = 1, split_share: float = SPLIT_SHARE, max_seconds: float | None = None) -> None:
    """Stage 2: CTC over LM tokens on precomputed frames; resumes from `work/ctc/ckpt.pt`.

    `more`: further work folders whose training features join `work`'s (corpora built
    separately); dev WER is on the first 200 test clips of `dev_work` (default `work`), so
    runs on a growing set of corpora stay comparable. `layers`: transformer
    blocks of a new head (default: as many as the shipped head); blocks beyond the shipped
    head's start as identities, so a deeper head warm-starts where the shipped one stands.
    `repeat_work`: how many times as often a clip of `work` is drawn as one of `more` (a small
    new corpus of a better voice among large old ones). `split_share`: of the whole-word
    tokens, how many are spelled in two pieces each time a clip is drawn (split_words).
    `max_seconds`: longer training clips are left out; a padded batch costs its longest clip
    times the 31,000-label output, so a few 27 s accent-archive clips set the cost of most steps."""
    from transformers import AutoTokenizer

    from engine.bridge.bridge import CTCBridge
    from engine.text.metrics import error_rates

    if repeat_work < 1:
        raise ValueError(f"repeat_work must be 1 or more, not {repeat_work}")
    lm_dir = ensure_lm(work, lm_name)
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    own = load_features(work, "train")
    train = own * repeat_work + [item for folder in more for item in load_features(folder, "train")]
    drawn = len(train)
    if max_seconds:
        train = [item for item in train if item[0].shape[0] <= max_seconds * FRAMES_PER_SECOND]
    dev = load_features(dev_work or work, "test")[:200]
    log(f"{len(train)} training clips ({len(own)} of {work}, x{repeat_work}) from {1 + len(more)} feature folders, "
        f"{len(dev)} dev clips" + (f"; {drawn - len(train)} longer than {max_seconds} s left out" if max_seconds else ""))
    stage = work / "ctc"
    stage.mkdir(parents=True, exist_ok=True)
    vocab_file = stage / "vocab.json"
    if vocab_file.is_file():
        token_ids = json.loads(vocab_file.read_text())
    else:  # the shipped head's labels, grown by this corpus's tokens
        token_ids = grown_vocabulary(shipped_vocabulary(), tokenizer, [t for _, t in train])
        vocab_file.write_text(json.dumps(token_ids))
    from transformers import AutoConfig

    lm_config = AutoConfig.from_pretrained(lm_dir)
    ckpt = stage / "ckpt.pt"
    state = torch.load(ckpt, weights_only=False, map_location=device) if ckpt.is_file() else None
    if state is not None:
        saved = head_layers(state["head"])
        if layers is not None and layers != saved:
            log(f"{ckpt} holds a {saved}-block head: resuming it ({layers} blocks ignored)")
        layers = saved
    elif layers is None:
        layers = shipped_layers()
    config = ctc_bridge_config(token_ids, layers)
    head = CTCBridge(config, train[0][0].shape[1], lm_config.hidden_size, lm_config.vocab_size).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    step, rng_state = 0, None
    if state is not None:
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["opt"])
        step, rng_state = state["step"], state["rng"]
        log(f"resumed stage ctc at step {step}")
    elif (source := shipped_head()) is not None:
        step = warm_start_head(head, token_ids)
        log(f"warm start from {source} (step {step}; optimizer state starts afresh)")
    rng = random.Random(0)
    if rng_state is not None:
        rng.setstate(rng_state)
    dev_eval = lambda: _log_eval(stage, head, tokenizer, token_ids, dev, error_rates, step, losses, log)  # noqa
    started, first = time.time(), step
    deadline = started + 60 * minutes
    # fresh optimizer state (a new or warm-started head) warms up; a resumed one does not
    sched = run_schedule(started, deadline, fresh_from=None if state is not None else step)
    allowed = set(token_ids)
    # each time a clip is drawn its words are cut afresh (BPE-dropout), not once per run
    split_rng = random.Random(step)
    ids_of = [tokenizer.encode(t, add_special_tokens=False) for _, t in train]
    head.train()
    losses = []
    while time.time() < deadline:
        idx = [rng.randrange(len(train)) for _ in range(batch_size)]
        frames = [train[i][0].to(device).float() for i in idx]
        lengths = [f.shape[0] for f in frames]
        padded = spec_augment(torch.nn.utils.rnn.pad_sequence(frames, batch_first=True), rng, lengths)
        _, logits = head.frame_states(padded, lengths)
        out_lengths = torch.as_tensor([head.output_length(n) for n in lengths])
        targets = [head.labels_for(torch.as_tensor(split_words(tokenizer, ids_of[i], split_rng, split_share, allowed),
                                                   device=device)) for i in idx]
        loss = torch.nn.functional.ctc_loss(logits.float().log_softmax(-1).transpose(0, 1), torch.cat(targets).cpu(),
                                            out_lengths, torch.as_tensor([len(t) for t in targets]),
                                            blank=0, zero_infinity=True)
        for g in opt.param_groups:
            g["lr"] = lr * sched(step, time.time())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        if step % 100 == 0:  # progress: the run ends at its deadline, so the ETA is the time left
            log(f"step {step} loss {np.mean(losses[-100:]):.3f} lr {opt.param_groups[0]['lr']:.2e} "
                f"{(time.time() - started) / max(1, step - first):.2f} s/step, {(deadline - time.time()) / 60:.0f} min left")
        if step % eval_every == 0:
            dev_eval()
            losses = []
            _save(ckpt, head, opt, step, rng)
            head.train()
    logged = [json.loads(line)["step"] for line in (stage / "log.jsonl").read_text().splitlines()] \
        if (stage / "log.jsonl").is_file() else []
    if step not in logged:  # every stopping point gets its dev WER
        dev_eval()
    _save(ckpt, head, opt, step, rng)
    if ship:
        ship_ctc_head(stage, head, step)


def run_schedule(started: float, deadline: float, warmup: int = 500, floor: float = 0.1,
                 fresh_from: int | None = 0):
    """Learning-rate factor for a run that ends at `deadline`: warm-up over the `warmup` steps
    after `fresh_from` (the step where the optimizer state started afresh: 0 for a new head,
    the shipped step for a warm start, None for a resumed run that keeps its Adam moments),
    then a cosine to `floor` over this run's time (not its steps, which a shared CPU makes
    unpredictable). A warm start without warm-up jolts the head: Adam's first updates are
    full-size whatever the gradient, and dev WER rises before it falls."""
    def factor(step: int, now: float) -> float:
        done = min(1.0, max(0.0, (now - started) / max(1e-9, deadline - started)))
        warm = 1.0 if fresh_from is None else min(1.0, (step - fresh_from + 1) / warmup)
        return warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * done)))
    return factor


def _log_eval(stage, head, tokenizer, token_ids, dev, error_rates, step, losses, log) -> None:
    rates = _ctc_dev_wer(head, tokenizer, token_ids, dev, error_rates)
    entry = {"stage": "ctc", "step": step, "loss": float(np.mean(losses)) if losses else None,
             "dev_wer": rates.wer, "dev_cer": rates.cer, "time": time.time()}
    with open(stage / "log.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
    log(json.dumps(entry))


def spec_augment(frames: torch.Tensor, rng: random.Random, lengths: list[int] | None = None, time_masks: int = 2,
                 max_time: int = 12, channel_masks: int = 2, max_channels: int = 48) -> torch.Tensor:
    """SpecAugment on encoder frames (B, T, C): zeroed spans of time and of channels.

    Why: the head memorised the corpus (train loss 0.04, dev stalled); masking the frames
    it reads makes each pass over a clip a little different and forces it to use context.
    Time spans are up to 12 frames (0.24 s at 50 frames/s) per 5 s of audio.
    """
    x = frames.clone()
    b, _, c = x.shape
    for i in range(b):
        t = lengths[i] if lengths else x.shape[1]
        for _ in range(time_masks * max(1, t // 250)):
            w = rng.randint(0, max_time)
            s = rng.randint(0, max(0, t - w))
            x[i, s:s + w] = 0
        for _ in range(channel_masks):
            w = rng.randint(0, min(max_channels, c))
            s = rng.randint(0, c - w)
            x[i, :t, s:s + w] = 0
    return x


def _save(path: Path, head, opt, step: int, rng: random.Random) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"head": head.state_dict(), "opt": opt.state_dict(), "step": step, "rng": rng.getstate()}, tmp)
    tmp.rename(path)


@torch.no_grad()
def _ctc_dev_wer(head, tokenizer, token_ids, dev, error_rates):
    head.eval()
    refs, hyps = [], []
    device = next(head.parameters()).device
    for frames, text in dev:
        _, logits = head.frame_states(frames.to(device).float()[None])
        refs.append(text)
        hyps.append(tokenizer.decode([token_ids[lab - 1] for lab in best_path(logits[0].argmax(-1).tolist())]))
    return error_rates(refs, hyps)


def head_into_model(work: Path, out: Path, shipped_model: Path = SHIPPED / "model", beam_size: int | None = None) -> Path:
    """A model folder like resources/default/model whose bridge is stage 2's latest head.

    Why: stage 3 (bridge + LoRA with the LM) needs a GPU to train well; a head retrained on
    a CPU can still replace the shipped bridge, its LM reading the new head's posterior-
    weighted embeddings through the shipped LoRA. The shipped figures are dropped: they
    belong to the old bridge and are measured again (`python -m bench.default_model --record`).
    """
    import shutil

    from safetensors.torch import save_file

    from engine.bridge.folder import BRIDGE_WEIGHTS
    from engine.files import atomic_dir
    from engine.models.config import ModelConfig

    state = torch.load(work / "ctc" / "ckpt.pt", weights_only=False, map_location="cpu")
    token_ids = json.loads((work / "ctc" / "vocab.json").read_text())
    config = ModelConfig.load(shipped_model)
    config.bridge = ctc_bridge_config(token_ids, head_layers(state["head"]))
    config.metrics = {}
    if beam_size:
        config.decode.beam_size = beam_size
    with atomic_dir(out) as tmp:
        shutil.copytree(shipped_model / "lora", tmp / "lora")
        save_file({k: v.detach().half().contiguous() for k, v in state["head"].items()}, tmp / BRIDGE_WEIGHTS,
                  metadata={"step": str(state["step"])})
        shutil.copy2(work / "ctc" / "log.jsonl", tmp / "log.jsonl")
        config.save(tmp)
    return out


def cache_speech(work: Path, more: list[Path], out: Path, log=print) -> Path:
    """out/train.npz (the train features of `work` and `more`) and out/test.npz (the first 200
    test clips of `work`): the shipped bridge's outputs, for stage 3 with that bridge frozen."""
    from recipes.speech_cache import build_cache

    bridge = shipped_bridge(work)
    test = load_features(work, "test")[:200]
    build_cache(bridge, test, out / "test.npz")
    train = [item for w in [work, *more] for item in load_features(w, "train")]
    build_cache(bridge, train, out / "train.npz", progress=lambda n, total: n % 3200 == 0 and log(f"cache {n}/{total}"))
    log(f"{len(train)} train and {len(test)} test clips cached in {out}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("features", "ctc", "lm", "ship", "swap-head", "cache", "swap-lora"))
    p.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    p.add_argument("--work", type=Path, default=Path("data/base"))
    p.add_argument("--encoder", default="whisper-base")
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu or cuda")
    p.add_argument("--batch-size", type=int, default=None, help="default: 16 (ctc), 32 (lm)")
    p.add_argument("--workers", type=int, default=0, help="audio-loading processes for features")
    p.add_argument("--no-ship", action="store_true",
                   help="ctc: leave resources/ alone (by default the head is copied there after the run)")
    p.add_argument("--beam", type=int, default=None, help="swap-head: the model's default beam size")
    p.add_argument("--model-dir", type=Path, default=None,
                   help="ship: the model folder to copy into resources/ (default WORK/lm/final; swap-head writes WORK/ctc/model)")
    p.add_argument("--dev", type=Path, default=None, help="real-speech dev.tsv, reported (never tuned on) in lm")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate: ctc 1e-3 by default (a warm restart may want less), lm 5e-4")
    p.add_argument("--speech-cache", type=Path, default=None,
                   help="lm: train LoRA alone on the frozen shipped bridge's cached outputs (from `cache --out DIR`)")
    p.add_argument("--init-lora", type=Path, default=None, help="lm: warm-start the LoRA from this adapter folder")
    p.add_argument("--out", type=Path, default=None, help="cache: output folder (default WORK/speech_cache)")
    p.add_argument("--adapter", type=Path, default=None, help="swap-lora: an adapter snapshot (WORK/lm/snapshots/*.safetensors)")
    p.add_argument("--more", type=Path, nargs="*", default=[],
                   help="ctc: further work folders whose training features join --work's")
    p.add_argument("--dev-work", type=Path, default=None,
                   help="ctc: the work folder whose first 200 test clips give dev WER (default: --work)")
    p.add_argument("--repeat-work", type=int, default=1,
                   help="ctc: draw each clip of --work this many times as often as one of --more")
    p.add_argument("--split-share", type=float, default=SPLIT_SHARE,
                   help="ctc: share of whole-word tokens spelled in two pieces (BPE-dropout)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="ctc: leave out training clips longer than this (a padded batch costs its longest clip)")
    p.add_argument("--layers", type=int, default=None,
                   help="ctc: transformer blocks of a new head (default: the shipped head's; extra ones start as identities)")
    args = p.parse_args()
    from engine.logs import quiet_libraries

    quiet_libraries()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    say = lambda m: print(m, flush=True)  # noqa: E731
    if args.stage == "features":
        extract_features(args.corpus, args.work, args.encoder, device=device, workers=args.workers,
                         progress=lambda split, n, total: say(f"{split}: {n}/{total}"))
    elif args.stage == "ctc":
        train_ctc_head(args.work, minutes=args.minutes, batch_size=args.batch_size or 16, lr=args.lr or 1e-3, device=device,
                       log=say, ship=not args.no_ship, more=args.more, dev_work=args.dev_work,
                       layers=args.layers, repeat_work=args.repeat_work, split_share=args.split_share,
                       max_seconds=args.max_seconds)
    elif args.stage == "lm":
        final = train_lm_stage(args.work, args.minutes, device, args.batch_size or 32, lr=args.lr or 5e-4, dev_tsv=args.dev,
                               speech_cache=args.speech_cache, init_lora=args.init_lora, log=say)
        say(f"stage 3 written to {final}")
    elif args.stage == "cache":
        cache_speech(args.work, args.more, args.out or args.work / "speech_cache", log=say)
    elif args.stage == "swap-lora":
        from engine.models.default_install import install_default

        if args.adapter is None:
            p.error("swap-lora needs --adapter")
        out = lora_into_model(args.adapter, args.work / "lm" / "model")
        say(f"model with the adapter {args.adapter.name} written to {out}")
        ready = install_default(root=args.work / "lm" / "assembled", shipped=out, force=True)
        say(f"assembled for trying out in {ready}")
    elif args.stage == "swap-head":
        from engine.models.default_install import install_default

        out = head_into_model(args.work, args.work / "ctc" / "model", beam_size=args.beam)
        say(f"model with the stage-2 head written to {out}")
        ready = install_default(root=args.work / "ctc" / "assembled", shipped=out, force=True)
        say(f"assembled for trying out in {ready} (python -m bench.ctc_weight --model {ready})")
    else:
        source = args.model_dir or args.work / "lm" / "final"
        ship_model(source)
        if (args.work / "ctc" / "log.jsonl").is_file():  # the stage-2 history travels with it
            append_log(args.work / "ctc" / "log.jsonl", SHIPPED / "ctc_log.jsonl")
        say(f"copied {source} into {SHIPPED / 'model'}")


if __name__ == "__main__":
    main()
