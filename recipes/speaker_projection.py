"""Train a speaker projection: an LDA over GE2E embeddings, fitted on real speakers the
benchmark never uses. Measured, not used by Steno: on the bench's interviews it finds the
number of speakers less often than GE2E's own space (docs/speakers.md).

    .venv/bin/python -m recipes.speaker_projection --accent PATH/accent_archive \
        --speechocean PATH/speechocean762 --bench-speechocean PATH/so762 [--dims 128] [--shrinkage auto]
        [--out data/speaker_projection]
    .venv/bin/python -m bench.speaker_count ... --projection data/speaker_projection/projection.npz

GE2E (engine/speakers/voice.py) was trained on other voices and other microphones; on
speechocean762's children reading the same sentences, two speakers' windows come out nearly
as alike as one speaker's. A linear discriminant analysis fitted on many real speakers
(windows of the same speaker pulled together, of different speakers pushed apart) makes the
distance between voices count more than the distance between what was said.

Training speakers (the folders written by `recipes.real_speech`, each a clips.tsv of
audio, text, speaker):
- the accent archive's speakers except every HELD_OUT_EVERY-th in sorted order (those are the
  bench's accent-archive interviews: `held_out_accent`);
- speechocean762's speakers except those in `--bench-speechocean`'s WAVE/ folder (the ones
  `bench.speakers --real` assembles interviews from).
OUT/projection.json lists every training speaker, and the bench given `--projection` skips
any of them, so the two stay disjoint whatever folder the bench is given.

Writes OUT/embeddings.npz (the windows' embeddings and speakers, kept to try other fits
quickly), OUT/projection.npz (mean, matrix) and OUT/projection.json (where the data came
from, the training speakers, the file's sha256).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HELD_OUT_EVERY = 5
CLIPS_PER_SPEAKER = 20


def read_clips(folder: Path) -> list[tuple[Path, str]]:
    """(audio file, speaker) per row of FOLDER/clips.tsv."""
    with open(folder / "clips.tsv", encoding="utf-8", newline="") as f:
        return [(folder / row[0], row[2]) for row in csv.reader(f, delimiter="\t") if row]


def held_out_accent(speakers: list[str]) -> set[str]:
    """The accent archive's speakers kept for the bench: every HELD_OUT_EVERY-th, sorted."""
    return set(sorted(set(speakers))[::HELD_OUT_EVERY])


def speechocean_id(name: str) -> str:
    """'train-0001', 'SPEAKER0001' -> '0001'."""
    return re.sub(r"\D", "", name)[-4:]


def training_clips(accent: Path, speechocean: Path, bench_speechocean: Path) -> list[tuple[Path, str]]:
    """Up to CLIPS_PER_SPEAKER clips per training speaker, speakers named by source."""
    acc = read_clips(accent)
    held = held_out_accent([s for _, s in acc])
    bench = {speechocean_id(p.name) for p in (bench_speechocean / "WAVE").iterdir() if p.is_dir()}
    out: list[tuple[Path, str]] = [(p, f"accent_archive/{s}") for p, s in acc if s not in held]
    per: dict[str, int] = {}
    for p, s in read_clips(speechocean):
        sid = speechocean_id(s)
        if sid in bench or per.get(sid, 0) >= CLIPS_PER_SPEAKER:
            continue
        per[sid] = per.get(sid, 0) + 1
        out.append((p, f"speechocean762/{sid}"))
    return out


def embed(clips: list[tuple[Path, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Every 1.5 s window's GE2E embedding over each clip's speech, with its speaker."""
    from engine.audio import load_audio
    from engine.speakers.diarize import speaker_windows

    embs, names = [], []
    for i, (path, speaker) in enumerate(clips):
        w = speaker_windows(load_audio(path))
        embs.append(w.embeddings)
        names += [speaker] * len(w.embeddings)
        if i % 100 == 0:
            print(f"{i}/{len(clips)} clips, {len(names)} windows", flush=True)
    return np.concatenate(embs), np.array(names)


def fit(emb: np.ndarray, speakers: np.ndarray, dims: int, shrinkage: str | float = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(mean, matrix): x -> (x - mean) @ matrix, the first `dims` discriminants, shrinkage LDA."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage, n_components=dims).fit(emb, speakers)
    return emb.mean(0).astype(np.float32), lda.scalings_[:, :dims].astype(np.float32)


def load(path: Path) -> tuple[np.ndarray, np.ndarray, set[str]]:
    """(mean, matrix, training speakers as `source/speaker`) of a projection this recipe wrote."""
    with np.load(path, allow_pickle=False) as f:
        mean, matrix = f["mean"], f["matrix"]
    record = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    return mean, matrix, set(record["speakers"])


def project(embeddings: np.ndarray, mean: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Embeddings in the projected space, each scaled to length 1 (for cosine clustering)."""
    x = (embeddings - mean) @ matrix
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accent", type=Path, required=True, help="recipes.real_speech's accent_archive folder")
    ap.add_argument("--speechocean", type=Path, required=True, help="recipes.real_speech's speechocean762 folder")
    ap.add_argument("--bench-speechocean", type=Path, required=True,
                    help="the speechocean762 checkout bench.speakers --real is given (its speakers are left out)")
    ap.add_argument("--dims", type=int, default=128)
    ap.add_argument("--shrinkage", default="auto", help="'auto' (Ledoit-Wolf) or a number from 0 to 1")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "speaker_projection")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "embeddings.npz"
    if cache.is_file():
        saved = np.load(cache, allow_pickle=False)
        emb, speakers = saved["embeddings"], saved["speakers"]
    else:
        emb, speakers = embed(training_clips(args.accent, args.speechocean, args.bench_speechocean))
        np.savez(cache, embeddings=emb, speakers=speakers)
    shrinkage = args.shrinkage if args.shrinkage == "auto" else float(args.shrinkage)
    mean, matrix = fit(emb, speakers, args.dims, shrinkage)
    out = args.out / "projection.npz"
    tmp = args.out / "projection.tmp.npz"
    np.savez(tmp, mean=mean, matrix=matrix)
    tmp.replace(out)
    sources = {}
    for folder in (args.accent, args.speechocean):
        sources[folder.name] = json.loads((folder / "source.json").read_text(encoding="utf-8"))
    record = {
        "what": f"LDA (scikit-learn, eigen solver, shrinkage {args.shrinkage}) of GE2E window embeddings, "
                f"{args.dims} of 256 dims",
        "trained_by": "python -m recipes.speaker_projection",
        "data": {k: {"repository": v["repository"], "commit": v["commit"]} for k, v in sources.items()},
        "windows": int(len(emb)),
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "speakers": sorted(set(speakers.tolist())),
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"{len(emb)} windows of {len(record['speakers'])} speakers -> {out} sha256 {record['sha256']}")


if __name__ == "__main__":
    main()
