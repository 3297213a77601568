"""The transcript editor: timed segments, edited in place, with the audio one click away.

Each segment is a row (time, text). Text is edited in the cell; every change goes through
a QUndoStack command, so undo/redo, replace-all and the autosave journal all see the same
stream of "row N now reads X" changes. Words the model was unsure of are underlined in
orange while the words still spell the segment (once the user rewrites a segment, it has
been checked). A pause longer than the engine's paragraph rule starts a new paragraph:
the row gets a rule above it and a pilcrow, exactly where TXT/DOCX exports break.

A transcript started from a template (app/templates.py) has fields: Tab / Shift+Tab (or
the spoken "next field" / "previous field") move between them, and dictated text fills
the current one. Fields are found in the row text each time, so they need no state that
undo or autosave could get out of step with.
"""

from __future__ import annotations

import html
import re

from PySide6.QtCore import QAbstractTableModel, QEvent, QModelIndex, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QAction,
    QKeySequence,
    QPalette,
    QTextDocument,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui import theme
from app.gui.segment_ops import merge_segments, new_segment_after, split_segment
from app.gui.workers import show_error
from app.templates import FieldSpot, fill, find_fields, template_rows
from engine.errors import StenoError
from engine.text.commands import FieldMove, split_fields
from engine.text.doses import KEY_CONFIDENCE, is_key_word
from engine.text.exporters import LOW_CONFIDENCE, clock
from engine.text.transcript import PARAGRAPH_PAUSE_S, Segment, Transcript

TIME_COL, TEXT_COL = 0, 1
PARA_GAP = 10  # extra pixels above a paragraph's first row
FRAME = 3  # pixels of selection colour round the playing row when it is selected


def word_at(text: str, char: int) -> str:
    """The word of `text` at (or just before) character `char`, without the punctuation
    around it ("amlodipine," -> "amlodipine"); "" on a space between words."""
    for m in re.finditer(r"[\w][\w'’.-]*[\w]|[\w]", text):
        if m.start() <= char <= m.end():
            return m.group()
    return ""


def words_spell(seg: Segment) -> bool:
    """The model's words still match the text: their confidences still mean something."""
    return bool(seg.words) and " ".join(w.text.strip() for w in seg.words) == " ".join(seg.text.split())


class EditText(QUndoCommand):
    def __init__(self, model: "TranscriptModel", row: int, old: str, new: str):
        super().__init__(f"edit segment {row + 1}")
        self.model, self.row, self.old, self.new = model, row, old, new

    def redo(self):
        self.model.set_text(self.row, self.new)

    def undo(self):
        self.model.set_text(self.row, self.old)


class ReplaceRows(QUndoCommand):
    """Rows `row`.. replaced by other segments (a split, a merge, an insert), undoable."""

    def __init__(self, model: "TranscriptModel", text: str, row: int, old: list[Segment], new: list[Segment]):
        super().__init__(text)
        self.model, self.row, self.old, self.new = model, row, old, new

    def redo(self):
        self.model.replace_rows(self.row, len(self.old), self.new)

    def undo(self):
        self.model.replace_rows(self.row, len(self.new), self.old)


def saved_voice_names() -> set[str]:
    """Names of the saved voices (none when they cannot be read now: a locked library)."""
    from app.speaker_profiles import load_profiles

    try:
        return {p.name for p in load_profiles()}
    except StenoError:
        return set()


class SetSpeakers(QUndoCommand):
    """Speaker names of some rows changed (a rename everywhere, a row given to another speaker)."""

    def __init__(self, model: "TranscriptModel", text: str, changes: list[tuple[int, str | None, str | None]]):
        super().__init__(text)
        self.model, self.changes = model, changes  # (row, old name, new name)

    def redo(self):
        self.model.set_speakers([(row, new) for row, _, new in self.changes])

    def undo(self):
        self.model.set_speakers([(row, old) for row, old, _ in self.changes])


