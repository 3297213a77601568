"""Real, transcribed English speech from public repositories, imported for training and choosing.

    .venv/bin/python -m recipes.real_speech SOURCE CHECKOUT --out data/real [--exclude data/dev/dev.tsv]

SOURCE is one of recipes/real_sources.json (repository, commit, licence of each); CHECKOUT is a
local copy of that repository (its files, not Git LFS pointers). Every clip is decoded,
resampled to 16 kHz mono and written as OUT/SOURCE/wav/UTT.wav; OUT/SOURCE/clips.tsv lists
`audio<TAB>normalised text<TAB>speaker` (the manifest `steno eval` reads, plus the speaker), and
OUT/SOURCE/source.json records where it came from. A clip whose text shares five words in a row
with an evaluation set (`--exclude`, the LibriVox dev clips and JFK by default) is left out.
Resumable: wavs already written are kept. The audio never goes into git.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOURCES_FILE = Path(__file__).with_name("real_sources.json")
HELD_OUT_FILE = Path(__file__).with_name("real_choice_speakers.json")

STELLA = ("Please call Stella. Ask her to bring these things with her from the store: six spoons of fresh "
          "snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob. We also need a "
          "small plastic snake and a big toy frog for the kids. She can scoop these things into three red "
          "bags, and we will go meet her Wednesday at the train station.")
FSDD_NATIVE = {"jackson", "theo"}  # metadata.py: accent "USA/neutral"; the others German, Belgian French, Greek
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@dataclass
class Clip:
    utt: str        # unique within its source; the wav's name
    speaker: str
    audio: Path     # the file in the checkout
    text: str       # as the source writes it (normalised on import)
    native: bool    # a native English speaker, as far as the source says


def sources() -> dict[str, dict]:
    return json.loads(SOURCES_FILE.read_text(encoding="utf-8"))


def _missing(path: Path, what: str):
    from engine.errors import StenoError

    return StenoError(f"not found: {what}; is this a checkout of the right repository?", path)


def ljspeech_clips(checkout: Path) -> list[Clip]:
    """metadata.csv (id|text|normalised text) beside wavs/; only the clips whose wav is present."""
    metas = sorted(checkout.rglob("metadata.csv"))
    if not metas:
        raise _missing(checkout, "metadata.csv")
    clips = []
    for meta in metas:
        for line in meta.read_text(encoding="utf-8").splitlines():
            fields = line.split("|")
            if len(fields) < 2:
                continue
            wav = meta.parent / "wavs" / f"{fields[0]}.wav"
            if wav.is_file():
                clips.append(Clip(fields[0], "LJ", wav, fields[-1] or fields[1], True))
    return clips


def accent_archive_clips(checkout: Path) -> list[Clip]:
    """speakers_all.csv names each speaker's MP3 (anywhere in the checkout) and first language."""
    table = checkout / "speakers_all.csv"
    if not table.is_file():
        raise _missing(table, "speakers_all.csv")
    mp3s = {p.stem: p for p in checkout.rglob("*.mp3")}
    clips = []
    with table.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            name = row.get("filename", "")
            if name in mp3s:
                clips.append(Clip(name, name, mp3s[name], STELLA, row.get("native_language") == "english"))
    return clips


def speechocean762_clips(checkout: Path) -> list[Clip]:
    """Kaldi train/ and test/ folders: text, wav.scp and utt2spk; the speaker id keeps its split."""
    clips = []
    for split in ("train", "test"):
        folder = checkout / split
        if not (folder / "text").is_file():
            raise _missing(folder / "text", f"{split}/text")
        table = {}
        for name in ("text", "wav.scp", "utt2spk"):
            table[name] = dict(line.split(maxsplit=1) for line in (folder / name).read_text().splitlines() if line.strip())
        for utt, text in table["text"].items():
            wav = checkout / table["wav.scp"][utt].strip()
            if wav.is_file():
                clips.append(Clip(utt, f"{split}-{table['utt2spk'][utt].strip()}", wav, text.strip(), False))
    return clips


def fsdd_clips(checkout: Path) -> list[Clip]:
    """recordings/DIGIT_SPEAKER_N.wav."""
    folder = checkout / "recordings"
    if not folder.is_dir():
        raise _missing(folder, "recordings/")
    clips = []
    for wav in sorted(folder.glob("*.wav")):
        m = re.fullmatch(r"(\d)_([a-z]+)_(\d+)", wav.stem)
        if m:
            clips.append(Clip(wav.stem, m.group(2), wav, DIGITS[int(m.group(1))], m.group(2) in FSDD_NATIVE))
    return clips


READERS = {"ljspeech": ljspeech_clips, "accent_archive": accent_archive_clips,
           "speechocean762": speechocean762_clips, "fsdd": fsdd_clips}


def checkout_commit(checkout: Path) -> str | None:
    """The checkout's HEAD when it is a git work tree, else None (an exported copy)."""
    try:
        r = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return r.stdout.strip() if r.returncode == 0 and (checkout / ".git").exists() else None


