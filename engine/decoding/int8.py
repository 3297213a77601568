"""int8 copies of decoders for CPU decoding.

One autoregressive step multiplies a single token's vector by every weight matrix once, so on
a CPU it is bound by how fast the weights can be read, not by arithmetic: the vocabulary
projection alone is 80 MB (Whisper tiny.en) to 113 MB (SmolLM2) of fp32 per step. int8
weights are a quarter of that. Measured in docs/whisper_backend.md and docs/model_history.md.

`int8_copy` shares everything but the Linear layers with the model it copies (embeddings,
norms, config), so the copy costs a quarter of the linear weights, and the fp32 model stays
as it was: an adapter is applied to it and the copy made again. (The Whisper backend then
lets its fp32 decoder go and reads it again from disk for the next adapter.)

Quantising takes 1-2 s of every start (Whisper base: 61 layers), so the copy of a base
model (no adapter) is kept in the model folder's hidden cache (`save_int8`) under a
fingerprint of the fp32 weights it was made from, and read back (`load_int8`, about 0.1 s)
into a skeleton that never held the fp32 weights.
"""

from __future__ import annotations

import copy
import logging
import pickle
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8")
# Bumped whenever int8_copy quantises differently: a cached copy from before is made again.
INT8_CACHE_VERSION = 1
CPU_PRECISION = "int8"  # what decodes on a CPU unless asked otherwise; a GPU always decodes in fp32


def _is_conv1d(module: nn.Module) -> bool:
    """transformers' Conv1D (GPT-2): a Linear whose weight is stored (in, out)."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def _is_lora(module: nn.Module) -> bool:
    return hasattr(module, "get_delta_weight") and hasattr(module, "base_layer")


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or _is_conv1d(module) or (
        _is_lora(module) and (isinstance(module.base_layer, nn.Linear) or _is_conv1d(module.base_layer)))


def _merged_weight(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A linear layer's (out, in) weight and bias, with the active LoRA deltas of a peft layer added."""
    base = module.base_layer if _is_lora(module) else module
    weight = base.weight.detach()
    if _is_lora(module) and not module.disable_adapters:
        for name in module.active_adapters:
            if name in module.lora_A:
                weight = weight + module.get_delta_weight(name).detach()  # in the base layer's layout
    if _is_conv1d(base):
        weight = weight.t()
    return weight, None if base.bias is None else base.bias.detach()


def _int8_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
    from torch.ao.quantization import per_channel_dynamic_qconfig

    float_linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    float_linear.weight = nn.Parameter(weight.float(), requires_grad=False)
    if bias is not None:
        float_linear.bias = nn.Parameter(bias.float(), requires_grad=False)
    float_linear.qconfig = per_channel_dynamic_qconfig
    with warnings.catch_warnings():  # torch deprecates eager quantisation in favour of torchao; it still works
        warnings.simplefilter("ignore")
        return DynamicInt8Linear.from_float(float_linear)


def _with_linears(module: nn.Module, make) -> nn.Module:
    """The module tree again, every linear layer (nn.Linear, GPT-2's Conv1D, plain or under a
    peft LoRA) replaced by `make(layer)`, every other parameter and buffer the very same tensor."""
    if _is_linear(module):
        return make(module)
    new = copy.copy(module)
    new._parameters = dict(module._parameters)
    new._buffers = dict(module._buffers)
    new._modules = {name: None if child is None else _with_linears(child, make)
                    for name, child in module._modules.items()}
    return new


