"""How to find the number of speakers: estimators compared on the interviews of bench.speakers.

    .venv/bin/python -m bench.speaker_count --real PATH/speechocean762 [--ljspeech PATH/LJSpeech-1.1]
        [--interviews 10] [--turns 16] [--seed 1] [--synthetic | --accent PATH/accent_archive]
        [--projection data/speaker_projection/projection.npz] [--cuts 0.40 0.42 0.44] [--single FOLDER...]

The same interviews as `bench.speakers` with the same seed (its real set; `--synthetic` for
the espeak-ng one, `--accent` for the accent archive's held-out speakers), embedded once; each
estimator then labels the windows and is scored by the count it finds and by DER (0.25 s
collar). `--single` folders (one speaker's clips each) check that one voice stays one.
`--projection` clusters in the space of a projection from recipes.speaker_projection instead of
GE2E's own, and leaves out every speaker it was trained on. Estimators:
- ahc T: what `diarize` does, average-linkage clustering cut at cosine distance T (`--cuts`);
- silhouette: the cut of 2-8 clusters with the best silhouette, 1 when none is over 0.1;
  gated: the best of 2-8, but 1 when the AHC cut `--gate` finds one;
- nme: spectral clustering with the eigengap auto-tuned on a pruned affinity (NME-SC, Google's
  `spectralcluster` package, `pip install spectralcluster==0.2.22`; not a Steno dependency),
  one speaker when the `diarize` cut finds one;
- max: the larger count of the `diarize` cut and nme.
"""

from __future__ import annotations

import argparse
import random
import warnings
from pathlib import Path

import numpy as np

from bench.speakers import COUNTS, SR, accent_voices, der, interview, real_voices, synthetic_voices
from engine.speakers.diarize import DISTANCE_THRESHOLD, Windows


def ahc(threshold: float):
    def estimate(emb: np.ndarray) -> np.ndarray:
        from engine.speakers import diarize as d

        saved, d.DISTANCE_THRESHOLD = d.DISTANCE_THRESHOLD, threshold
        try:
            return d.cluster(emb, None)
        finally:
            d.DISTANCE_THRESHOLD = saved
    return estimate


def silhouette(emb: np.ndarray, floor: float = 0.1) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    best, labels = floor, np.zeros(len(emb), int)
    for k in range(2, min(8, len(emb) - 1) + 1):
        lab = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(emb)
        score = silhouette_score(emb, lab, metric="cosine")
        if score > best:
            best, labels = score, lab
    return labels


def gated_silhouette(cut: float):
    """Silhouette's count, but one speaker when the AHC cut finds one (silhouette cannot say 1)."""
    def estimate(emb: np.ndarray) -> np.ndarray:
        return silhouette(emb, floor=-1.0) if len(emb) > 3 and len(np.unique(ahc(cut)(emb))) > 1 else ahc(cut)(emb)
    return estimate


def nme(emb: np.ndarray) -> np.ndarray:
    from spectralcluster import (
        AutoTune,
        LaplacianType,
        RefinementName,
        RefinementOptions,
        SpectralClusterer,
        SymmetrizeType,
        ThresholdType,
    )

    if len(emb) < 4 or len(np.unique(ahc(DISTANCE_THRESHOLD)(emb))) == 1:
        return np.zeros(len(emb), int)
    refinement = RefinementOptions(thresholding_soft_multiplier=0.01, thresholding_type=ThresholdType.Percentile,
                                   thresholding_with_binarization=True, thresholding_preserve_diagonal=True,
                                   symmetrize_type=SymmetrizeType.Average,
                                   refinement_sequence=[RefinementName.RowWiseThreshold, RefinementName.Symmetrize])
    tune = AutoTune(p_percentile_min=0.40, p_percentile_max=0.95, init_search_step=0.05, search_level=1)
    return SpectralClusterer(min_clusters=2, max_clusters=7, autotune=tune, laplacian_type=LaplacianType.GraphCut,
                             row_wise_renorm=True, custom_dist="cosine", refinement_options=refinement).predict(emb)


