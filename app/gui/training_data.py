"""“Use as training data”: a project's corrected segments become trainer pairs (clip + text).

Only text the user corrected or confirmed can teach the model anything: a segment nobody
checked is the model's own guess, and training on it (and on its rare words as terms)
teaches the model its own mistakes. So the checked segments are taken, and when some are
unchecked the user is asked whether to take those too.
"""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from app.gui.workers import Job, show_error
from app.projects import Project
from engine.errors import StenoError
from engine.text.transcript import Transcript


def spoken(transcript: Transcript) -> list:
    """The segments that could be pairs at all: text, and not flagged as heard on silence."""
    return [s for s in transcript.segments if s.text.strip() and "no-speech" not in s.flags]


def choose_segments(parent: QWidget | None, name: str, transcript: Transcript) -> Transcript | None:
    """The transcript to train on: its checked segments, or all of them when the user says so;
    None when the user cancels. Asks only when some segments were never checked."""
    segments = spoken(transcript)
    checked = [s for s in segments if s.checked]
    if len(checked) == len(segments):
        return transcript
    box = QMessageBox(QMessageBox.Icon.Question, "Use as training data", "", QMessageBox.StandardButton.Cancel,
                      parent)
    box.setObjectName("trainingChoice")
    unchecked = len(segments) - len(checked)
    mistakes = ("The others are the model's own text: training on them would teach the model its own "
                "mistakes, and their unusual words would become terms.")
    take_all = box.addButton(f"Use all {len(segments)}" + (" anyway" if not checked else ""),
                             QMessageBox.ButtonRole.DestructiveRole)
    only = None
    if checked:
        box.setText(f"You corrected or confirmed {len(checked)} of the {len(segments)} segments of “{name}”. "
                    f"{mistakes}\n\nTrain only on the {len(checked)} you checked?")
        only = box.addButton(f"Only the {len(checked)} checked", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(only)
    else:
        box.setText(f"None of the {unchecked} segments of “{name}” has been corrected or confirmed yet. "
                    f"{mistakes}\n\nCorrect the transcript first, or use all of it if it is right as it is.")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    if box.clickedButton() is only and only is not None:
        return Transcript(segments=checked, source=transcript.source, model=transcript.model,
                          duration=transcript.duration, meta=transcript.meta)
    if box.clickedButton() is take_all:
        return transcript
    return None


def training_data_job(parent: QWidget | None, project: Project) -> Job | None:
    """A job saving the chosen segments of `project` as trainer pairs, not yet submitted; None
    when there is nothing to save or the user cancelled (said so already)."""
    try:
        transcript = Project.load(project.folder).load_transcript()
        if transcript is None or not spoken(transcript):
            raise StenoError("project has no transcript to train on yet", project.folder)
    except StenoError as e:
        show_error(parent, "Training data", str(e))
        return None
    chosen = choose_segments(parent, project.name, transcript)
    if chosen is None:
        return None
    return Job(lambda progress, cancel: project.save_training_data(chosen), name="training data")
