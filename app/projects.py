"""Projects: one folder per recording or opened file, saved as the user works.

    steno_home()/projects/<id>/
        project.json             name, dates, status, audio file name, where it came from
        recording.wav | audio.flac   the audio (a recording is written here while it is made)
        transcript.json          the current transcript, with the user's edits
        transcript.original.json what the model wrote, kept to compare with and to revert to
        edits.jsonl              every edit since the last save of transcript.json, appended
                                 at once (so a crash between autosaves loses nothing)
        training/                the corrected transcript as trainer pairs (clip + .txt)

Every JSON is written atomically. Statuses: "recording" (audio still being written),
"transcribing", "ready". A project left "recording" or "transcribing" after the app
stopped without closing properly is what crash recovery offers back.

When the library is encrypted (`app/vault.py`, `docs/privacy.md`) every file here is read
and written through the vault: encrypted on disk, plain in memory. The one exception is a
recording while it is being made: the recorder writes a plain WAV (flushed every 50 ms, so
a crash loses nothing and the header can be repaired), which is encrypted in place as soon
as the project leaves "recording" (stopped, or recovered after a crash). Code that needs a
file name for audio or training clips (decoders, the trainer) gets a decrypted copy in a
private RAM folder from `audio_path` / `training_dir()`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from app import vault
from engine.errors import StenoError
from engine.files import atomic_write_text
from engine.models.registry import steno_home
from engine.text.transcript import Transcript

log = logging.getLogger(__name__)

PROJECT_FILE = "project.json"
TRANSCRIPT_FILE = "transcript.json"
ORIGINAL_FILE = "transcript.original.json"
JOURNAL_FILE = "edits.jsonl"
TRAINING_DIR = "training"
RECORDING_FILE = "recording.wav"
AUDIO_FILE = "audio.flac"
LOCK_FILE = "app.lock"


def projects_root() -> Path:
    return steno_home() / "projects"


def _read_text(path: Path) -> str:
    """A project file's text; its library is the folder above the project folder."""
    return vault.read_bytes(path, _library_of(path)).decode("utf-8")


def _write_text(path: Path, text: str) -> None:
    vault.write_bytes(path, text.encode("utf-8"), _library_of(path))


def _library_of(path: Path) -> Path:
    """project/file -> library; project/training/file (and its temp folder) -> library."""
    path = Path(path)
    return path.parent.parent.parent if path.parent.name.startswith((TRAINING_DIR, f".{TRAINING_DIR}")) \
        else path.parent.parent


def _slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return s[:40] or "project"


