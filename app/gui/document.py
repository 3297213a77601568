"""The open document: one project's transcript in the editor, with its title, player, export and copy.

Every edit is journaled at once and the whole transcript saved shortly after, so a crash loses
no edit; the player follows the editor, and the editor highlights what is playing.
"""

from __future__ import annotations

import copy
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from app import projects as P
from app.gui.controls import PlayerBar
from app.gui.editor import TranscriptEditor
from app.gui.player import Player
from app.gui.prefs import remember
from app.gui.workers import Job, JobRunner, show_error
from app.projects import Project
from app.settings import AppSettings
from engine.errors import StenoError
from engine.text.exporters import FORMATS, export, render
from engine.text.transcript import Segment, Transcript

AUTOSAVE_MS = 800


VOICE_SECONDS = 60.0  # a saved voice is made from at most about this much of the speaker's speech


class DocumentPane(QWidget):
    """The right side of the Transcribe tab: which project is open, and what can be done with its text."""

    message = Signal(str, int)  # for the status bar: text, milliseconds
    show_requested = Signal()  # the user should see this pane now

    def __init__(self, settings: AppSettings, io: JobRunner, output_stream=None, parent=None):
        super().__init__(parent)
        self.settings = settings
        self.io = io  # audio loading
        self.project: Project | None = None
        self.player = Player(output_stream, self)
        self._autosave_timer = QTimer(self, singleShot=True, interval=AUTOSAVE_MS)
        self._autosave_timer.timeout.connect(self.autosave)

        self.title = QLabel("No project open")
        self.title.setObjectName("projectTitle")
        self.export_btn = QToolButton(text="Export")
        self.export_btn.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.export_btn.setToolTip("Save the transcript as TXT, SRT, VTT, DOCX or JSON (Ctrl+E)")
        self.copy_btn = QToolButton(text="Copy text")
        self.copy_btn.setToolTip("Copy the transcript to the clipboard (Ctrl+Shift+C)")
        self.copy_btn.clicked.connect(lambda: self.copy_to_clipboard())  # `checked` is not a format
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.copy_btn)
        head.addWidget(self.export_btn)
        self.player_bar = PlayerBar()
        self.player_bar.set_unavailable(self.player.unavailable)
        self.editor = TranscriptEditor()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(head)
        lay.addWidget(self.player_bar)
        lay.addWidget(self.editor, 1)
        self._wire()

    def _wire(self) -> None:
        self.player.position_changed.connect(self.player_bar.set_position)
        self.player.position_changed.connect(self.editor.show_position)
        self.player.state_changed.connect(lambda s: self.player_bar.set_playing(s == "playing"))
        self.player.failed.connect(lambda m: self.message.emit(m, 8000))
        self.player_bar.play_clicked.connect(self.player.toggle)
        self.player_bar.seek.connect(self.player.seek)
        self.player_bar.skip.connect(self.player.skip)
        self.player_bar.speed_changed.connect(self.player.set_speed)
        self.editor.seek_requested.connect(self._seek_to_segment)
        self.editor.model.text_changed.connect(self._edited)
        self.editor.save_voice_requested.connect(self.save_voice)
        self.editor.relabel_requested.connect(self.relabel_speakers)

    # ------------------------------------------------------------------ what is shown

    def open(self, project: Project) -> bool:
        """Show a project (saving the current one first); False, said so, when it cannot be read."""
        self.flush_autosave()
        try:
            project = Project.load(project.folder)
            transcript = project.load_transcript()
        except StenoError as e:
            show_error(self.window(), "Open project", str(e))
            return False
        self.project = project
        self.editor.set_transcript(transcript or Transcript())
        if project.has_unsaved_edits() and transcript is not None:
            project.save_transcript(transcript)  # fold the recovered edits in
        self.title.setText(project.name)
        self.show_requested.emit()
        P.update_session(project)
        self.load_player(project)
        return True

    def show_recording(self, project: Project, transcript: Transcript, live_text: bool) -> None:
        """Show the project being recorded; `transcript` receives the dictated text as it comes."""
        self.project = project
        self.player.load(None)
        if transcript is not self.editor.transcript:
            self.editor.set_transcript(transcript)
        project.save_transcript(transcript)
        self.title.setText(f"{project.name} (recording)")
        self.editor.placeholder.setText("Recording… the text appears after each pause." if live_text else
                                        "Recording… the transcript follows when you stop.")
        self.show_requested.emit()
        P.update_session(project)

    def append_dictated(self, segments: list[Segment]) -> None:
        """Add live text (into a template's fields, or as new rows) and save it at once: the speaker
        may never stop, so waiting for the debounce could lose it."""
        self.editor.append_segments(segments)
        if self.project is not None:
            self.project.save_transcript(self.editor.transcript)

    def set_title(self, text: str) -> None:
        self.title.setText(text)

    def set_placeholder(self, text: str) -> None:
        """What the empty editor says (recording, transcribing, nothing heard)."""
        self.editor.placeholder.setText(text)

    def has_fields(self) -> bool:
        """Whether the open transcript is a template: dictation then fills its fields."""
        return bool(self.editor.model.fields())

    def is_empty(self) -> bool:
        return not self.editor.transcript.segments

    def project_deleted(self, project: Project) -> None:
        """Close the document if it shows `project`, which no longer exists."""
        if self.project is not None and self.project.folder == project.folder:
            self._autosave_timer.stop()
            self.project = None
            self.editor.set_transcript(None)
            self.player.load(None)
            self.title.setText("No project open")

    def find(self, replace: bool = False) -> None:
        self.show_requested.emit()
        self.editor.find_bar.open_bar(replace=replace)

    def close_down(self) -> None:
        """The window closes: stop the sound and save what is pending."""
        self.player.pause()
        self.flush_autosave()

    # ------------------------------------------------------------------ saved voices

    def save_voice(self, row: int, name: str | None = None) -> Job | None:
        """Save the voice of row's speaker (from all its rows, up to VOICE_SECONDS) under a name
        the user gives; later transcripts call that voice by it, and so does this one now."""
        segs = self.editor.model.segments
        if not 0 <= row < len(segs) or not segs[row].speaker:
            return None
        if len(self.player.audio) == 0:
            self.message.emit("this project's audio is not loaded: a voice cannot be saved", 8000)
            return None
        speaker = segs[row].speaker
        if name is None:
            name = self.editor.ask_name("Save voice", speaker)
        if not name:
            return None
        spans, total = [(segs[row].start, segs[row].end)], segs[row].end - segs[row].start
        for seg in segs:
            if seg.speaker == speaker and seg is not segs[row] and total < VOICE_SECONDS:
                spans.append((seg.start, seg.end))
                total += seg.end - seg.start
        audio = self.player.audio

        def work(progress, cancel):
            from app.speaker_profiles import add_profile
            from engine.speakers.profiles import Profile, voice_of

            embedding, seconds = voice_of(audio, spans)
            add_profile(Profile(name, embedding, seconds))
            return seconds

        job = Job(work, name="save voice")
        job.done.connect(lambda seconds: self._voice_saved(speaker, name, seconds))
        job.failed.connect(lambda m: show_error(self.window(), "Save voice", m))
        return self.io.submit(job)

    def _voice_saved(self, speaker: str, name: str, seconds: float) -> None:
        self.editor.rename_speaker(speaker, name)
        self.message.emit(f"saved the voice of “{name}” ({seconds:.0f} s of speech): later transcripts "
                          "call it by this name", 8000)

    def relabel_speakers(self, count: int) -> Job | None:
        """Label who speaks again on the open transcript, `count` speakers (0: find how many),
        from its audio, without transcribing again: the text stays, rows are split where the
        speaker changes, saved voices name theirs. One undo step; an edit made meanwhile wins
        (nothing is replaced then)."""
        segs = self.editor.model.segments
        if not segs:
            return None
        if len(self.player.audio) == 0:
            self.message.emit("this project's audio is not loaded: speakers cannot be labelled", 8000)
            return None
        audio, before = self.player.audio, copy.deepcopy(segs)

        def work(progress, cancel):
            from app.gui.workers import JobCancelled
            from app.speaker_profiles import load_profiles
            from engine.speakers.labels import label_speakers

            def check() -> None:
                if cancel():
                    raise JobCancelled()

            try:
                profiles = load_profiles()
            except StenoError:
                profiles = []  # a locked library: speakers are numbered
            labelled, found = label_speakers(audio, copy.deepcopy(before), count or None, profiles=profiles,
                                             progress=lambda f: progress(f, "telling speakers apart"), check=check)
            return labelled, found.speakers

        job = Job(work, name="label speakers")
        job.done.connect(lambda result: self._relabelled(before, *result))
        job.failed.connect(lambda m: show_error(self.window(), "Label speakers", m))
        return self.io.submit(job)

    def _relabelled(self, before: list[Segment], segments: list[Segment], found: int) -> None:
        if not found:
            self.message.emit("no speech long enough to tell speakers apart: nothing was changed", 10000)
            return
        if self.editor.model.segments != before:
            self.message.emit("the transcript changed while speakers were being labelled: nothing was "
                              "replaced; label them again", 10000)
            return
        self.editor.replace_segments(segments, f"label {found} speaker{'s' * (found != 1)}")
        self.message.emit(f"{found} speaker{'s' * (found != 1)} labelled", 8000)

    # ------------------------------------------------------------------ playback

    def load_player(self, project: Project) -> None:
        """Load the project's audio in the background; the player stays empty without one."""
        path = project.audio_path
        self.player.load(None)
        self.player_bar.set_duration(0)
        if path is None or not path.is_file():
            return

        def work(progress, cancel):
            from engine.audio import load_audio

            return load_audio(path)

        job = Job(work, name="load audio")
        job.done.connect(lambda audio: self._player_loaded(project, audio))
        job.failed.connect(lambda m: self.message.emit(f"cannot play this project's audio: {m}", 10000))
        self.io.submit(job)

    def _player_loaded(self, project: Project, audio) -> None:
        if self.project is not None and self.project.folder == project.folder:
            self.player.load(audio)
            self.player_bar.set_duration(self.player.duration)

    def _seek_to_segment(self, seconds: float, play: bool) -> None:
        self.player.seek(seconds)
        if play:
            self.player.play()

    def change_speed(self, step: int) -> None:
        """One step slower (-1) or faster (1), shown on the player bar."""
        self.player_bar.set_speed(self.player.faster(step))

    # ------------------------------------------------------------------ autosave

    def _edited(self, row: int, text: str) -> None:
        """Every edit is journaled at once; the whole transcript is saved shortly after."""
        if self.project is None:
            return
        try:
            self.project.journal_edit(row, text)
        except OSError as e:
            show_error(self.window(), "Autosave", f"cannot save the edit ({e})")
        self._autosave_timer.start()

    def autosave(self) -> None:
        if self.project is None:
            return
        try:
            self.project.save_transcript(self.editor.transcript)
        except OSError as e:
            show_error(self.window(), "Autosave", f"cannot save {self.project.folder} ({e}); your edits are kept "
                                                  "in its edits.jsonl")

    def flush_autosave(self) -> None:
        """Save now what the debounce would save shortly (before the project is left or read)."""
        if self._autosave_timer.isActive():
            self._autosave_timer.stop()
            self.autosave()

    # ------------------------------------------------------------------ export

    def export_to(self, path: Path, fmt: str | None = None) -> Path:
        self.flush_autosave()
        return export(self.editor.transcript, path, fmt)

    def export_dialog(self, fmt: str | None) -> None:
        if not self.editor.transcript.segments:
            self.message.emit("nothing to export yet", 5000)
            return
        fmt = fmt or "docx"
        name = (self.project.name if self.project else "transcript") + f".{fmt}"
        start = str(Path(self.settings.last_folder or Path.home()) / name)
        filters = ";;".join(f"{f.upper()} (*.{f})" for f in FORMATS)
        path, chosen = QFileDialog.getSaveFileName(self.window(), "Export transcript", start, filters,
                                                   f"{fmt.upper()} (*.{fmt})")
        if not path:
            return
        fmt = chosen.split(" ")[0].lower() if chosen else fmt
        if Path(path).suffix.lower().lstrip(".") != fmt:
            path += f".{fmt}"
        try:
            out = self.export_to(Path(path), fmt)
        except StenoError as e:
            show_error(self.window(), "Export", str(e))
            return
        remember(self.settings, "last_folder", str(Path(path).parent))
        self.message.emit(f"exported {out}", 8000)

    def copy_to_clipboard(self, fmt: str = "txt") -> str:
        text = render(self.editor.transcript, fmt).decode("utf-8")
        QGuiApplication.clipboard().setText(text)
        self.message.emit("transcript copied to the clipboard", 4000)
        return text
