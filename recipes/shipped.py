"""What resources/default holds: the default model's trained CTC head and model, kept in git.

data/ is rebuilt by scripts, trained weights are not: a run warm-starts from the shipped
head, and its results are copied back here. The head's shape (`ctc_bridge_config`) lives
here too, since every run and every shipped file must agree on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.models.config import BridgeConfig
from recipes.pretrained import ensure_lm

SHIPPED = Path(__file__).resolve().parent.parent / "resources" / "default"


def ctc_bridge_config(token_ids: list[int], layers: int = 3) -> BridgeConfig:
    """The default model's ctc bridge: stride-4 convolutions, transformer blocks (d 256),
    a CTC head over the corpus's LM tokens and posterior-weighted LM embeddings."""
    return BridgeConfig(kind="ctc", kernel_sizes=[3, 3], strides=[2, 2], ctc_dim=256, ctc_layers=layers, ctc_heads=4,
                        ctc_token_ids=token_ids, ctc_projection="posterior")


def head_layers(keys) -> int:
    """How many transformer blocks a saved head has, from its weight names (a state dict)."""
    return 1 + max((int(k.split(".")[1]) for k in keys if k.startswith("layers.")), default=-1)


def shipped_vocabulary() -> list[int]:
    """The shipped head's label -> LM token ids ([] when none is shipped)."""
    path = SHIPPED / "ctc_vocab.json"
    return json.loads(path.read_text()) if path.is_file() else []


def shipped_head() -> Path | None:
    """The trained head to warm-start from: stage 2's own output if a run shipped one, else
    the bridge of the shipped default model (the same module, trained on through stage 3)."""
    for path in (SHIPPED / "ctc_head.safetensors", SHIPPED / "model" / "bridge.safetensors"):
        if path.is_file():
            return path
    return None


def shipped_layers() -> int:
    """Blocks of the head a new run warm-starts from (3, the first recipe's, if none is shipped)."""
    from safetensors import safe_open

    path = shipped_head()
    if path is None:
        return 3
    with safe_open(path, "pt") as f:
        return head_layers(f.keys())


def warm_start_head(head, token_ids: list[int]) -> int:
    """Load the shipped head into `head` and return the step it was trained to.

    `token_ids` must begin with the shipped vocabulary; labels beyond it start near the
    shipped labels' mean, a little less likely. Blocks beyond the shipped head's start as
    identities (their residual branches add zero), so a deeper head begins where the
    shipped one stands.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    shipped = json.loads((SHIPPED / "ctc_vocab.json").read_text())
    if token_ids[:len(shipped)] != shipped:
        raise SystemExit(f"{SHIPPED}: the shipped CTC head was trained on another token vocabulary")
    device = next(head.parameters()).device
    path = shipped_head()
    state = {k: v.float().to(device) for k, v in load_file(path).items()}
    have, want = head_layers(state), len(head.layers)
    if want < have:
        raise SystemExit(f"{path}: the shipped head has {have} blocks; a new head needs at least as many, not {want}")
    for i in range(have, want):
        block = {f"layers.{i}.{k}": v.detach().clone() for k, v in head.layers[i].state_dict().items()}
        for k in ("out.weight", "out.bias", "mlp.2.weight", "mlp.2.bias"):
            block[f"layers.{i}.{k}"].zero_()
        state.update(block)
    n = state["head.bias"].shape[0]  # blank + the shipped labels
    weight, bias = head.head.weight.detach().clone(), head.head.bias.detach().clone()
    weight[:n], bias[:n] = state["head.weight"], state["head.bias"]
    weight[n:] = state["head.weight"][1:].mean(0) + 0.01 * torch.randn_like(weight[n:])
    bias[n:] = state["head.bias"][1:].mean() - 2.0
    state["head.weight"], state["head.bias"] = weight, bias
    head.load_state_dict(state)
    with safe_open(path, "pt") as f:
        return int((f.metadata() or {}).get("step", 0))


def shipped_bridge(work: Path):
    """The shipped default model's CTC bridge (fp32, eval mode): what a frozen-bridge stage 3 trains the LoRA to read."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    from engine.bridge.bridge import CTCBridge
    from engine.bridge.folder import BRIDGE_WEIGHTS
    from engine.models.config import ModelConfig

    config = ModelConfig.load(SHIPPED / "model")
    state = {k: v.float() for k, v in load_file(SHIPPED / "model" / BRIDGE_WEIGHTS).items()}
    lm = AutoConfig.from_pretrained(ensure_lm(work))
    in_dim = state["downsample.0.weight"].shape[1] if "downsample.0.weight" in state else state["inp.weight"].shape[1]
    bridge = CTCBridge(config.bridge, in_dim, lm.hidden_size, lm.vocab_size)
    bridge.load_state_dict(state)
    return bridge.eval()


def append_log(source: Path, shipped_log: Path) -> None:
    """Add a run's log lines to the shipped log, which keeps every run's, not only the last."""
    lines = shipped_log.read_text().splitlines() if shipped_log.is_file() else []
    lines += [line for line in source.read_text().splitlines() if line not in lines]
    shipped_log.write_text("\n".join(lines) + "\n")


def ship_ctc_head(stage: Path, head, step: int) -> None:
    """Copy stage 2's head (fp16 weights, no optimizer state), vocabulary and log into resources/."""
    from safetensors.torch import save_file

    SHIPPED.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().half().contiguous() for k, v in head.state_dict().items()},
              SHIPPED / "ctc_head.safetensors", metadata={"step": str(step)})
    (SHIPPED / "ctc_vocab.json").write_bytes((stage / "vocab.json").read_bytes())
    append_log(stage / "log.jsonl", SHIPPED / "ctc_log.jsonl")


def ship_model(final: Path) -> None:
    """Copy a model folder (stage 3's output, or a swapped-in head) into resources/default/model.

    The next stage-2 run warm-starts from this model's bridge, so the shipped vocabulary
    follows it, and a shipped head trained on another vocabulary is removed.
    """
    import shutil

    from engine.files import atomic_dir

    with atomic_dir(SHIPPED / "model") as tmp:
        for item in final.iterdir():
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
    token_ids = json.loads((final / "steno.json").read_text())["bridge"]["ctc_token_ids"]
    vocab = SHIPPED / "ctc_vocab.json"
    if vocab.is_file() and json.loads(vocab.read_text()) != token_ids:
        (SHIPPED / "ctc_head.safetensors").unlink(missing_ok=True)
    vocab.write_text(json.dumps(token_ids))
