"""`steno eval`: error rates and speed of a model on a manifest of audio + reference text."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.audio import SAMPLE_RATE, check_audio_file, load_audio
from engine.errors import AudioError, StenoError
from engine.text.metrics import error_rates


@dataclass
class ManifestItem:
    audio: Path
    text: str
    line: int = 0  # in the manifest, for messages; 0 when the item was not read from one


def read_manifest(path: str | Path) -> list[ManifestItem]:
    """`audio_path<TAB>reference text` per line; relative paths are relative to the manifest.

    Further tab-separated columns (the corpus builder's voice) are ignored."""
    path = Path(path)
    if not path.is_file():
        raise StenoError("manifest not found", path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise StenoError("manifest is not UTF-8 text", path) from None
    items = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        if "\t" not in line:
            raise StenoError(f"line {n}: expected audio_path<TAB>reference text", path)
        audio, text = line.split("\t")[:2]
        audio_path = Path(audio.strip())
        if not audio_path.is_absolute():
            audio_path = path.parent / audio_path
        items.append(ManifestItem(audio_path, text.strip(), n))
    if not items:
        raise StenoError("manifest has no entries", path)
    return items


def _where(item: ManifestItem) -> str:
    return f"line {item.line}: " if item.line else ""


def manifest_problems(items: list[ManifestItem]) -> list[str]:
    """One line per entry whose audio cannot be read (missing, empty, a folder), naming its
    manifest line: checked before the model loads, so a bad last row costs no work."""
    problems = []
    for item in items:
        try:
            check_audio_file(item.audio)
        except AudioError as e:
            problems.append(f"{_where(item)}{e}")
    return problems


@dataclass
class EvalReport:
    model: str
    device: str
    utterances: int
    audio_seconds: float
    wer: float | None  # None when the references hold no words: a rate of nothing is no number
    cer: float | None
    rtf: float
    encoder_rtf: float
    decoder_rtf: float
    rows: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # {"line", "audio", "error"} per entry that could not be decoded

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        return (f"model        {self.model}\n"
                f"device       {self.device}\n"
                f"utterances   {self.utterances} ({self.audio_seconds:.1f} s of audio)"
                f"{f'; {len(self.failed)} not decoded, left out' if self.failed else ''}\n"
                f"WER          {_percent(self.wer)}\n"
                f"CER          {_percent(self.cer)}\n"
                f"RTF          {self.rtf:.3f} (encoder+bridge {self.encoder_rtf:.3f}, decoding {self.decoder_rtf:.3f})")


def _percent(rate: float | None) -> str:
    return "n/a (no reference words to score against)" if rate is None else f"{100 * rate:.2f}%"


def evaluate(items: list[ManifestItem], model=None, adapter=None, device="auto", beam_size=None,
             progress=None, transcriber=None, precision=None) -> EvalReport:
    """Transcribe every item the way `steno transcribe` would and score it (see engine.text.metrics.normalize)."""
    from engine.transcriber import Transcriber

    progress = progress or (lambda f, m: None)
    tr = transcriber or Transcriber(model, adapter=adapter, device=device, beam_size=beam_size,
                                    precision=precision)
    refs, hyps, rows = [], [], []
    total_audio, wall = 0.0, 0.0
    failed = []
    for i, item in enumerate(items):
        try:  # one damaged file is reported and skipped: the work on the others is kept
            audio = load_audio(item.audio)
        except AudioError as e:
            failed.append({"line": item.line, "audio": str(item.audio), "error": f"{_where(item)}{e}"})
            progress((i + 1) / len(items), item.audio.name)
            continue
        start = time.perf_counter()
        transcript = tr.transcribe(audio)
        wall += time.perf_counter() - start
        total_audio += len(audio) / SAMPLE_RATE
        refs.append(item.text)
        hyps.append(transcript.text)
        rows.append({"audio": str(item.audio), "reference": item.text, "hypothesis": transcript.text})
        progress((i + 1) / len(items), item.audio.name)
    rates = error_rates(refs, hyps)
    timing = tr.timing
    return EvalReport(model=tr.name, device=tr.device_text, utterances=len(rows), audio_seconds=total_audio,
                      wer=rates.wer if rates.words else None, cer=rates.cer if rates.chars else None,
                      rtf=wall / max(total_audio, 1e-9),
                      encoder_rtf=timing.encoder_seconds / max(timing.audio_seconds, 1e-9),
                      decoder_rtf=timing.decoder_seconds / max(timing.audio_seconds, 1e-9), rows=rows, failed=failed)