class TranscriptModel(QAbstractTableModel):
    text_changed = Signal(int, str)  # row, new text: for the autosave journal
    rows_replaced = Signal()  # segments were split, merged or inserted: the journal cannot say so, save all

    def __init__(self, undo: QUndoStack, parent=None):
        super().__init__(parent)
        self.undo = undo
        self.transcript = Transcript()
        self.playing_row = -1
        self.find_pattern: re.Pattern | None = None
        self.template: list = []  # each row's parsed template line, when made from a template
        self.field_key: tuple[int, int] | None = None  # the current field (row, index), highlighted

    def set_transcript(self, transcript: Transcript) -> None:
        self.beginResetModel()
        self.transcript = transcript
        self.playing_row = -1
        self.template = template_rows(transcript)
        self.field_key = None
        self.endResetModel()

    def row_fields(self, row: int) -> list[FieldSpot]:
        if not 0 <= row < min(len(self.template), len(self.segments)):
            return []
        return find_fields(row, self.template[row], self.segments[row].text)

    def fields(self) -> list[FieldSpot]:
        """Every field still in the text, in reading order."""
        return [f for row in range(min(len(self.template), len(self.segments))) for f in self.row_fields(row)]

    def set_field(self, key: tuple[int, int] | None) -> None:
        old, self.field_key = self.field_key, key
        for k in {old, key} - {None}:
            if 0 <= k[0] < len(self.segments):
                self.dataChanged.emit(self.index(k[0], 0), self.index(k[0], 1))

    @property
    def segments(self) -> list[Segment]:
        return self.transcript.segments

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.segments)

    def columnCount(self, parent=QModelIndex()):
        return 2

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return ("Time", "Text")[section]
        return None

    def paragraph_start(self, row: int) -> bool:
        """A long pause, or another speaker's turn, starts a paragraph."""
        if row <= 0:
            return True
        seg, before = self.segments[row], self.segments[row - 1]
        return seg.start - before.end > PARAGRAPH_PAUSE_S or seg.speaker != before.speaker

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        seg = self.segments[index.row()]
        if index.column() == TIME_COL:
            template_row = index.row() < len(self.template)  # its times are made up: do not show them
            if role == Qt.ItemDataRole.DisplayRole:
                mark = "¶ " if self.paragraph_start(index.row()) else "  "
                shown = mark if template_row else f"{mark}{clock(seg.start)}"
                return f"{shown}\n{seg.speaker}" if seg.speaker else shown
            if role == Qt.ItemDataRole.ToolTipRole:
                if template_row:
                    return "A template line. Tab / Shift+Tab or “next field” / “previous field” move between fields."
                return f"{seg.start:.2f}–{seg.end:.2f} s. Click to play from here."
        else:
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
                return seg.text
            if role == Qt.ItemDataRole.ToolTipRole:
                return self._tooltip(seg)
        if role == Qt.ItemDataRole.BackgroundRole and index.row() == self.playing_row:
            return theme.colors()["playing"]
        return None

    def _tooltip(self, seg: Segment) -> str:
        parts = []
        if seg.confidence is not None:
            parts.append(f"model confidence {seg.confidence:.0%}")
        if "edited" in seg.flags:
            parts.append("edited by you")
        if "dropped-repetition" in seg.flags:
            parts.append("the model repeated itself here; a loop was cut")
        if "no-speech" in seg.flags:
            parts.append("text where little speech was heard")
        if "unsure-key-word" in seg.flags:
            parts.append("the model was unsure of a word the meaning hangs on (a number, a unit, stop/start…)")
        if "faint-speech" in seg.flags:
            parts.append("speech heard only faintly (whispered or creaky?): check it")
        if seg.replaced:
            parts.append(f"your word list put in: {seg.replaced} (the audio allowed it: check it)")
        if seg.removed:
            parts.append(f"removed by a guard: “{seg.removed}” (right-click to restore it)")
        return "; ".join(parts)

    def flags(self, index):
        f = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == TEXT_COL:
            f |= Qt.ItemFlag.ItemIsEditable
        return f

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole):
        if role != Qt.ItemDataRole.EditRole or index.column() != TEXT_COL:
            return False
        new = " ".join(str(value).split())
        old = self.segments[index.row()].text
        if new != old:
            self.undo.push(EditText(self, index.row(), old, new))
        return True

    def set_text(self, row: int, text: str) -> None:
        seg = self.segments[row]
        seg.text = text
        if "edited" not in seg.flags:
            seg.flags.append("edited")
        self.dataChanged.emit(self.index(row, 0), self.index(row, 1))
        self.text_changed.emit(row, text)

    def set_speakers(self, changes: list[tuple[int, str | None]]) -> None:
        """Give rows to speakers (their words too), through SetSpeakers for undo; saved whole."""
        for row, name in changes:
            seg = self.segments[row]
            seg.speaker = name
            for w in seg.words:
                w.speaker = name
            self.dataChanged.emit(self.index(row, 0), self.index(row, 1))
        self.rows_replaced.emit()

    def replace_rows(self, row: int, count: int, segments: list[Segment]) -> None:
        """Rows row..row+count become `segments` (through ReplaceRows, for undo)."""
        if count:
            self.beginRemoveRows(QModelIndex(), row, row + count - 1)
            del self.segments[row:row + count]
            self.endRemoveRows()
        if segments:
            self.beginInsertRows(QModelIndex(), row, row + len(segments) - 1)
            self.segments[row:row] = list(segments)
            self.endInsertRows()
        self.playing_row = -1
        self.rows_replaced.emit()

    def append(self, segments: list[Segment]) -> None:
        if not segments:
            return
        first = len(self.segments)
        self.beginInsertRows(QModelIndex(), first, first + len(segments) - 1)
        self.segments.extend(segments)
        self.endInsertRows()

    def row_at(self, seconds: float) -> int:
        """The segment playing at `seconds` (the last one started before it, within its span)."""
        best = -1
        for i, seg in enumerate(self.segments):
            if seg.start <= seconds + 1e-3:
                best = i
            else:
                break
        if best >= 0 and seconds > self.segments[best].end + 0.5:
            return -1
        return best

    def set_playing(self, row: int) -> None:
        if row == self.playing_row:
            return
        old, self.playing_row = self.playing_row, row
        for r in (old, row):
            if 0 <= r < len(self.segments):
                self.dataChanged.emit(self.index(r, 0), self.index(r, 1))

    def rich_text(self, row: int, selected: bool = False) -> str:
        """The segment as HTML: unsure words underlined (and orange, in the theme's shade that
        reads on plain and playing rows, but not on the selection colour, where it cannot),
        find matches highlighted."""
        seg = self.segments[row]
        pieces: list[tuple[str, str]] = []  # text, CSS style
        spots = self.row_fields(row)
        if spots:  # placeholders greyed, the current field shaded
            pos = 0
            for f in spots:
                style = "" if f.filled or selected else "color: #888888; font-style: italic;"
                if (f.row, f.index) == self.field_key:
                    style += " background-color: #cfe3ff; color: #000;"
                pieces += [(seg.text[pos:f.start], ""), (seg.text[f.start:f.end] or " ", style)]
                pos = f.end
            pieces.append((seg.text[pos:], ""))
        elif words_spell(seg):
            unsure = "text-decoration: underline;" + ("" if selected else f" color: {theme.colors()['unsure'].name()};")
            for i, w in enumerate(seg.words):
                if i:
                    pieces.append((" ", ""))
                low = w.confidence is not None and (w.confidence < LOW_CONFIDENCE or
                                                    (w.confidence < KEY_CONFIDENCE and is_key_word(w.text)))
                pieces.append((w.text.strip(), unsure if low else ""))
        else:
            pieces.append((seg.text, ""))
        out = []
        for text, style in pieces:
            s = self._highlight(text)
            out.append(f'<span style="{style}">{s}</span>' if style else s)
        return "".join(out)

    def _highlight(self, text: str) -> str:
        if self.find_pattern is None:
            return html.escape(text)
        out, last = [], 0
        for m in self.find_pattern.finditer(text):
            out.append(html.escape(text[last:m.start()]))
            out.append(f'<span style="background-color: #ffe066; color: #000;">{html.escape(m.group())}</span>')
            last = m.end()
        out.append(html.escape(text[last:]))
        return "".join(out)