def overlapping(text: str, excluded: set[tuple[str, ...]]) -> bool:
    from recipes.sentences import ngrams

    words = text.split()
    return bool(excluded) and (len(words) < 5 and tuple(words) in excluded or bool(ngrams(text) & excluded))


def import_source(name: str, checkout: Path, out: Path, exclude: list[str] = (), progress=None) -> Path:
    """Write OUT/NAME/{wav/, clips.tsv, source.json}; returns clips.tsv."""
    from engine.audio import SAMPLE_RATE, load_audio
    from engine.errors import StenoError
    from engine.files import atomic_path, atomic_write_text
    from engine.text.metrics import normalize
    from recipes.sentences import ngrams

    known = sources()
    if name not in known:
        raise StenoError(f"unknown source {name!r}; known: {', '.join(known)}")
    checkout = Path(checkout)
    if not checkout.is_dir():
        raise StenoError("not a folder (a checkout of " + known[name]["repository"] + ")", checkout)
    clips = READERS[name](checkout)
    if not clips:
        raise StenoError(f"no {name} clips found", checkout)
    excluded = set()
    for text in exclude:
        words = normalize(text).split()
        excluded |= ngrams(" ".join(words)) | ({tuple(words)} if len(words) < 5 else set())
    folder = out / name
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    rows, left_out, seconds = [], 0, 0.0
    for i, clip in enumerate(clips):
        text = normalize(clip.text)
        if not text or overlapping(text, excluded):
            left_out += 1
            continue
        wav = folder / "wav" / f"{clip.utt}.wav"
        if not wav.is_file():
            import soundfile as sf

            audio = load_audio(clip.audio)
            with atomic_path(wav) as tmp:
                sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
            seconds += len(audio) / SAMPLE_RATE
        else:
            import soundfile as sf

            seconds += sf.info(wav).duration
        rows.append(f"wav/{wav.name}\t{text}\t{clip.speaker}\t{'native' if clip.native else 'non-native'}\n")
        if progress:
            progress(i + 1, len(clips))
    commit = checkout_commit(checkout)
    record = dict(known[name], name=name, checkout_commit=commit, clips=len(rows), left_out_as_eval_text=left_out,
                  hours=round(seconds / 3600, 3))
    if commit and not commit.startswith(known[name]["commit"]):
        record["warning"] = f"checkout is at {commit}, not the recorded {known[name]['commit']}"
    atomic_write_text(folder / "source.json", json.dumps(record, indent=2) + "\n")
    manifest = folder / "clips.tsv"
    atomic_write_text(manifest, "".join(rows))
    return manifest


def held_out() -> dict[str, dict]:
    """Per source, the real choice set's `speakers` (never trained on), extra held-out `clips`
    (LJSpeech has one speaker), and optionally the `choose` clips the choice set measures."""
    return {k: v for k, v in json.loads(HELD_OUT_FILE.read_text(encoding="utf-8")).items() if not k.startswith("_")}


def trainable(source: str, rows: list[tuple[Path, str, str, bool]]) -> list[tuple[Path, str, str, bool]]:
    """The rows of an imported source that the training recipe may use: no held-out speaker or clip."""
    rule = held_out().get(source, {})
    return [r for r in rows if r[2] not in rule.get("speakers", ()) and r[0].stem not in rule.get("clips", ())]


def read_clips(manifest: Path) -> list[tuple[Path, str, str, bool]]:
    """(audio, text, speaker, native) rows of an imported clips.tsv."""
    rows = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        audio, text, speaker, native = line.split("\t")
        rows.append((manifest.parent / audio, text, speaker, native == "native"))
    return rows


def dev_texts() -> list[str]:
    """The real dev set's references (LibriVox clips, when pocketsphinx-testdata is installed, and JFK)."""
    from bench.devset import JFK_TEXT, LIBRIVOX, librivox_items

    texts = [JFK_TEXT]
    if (LIBRIVOX / "transcription").is_file():
        texts += [t for _, _, t in librivox_items()]
    return texts


def main() -> None:
    import argparse
    import sys

    from engine.errors import StenoError
    from recipes.corpus import manifest_texts

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", choices=sorted(READERS))
    p.add_argument("checkout", type=Path, help="local copy of the source's repository")
    p.add_argument("--out", type=Path, default=Path("data/real"))
    p.add_argument("--exclude", type=Path, nargs="*", default=[],
                   help="more evaluation manifests whose text stays out (the dev set's is always excluded)")
    args = p.parse_args()

    def progress(done, total):
        if done % 200 == 0 or done == total:
            print(f"\r{args.source}: {done}/{total} clips", end="", file=sys.stderr, flush=True)

    try:
        manifest = import_source(args.source, args.checkout, args.out, dev_texts() + manifest_texts(args.exclude),
                                 progress)
    except StenoError as e:
        raise SystemExit(f"error: {e}")
    record = json.loads((manifest.parent / "source.json").read_text())
    print(f"\n{manifest}: {record['clips']} clips, {record['hours']} h, "
          f"{record['left_out_as_eval_text']} left out as evaluation text")


if __name__ == "__main__":
    main()
