"""Training data in: audio + transcript pairs, text documents, a word list, checked one by one.

Users bring whatever they have (a folder of dictations with their corrected .txt files, a
spreadsheet exported as CSV, a JSONL from another tool, letters and notes as .docx), so
every item is checked and either taken or rejected *with the reason*, and training is
refused only when what is left cannot teach anything. Nothing here needs the model.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import Counter
from pathlib import Path

from engine.audio import audio_duration, load_audio
from engine.errors import StenoError
from engine.text.metrics import normalize
from trainer.records import MIN_PAIRS, DataReport, Pair

AUDIO_EXTS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".webm", ".mp4", ".wma", ".aif",
              ".aiff"}
DOC_EXTS = {".txt", ".md", ".markdown", ".docx"}
MAX_CLIP_SECONDS = 30.0  # the encoders read at most 30 s at once; longer recordings must be split
MIN_CLIP_SECONDS = 0.2
MAX_TRANSCRIPT_CHARS = 1000  # ~3x what anyone says in 30 s
MAX_CHARS_PER_SECOND = 40.0  # fast speech is ~20; more means the transcript is not this clip's
MAX_DOC_BYTES = 20 << 20
MAX_TEXT_CHARS = 300  # longer sentences are cut into pieces of MAX_TEXT_WORDS
MAX_TEXT_WORDS = 40
MAX_TEXTS = 50_000
MAX_AUTO_TERMS = 300


def read_text_file(path: Path, what: str = "text") -> str:
    """UTF-8 (with or without BOM) or a one-line StenoError saying which byte is wrong."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise StenoError(f"{what} is not UTF-8 text (byte {e.start}); save it as UTF-8", path) from None


# --------------------------------------------------------------------------- pairs


def check_pair(audio: Path, text: str, seconds: float | None = None) -> str | None:
    """Why this audio + transcript cannot be trained on, or None if it can."""
    if not any(c.isalnum() for c in text):
        return "empty transcript"
    if len(text) > MAX_TRANSCRIPT_CHARS:
        return (f"transcript is {len(text)} characters, too long for one clip "
                f"(at most {MAX_TRANSCRIPT_CHARS}; split the recording into sentences)")
    if not audio.exists():
        return "transcript without audio (audio file not found)"
    try:
        seconds = audio_duration(audio) if seconds is None else seconds
    except StenoError as e:
        return e.problem
    if seconds > MAX_CLIP_SECONDS:
        return f"audio is {seconds:.0f} s long; training clips must be at most {MAX_CLIP_SECONDS:.0f} s (split it)"
    if seconds < MIN_CLIP_SECONDS:
        return f"audio is only {seconds:.2f} s long"
    if len(text) / seconds > MAX_CHARS_PER_SECOND:
        return f"transcript too long for its audio ({len(text)} characters for {seconds:.1f} s)"
    try:
        samples = load_audio(audio)  # a header can be fine while the data is not
    except StenoError as e:
        return e.problem
    if len(samples) == 0 or float(abs(samples).max()) < 1e-4:
        return "audio is silent"
    return None


def _pair_or_reject(audio: Path, text: str, where: str, pairs: list, rejected: list) -> None:
    text = " ".join(text.split())
    try:
        seconds = audio_duration(audio) if audio.exists() else None
    except StenoError as e:
        rejected.append((where, e.problem))
        return
    reason = check_pair(audio, text, seconds)
    if reason:
        rejected.append((where, reason))
    else:
        pairs.append(Pair(audio=audio, text=text, seconds=float(seconds), source=where))