class SegmentDelegate(QStyledItemDelegate):
    """Paints text rows as wrapped rich text and edits them in a multi-line box."""

    field_jump = Signal(int)  # Tab (1) / Shift+Tab (-1) in a template row's editor, after saving it

    def __init__(self, model: TranscriptModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.open_editor: QPlainTextEdit | None = None

    def _doc(self, option, row: int, width: int, selected: bool = False) -> QTextDocument:
        doc = QTextDocument()
        doc.setDefaultFont(option.font)
        doc.setDocumentMargin(4)
        doc.setHtml(self.model.rich_text(row, selected))
        doc.setTextWidth(max(width, 50))
        return doc

    def paint(self, painter, option, index):
        top = PARA_GAP if index.row() > 0 and self.model.paragraph_start(index.row()) else 0
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        style = opt.widget.style() if opt.widget else None
        painter.save()
        if top:  # the gap above a paragraph: plain background (not selection blue) and a thin rule
            gap = opt.rect.adjusted(0, 0, 0, top - opt.rect.height())
            painter.fillRect(gap, opt.palette.color(QPalette.ColorRole.Base))
            painter.setPen(opt.palette.color(QPalette.ColorRole.Mid))
            y = opt.rect.top() + top // 2
            painter.drawLine(opt.rect.left(), y, opt.rect.right(), y)
        opt.rect = opt.rect.adjusted(0, top, 0, 0)
        # The playing row keeps its colour when selected, the selection shown as a frame round it:
        # under the selection colour the user could not see what is playing.
        framed = index.row() == self.model.playing_row and bool(opt.state & QStyle.StateFlag.State_Selected)
        if framed:
            opt.state &= ~QStyle.StateFlag.State_Selected
        if index.column() == TIME_COL:
            painter.restore()
            super().paint(painter, opt, index)
            if framed:
                self._frame(painter, opt, TIME_COL)
            return
        opt.text = ""
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        if framed:
            self._frame(painter, opt, TEXT_COL)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        doc = self._doc(opt, index.row(), opt.rect.width(), selected)
        painter.translate(opt.rect.topLeft())
        ctx = QAbstractTextDocumentLayout.PaintContext()
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        ctx.palette.setColor(QPalette.ColorRole.Text, opt.palette.color(role))
        ctx.clip = QRectF(0, 0, opt.rect.width(), opt.rect.height())
        painter.setClipRect(ctx.clip)
        doc.documentLayout().draw(painter, ctx)
        painter.restore()

    @staticmethod
    def _frame(painter, opt, column: int) -> None:
        """One frame round the whole row: the time cell draws its left side, the text cell its right."""
        painter.save()
        color = opt.palette.color(QPalette.ColorRole.Highlight)
        r = opt.rect
        painter.fillRect(r.left(), r.top(), r.width(), FRAME, color)
        painter.fillRect(r.left(), r.bottom() - FRAME + 1, r.width(), FRAME, color)
        side = r.left() if column == TIME_COL else r.right() - FRAME + 1
        painter.fillRect(side, r.top(), FRAME, r.height(), color)
        painter.restore()

    def sizeHint(self, option, index):
        top = PARA_GAP if index.row() > 0 and self.model.paragraph_start(index.row()) else 0
        if index.column() == TIME_COL:
            s = super().sizeHint(option, index)
            return QSize(s.width() + 8, s.height() + top)
        view = self.parent()
        width = view.columnWidth(TEXT_COL) if view is not None else 400
        doc = self._doc(option, index.row(), width)
        return QSize(width, int(doc.size().height()) + top + 2)

    def createEditor(self, parent, option, index):
        editor = QPlainTextEdit(parent)
        editor.setFrameStyle(0)
        editor.setTabChangesFocus(True)
        self.open_editor = editor
        return editor

    def destroyEditor(self, editor, index):
        if editor is self.open_editor:
            self.open_editor = None
        super().destroyEditor(editor, index)

    def setEditorData(self, editor, index):
        editor.setPlainText(index.data(Qt.ItemDataRole.EditRole))
        cursor = editor.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        editor.setTextCursor(cursor)

    def setModelData(self, editor, model, index):
        model.setData(index, editor.toPlainText(), Qt.ItemDataRole.EditRole)

    def updateEditorGeometry(self, editor, option, index):
        top = PARA_GAP if index.row() > 0 and self.model.paragraph_start(index.row()) else 0
        editor.setGeometry(option.rect.adjusted(0, top, 0, 0))

    def eventFilter(self, editor, event):
        """Enter saves the segment (Shift+Enter too: segments are single paragraphs); Esc cancels."""
        if event.type() == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.commitData.emit(editor)
            self.closeEditor.emit(editor, QStyledItemDelegate.EndEditHint.NoHint)
            return True
        if (event.type() == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab)
                and self.model.fields()):
            self.commitData.emit(editor)
            self.closeEditor.emit(editor, QStyledItemDelegate.EndEditHint.NoHint)
            self.field_jump.emit(-1 if event.key() == Qt.Key.Key_Backtab else 1)
            return True
        return super().eventFilter(editor, event)