@dataclass
class Project:
    folder: Path
    name: str
    created: float
    modified: float
    status: str = "ready"
    audio: str | None = None  # file name inside the folder
    source: str | None = None  # the file the user opened, if any
    duration: float | None = None
    revision: int = 0  # bumped by every edit; transcript.json stores the revision it holds
    preview: str = ""  # the first words, for the project list

    # ------------------------------------------------------------------ create / load

    @classmethod
    def create(cls, name: str, status: str = "ready", source: str | None = None) -> "Project":
        now = time.time()
        stamp = time.strftime("%Y-%m-%d_%H%M%S", time.localtime(now))
        root = projects_root()
        root.mkdir(parents=True, exist_ok=True)
        if vault.status(root) != "plain":
            name_part = "project"  # folder names are not encrypted: keep the user's name inside
        else:
            name_part = _slug(name)
        folder = root / f"{stamp}_{name_part}"
        n = 2
        while folder.exists():
            folder = root / f"{stamp}_{name_part}-{n}"
            n += 1
        folder.mkdir()
        project = cls(folder, name, now, now, status=status, source=source)
        project.save_meta()
        return project

    @classmethod
    def load(cls, folder: Path) -> "Project":
        path = Path(folder) / PROJECT_FILE
        try:
            data = json.loads(_read_text(path))
        except FileNotFoundError:
            raise StenoError("not a Steno project (project.json is missing)", folder) from None
        except (OSError, ValueError) as e:
            raise StenoError(f"project file is unreadable ({e})", path) from None
        if not isinstance(data, dict):
            raise StenoError("project file is not a JSON object", path)
        return cls(Path(folder), str(data.get("name") or Path(folder).name), float(data.get("created", 0)),
                   float(data.get("modified", 0)), status=str(data.get("status", "ready")), audio=data.get("audio"),
                   source=data.get("source"), duration=data.get("duration"), revision=int(data.get("revision", 0)),
                   preview=str(data.get("preview", "")))

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def audio_path(self) -> Path | None:
        """The audio as a readable file: the stored one, or (encrypted library) a decrypted copy
        in a private RAM folder. A recording in progress is plain, so this is its real path."""
        path = self.stored_audio_path
        if path is None or not path.is_file():
            return path
        return vault.plain_view(path, self.folder.parent)

    @property
    def stored_audio_path(self) -> Path | None:
        """Where the audio lies in the project folder (encrypted when the library is)."""
        return self.folder / self.audio if self.audio else None

    def seal_audio(self) -> bool:
        """Encrypt a finished recording in place (a no-op in a plain library or when already done)."""
        path = self.stored_audio_path
        if path is None or not path.is_file():
            return False
        return vault.seal_file(path, self.folder.parent)

    def save_meta(self) -> None:
        data = {"name": self.name, "created": self.created, "modified": self.modified, "status": self.status,
                "audio": self.audio, "source": self.source, "duration": self.duration, "revision": self.revision,
                "preview": self.preview}
        _write_text(self.folder / PROJECT_FILE, json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def set_status(self, status: str) -> None:
        """Save the new status; a recording that is no longer being written is then encrypted
        (status first: a crash in between leaves a plain file that the next unlock seals)."""
        self.status = status
        self.modified = time.time()
        self.save_meta()
        if status != "recording":
            self.seal_audio()

    # -------------------------------------------------------------------- transcript

    def has_transcript(self) -> bool:
        return (self.folder / TRANSCRIPT_FILE).is_file()

    def save_transcript(self, transcript: Transcript, original: bool = False) -> None:
        """Write transcript.json (and the original, once); the edit journal is then folded in."""
        data = transcript.to_dict()
        data["meta"] = {**data.get("meta", {}), "revision": self.revision}
        text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
        if original and not (self.folder / ORIGINAL_FILE).exists():
            _write_text(self.folder / ORIGINAL_FILE, text)
        _write_text(self.folder / TRANSCRIPT_FILE, text)
        vault.remove_file(self.folder / JOURNAL_FILE)
        self.modified = time.time()
        self.preview = transcript.text[:200]
        if transcript.duration:
            self.duration = transcript.duration
        self.save_meta()

    def load_transcript(self) -> Transcript | None:
        """The saved transcript with any journaled edits newer than it applied (crash recovery)."""
        path = self.folder / TRANSCRIPT_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(_read_text(path))
        except (OSError, ValueError) as e:
            raise StenoError(f"transcript is unreadable ({e})", path) from None
        transcript = Transcript.from_dict(data)
        saved_rev = int(transcript.meta.get("revision", 0))
        for rev, row, text in self.read_journal():
            if rev > saved_rev and 0 <= row < len(transcript.segments):
                _apply_text(transcript, row, text)
                self.revision = max(self.revision, rev)
        return transcript

    def original_transcript(self) -> Transcript | None:
        path = self.folder / ORIGINAL_FILE
        if not path.is_file():
            return None
        return Transcript.from_dict(json.loads(_read_text(path)))

    def journal_edit(self, row: int, text: str) -> int:
        """Append one edit to the journal, on disk before this returns; gives its revision."""
        self.revision += 1
        line = json.dumps({"rev": self.revision, "row": row, "text": text}, ensure_ascii=False)
        vault.append_line(self.folder / JOURNAL_FILE, line, self.folder.parent)
        return self.revision

    def read_journal(self) -> list[tuple[int, int, str]]:
        path = self.folder / JOURNAL_FILE
        if not path.is_file():
            return []
        out = []
        for line in vault.read_lines(path, self.folder.parent):
            try:  # a line cut by a crash is skipped, the ones before it still count
                d = json.loads(line)
                out.append((int(d["rev"]), int(d["row"]), str(d["text"])))
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def has_unsaved_edits(self) -> bool:
        return bool(self.read_journal())

    # ------------------------------------------------------------------ training data

    def save_training_data(self, transcript: Transcript) -> Path:
        """The corrected transcript as the trainer's pairs: seg-0001.wav + seg-0001.txt per segment.

        Clips are cut from the project audio at the segment times (16 kHz mono), so what the
        trainer reads is exactly what the user listened to while correcting.
        """
        from engine.audio import SAMPLE_RATE, load_audio
        from engine.files import atomic_dir

        if self.audio_path is None or not self.audio_path.is_file():
            raise StenoError("project has no audio to pair with its transcript", self.folder)
        audio = load_audio(self.audio_path)
        root = self.folder.parent
        written = 0
        with vault.io_lock, atomic_dir(self.folder / TRAINING_DIR) as tmp:  # one lock: not converted halfway
            for i, seg in enumerate(transcript.segments, 1):
                text = " ".join(seg.text.split())
                a, b = int(seg.start * SAMPLE_RATE), int(seg.end * SAMPLE_RATE)
                if not text or b - a < SAMPLE_RATE // 4 or "no-speech" in seg.flags:
                    continue
                buf = io.BytesIO()
                sf.write(buf, audio[a:b], SAMPLE_RATE, subtype="PCM_16", format="WAV")
                vault.write_bytes(tmp / f"seg-{i:04d}.wav", buf.getvalue(), root)
                vault.write_bytes(tmp / f"seg-{i:04d}.txt", (text + "\n").encode("utf-8"), root)
                written += 1
            if not written:
                raise StenoError("transcript has no segments with text to train on", self.folder)
        return self.folder / TRAINING_DIR

    def training_dir(self) -> Path | None:
        """The trainer's folder of pairs (a decrypted copy in a private RAM folder when encrypted)."""
        d = self.folder / TRAINING_DIR
        if not (d.is_dir() and any(d.glob("*.txt"))):
            return None
        return vault.plain_view_dir(d, self.folder.parent)

    # ------------------------------------------------------------------------- other

    def rename(self, name: str) -> None:
        self.name = name.strip() or self.name
        self.modified = time.time()
        self.save_meta()

    def delete(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        vault.drop_views(self.folder)

    def matches(self, query: str) -> bool:
        """Search by name, then by the transcript text (read from disk only when needed)."""
        q = query.strip().lower()
        if not q or q in self.name.lower() or q in self.preview.lower():
            return True
        path = self.folder / TRANSCRIPT_FILE
        try:
            return q in _read_text(path).lower() if path.is_file() else False
        except (OSError, StenoError, ValueError):
            return False


def _apply_text(transcript: Transcript, row: int, text: str) -> None:
    seg = transcript.segments[row]
    seg.text = text
    if "edited" not in seg.flags:
        seg.flags.append("edited")


def dictation_name(when: float, text: str = "", words: int = 6) -> str:
    """A dictation's name: its date and time, then its first words once there are some, so
    a list of dictations can be told apart without opening each."""
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
    first = text.split()
    if not first:
        return f"Dictation {stamp}"
    return f"{stamp} {' '.join(first[:words])}{'…' if len(first) > words else ''}"


def name_dictation(project: Project, transcript: Transcript) -> None:
    """Give a dictation still under its automatic name its first words (a name the user chose stays)."""
    if project.name == dictation_name(project.created) and transcript.text.strip():
        project.rename(dictation_name(project.created, transcript.text))


def list_projects(query: str = "") -> list[Project]:
    """All projects, newest first; damaged folders are skipped with a log line."""
    root = projects_root()
    out = []
    if root.is_dir():
        for folder in root.iterdir():
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            try:
                project = Project.load(folder)
            except StenoError as e:
                log.warning("skipping project: %s", e)
                continue
            if project.matches(query):
                out.append(project)
    out.sort(key=lambda p: p.modified, reverse=True)
    return out


# --------------------------------------------------------------------- audio helpers


def write_audio_flac(path: Path, audio: np.ndarray, rate: int) -> None:
    """The project's copy of opened audio: 16 kHz mono FLAC, written atomically (and encrypted
    in memory first when the library is, so no plain copy ever reaches the disk)."""
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="FLAC", subtype="PCM_16")
    vault.write_bytes(Path(path), buf.getvalue(), _library_of(Path(path)))


def repair_wav_header(path: Path) -> float:
    """Fix the sizes in a WAV header left by a recording that never closed; returns seconds.

    A recording is written with the sizes filled in only on close. The samples are all on
    disk, so a crash leaves a file whose header claims zero length: set the RIFF and data
    sizes from the file size, so every player (not only libsndfile) reads it whole.
    """
    size = path.stat().st_size
    with open(path, "r+b") as f:
        head = f.read(4096)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise StenoError("not a WAV recording", path)
        pos, data_at, fmt = 12, None, None
        while pos + 8 <= len(head):
            cid, clen = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
            if cid == b"fmt ":
                fmt = struct.unpack("<HHIIHH", head[pos + 8:pos + 24])
            if cid == b"data":
                data_at = pos + 8
                break
            pos += 8 + clen + (clen & 1)
        if data_at is None or fmt is None:
            raise StenoError("recording has no audio data chunk", path)
        block = fmt[4] or 1
        data_len = (size - data_at) // block * block
        f.seek(4)
        f.write(struct.pack("<I", data_len + data_at - 8))
        f.seek(data_at - 4)
        f.write(struct.pack("<I", data_len))
    return data_len / block / fmt[2]


# -------------------------------------------------------------------- crash detection


def claim_session() -> dict | None:
    """Mark this app session as running; returns the previous session's record if it crashed.

    The lock file holds our pid and the open project. A clean exit removes it, so a lock
    whose process is gone means the last session ended without closing properly.
    """
    path = steno_home() / LOCK_FILE
    previous = None
    if path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = {}
        pid = previous.get("pid") if isinstance(previous, dict) else None
        if isinstance(pid, int) and pid != os.getpid() and vault.pid_alive(pid):
            previous = None  # another Steno is running: not a crash
    update_session(None)
    return previous


def update_session(project: Project | None) -> None:
    data = {"pid": os.getpid(), "started": time.time(), "project": str(project.folder) if project else None}
    atomic_write_text(steno_home() / LOCK_FILE, json.dumps(data) + "\n")


def release_session() -> None:
    path = steno_home() / LOCK_FILE
    if path.exists():
        path.unlink()


def unfinished_projects() -> list[Project]:
    """Projects a crash left behind: a recording never stopped, a transcription never done,
    or edits journaled but not yet folded into transcript.json."""
    return [p for p in list_projects() if p.status in ("recording", "transcribing") or p.has_unsaved_edits()]


# -------------------------------------------------------------------- encryption at rest


def library_status() -> str:
    """plain | encrypted | encrypting | decrypting (see app/vault.py)."""
    return vault.status(projects_root())


def library_needs_passphrase() -> bool:
    return vault.needs_passphrase(projects_root())


def unlock_library(passphrase: str) -> None:
    """Raises vault.WrongPassphrase, touching nothing, when the passphrase does not fit."""
    vault.unlock(projects_root(), passphrase)


def _in_use(path: Path, statuses: tuple[str, ...] = ("recording", "transcribing")) -> bool:
    """A project's audio that a recording may still be writing, or a transcription reading by
    its plain name: left plain by a conversion; sealed when the project's status moves on."""
    if path.parent.name == TRAINING_DIR or path.name == PROJECT_FILE or path.suffix in (".json", ".jsonl"):
        return False
    try:
        project = Project.load(path.parent)
    except StenoError:
        return False
    return project.status in statuses and path.name in (project.audio, RECORDING_FILE)


def _unrepaired_recording(path: Path) -> bool:
    """At start-up nothing is being written, but a killed recording's WAV header is repaired
    in place by recovery, so it stays plain until then."""
    return _in_use(path, ("recording",))


def encrypt_library(passphrase: str, progress: vault.Progress | None = None) -> int:
    """Turn encryption on and encrypt every project file in place; returns the files converted."""
    return vault.enable(projects_root(), passphrase, skip=_in_use, progress=progress)


def decrypt_library(passphrase: str, progress: vault.Progress | None = None) -> int:
    """Turn encryption off: every project file back to plain, then the key file removed."""
    return vault.disable(projects_root(), passphrase, progress=progress)


def change_library_passphrase(old: str, new: str) -> None:
    vault.change_passphrase(projects_root(), old, new)


def finish_library_conversion(progress: vault.Progress | None = None, at_start: bool = True) -> int:
    """Finish a conversion a crash (or closing the app) interrupted, and seal stray plain files.
    At start-up nothing is recording or transcribing; later (at_start=False) their audio waits."""
    return vault.finish(projects_root(), skip=_unrepaired_recording if at_start else _in_use, progress=progress)
