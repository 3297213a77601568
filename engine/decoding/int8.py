"""int8 copies of decoders for CPU decoding.

One autoregressive step multiplies a single token's vector by every weight matrix once, so on
a CPU it is bound by how fast the weights can be read, not by arithmetic: the vocabulary
projection alone is 80 MB (Whisper tiny.en) to 113 MB (SmolLM2) of fp32 per step. int8
weights are a quarter of that. Measured in docs/whisper_backend.md and docs/model_history.md.

`int8_copy` shares everything but the Linear layers with the model it copies (embeddings,
norms, config), so the copy costs a quarter of the linear weights, and the fp32 model stays
as it was: an adapter is applied to it and the copy made again. (The Whisper backend then
lets its fp32 decoder go and reads it again from disk for the next adapter.)
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

PRECISIONS = ("fp32", "int8")
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


def _clone(module: nn.Module) -> nn.Module:
    """The module tree again, every linear layer (nn.Linear, GPT-2's Conv1D, plain or under a
    peft LoRA) as an int8 Linear, every other parameter and buffer the very same tensor."""
    if _is_linear(module):
        return _int8_linear(*_merged_weight(module))
    new = copy.copy(module)
    new._parameters = dict(module._parameters)
    new._buffers = dict(module._buffers)
    new._modules = {name: None if child is None else _clone(child) for name, child in module._modules.items()}
    return new


def int8_copy(model: nn.Module) -> nn.Module:
    """An int8 copy of `model` (or of the model inside a peft wrapper, LoRA merged) for CPU
    decoding: Linear weights quantised per output channel, activations per step (torch's
    dynamic quantisation, fbgemm). Linear layers tied to an embedding get their own int8
    copy; the embedding stays the shared fp32 one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    with torch.no_grad():
        return _clone(base).eval()


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
