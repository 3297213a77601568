"""Stage 1 of the default model: the frozen Whisper encoder's frames of every corpus clip.

The encoder runs once over each clip (unpadded log-mel, fp32) and its frames are stored as
fp16 shards of SHARD clips in `work/features/{train,test}/`, so the later stages never pay
for the encoder again. A shard is written under a temporary name and renamed when complete:
a killed run resumes at the first missing shard.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.audio import load_audio
from engine.features import whisper_log_mel
from recipes.pretrained import load_whisper_encoder

SHARD = 256


def read_split(corpus: Path, split: str) -> list[tuple[Path, str]]:
    """(audio path, transcript) rows of a corpus's `split`.tsv."""
    rows = []
    for line in (corpus / f"{split}.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            rel, text = line.split("\t")[:2]
            rows.append((corpus / rel, text))
    return rows


class _Clips(torch.utils.data.Dataset):
    """Log-mel of corpus clips, made in DataLoader workers so the encoder never waits."""

    def __init__(self, rows: list[tuple[Path, str]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        path, text = self.rows[i]
        return torch.from_numpy(whisper_log_mel(load_audio(path))), text


def extract_features(corpus: Path, work: Path, encoder_name: str = "whisper-base", device: str = "cpu",
                     workers: int = 0, progress=None) -> None:
    from engine.whisper.encoder import whisper_forward

    encoder = load_whisper_encoder(encoder_name, work / "pretrained").to(device)
    for split in ("test", "train"):
        rows = read_split(corpus, split)
        out = work / "features" / split
        out.mkdir(parents=True, exist_ok=True)
        todo = [s for s in range(0, len(rows), SHARD) if not (out / f"{s // SHARD:05d}.npz").exists()]
        order = [(s, i) for s in todo for i in range(s, min(s + SHARD, len(rows)))]
        loader = torch.utils.data.DataLoader(_Clips([rows[i] for _, i in order]), batch_size=None,
                                             num_workers=workers)
        frames, lengths, texts = [], [], []
        for (start, i), (mel, text) in zip(order, loader):
            with torch.no_grad():
                h = whisper_forward(encoder, mel[None].to(device), None)[0]
            frames.append(h.cpu().numpy().astype(np.float16))
            lengths.append(h.shape[0])
            texts.append(text)
            if i == min(start + SHARD, len(rows)) - 1:
                shard = out / f"{start // SHARD:05d}.npz"
                tmp = shard.with_suffix(".tmp.npz")
                np.savez(tmp, frames=np.concatenate(frames), lengths=np.array(lengths), texts=np.array(texts))
                tmp.rename(shard)
                frames, lengths, texts = [], [], []
                if progress:
                    progress(split, i + 1, len(rows))


def load_features(work: Path, split: str) -> list[tuple[torch.Tensor, str]]:
    """(encoder frames, transcript) of every clip in the complete shards of `split`."""
    items = []
    for shard in sorted((work / "features" / split).glob("[0-9]*.npz")):
        if ".tmp" in shard.name:
            continue
        with np.load(shard) as data:  # each data[...] access decodes the array again: read once
            frames, lengths, texts = data["frames"], data["lengths"], data["texts"]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        for i, text in enumerate(texts):
            items.append((torch.from_numpy(frames[offsets[i]:offsets[i + 1]]), str(text)))
    return items