def int8_copy(model: nn.Module) -> nn.Module:
    """An int8 copy of `model` (or of the model inside a peft wrapper, LoRA merged) for CPU
    decoding: Linear weights quantised per output channel, activations per step (torch's
    dynamic quantisation, fbgemm). Linear layers tied to an embedding get their own int8
    copy; the embedding stays the shared fp32 one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    with torch.no_grad():
        return _with_linears(base, lambda layer: _int8_linear(*_merged_weight(layer))).eval()


def choose_precision(requested: str | None, device: str) -> str:
    """The decoder precision for `device` ("cpu" or "cuda"): int8 only runs on a CPU."""
    precision = requested or (CPU_PRECISION if device == "cpu" else "fp32")
    if precision not in PRECISIONS:
        raise ValueError(f"decoder precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "int8" and device != "cpu":
        raise ValueError("an int8 decoder runs on a CPU only")
    return precision


def decoding_model(model: nn.Module, precision: str) -> nn.Module:
    """What decodes: `model` itself (the module inside a peft wrapper, LoRA layers live) in
    fp32, or its int8 copy."""
    if precision not in PRECISIONS:
        raise ValueError(f"decoder precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "int8":
        return int8_copy(model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def cache_fingerprint(weights_fingerprint: str) -> str:
    """What a cached int8 copy must match: the fp32 weights, how they were quantised, torch."""
    return f"{weights_fingerprint}-int8v{INT8_CACHE_VERSION}-torch{torch.__version__}"


def save_int8(model: nn.Module, path: str | Path, fingerprint: str, linear_only: bool = False) -> None:
    """Keep `model` (an int8 copy, any tensors of it cast as it decodes) for the next start;
    with `linear_only`, only its int8 layers (the rest is shared with the fp32 model it is
    read back into). A folder that cannot be written (read-only, full) only costs the next
    start the time to quantise again."""
    from engine.files import atomic_path

    path = Path(path)
    state = model.state_dict()
    if linear_only:
        layers = _int8_layer_names(model)
        kept = OrderedDict((k, v) for k, v in state.items()
                           if k.rsplit(".", 1)[0].removesuffix("._packed_params") in layers)
        kept._metadata = state._metadata  # the layers' format versions, which loading reads
        state = kept
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save({"fingerprint": fingerprint, "state": state}, tmp)
    except OSError as e:
        log.info("could not keep the int8 decoder in %s (%s): it is quantised again next time", path, e)


def load_int8(skeleton: nn.Module, path: str | Path, fingerprint: str) -> nn.Module | None:
    """The int8 copy kept by `save_int8` in the shape of `skeleton`, or None where there is
    none, it was made from other weights or it is damaged: then the caller quantises again.
    Tensors the copy does not hold stay `skeleton`'s own (shared, as int8_copy shares them);
    none may be left on the meta device."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with warnings.catch_warnings():  # torch's deprecation notices: storage classes, eager quantisation
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            if not isinstance(data, dict) or data.get("fingerprint") != fingerprint:
                return None
            model = _empty_int8(skeleton)
        state = data["state"]
        unloaded = [name for name in _int8_layer_names(model) if f"{name}._packed_params._packed_params" not in state]
        result = model.load_state_dict(state, strict=False, assign=True)
        if unloaded or result.unexpected_keys:
            raise ValueError(f"it does not fit the model ({(unloaded + result.unexpected_keys)[0]})")
        if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
            raise ValueError("it lacks weights the model has none of")
    except (OSError, RuntimeError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as e:
        log.info("the kept int8 decoder %s is unusable (%s): quantising again", path, str(e).splitlines()[0])
        return None
    return model.eval()


def _int8_layer_names(model: nn.Module) -> set[str]:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    return {name for name, m in model.named_modules() if isinstance(m, DynamicInt8Linear)}


def _empty_int8(module: nn.Module) -> nn.Module:
    """int8_copy's module tree with no weights in its int8 layers yet: nothing is read from
    `module`'s tensors but their shapes. Each int8 layer starts 1 x 1 and takes its size
    from the weights loaded into it: one made at full size packs a matrix of zeros first,
    which took 0.6 s for Whisper base."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    def empty(layer: nn.Module) -> nn.Module:
        base = layer.base_layer if _is_lora(layer) else layer
        out_features, in_features = base.weight.shape[::-1] if _is_conv1d(base) else base.weight.shape
        new = DynamicInt8Linear(1, 1, bias_=base.bias is not None, dtype=torch.qint8)
        new.in_features, new.out_features = in_features, out_features
        return new

    return _with_linears(module, empty)
