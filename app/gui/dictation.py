"""Dictation: the record panel, the recorder and live text, recording into the open document.

A recording is a project from its first sample: the audio grows on disk and live text is saved
as it comes, so a crash loses neither. Push-to-talk listens to the whole application, so F8
records whatever has the focus.
"""

from __future__ import annotations

import copy
import logging

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QApplication, QGroupBox, QVBoxLayout

from app import projects as P
from app.gui.controls import RecordPanel
from app.gui.document import DocumentPane
from app.gui.live import LiveDictation
from app.gui.prefs import remember
from app.gui.recorder import Recorder, input_devices
from app.gui.workers import JobRunner, show_error
from app.projects import Project
from app.service import TranscriptionService
from app.settings import AppSettings
from engine.text.transcript import Transcript

log = logging.getLogger(__name__)

PTT_KEY = Qt.Key.Key_F8


class DictationPane(QGroupBox):
    """The "Dictate" box: record, pause, stop; the text goes into `document`."""

    message = Signal(str, int)  # for the status bar: text, milliseconds
    transcribe_requested = Signal(object)  # Project: stopped without live text, to be transcribed whole
    recorded = Signal(object)  # Project: the recording and its live text are saved, the project is ready

    def __init__(self, settings: AppSettings, service: TranscriptionService, engine: JobRunner,
                 document: DocumentPane, input_stream=None, parent=None):
        super().__init__("Dictate", parent)
        self.settings = settings
        self.service = service
        self.document = document
        self.recorder = Recorder(input_stream, self)
        self.live = LiveDictation(service, engine, parent=self)
        self.record_panel = RecordPanel()
        self.record_panel.live.setChecked(settings.live_dictation)
        self.record_panel.ptt.setChecked(settings.push_to_talk)
        QVBoxLayout(self).addWidget(self.record_panel)
        self._wire()
        self.refresh_devices(input_stream is not None)
        QApplication.instance().installEventFilter(self)

    def _wire(self) -> None:
        rp = self.record_panel
        rp.record_clicked.connect(self.start_recording)
        rp.pause_clicked.connect(lambda: self.recorder.resume() if self.recorder.state == "paused"
                                 else self.recorder.pause())
        rp.stop_clicked.connect(self.stop_recording)
        rp.live.toggled.connect(lambda on: remember(self.settings, "live_dictation", on))
        rp.ptt.toggled.connect(lambda on: remember(self.settings, "push_to_talk", on))
        rp.device.activated.connect(lambda i: remember(self.settings, "input_device", rp.device.itemData(i)))
        self.recorder.level.connect(rp.meter.set_value)
        self.recorder.elapsed.connect(rp.set_elapsed)
        self.recorder.state_changed.connect(rp.set_state)
        self.recorder.audio.connect(self.live.add)
        self.recorder.failed.connect(lambda m: show_error(self.window(), "Recording", m))
        self.live.segments.connect(self.document.append_dictated)
        self.live.failed.connect(lambda m: self.message.emit(f"live text stopped: {m}", 10000))
        self.live.idle.connect(self._recording_finished)

    def refresh_devices(self, fake: bool = False) -> None:
        """List the microphones; with none, recording is off and the panel says why."""
        if fake:
            self.record_panel.set_devices([(0, "test input")], 0, None)
            return
        devices, reason = input_devices()
        self.record_panel.set_devices(devices, self.settings.input_device, reason)

    @property
    def recording(self) -> bool:
        """From start to stop, paused included."""
        return self.recorder.state != "idle"

    def toggle_recording(self) -> None:
        if self.recording:
            self.stop_recording()
        else:
            self.start_recording()

    def start_recording(self) -> bool:
        if self.record_panel.unavailable or self.recording:
            return False
        document = self.document
        document.flush_autosave()
        # Dictating into a template fills its fields (live text), in its own project while
        # that has no audio yet; a second recording continues in a copy, keeping the first.
        current = document.project
        template = current is not None and document.has_fields()
        reuse = template and current.audio is None
        project = current if reuse else Project.create(
            current.name if template else "Dictation", status="recording")
        if not template:  # named by its date and time, and by its first words when it has some
            project.name = P.dictation_name(project.created)
        project.status, project.audio = "recording", P.RECORDING_FILE
        project.save_meta()
        self.recorder.start(project.audio_path, self.record_panel.current_device())
        if not self.recording:  # failed to start: said so already
            if reuse:
                project.status, project.audio = "ready", None
                project.save_meta()
            else:
                project.delete()
            return False
        if template:
            transcript = document.editor.transcript if reuse else copy.deepcopy(document.editor.transcript)
            transcript.source = str(project.audio_path)
        else:
            transcript = Transcript(source=str(project.audio_path))
        live_text = self.record_panel.live.isChecked()
        document.show_recording(project, transcript, live_text)
        if live_text or template:
            self.live.start()
        return True

    def stop_recording(self) -> None:
        if not self.recording:
            return
        path = self.recorder.stop()
        project = self.document.project
        project.duration = self.recorder.seconds
        project.save_meta()
        self.document.set_title(project.name)
        if self.live.active:
            self.message.emit("finishing the last sentence…", 5000)
            self.live.finish()  # -> _recording_finished
        else:
            project.set_status("transcribing")
            self.document.set_placeholder("Transcribing the recording…")
            self.transcribe_requested.emit(project)
        log.info("recording saved: %s", path)

    def _recording_finished(self) -> None:
        """The live text of a stopped recording is complete: it is the project's transcript."""
        project = self.document.project
        if project is None or project.status != "recording":
            return
        transcript = self.document.editor.transcript
        transcript.duration = project.duration
        transcript.model = transcript.model or self.service.loaded_text.split(":")[0] or None
        P.name_dictation(project, transcript)
        self.document.set_title(project.name)
        project.save_transcript(transcript, original=True)
        project.set_status("ready")
        self.document.set_placeholder("Nothing was transcribed: no speech was heard.")
        self.document.load_player(project)
        self.recorded.emit(project)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        """Push-to-talk: hold F8 to record (anywhere in the app), release to pause."""
        if (event.type() in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and event.key() == PTT_KEY
                and self.record_panel.ptt.isChecked() and not event.isAutoRepeat()):
            if event.type() == QEvent.Type.KeyPress:
                if self.recording:
                    self.recorder.resume()
                else:
                    self.start_recording()
            else:
                self.recorder.pause()
            return True
        return super().eventFilter(obj, event)

    def close_down(self) -> None:
        """The window closes: a recording stops with its file complete (transcription is offered next
        time), and F8 is no longer taken."""
        if self.recording:
            self.recorder.stop()
        QApplication.instance().removeEventFilter(self)