class FindBar(QWidget):
    """Find and replace across all segments (Ctrl+F / Ctrl+H); Esc hides it."""

    def __init__(self, editor: "TranscriptEditor"):
        super().__init__(editor)
        self.editor = editor
        self.find_edit = QLineEdit(placeholderText="Find")
        self.replace_edit = QLineEdit(placeholderText="Replace with")
        self.case = QCheckBox("Match case")
        self.count = QLabel("")
        prev_btn, next_btn = QPushButton("Previous"), QPushButton("Next")
        replace_btn, all_btn = QPushButton("Replace"), QPushButton("Replace all")
        close = QToolButton(text="✕", toolTip="Close (Esc)")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (self.find_edit, prev_btn, next_btn, self.replace_edit, replace_btn, all_btn, self.case,
                  self.count):
            lay.addWidget(w)
        lay.addStretch(1)
        lay.addWidget(close)
        self.find_edit.textChanged.connect(self._update)
        self.case.toggled.connect(self._update)
        self.find_edit.returnPressed.connect(lambda: self.editor.find_next(self.term(), case=self.case.isChecked()))
        next_btn.clicked.connect(lambda: self.editor.find_next(self.term(), case=self.case.isChecked()))
        prev_btn.clicked.connect(lambda: self.editor.find_next(self.term(), backwards=True,
                                                               case=self.case.isChecked()))
        replace_btn.clicked.connect(lambda: self.editor.replace_current(self.term(), self.replace_edit.text(),
                                                                        case=self.case.isChecked()))
        all_btn.clicked.connect(self.replace_all)
        close.clicked.connect(self.close_bar)
        self.hide()

    def term(self) -> str:
        return self.find_edit.text()

    def replace_all(self) -> int:
        """Replace every match and say how many: after it the term is gone, so "not found" alone
        would not tell whether anything happened."""
        n = self.editor.replace_all(self.term(), self.replace_edit.text(), case=self.case.isChecked())
        self.count.setText(f"{n} replaced" if n else "nothing to replace")
        return n

    def open_bar(self, replace: bool = False) -> None:
        self.show()
        (self.replace_edit if replace and self.term() else self.find_edit).setFocus()
        self.find_edit.selectAll()
        self._update()

    def close_bar(self) -> None:
        self.hide()
        self.editor.set_find_pattern(None)
        self.editor.table.setFocus()

    def keyPressEvent(self, event):
        if event.key() == Qt.Key.Key_Escape:
            self.close_bar()
        else:
            super().keyPressEvent(event)

    def _update(self) -> None:
        n = self.editor.set_find_pattern(self.term(), self.case.isChecked())
        self.count.setText("" if not self.term() else f"{n} found" if n else "not found")