def read_pairs(source: Path, pairs: list, rejected: list) -> None:
    """Add the pairs of one --data source (folder, manifest or single audio file) to `pairs`."""
    source = Path(source)
    if not source.exists():
        rejected.append((str(source), "not found"))
    elif source.is_dir():
        _read_folder(source, pairs, rejected)
    elif source.suffix.lower() in (".tsv", ".csv"):
        _read_table(source, pairs, rejected)
    elif source.suffix.lower() in (".jsonl", ".ndjson"):
        _read_jsonl(source, pairs, rejected)
    elif source.suffix.lower() in AUDIO_EXTS:
        transcript = source.with_suffix(".txt")
        if not transcript.is_file():
            rejected.append((str(source), f"no transcript (expected {transcript.name} beside it)"))
            return
        try:
            _pair_or_reject(source, read_text_file(transcript, "transcript"), str(source), pairs, rejected)
        except StenoError as e:
            rejected.append((str(transcript), e.problem))
    else:
        rejected.append((str(source), "not a folder, an audio file, or a .tsv/.csv/.jsonl manifest"))


def _read_folder(folder: Path, pairs: list, rejected: list) -> None:
    """Audio files with a same-named .txt beside them; anything unpaired is reported."""
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    audio = [p for p in files if p.suffix.lower() in AUDIO_EXTS]
    texts = {p.with_suffix(""): p for p in files if p.suffix.lower() == ".txt"}
    used: dict[Path, Path] = {}
    for a in audio:
        t = texts.get(a.with_suffix(""))
        if t is None:
            rejected.append((str(a), f"no transcript (expected {a.stem}.txt beside it)"))
            continue
        if t in used:
            rejected.append((str(a), f"{t.name} is already the transcript of {used[t].name}"))
            continue
        used[t] = a
        try:
            text = read_text_file(t, "transcript")
        except StenoError as e:
            rejected.append((str(t), e.problem))
            continue
        _pair_or_reject(a, text, str(a), pairs, rejected)
    for stem, t in texts.items():
        if t not in used:
            rejected.append((str(t), "transcript without audio (no audio file of the same name)"))
    for p in files:
        if p.suffix.lower() not in AUDIO_EXTS and p.suffix.lower() != ".txt":
            rejected.append((str(p), "ignored: not an audio file or a .txt transcript"))


_HEADER_AUDIO = {"audio", "path", "file", "filename", "audio_path", "audio_filepath", "wav"}


def _read_table(manifest: Path, pairs: list, rejected: list) -> None:
    """`audio<TAB>text` (.tsv) or `audio,text` (.csv) per line; paths relative to the manifest."""
    try:
        body = read_text_file(manifest, "manifest")
    except StenoError as e:
        rejected.append((str(manifest), e.problem))
        return
    if manifest.suffix.lower() == ".csv":
        rows = list(csv.reader(io.StringIO(body)))
    else:
        rows = [line.split("\t", 1) for line in body.splitlines()]
    for n, row in enumerate(rows, 1):
        where = f"{manifest}:{n}"
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if n == 1 and row[0].strip().lower() in _HEADER_AUDIO:
            continue
        if len(row) < 2:
            sep = "a comma" if manifest.suffix.lower() == ".csv" else "a tab"
            rejected.append((where, f"expected audio path, {sep}, then the transcript"))
            continue
        audio = _resolve(manifest, row[0].strip())
        _pair_or_reject(audio, ",".join(row[1:]) if len(row) > 2 else row[1], where, pairs, rejected)


def _read_jsonl(manifest: Path, pairs: list, rejected: list) -> None:
    """One JSON object per line with "audio" (or "path"/"audio_filepath") and "text" keys."""
    try:
        body = read_text_file(manifest, "manifest")
    except StenoError as e:
        rejected.append((str(manifest), e.problem))
        return
    for n, line in enumerate(body.splitlines(), 1):
        where = f"{manifest}:{n}"
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            rejected.append((where, f"not a JSON object ({e.msg})"))
            continue
        audio = item.get("audio", item.get("path", item.get("audio_filepath"))) if isinstance(item, dict) else None
        text = item.get("text", item.get("transcript")) if isinstance(item, dict) else None
        if not isinstance(audio, str) or not isinstance(text, str):
            rejected.append((where, 'expected {"audio": path, "text": transcript}'))
            continue
        _pair_or_reject(_resolve(manifest, audio), text, where, pairs, rejected)


def _resolve(manifest: Path, audio: str) -> Path:
    p = Path(audio).expanduser()
    return p if p.is_absolute() else manifest.parent / p