def larger(emb: np.ndarray) -> np.ndarray:
    a, b = ahc(DISTANCE_THRESHOLD)(emb), nme(emb)
    return a if len(np.unique(a)) >= len(np.unique(b)) else b


def in_space(windows: Windows, projection) -> Windows:
    """The windows with their embeddings in the projection's space (mean, matrix), or as they are."""
    if projection is None:
        return windows
    from recipes.speaker_projection import project

    return Windows(windows.regions, windows.starts, project(windows.embeddings, *projection))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, help="a speechocean762 checkout (WAVE/SPEAKERnnnn/*.WAV)")
    ap.add_argument("--ljspeech", type=Path)
    ap.add_argument("--interviews", type=int, default=10)
    ap.add_argument("--turns", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--synthetic", action="store_true", help="the espeak-ng interviews instead of the real ones")
    ap.add_argument("--accent", type=Path, help="the accent archive's held-out speakers instead of the real set")
    ap.add_argument("--projection", type=Path, help="recipes.speaker_projection's projection.npz")
    ap.add_argument("--cuts", type=float, nargs="+", default=[DISTANCE_THRESHOLD - 0.02, DISTANCE_THRESHOLD,
                                                                DISTANCE_THRESHOLD + 0.02])
    ap.add_argument("--gate", type=float, default=DISTANCE_THRESHOLD, help="the AHC cut that gates silhouette")
    ap.add_argument("--single", type=Path, nargs="*", default=[])
    args = ap.parse_args()
    import torch

    from engine.audio import load_audio, split_on_speech
    from engine.speakers.diarize import speaker_windows

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="'uem' was approximated")
    estimators = {f"ahc {c:.2f}" + (" (diarize)" * (c == DISTANCE_THRESHOLD)): ahc(c) for c in args.cuts}
    estimators["silhouette"] = silhouette
    estimators[f"silhouette, 1 when ahc {args.gate:.2f} finds 1"] = gated_silhouette(args.gate)
    try:
        import spectralcluster  # noqa: F401
        estimators.update({"nme": nme, "max(diarize cut, nme)": larger})
    except ImportError:
        print("spectralcluster is not installed: nme left out")
    projection, trained = None, frozenset()
    if args.projection is not None:
        from recipes.speaker_projection import load

        mean, matrix, speakers = load(args.projection)
        projection, trained = (mean, matrix), frozenset(speakers)
    if args.synthetic:
        voices = synthetic_voices(seed=args.seed)
    elif args.accent:
        voices = accent_voices(args.accent, trained)
    else:
        voices = real_voices(args.real, args.ljspeech, exclude=trained)
    rng = random.Random(args.seed)
    cases = []
    for n in COUNTS:
        for _ in range(args.interviews):
            audio, ref = interview(rng.sample(voices, n), args.turns, rng)
            cases.append((n, ref, in_space(speaker_windows(audio, split_on_speech(audio)), projection)))
    singles = []
    for folder in args.single:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac"))[:15]
        audio = np.concatenate([np.concatenate([load_audio(p), np.zeros(SR // 2, np.float32)]) for p in paths])
        singles.append(in_space(speaker_windows(audio, split_on_speech(audio)), projection))
    for name, estimate in estimators.items():
        cells = []
        for n in COUNTS:
            found, ders = [], []
            for _, ref, w in (c for c in cases if c[0] == n):
                d = w.diarization(estimate(w.embeddings))
                found.append(d.speakers)
                ders.append(der(ref, d.turns))
            cells.append(f"{n} speakers DER {100 * np.mean(ders):.1f}% count right "
                         f"{100 * np.mean(np.array(found) == n):.0f}% {found}")
        one = [w.diarization(estimate(w.embeddings)).speakers for w in singles]
        print(f"{name}: " + "; ".join(cells) + (f"; one speaker found as {one}" if one else ""), flush=True)


if __name__ == "__main__":
    main()
