"""The recording panel and the playback bar: controls only; the window wires them to the
Recorder and Player, so each can be tested (and reused) on its own."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QStyle,
    QToolButton,
    QWidget,
)

from app.gui.player import SPEEDS
from engine.text.exporters import clock


class LevelMeter(QWidget):
    """Input level as a bar: green, amber near the top, red when clipping."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.value = 0.0
        self.setMinimumHeight(10)
        self.setAccessibleName("input level")

    def sizeHint(self):
        return QSize(160, 12)

    def set_value(self, value: float) -> None:
        # Fall back slowly so short peaks stay visible.
        self.value = value if value >= self.value else max(value, self.value - 0.08)
        self.update()

    def paintEvent(self, event):
        p = QPainter(self)
        r = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        p.setPen(self.palette().color(QPalette.ColorRole.Mid))
        p.setBrush(self.palette().color(QPalette.ColorRole.Base))
        p.drawRoundedRect(r, 3, 3)
        color = QColor("#2e9d4f") if self.value < 0.8 else QColor("#e0a020") if self.value < 0.97 else QColor("#d03030")
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(color)
        p.drawRoundedRect(QRectF(r.x() + 1, r.y() + 1, max(0.0, (r.width() - 2) * self.value), r.height() - 2), 2, 2)


class RecordPanel(QWidget):
    record_clicked = Signal()
    pause_clicked = Signal()
    stop_clicked = Signal()
    availability_changed = Signal(object)  # why recording is off, or None when it works

    def __init__(self, parent=None):
        super().__init__(parent)
        self.device = QComboBox()
        self.device.setToolTip("Microphone")
        self.device.setAccessibleName("input device")
        self.record = QPushButton("● Record")
        self.record.setToolTip("Start recording a new dictation (Ctrl+R)")
        self.pause = QPushButton("Pause")
        self.stop = QPushButton("■ Stop")
        self.stop.setToolTip("Stop and finish the transcript (Ctrl+R)")
        self.meter = LevelMeter()
        self.clock = QLabel("00:00")
        self.clock.setObjectName("recordClock")
        self.live = QCheckBox("Live text")
        self.live.setToolTip("Transcribe each sentence as soon as you pause")
        self.ptt = QCheckBox("Push-to-talk (hold F8)")
        self.ptt.setToolTip("Record only while F8 is held down")
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.reason.setObjectName("reason")
        self.reason.hide()
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.device, 0, 0, 1, 3)
        buttons = QHBoxLayout()
        for b in (self.record, self.pause, self.stop):
            buttons.addWidget(b)
        grid.addLayout(buttons, 1, 0, 1, 3)
        grid.addWidget(self.meter, 2, 0, 1, 2)
        grid.addWidget(self.clock, 2, 2, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.live, 3, 0)
        grid.addWidget(self.ptt, 3, 1, 1, 2)
        grid.addWidget(self.reason, 4, 0, 1, 3)
        self.record.clicked.connect(self.record_clicked)
        self.pause.clicked.connect(self.pause_clicked)
        self.stop.clicked.connect(self.stop_clicked)
        self.unavailable: str | None = None
        self.set_state("idle")

    def set_devices(self, devices: list[tuple[int, str]], current: int | None, reason: str | None) -> None:
        self.device.clear()
        for index, name in devices:
            self.device.addItem(name, index)
        if current is not None:
            i = self.device.findData(current)
            if i >= 0:
                self.device.setCurrentIndex(i)
        self.unavailable = reason
        self.reason.setText(f"Recording is off: {reason}. Opening files still works." if reason else "")
        self.reason.setVisible(bool(reason))
        self.set_state("idle")
        self.availability_changed.emit(reason)

    def current_device(self) -> int | None:
        return self.device.currentData()

    def set_state(self, state: str) -> None:
        can = self.unavailable is None
        self.record.setEnabled(can and state == "idle")
        self.pause.setEnabled(state in ("recording", "paused"))
        self.pause.setText("Resume" if state == "paused" else "Pause")
        self.stop.setEnabled(state in ("recording", "paused"))
        self.device.setEnabled(can and state == "idle")
        self.ptt.setEnabled(can)
        self.live.setEnabled(state == "idle")

    def set_elapsed(self, seconds: float) -> None:
        self.clock.setText(clock(seconds))


class PlayerBar(QWidget):
    """Play/pause, back/forward, a position slider, the time and the speed."""

    play_clicked = Signal()
    seek = Signal(float)
    skip = Signal(float)
    speed_changed = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        icon = self.style().standardIcon
        self.icons = {True: icon(QStyle.StandardPixmap.SP_MediaPause), False: icon(QStyle.StandardPixmap.SP_MediaPlay)}
        self.play = QToolButton(icon=self.icons[False])
        self.play.setToolTip("Play / pause (Ctrl+Space)")
        self.play.setAccessibleName("play or pause")
        self.back = QToolButton(icon=icon(QStyle.StandardPixmap.SP_MediaSeekBackward))
        self.back.setToolTip("Back 5 seconds (Alt+Left)")
        self.back.setAccessibleName("back 5 seconds")
        self.fwd = QToolButton(icon=icon(QStyle.StandardPixmap.SP_MediaSeekForward))
        self.fwd.setToolTip("Forward 5 seconds (Alt+Right)")
        self.fwd.setAccessibleName("forward 5 seconds")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setAccessibleName("position")
        self.time = QLabel("00:00 / 00:00")
        self.speed = QComboBox()
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.setToolTip("Playback speed, same pitch (Ctrl+[ slower, Ctrl+] faster)")
        self.reason = QLabel()
        self.reason.setObjectName("reason")
        self.reason.hide()
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (self.back, self.play, self.fwd):
            lay.addWidget(w)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.time)
        lay.addWidget(self.speed)
        lay.addWidget(self.reason)
        self.play.clicked.connect(self.play_clicked)
        self.back.clicked.connect(lambda: self.skip.emit(-5.0))
        self.fwd.clicked.connect(lambda: self.skip.emit(5.0))
        self.slider.sliderMoved.connect(lambda v: self.seek.emit(v / 10.0))
        self.speed.currentIndexChanged.connect(lambda i: self.speed_changed.emit(self.speed.itemData(i)))
        self.duration = 0.0

    def set_duration(self, seconds: float) -> None:
        self.duration = seconds
        self.slider.setRange(0, int(seconds * 10))
        self.set_position(0.0)

    def set_position(self, seconds: float) -> None:
        if not self.slider.isSliderDown():
            self.slider.setValue(int(seconds * 10))
        self.time.setText(f"{clock(seconds)} / {clock(self.duration)}")

    def set_playing(self, playing: bool) -> None:
        self.play.setIcon(self.icons[playing])

    def set_speed(self, speed: float) -> None:
        i = self.speed.findData(speed)
        if i >= 0 and i != self.speed.currentIndex():
            self.speed.blockSignals(True)
            self.speed.setCurrentIndex(i)
            self.speed.blockSignals(False)

    def set_unavailable(self, reason: str | None) -> None:
        self.reason.setText("no audio output" if reason else "")
        self.reason.setToolTip(f"Playback is off: {reason}" if reason else "")
        self.reason.setVisible(bool(reason))
        self.play.setEnabled(not reason)