# --------------------------------------------------------------------------- text


def read_document(path: Path) -> list[str]:
    """A .txt/.md/.docx document as sentences fit for causal-LM training."""
    if path.stat().st_size > MAX_DOC_BYTES:
        raise StenoError(f"document is over {MAX_DOC_BYTES >> 20} MB", path)
    ext = path.suffix.lower()
    if ext == ".docx":
        import docx

        try:
            paragraphs = [p.text for p in docx.Document(str(path)).paragraphs]
        except Exception as e:  # python-docx raises zipfile/lxml/KeyError types for damaged files
            raise StenoError(f"cannot read .docx ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
                             path) from None
    else:
        body = read_text_file(path, "document")
        if ext in (".md", ".markdown"):
            body = strip_markdown(body)
        paragraphs = re.split(r"\n\s*\n", body)
    sentences = [s for p in paragraphs for s in split_sentences(p)]
    if not sentences:
        raise StenoError("document has no text", path)
    return sentences


def strip_markdown(body: str) -> str:
    """Markdown to the words a person would say: no code, link targets, markup or tables rules."""
    body = re.sub(r"```.*?```", "\n", body, flags=re.S)
    body = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", body)
    body = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", body)
    body = re.sub(r"<[^>\n]+>", " ", body)
    body = re.sub(r"`([^`]*)`", r"\1", body)
    body = re.sub(r"^\s{0,3}(#{1,6}|>|[-*+]|\d+[.)])\s+", "\n", body, flags=re.M)  # each item its own paragraph
    body = re.sub(r"^\s*\|?[-:| ]{3,}\|?\s*$", "", body, flags=re.M)  # table rules
    body = body.replace("|", " ")
    return re.sub(r"(\*\*|__|\*|_)(\S.*?\S|\S)\1", r"\2", body)


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph; a run-on longer than MAX_TEXT_CHARS is cut every MAX_TEXT_WORDS words."""
    out = []
    for s in re.split(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])", " ".join(paragraph.split())):
        words = s.split()
        step = MAX_TEXT_WORDS if len(s) > MAX_TEXT_CHARS else max(len(words), 1)
        for i in range(0, len(words), step):
            piece = " ".join(words[i:i + step])
            if any(c.isalpha() for c in piece):
                out.append(piece)
    return out


def read_texts(source: Path, texts: list[str], rejected: list, sources: list[str]) -> None:
    """A document or a folder of documents."""
    source = Path(source)
    if not source.exists():
        rejected.append((str(source), "not found"))
        return
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    for f in files:
        if f.suffix.lower() not in DOC_EXTS:
            rejected.append((str(f), "not a .txt, .md or .docx document"))
            continue
        try:
            texts.extend(read_document(f))
            sources.append(str(f))
        except StenoError as e:
            rejected.append((str(f), e.problem))
        except OSError as e:
            rejected.append((str(f), f"cannot read ({e.strerror or e})"))


def term_lines(terms: list[str], seed: int) -> list[str]:
    """Training text made from a word list: each term alone, and shuffled lines of eight."""
    rng = random.Random(seed)
    shuffled = terms[:]
    rng.shuffle(shuffled)
    return list(terms) + [", ".join(shuffled[i:i + 8]) for i in range(0, len(shuffled), 8)]


def is_common(word: str) -> bool:
    """An everyday English word, or a regular inflection of one (feels, started, stopping)."""
    from trainer.words import COMMON_WORDS

    if word in COMMON_WORDS:
        return True
    for suffix in ("s", "es", "ed", "d", "ing", "ly", "er", "ers", "est"):
        stem = word[:-len(suffix)]
        if word.endswith(suffix) and len(stem) >= 2:
            doubled = stem[-1] == stem[-2] and stem[:-1] in COMMON_WORDS  # stopped, running
            if stem in COMMON_WORDS or stem + "e" in COMMON_WORDS or doubled:
                return True
    return False


def rare_words(texts: list[str], limit: int = MAX_AUTO_TERMS) -> list[str]:
    """Words of the training text that are not everyday English: the vocabulary to score."""
    counts = Counter(w for t in texts for w in normalize(t).split()
                     if len(w) >= 4 and w.isalpha() and not is_common(w))
    return [w for w, _ in counts.most_common(limit)]


# --------------------------------------------------------------------------- the report


def collect(data, text, word_list, eval_data, eval_fraction: float, seed: int,
            labels: dict[str, str] | None = None) -> DataReport:
    """`labels` names data folders the user knows by another name (a project, not the private
    decrypted copy the trainer reads): every place the report shows a path uses the name."""
    pairs: list = []
    rejected: list[tuple[str, str]] = []
    for source in data:
        read_pairs(Path(source), pairs, rejected)
    pairs = _dedupe(pairs, rejected)

    eval_pairs: list = []
    eval_source = None
    if eval_data is not None:
        read_pairs(Path(eval_data), eval_pairs, rejected)
        eval_pairs = _dedupe(eval_pairs, rejected)
        held = {p.audio.resolve() for p in eval_pairs}
        for p in [p for p in pairs if p.audio.resolve() in held]:
            rejected.append((p.source, "also in the eval set: kept for evaluation only"))
        pairs = [p for p in pairs if p.audio.resolve() not in held]
        eval_source = str(eval_data)
    elif len(pairs) >= MIN_PAIRS and eval_fraction > 0:
        order = list(range(len(pairs)))
        random.Random(seed).shuffle(order)
        n_eval = min(max(2, round(len(pairs) * eval_fraction)), len(pairs) - MIN_PAIRS + 2)
        held = set(order[:n_eval])
        eval_pairs = [p for i, p in enumerate(pairs) if i in held]
        pairs = [p for i, p in enumerate(pairs) if i not in held]

    texts: list[str] = []
    text_sources: list[str] = []
    for source in text:
        read_texts(Path(source), texts, rejected, text_sources)
    terms: list[str] = []
    terms_source = ""
    if word_list is not None:
        from engine.decoding.hints import read_word_list

        try:
            terms = read_word_list(word_list)
            terms_source = f"word list {word_list}"
            texts.extend(term_lines(terms, seed))
        except StenoError as e:
            rejected.append((str(word_list), e.problem))
    # a held-out sentence that is also in the training text would be measured on what was learnt
    held_refs = {normalize(p.text) for p in eval_pairs}
    leaked = [t for t in texts if normalize(t) in held_refs]
    if leaked:
        rejected.append((", ".join(text_sources) or "text",
                         f"{len(leaked)} sentence(s) also in the eval set: left out"))
        texts = [t for t in texts if normalize(t) not in held_refs]
    if len(texts) > MAX_TEXTS:
        rejected.append((", ".join(text_sources),
                         f"{len(texts) - MAX_TEXTS} sentences beyond the first {MAX_TEXTS} left out"))
        texts = texts[:MAX_TEXTS]
    if not terms:
        terms = rare_words([p.text for p in pairs] + texts)
        terms_source = "rare words of the training text"
    shown = lambda t: _shown(t, labels or {})  # noqa: E731
    rejected = [(shown(item), shown(why)) for item, why in rejected]
    for p in pairs + eval_pairs:
        p.source = shown(p.source)
    return DataReport(pairs=pairs, texts=texts, terms=terms, rejected=rejected, eval_pairs=eval_pairs,
                      sources=[shown(str(s)) for s in data], text_sources=text_sources, terms_source=terms_source,
                      eval_source=eval_source, eval_fraction=eval_fraction, seed=seed)


def _shown(text: str, labels: dict[str, str]) -> str:
    """`text` with each labelled folder's path replaced by its name (longest paths first)."""
    for path in sorted(labels, key=len, reverse=True):
        text = text.replace(path, labels[path])
    return text


def _dedupe(pairs: list, rejected: list) -> list:
    seen: dict[Path, str] = {}
    out = []
    for p in pairs:
        key = p.audio.resolve()
        if key in seen:
            rejected.append((p.source, f"duplicate of {seen[key]}"))
            continue
        seen[key] = p.source
        out.append(p)
    return out

