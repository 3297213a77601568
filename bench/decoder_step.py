"""One decoding step, fp32 against the int8 copy (engine.decoding.int8), on this CPU.

    .venv/bin/python -m bench.decoder_step [--models whisper-tiny.en whisper-base steno-default-en] [--threads 1]

For each installed model: milliseconds per single-token step with a warm KV cache, the
vocabulary projection alone, and (Whisper) the cross-attention keys/values of a 30 s
window, which are computed once per segment. The two precisions alternate, repeat by
repeat, so load from other work falls on both; the best of each is printed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def best_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * min(times)


def whisper_parts(folder: Path) -> dict:
    """Callables per precision: step, projection, cross keys/values."""
    from engine.decoding.int8 import decoding_model
    from engine.whisper.model import Cache, load_decoder

    fp32 = load_decoder(folder / "whisper")
    d = fp32.dims.d_model
    enc = torch.randn(1, 1500, d)
    x = torch.randn(1, 1, d)
    out = {}
    for name in ("fp32", "int8"):
        m = decoding_model(fp32, name)
        cache = m.new_cache()
        m(torch.tensor([[50257, 50362, 400, 401]]), enc, cache)

        def step(m=m, cache=cache):
            c = Cache(list(cache.self_kv), list(cache.cross_kv))
            c.length = cache.length
            m(torch.tensor([[402]]), enc, c)

        out[name] = {"step": step, "projection": lambda m=m: m.proj_out(x),
                     "cross k/v, 30 s": lambda m=m: [layer.encoder_attn.kv(enc) for layer in m.model.decoder.layers]}
    return out


def lm_parts(folder: Path) -> dict:
    from engine.bridge.folder import load_model
    from engine.decoding.int8 import decoding_model

    lm = load_model(folder).lm
    d = lm.get_input_embeddings().embedding_dim
    x = torch.randn(1, 1, d)
    prefix = torch.randn(1, 60, d)
    out = {}
    for name in ("fp32", "int8"):
        m = decoding_model(lm, name)
        with torch.no_grad():
            past = m(inputs_embeds=prefix, use_cache=True).past_key_values

        def step(m=m, past=past):
            import copy

            m(inputs_embeds=x, past_key_values=copy.deepcopy(past), use_cache=True)

        out[name] = {"step (60 positions cached)": step, "projection": lambda m=m: m.get_output_embeddings()(x)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["whisper-tiny.en", "whisper-base", "steno-default-en"])
    p.add_argument("--threads", type=int, default=1, help="torch threads (the Whisper backend decodes on 1)")
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    from engine.logs import quiet_libraries
    from engine.models.config import ModelConfig
    from engine.models.registry import resolve_model

    quiet_libraries()
    torch.set_num_threads(args.threads)
    for name in args.models:
        folder = resolve_model(name)
        parts = whisper_parts(folder) if ModelConfig.load(folder).family == "whisper" else lm_parts(folder)
        best = {prec: {k: float("inf") for k in fns} for prec, fns in parts.items()}
        with torch.no_grad():
            for _ in range(3):  # alternate the precisions
                for prec, fns in parts.items():
                    for k, fn in fns.items():
                        best[prec][k] = min(best[prec][k], best_ms(fn, args.repeats // 3 or 1))
        print(f"{name} ({args.threads} thread{'s' * (args.threads > 1)}): ms, best of {args.repeats}")
        for k in best["fp32"]:
            print(f"  {k:28} fp32 {best['fp32'][k]:7.2f}   int8 {best['int8'][k]:7.2f}   "
                  f"x{best['fp32'][k] / best['int8'][k]:.1f}", flush=True)


if __name__ == "__main__":
    main()