class TranscriptEditor(QWidget):
    seek_requested = Signal(float, bool)  # seconds, and whether to start playing
    save_voice_requested = Signal(int)  # row: save its speaker's voice under a name
    relabel_requested = Signal(int)  # label who speaks again: this many speakers, or 0 to find how many
    vocabulary_word = Signal(str)  # the user asked for this word to go into the vocabulary list

    def __init__(self, parent=None):
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.model = TranscriptModel(self.undo_stack, self)
        self.table = QTableView()
        self.table.setObjectName("segments")
        self.table.setModel(self.model)
        self.delegate = SegmentDelegate(self.model, self.table)
        self.table.setItemDelegate(self.delegate)
        self.table.setWordWrap(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed
                                   | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.verticalHeader().hide()
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(TIME_COL, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(TEXT_COL, QHeaderView.ResizeMode.Stretch)
        header.sectionResized.connect(lambda *_: self.table.resizeRowsToContents())
        self.table.clicked.connect(self._clicked)
        self.table.installEventFilter(self)
        self.delegate.field_jump.connect(lambda step: self.next_field(step))
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self.show_context_menu)
        self.position = 0.0  # the playhead, where Split cuts when no text cursor says where
        self.split_action = self._action("&Split segment here", "Alt+Return", self.split_current,
                                         "Cut the segment in two at the text cursor (or the playhead)")
        self.merge_action = self._action("&Merge with next segment", "Alt+M", self.merge_current,
                                         "Join this segment and the one after it")
        self.insert_action = self._action("&Insert segment after", "Alt+I", self.insert_current,
                                          "Add an empty segment after this one and type into it")
        self.find_bar = FindBar(self)
        self.placeholder = QLabel("No transcript yet. Record, or open an audio file (Ctrl+O), "
                                  "or drop files on this window.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setObjectName("placeholder")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.find_bar)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.placeholder, 1)
        self.match: tuple[int, int, int] | None = None  # row, start, end of the current find match
        self.model.rowsInserted.connect(self._rows_changed)
        self.model.rows_replaced.connect(lambda: setattr(self, "match", None))  # its row may have moved
        self.model.modelReset.connect(self._rows_changed)
        self.model.dataChanged.connect(lambda a, b: [self.table.resizeRowToContents(r)
                                                     for r in range(a.row(), b.row() + 1)])
        self._rows_changed()

    def _action(self, text: str, keys: str, slot, tip: str) -> QAction:
        """An action whose keys work anywhere in the editor, the open cell editor included."""
        a = QAction(text, self)
        a.setShortcut(QKeySequence(keys))
        a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        a.setToolTip(f"{tip} ({keys})")
        a.triggered.connect(lambda: slot())
        self.addAction(a)
        return a

    # ------------------------------------------------------------------ content

    @property
    def transcript(self) -> Transcript:
        return self.model.transcript

    def set_transcript(self, transcript: Transcript | None) -> None:
        self.undo_stack.clear()
        self.match = None
        self.model.set_transcript(transcript or Transcript())

    def append_segments(self, segments: list[Segment]) -> None:
        """New dictated text: into the current field of a template, else as new rows."""
        if self.model.fields():
            for seg in segments:
                if seg.text.strip():
                    self.dictate(seg.text)
            return
        at_end = self.table.verticalScrollBar().value() >= self.table.verticalScrollBar().maximum() - 4
        self.model.append(segments)
        if at_end:
            self.table.scrollToBottom()

    def _rows_changed(self, *args) -> None:
        empty = self.model.rowCount() == 0
        self.table.setVisible(not empty)
        self.placeholder.setVisible(empty)
        self.table.resizeRowsToContents()

    def edit_row(self, row: int, text: str) -> None:
        """Programmatic edit, through the undo stack like a typed one."""
        self.model.setData(self.model.index(row, TEXT_COL), text)

    def current_row(self) -> int:
        idx = self.table.currentIndex()
        return idx.row() if idx.isValid() else -1

    def select_row(self, row: int) -> None:
        if 0 <= row < self.model.rowCount():
            self.table.setCurrentIndex(self.model.index(row, TEXT_COL))
            self.table.scrollTo(self.model.index(row, TEXT_COL))

    # ------------------------------------------------------------------ template fields

    def current_field(self) -> FieldSpot | None:
        key = self.model.field_key
        return next((f for f in self.model.row_fields(key[0]) if f.index == key[1]), None) if key else None

    def next_field(self, step: int = 1, edit: bool = True) -> bool:
        """Move to the next (step 1) or previous (-1) field; False at either end, where it stays.

        With `edit`, the field opens for typing with its text selected (the keyboard way);
        a spoken move only selects it, since more dictation is on its way.
        """
        self._close_cell_editor()
        spots = self.model.fields()
        if not spots:
            return False
        keys = [f.key for f in spots]
        key = self.model.field_key
        if key in keys:
            i = keys.index(key) + step
        else:  # none yet (or it was edited away): the first, or the last going back
            i = 0 if step > 0 else len(keys) - 1
        if not 0 <= i < len(keys):
            return False
        self.model.set_field(keys[i])
        self._show_field(spots[i], edit)
        return True

    def fill_field(self, text: str) -> bool:
        """Write dictated `text` into the current field: it replaces a placeholder and goes
        after text already there. With no current field, the first empty one is used."""
        self._close_cell_editor()
        spot = self.current_field()
        if spot is None:
            spots = self.model.fields()
            if not spots:
                return False
            spot = next((f for f in spots if not f.filled), spots[0])
            self.model.set_field(spot.key)
        new = fill(self.model.template[spot.row], self.model.segments[spot.row].text, spot.index, text)
        if new is None:
            return False
        self.edit_row(spot.row, new)
        self._show_field(self.current_field(), edit=False)
        return True

    def dictate(self, text: str) -> None:
        """Recognised speech for a template: spoken commands carried out, field moves followed."""
        for step in split_fields(text):
            if isinstance(step, FieldMove):
                self.next_field(step.step, edit=False)
            else:
                self.fill_field(step)

    def _show_field(self, spot: FieldSpot | None, edit: bool) -> None:
        if spot is None:
            return
        index = self.model.index(spot.row, TEXT_COL)
        self.table.setCurrentIndex(index)
        self.table.scrollTo(index)
        if not edit:
            return
        self.table.edit(index)
        editor = self.delegate.open_editor
        if editor is not None:
            cursor = editor.textCursor()
            cursor.setPosition(spot.start)
            cursor.setPosition(spot.end, cursor.MoveMode.KeepAnchor)
            editor.setTextCursor(cursor)

    def _close_cell_editor(self) -> None:
        """Save and close an open cell editor: text written behind its back would be overwritten
        by it on closing."""
        editor = self.delegate.open_editor
        if editor is not None and self.table.state() == QAbstractItemView.State.EditingState:
            self.delegate.commitData.emit(editor)
            self.delegate.closeEditor.emit(editor, QStyledItemDelegate.EndEditHint.NoHint)

    def eventFilter(self, obj, event):
        """Tab / Shift+Tab in a transcript with fields go to the next / previous field."""
        if (obj is self.table and event.type() == QEvent.Type.KeyPress
                and event.key() in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab) and self.model.fields()):
            self.next_field(-1 if event.key() == Qt.Key.Key_Backtab else 1)
            return True
        return super().eventFilter(obj, event)

    # ------------------------------------------------------------ segment editing

    def _structure_locked(self) -> bool:
        """A template's rows are its lines: splitting or merging them would mix up its fields."""
        return bool(self.model.template)

    def split_row(self, row: int, pos: int) -> bool:
        """Cut segment `row` at character `pos` (moved to the nearest word boundary) into two."""
        self._close_cell_editor()
        if self._structure_locked() or not 0 <= row < self.model.rowCount():
            return False
        seg = self.model.segments[row]
        halves = split_segment(seg, pos)
        if halves is None:
            return False
        self.undo_stack.push(ReplaceRows(self.model, f"split segment {row + 1}", row, [seg], list(halves)))
        self.select_row(row + 1)
        return True

    def merge_with_next(self, row: int) -> bool:
        """Join segment `row` and the one after it into one."""
        self._close_cell_editor()
        if self._structure_locked() or not 0 <= row < self.model.rowCount() - 1:
            return False
        a, b = self.model.segments[row], self.model.segments[row + 1]
        self.undo_stack.push(ReplaceRows(self.model, f"merge segments {row + 1} and {row + 2}", row, [a, b],
                                         [merge_segments(a, b)]))
        self.select_row(row)
        return True

    def insert_after(self, row: int, edit: bool = True) -> bool:
        """An empty segment after `row` (at the start for -1), opened for typing."""
        self._close_cell_editor()
        if self._structure_locked():
            return False
        row = min(row, self.model.rowCount() - 1)
        seg = new_segment_after(self.model.segments, row)
        self.undo_stack.push(ReplaceRows(self.model, "insert a segment", row + 1, [], [seg]))
        self.select_row(row + 1)
        if edit:
            self.table.edit(self.model.index(row + 1, TEXT_COL))
        return True

    def _split_position(self, row: int) -> int:
        """Where Split cuts: the open editor's text cursor, else the word at the playhead, else the middle."""
        editor = self.delegate.open_editor
        if editor is not None and self.table.state() == QAbstractItemView.State.EditingState \
                and self.table.currentIndex().row() == row:
            return editor.textCursor().position()
        seg = self.model.segments[row]
        if seg.start < self.position < seg.end and words_spell(seg):
            k = next((i for i, w in enumerate(seg.words) if w.start >= self.position), len(seg.words))
            return len(" ".join(w.text.strip() for w in seg.words[:k]))
        return len(seg.text) // 2

    def split_current(self) -> bool:
        row = self.current_row()
        return row >= 0 and self.split_row(row, self._split_position(row))

    def merge_current(self) -> bool:
        return self.merge_with_next(self.current_row())

    def insert_current(self) -> bool:
        return self.insert_after(self.current_row())

    def char_at(self, pos) -> tuple[int, int]:
        """(row, character) under viewport point `pos` in the text column; row -1 when none."""
        index = self.table.indexAt(pos)
        if not index.isValid():
            return -1, 0
        rect = self.table.visualRect(self.model.index(index.row(), TEXT_COL))
        top = PARA_GAP if index.row() > 0 and self.model.paragraph_start(index.row()) else 0
        opt = QStyleOptionViewItem()
        opt.font = self.table.font()
        doc = self.delegate._doc(opt, index.row(), rect.width())
        if index.column() != TEXT_COL:
            return index.row(), len(self.model.segments[index.row()].text) // 2
        hit = doc.documentLayout().hitTest(QPointF(pos.x() - rect.left(), pos.y() - rect.top() - top),
                                           Qt.HitTestAccuracy.FuzzyHit)
        return index.row(), max(hit, 0)

    def removed_text(self, row: int) -> str:
        """What a guard took out of this row, unless it has been put back already."""
        seg = self.model.segments[row]
        return "" if not seg.removed or seg.text.endswith(seg.removed) else seg.removed

    def restore_removed(self, row: int) -> bool:
        """Put text a guard removed (a loop's repeats, text heard on near-silence) back at the
        end of the row, as an undoable edit the user can then correct."""
        removed = self.removed_text(row)
        if not removed:
            return False
        self.edit_row(row, " ".join(t for t in (self.model.segments[row].text.strip(), removed) if t))
        return True

    def show_context_menu(self, pos) -> QMenu:
        """Right-click: split where clicked, merge with the next segment, insert one after."""
        row, char = self.char_at(pos)
        if row >= 0:
            self.select_row(row)
        menu = QMenu(self)
        menu.setObjectName("segmentMenu")
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        split = menu.addAction(self.split_action.text(), lambda: self.split_row(row, char))
        split.setShortcut(self.split_action.shortcut())
        merge = menu.addAction(self.merge_action.text(), lambda: self.merge_with_next(row))
        merge.setShortcut(self.merge_action.shortcut())
        insert = menu.addAction(self.insert_action.text(), lambda: self.insert_after(row))
        insert.setShortcut(self.insert_action.shortcut())
        restore = menu.addAction("&Restore removed text", lambda: self.restore_removed(row))
        restore.setEnabled(row >= 0 and bool(self.removed_text(row)))
        if row >= 0 and self.model.transcript.speakers:
            self._speaker_menu(menu, row)
        if row >= 0:
            self._relabel_menu(menu)
        word = word_at(self.model.segments[row].text, char) if row >= 0 else ""
        menu.addSeparator()
        vocab = menu.addAction(f"Add “{word}” to &vocabulary" if word else "Add to &vocabulary",
                               lambda: self.vocabulary_word.emit(word))
        vocab.setObjectName("addToVocabulary")
        vocab.setEnabled(bool(word))
        locked = self._structure_locked()
        split.setEnabled(row >= 0 and not locked)
        merge.setEnabled(0 <= row < self.model.rowCount() - 1 and not locked)
        insert.setEnabled(not locked)
        menu.popup(self.table.viewport().mapToGlobal(pos))
        return menu

    # -------------------------------------------------------------------- speakers

    def _speaker_menu(self, menu: QMenu, row: int) -> None:
        """Right-click on a labelled transcript: give the row to a speaker, rename one, save a voice."""
        current = self.model.segments[row].speaker
        menu.addSeparator()
        sub = menu.addMenu("S&peaker of this segment")
        sub.setObjectName("speakerMenu")
        for name in self.model.transcript.speakers:
            a = sub.addAction(name, lambda n=name: self.set_row_speaker(row, n))
            a.setCheckable(True)
            a.setChecked(name == current)
        sub.addAction("New speaker…", lambda: self.set_row_speaker(row, self.ask_name("New speaker", "")))
        if current:
            menu.addAction(f"Re&name “{current}” everywhere…",
                           lambda: self.rename_speaker(current, self.ask_name("Rename speaker", current)))
            others = [n for n in self.model.transcript.speakers if n != current]
            if others:
                join = menu.addMenu(f"&Join “{current}” with")
                join.setObjectName("joinMenu")
                for name in others:
                    join.addAction(name, lambda n=name: self.rename_speaker(current, n))
            menu.addAction(f"Save “{current}”'s &voice…", lambda: self.save_voice_requested.emit(row))
            if current in saved_voice_names():
                menu.addAction(f"&Forget “{current}”'s saved voice", lambda: self.forget_voice(current))

    def _relabel_menu(self, menu: QMenu) -> None:
        """Label who speaks (again) with a number of speakers chosen now, without transcribing
        again: the cheap fix for a wrong count."""
        sub = menu.addMenu("&Label speakers again" if self.model.transcript.speakers else "&Label speakers")
        sub.setObjectName("relabelMenu")
        sub.addAction("Find how many", lambda: self.relabel_requested.emit(0))
        for n in range(1, 11):
            sub.addAction(f"{n} speaker{'s' * (n > 1)}", lambda n=n: self.relabel_requested.emit(n))
        sub.setEnabled(not self._structure_locked())

    def replace_segments(self, segments: list[Segment], text: str) -> None:
        """Every row replaced at once (one undo step)."""
        self.undo_stack.push(ReplaceRows(self.model, text, 0, list(self.model.segments), list(segments)))

    def forget_voice(self, name: str) -> None:
        """Delete a saved voice: later transcripts no longer call anyone by its name (this one
        keeps the name it shows)."""
        from app.speaker_profiles import remove_profile

        try:
            remove_profile(name)
        except StenoError as e:
            show_error(self.window(), "Forget voice", str(e))

    def ask_name(self, title: str, name: str) -> str | None:
        text, ok = QInputDialog.getText(self, title, "Name:", text=name)
        return " ".join(text.split()) if ok and text.strip() else None

    def set_row_speaker(self, row: int, name: str | None) -> bool:
        """Give one row to a speaker (undoable)."""
        old = self.model.segments[row].speaker if 0 <= row < self.model.rowCount() else None
        if not name or name == old:
            return False
        self.undo_stack.push(SetSpeakers(self.model, f"segment {row + 1} to {name}", [(row, old, name)]))
        return True

    def rename_speaker(self, old: str, new: str | None) -> int:
        """Call a speaker by another name on every row at once (one undo step); rows changed.
        A name another speaker already has joins the two."""
        if not new or new == old:
            return 0
        changes = [(r, old, new) for r, seg in enumerate(self.model.segments) if seg.speaker == old]
        if changes:
            self.undo_stack.push(SetSpeakers(self.model, f"rename {old} to {new}", changes))
        return len(changes)

    # -------------------------------------------------------------------- playback

    def _clicked(self, index) -> None:
        """Click the time to play from there; click the text to put the playhead there (and,
        in a template, make the row's first field the current one)."""
        spots = self.model.row_fields(index.row())
        if spots and self.model.field_key not in [f.key for f in spots]:
            self.model.set_field(spots[0].key)
        seg = self.model.segments[index.row()]
        self.seek_requested.emit(seg.start, index.column() == TIME_COL)

    def play_current(self) -> None:
        row = self.current_row()
        if row >= 0:
            self.seek_requested.emit(self.model.segments[row].start, True)

    def show_position(self, seconds: float) -> None:
        self.position = seconds
        row = self.model.row_at(seconds)
        if row != self.model.playing_row:
            self.model.set_playing(row)
            if row >= 0 and self.table.state() != QAbstractItemView.State.EditingState:
                self.table.scrollTo(self.model.index(row, TEXT_COL))

    # ------------------------------------------------------------ find / replace

    def _pattern(self, term: str, case: bool) -> re.Pattern | None:
        if not term:
            return None
        return re.compile(re.escape(term), 0 if case else re.IGNORECASE)

    def set_find_pattern(self, term: str | None, case: bool = False) -> int:
        """Highlight every match of `term`; returns how many there are."""
        self.model.find_pattern = self._pattern(term or "", case)
        self.model.layoutChanged.emit()
        if self.model.find_pattern is None:
            return 0
        return sum(len(self.model.find_pattern.findall(s.text)) for s in self.model.segments)

    def find_next(self, term: str, backwards: bool = False, case: bool = False) -> bool:
        """Select the next (or previous) segment containing `term`, wrapping around."""
        pat = self._pattern(term, case)
        segs = self.model.segments
        if pat is None or not segs:
            return False
        if self.match is not None:
            row, pos = self.match[0], (self.match[1] if backwards else self.match[2])
        else:
            row = max(self.current_row(), 0)
            pos = len(segs[row].text) if backwards else 0
        hits = [(r, m.start(), m.end()) for r, s in enumerate(segs) for m in pat.finditer(s.text)]
        if not hits:
            self.match = None
            return False
        if backwards:
            before = [h for h in hits if (h[0], h[1]) < (row, pos)]
            self.match = before[-1] if before else hits[-1]
        else:
            after = [h for h in hits if (h[0], h[1]) >= (row, pos)]
            self.match = after[0] if after else hits[0]
        self.select_row(self.match[0])
        return True

    def replace_current(self, term: str, replacement: str, case: bool = False) -> bool:
        """Replace the current match (finding one first if needed), then move to the next."""
        pat = self._pattern(term, case)
        if pat is None:
            return False
        if self.match is None or not pat.fullmatch(self.model.segments[self.match[0]].text[self.match[1]:self.match[2]]):
            if not self.find_next(term, case=case):
                return False
        row, a, b = self.match
        text = self.model.segments[row].text
        self.edit_row(row, text[:a] + replacement + text[b:])
        self.match = (row, a, a + len(replacement))
        self.find_next(term, case=case)
        return True

    def replace_all(self, term: str, replacement: str, case: bool = False) -> int:
        """Replace every match as one undo step; returns how many were replaced."""
        pat = self._pattern(term, case)
        if pat is None:
            return 0
        total = 0
        changes = []
        for row, seg in enumerate(self.model.segments):
            new, n = pat.subn(lambda m: replacement, seg.text)
            if n:
                changes.append((row, seg.text, " ".join(new.split())))
                total += n
        if changes:
            self.undo_stack.beginMacro(f"replace {total} × “{term}”")
            for row, old, new in changes:
                if old != new:
                    self.undo_stack.push(EditText(self.model, row, old, new))
            self.undo_stack.endMacro()
        self.match = None
        self.set_find_pattern(self.find_bar.term() if self.find_bar.isVisible() else None, case)
        return total

    def keyPressEvent(self, event):
        if event.matches(QKeySequence.StandardKey.Find):
            self.find_bar.open_bar()
        elif event.matches(QKeySequence.StandardKey.Replace):
            self.find_bar.open_bar(replace=True)
        else:
            super().keyPressEvent(event)
