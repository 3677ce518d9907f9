"""The engineer's Review tab: a filtered gallery of inspected parts, the part with the model's mask and
the engineer's, relabel with a mask editor, keyboard flow. (The Models tab: app.gui.models_view.)

Keys in Review: A accept (OK) and next, R reject (NG with the classes ticked and the mask drawn)
and next, Ctrl+Return save as set, Right / J next part, Left / K previous part; the mask editor's
own keys (B brush, E eraser, G polygon, F fill, [ ] size, Ctrl+Z / Ctrl+Y, + - 0 zoom) work in it.
Nothing here reads a file or the database: the ReviewController does, off the GUI thread.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, QSize, Qt
from PySide6.QtGui import QIcon, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.gui.mask_editor import MaskEditor
from app.gui.review_controller import PAGE_SIZE, THUMB_HEIGHT, ReviewController, ReviewPage, ReviewPart
from app.gui.session import SessionController
from app.gui.widgets import labelled, to_qimage
from inspection.access.users import User
from inspection.engineering.review import LABEL_STATES, SORTS, ReviewFilter

VERDICT_CHOICES = (
    ("Rejects (NG + REVIEW)", ("NG", "REVIEW")),
    ("NG", ("NG",)),
    ("REVIEW", ("REVIEW",)),
    ("OK", ("OK",)),
    ("All", ()),
)
TIME_CHOICES = (
    ("Any time", None),
    ("Last hour", dt.timedelta(hours=1)),
    ("Last 8 hours", dt.timedelta(hours=8)),
    ("Last 24 hours", dt.timedelta(days=1)),
    ("Last 7 days", dt.timedelta(days=7)),
)
SORT_TEXT = {
    "score_desc": "Score, highest first",
    "score_asc": "Score, lowest first",
    "newest": "Newest first",
    "oldest": "Oldest first",
}


def _score_box() -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(-1.0, 1e6)
    box.setDecimals(2)
    box.setSpecialValueText("any")  # the minimum means: no limit
    box.setValue(-1.0)
    box.setKeyboardTracking(False)
    return box


def _row(*widgets: QWidget) -> QHBoxLayout:
    """Widgets side by side."""
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w)
    return row


class ReviewView(QWidget):
    """The Review tab: filters, the gallery of parts, the part in the mask editor and its label panel."""

    def __init__(self, controller: ReviewController, session: SessionController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.session = session
        self.page: ReviewPage | None = None
        self.part: ReviewPart | None = None
        self.offset = 0
        self._select_after_load: int | None = None  # row to select when the asked page arrives (paging by keys)
        self.checks: dict[str, QCheckBox] = {}  # the defect classes of the part shown, ticked or not
        filters = self._build_filters()
        gallery = self._build_gallery()
        self.editor = MaskEditor()
        self.editor.setObjectName("maskEditor")
        self._build_label_widgets()
        panel = self._lay_out_label_panel()
        self._set_part_enabled(False)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(gallery)
        split.addWidget(self.editor)
        split.addWidget(panel)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 4)
        split.setStretchFactor(2, 1)
        outer = QVBoxLayout(self)
        outer.addLayout(filters)
        outer.addWidget(split, 1)
        self._add_keys()
        controller.page_loaded.connect(self._on_page)
        controller.part_loaded.connect(self._on_part)
        controller.saved.connect(self._on_saved)
        controller.shifts_loaded.connect(self._on_shifts)
        controller.failed.connect(self._on_failed)

    # -- building the tab ----------------------------------------------------------------------
    def _build_filters(self) -> QHBoxLayout:
        """The filter boxes in a row; a change reloads the gallery."""
        self.shift_box = QComboBox()
        self.shift_box.addItem("All shifts", None)
        self.time_box = QComboBox()
        for text, span in TIME_CHOICES:
            self.time_box.addItem(text, span)
        self.verdict_box = QComboBox()
        for text, verdicts in VERDICT_CHOICES:
            self.verdict_box.addItem(text, verdicts)
        self.class_box = QComboBox()
        self.class_box.addItem("Any class", None)
        self.score_min, self.score_max = _score_box(), _score_box()
        self.label_box = QComboBox()
        for state in LABEL_STATES:
            self.label_box.addItem(state.capitalize() if state != "any" else "Any label state", state)
        self.sort_box = QComboBox()
        for key in SORTS:
            self.sort_box.addItem(SORT_TEXT[key], key)
        filters = QHBoxLayout()
        for title, w in (
            ("Shift", self.shift_box),
            ("Time", self.time_box),
            ("Verdict", self.verdict_box),
            ("Class", self.class_box),
            ("Score from", self.score_min),
            ("to", self.score_max),
            ("Label", self.label_box),
            ("Sort", self.sort_box),
        ):
            filters.addWidget(labelled(title, w))
        for box in (self.shift_box, self.time_box, self.verdict_box, self.class_box, self.label_box, self.sort_box):
            box.activated.connect(self.reload)
        self.score_min.valueChanged.connect(self.reload)
        self.score_max.valueChanged.connect(self.reload)
        return filters

    def _build_gallery(self) -> QWidget:
        """The page of parts as thumbnails, with the page buttons below."""
        self.gallery = QListWidget()
        self.gallery.setObjectName("reviewGallery")
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(THUMB_HEIGHT * 5 // 2, THUMB_HEIGHT))
        self.gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery.setUniformItemSizes(True)
        self.gallery.setMovement(QListWidget.Movement.Static)
        self.gallery.currentRowChanged.connect(self._on_row)
        self.prev_page = QPushButton("< Page")
        self.next_page = QPushButton("Page >")
        self.page_label = QLabel("")
        self.prev_page.clicked.connect(lambda: self._go_page(-1))
        self.next_page.clicked.connect(lambda: self._go_page(+1))
        box = QWidget()
        gv = QVBoxLayout(box)
        gv.setContentsMargins(0, 0, 0, 0)
        gv.addWidget(self.gallery, 1)
        paging = QHBoxLayout()
        paging.addWidget(self.prev_page)
        paging.addWidget(self.page_label, 1)
        paging.addWidget(self.next_page)
        gv.addLayout(paging)
        return box

    def _build_label_widgets(self) -> None:
        """The label panel's widgets: the part's info, the editor's tools, the verdict and classes, the buttons."""
        self.info = QLabel("Pick a part")
        self.info.setWordWrap(True)
        self.info.setObjectName("reviewInfo")
        self.from_model = QPushButton("Start from model's mask")
        self.from_model.clicked.connect(self.editor.start_from_model)
        self.show_model = QCheckBox("Show model's mask")
        self.show_model.setChecked(True)
        self.show_model.toggled.connect(self.editor.show_model_mask)
        self.undo_button, self.redo_button = QPushButton("Undo"), QPushButton("Redo")
        self.clear_button = QPushButton("Clear mask")
        self.undo_button.clicked.connect(self.editor.undo)
        self.redo_button.clicked.connect(self.editor.redo)
        self.clear_button.clicked.connect(self.editor.clear)
        self.ok_radio, self.ng_radio = QRadioButton("OK"), QRadioButton("NG")
        self.class_checks = QWidget()
        self.class_layout = QVBoxLayout(self.class_checks)
        self.class_layout.setContentsMargins(0, 0, 0, 0)
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("comment (optional)")
        self.save_button = QPushButton("Save label (Ctrl+Enter)")
        self.save_button.setObjectName("saveLabel")
        self.save_button.clicked.connect(self.save)
        self.accept_button, self.reject_button = QPushButton("Accept: OK (A)"), QPushButton("Reject: NG (R)")
        self.accept_button.clicked.connect(self.accept_part)
        self.reject_button.clicked.connect(self.reject_part)
        self.history = QListWidget()
        self.history.setObjectName("labelHistory")

    def _tool_grid(self) -> QGridLayout:
        """The mask editor's tools, two by two, one checked at a time."""
        tools = QGridLayout()
        self.tool_buttons: dict[str, QPushButton] = {}
        group = QButtonGroup(self)
        for k, (name, text) in enumerate(
            (("brush", "Brush (B)"), ("eraser", "Eraser (E)"), ("polygon", "Polygon (G)"), ("fill", "Fill (F)"))
        ):
            b = QPushButton(text)
            b.setCheckable(True)
            b.clicked.connect(lambda _=False, n=name: self._tool(n))
            group.addButton(b)
            self.tool_buttons[name] = b
            tools.addWidget(b, k // 2, k % 2)
        self.tool_buttons["brush"].setChecked(True)
        return tools

    def _lay_out_label_panel(self) -> QWidget:
        panel = QWidget()
        pv = QVBoxLayout(panel)
        pv.addWidget(self.info)
        pv.addLayout(self._tool_grid())
        pv.addWidget(self.from_model)
        pv.addWidget(self.show_model)
        pv.addLayout(_row(self.undo_button, self.redo_button, self.clear_button))
        pv.addLayout(_row(QLabel("True verdict:"), self.ok_radio, self.ng_radio))
        pv.addWidget(labelled("Defect classes", self.class_checks))
        pv.addWidget(self.comment)
        pv.addLayout(_row(self.accept_button, self.reject_button))
        pv.addWidget(self.save_button)
        pv.addWidget(labelled("Label history", self.history), 1)
        return panel

    def _add_keys(self) -> None:
        """The review's keys (while the tab has the focus)."""
        for keys, slot in (
            ("A", self.accept_part),
            ("R", self.reject_part),
            ("Ctrl+Return", self.save),
            ("Ctrl+Enter", self.save),
            ("Right", self.next_part),
            ("J", self.next_part),
            ("Left", self.previous_part),
            ("K", self.previous_part),
        ):
            QShortcut(QKeySequence(keys), self, activated=slot, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)

    # -- filters and pages ---------------------------------------------------------------------
    def _boxes(self) -> dict[str, QComboBox]:
        return {"time": self.time_box, "verdict": self.verdict_box, "label": self.label_box, "sort": self.sort_box}

    def save_state(self, settings: QSettings) -> None:
        """The filters, for the next start."""
        for key, box in self._boxes().items():
            settings.setValue(f"review/{key}", box.currentIndex())
        settings.setValue("review/score_min", self.score_min.value())
        settings.setValue("review/score_max", self.score_max.value())

    def restore_state(self, settings: QSettings) -> None:
        for key, box in self._boxes().items():
            try:
                index = int(settings.value(f"review/{key}", 0))
            except (TypeError, ValueError):
                index = 0
            box.setCurrentIndex(index if 0 <= index < box.count() else 0)
        for key, spin in (("score_min", self.score_min), ("score_max", self.score_max)):
            spin.blockSignals(True)  # no query before the line is open
            try:
                spin.setValue(float(settings.value(f"review/{key}", spin.minimum())))
            except (TypeError, ValueError):
                pass
            spin.blockSignals(False)

    def current_filter(self) -> ReviewFilter:
        span = self.time_box.currentData()
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        lo, hi = self.score_min.value(), self.score_max.value()
        lo_v, hi_v = (None if lo <= self.score_min.minimum() else lo), (None if hi <= self.score_max.minimum() else hi)
        if lo_v is not None and hi_v is not None and lo_v > hi_v:
            lo_v, hi_v = hi_v, lo_v
        return ReviewFilter(
            shift_id=self.shift_box.currentData(),
            start=now - span if span else None,
            verdicts=tuple(self.verdict_box.currentData() or ()),
            defect_class=self.class_box.currentData(),
            score_min=lo_v,
            score_max=hi_v,
            label_state=self.label_box.currentData(),
            sort=self.sort_box.currentData(),
        )

    def activate(self) -> None:
        """The tab is shown: refresh the shifts and the page."""
        self.controller.load_shifts()
        self.reload()

    def reload(self, *_: Any) -> None:
        self.offset = 0
        self.controller.load_page(self.current_filter(), 0)

    def _go_page(self, step: int, select: int | None = None) -> None:
        if self.page is None:
            return
        offset = self.offset + step * PAGE_SIZE
        if offset < 0 or offset >= max(self.page.total, 1):
            return
        self.offset = offset
        self._select_after_load = select
        self.controller.load_page(self.page.filter, offset)

    def _on_page(self, page: ReviewPage) -> None:
        if page.request != self.controller.latest_request:
            return  # a newer page was asked for since
        row_now = self.gallery.currentRow()
        keep = (
            self.page.rows[row_now][0].part_id if self.page is not None and 0 <= row_now < len(self.page.rows) else None
        )
        self.page = page
        self.offset = page.offset
        # The items are updated in place (no clear(): deleting the items under a current selection
        # crashed PySide6 now and then).
        self.gallery.blockSignals(True)
        while self.gallery.count() > len(page.rows):
            self.gallery.takeItem(self.gallery.count() - 1)
        while self.gallery.count() < len(page.rows):
            self.gallery.addItem("")  # (an item made by Qt: see widgets.append_item)
        select = None
        for k, (row, thumb) in enumerate(page.rows):
            label = f"{row.verdict} {row.score:.2f}" if row.score is not None else row.verdict
            if row.label:
                label += f" -> {row.label}"
            item = self.gallery.item(k)
            item.setText(label)
            item.setIcon(QIcon(QPixmap.fromImage(to_qimage(thumb))) if thumb is not None else QIcon())
            item.setData(Qt.ItemDataRole.UserRole, row.part_id)
            item.setToolTip(f"{row.part_id}\n{row.ts:%Y-%m-%d %H:%M:%S} UTC, {row.model}")
            if row.part_id == keep:
                select = k
        if select is None:
            self.gallery.setCurrentRow(-1)
        self.gallery.blockSignals(False)
        first, last = page.offset + 1, page.offset + len(page.rows)
        self.page_label.setText(f"parts {first:,}-{last:,} of {page.total:,}" if page.rows else "no parts match")
        self.prev_page.setEnabled(page.offset > 0)
        self.next_page.setEnabled(last < page.total)
        if self._select_after_load is not None and page.rows:
            self.gallery.setCurrentRow(
                min(self._select_after_load, len(page.rows) - 1) if self._select_after_load >= 0 else len(page.rows) - 1
            )
            self._select_after_load = None
        elif select is not None:
            self.gallery.blockSignals(True)
            self.gallery.setCurrentRow(select)
            self.gallery.blockSignals(False)

    def _on_shifts(self, shifts: list[tuple[int, str]]) -> None:
        current = self.shift_box.currentData()
        self.shift_box.clear()
        self.shift_box.addItem("All shifts", None)
        for shift_id, text in shifts:
            self.shift_box.addItem(text, shift_id)
        index = self.shift_box.findData(current)
        self.shift_box.setCurrentIndex(max(index, 0))

    def set_classes(self, classes: tuple[str, ...]) -> None:
        """The model's classes, for the class filter."""
        current = self.class_box.currentData()
        self.class_box.clear()
        self.class_box.addItem("Any class", None)
        for c in classes:
            self.class_box.addItem(c, c)
        self.class_box.setCurrentIndex(max(self.class_box.findData(current), 0))

    # -- the part --------------------------------------------------------------------------------
    def selected_part_id(self) -> str | None:
        item = self.gallery.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _on_row(self, row: int) -> None:
        item = self.gallery.item(row) if row >= 0 else None
        if item is not None:
            self._set_part_enabled(False)  # no label saved until this part is the one shown
            self.controller.load_part(item.data(Qt.ItemDataRole.UserRole))

    def next_part(self) -> None:
        row = self.gallery.currentRow()
        if row + 1 < self.gallery.count():
            self.gallery.setCurrentRow(row + 1)
        else:
            self._go_page(+1, select=0)

    def previous_part(self) -> None:
        row = self.gallery.currentRow()
        if row > 0:
            self.gallery.setCurrentRow(row - 1)
        else:
            self._go_page(-1, select=-1)

    def _on_part(self, part: ReviewPart) -> None:
        if part.row.part_id != self.selected_part_id():
            return  # the engineer has moved on: a later load brings the selected part
        self.part = part
        r = part.row
        score = f"{r.score:.3f}" if r.score is not None else "none (model error)"
        label = f"labelled {r.label} ({', '.join(r.label_classes) or 'no class'})" if r.label else "not reviewed"
        self.info.setText(
            f"<b>{r.part_id}</b><br>{r.ts:%Y-%m-%d %H:%M:%S} UTC, recipe {r.recipe}<br>model {r.model}: "
            f"<b>{r.verdict}</b>, score {score}, {', '.join(r.classes) or 'no defect'}<br>{label}"
            + (f"<br><i>{part.message}</i>" if part.message else "")
        )
        for i in reversed(range(self.class_layout.count())):
            self.class_layout.itemAt(i).widget().deleteLater()
        ticked = set(r.label_classes) or set(r.classes)
        self.checks = {}
        for c in part.classes:
            box = QCheckBox(c)
            box.setChecked(c in ticked)
            self.class_layout.addWidget(box)
            self.checks[c] = box
        current = r.label or ("OK" if r.verdict == "OK" else "NG")
        (self.ok_radio if current == "OK" else self.ng_radio).setChecked(True)
        self.comment.clear()
        self.history.clear()
        for h in reversed(part.history):
            self.history.addItem(
                f"{h.at:%Y-%m-%d %H:%M} {h.who}: {h.previous_verdict} -> {h.verdict}"
                + (f" ({', '.join(h.classes)})" if h.classes else "")
                + (" with mask" if h.mask else "")
                + (f" - {h.comment}" if h.comment else "")
            )
        if part.images is None:
            self.editor.set_image(np.zeros((8, 8), np.uint8))
            self._set_part_enabled(False)
            return
        self.editor.set_image(part.images.image)
        self.editor.set_model_mask(part.images.model_mask)
        if part.images.label_mask.any():
            self.editor.set_mask(part.images.label_mask)
        self._set_part_enabled(True)

    def _set_part_enabled(self, on: bool) -> None:
        for w in (
            self.editor,
            self.from_model,
            self.undo_button,
            self.redo_button,
            self.clear_button,
            self.save_button,
            self.accept_button,
            self.reject_button,
            *self.tool_buttons.values(),
        ):
            w.setEnabled(on)

    def _tool(self, name: str) -> None:
        self.editor.set_tool(name)
        self.editor.setFocus()

    def _user(self) -> User | None:
        if self.session.user is None:
            self.window().statusBar().showMessage("Log in first: every label records who made it.")
        return self.session.user

    def save(self) -> None:
        """Record the label as set: the verdict, the ticked classes, the drawn mask (NG only)."""
        if self.part is None or not self.save_button.isEnabled() or (user := self._user()) is None:
            return
        verdict = "OK" if self.ok_radio.isChecked() else "NG"
        classes = tuple(c for c, box in self.checks.items() if box.isChecked()) if verdict == "NG" else ()
        if verdict == "NG" and not classes:
            self.window().statusBar().showMessage("Tick at least one defect class for an NG part.")
            return
        self._set_part_enabled(False)  # one label per key press: the next waits for this one to be saved
        self.controller.relabel(
            self.part.row.part_id,
            verdict,
            user=user,
            classes=classes,
            mask=self.editor.mask() if verdict == "NG" else None,
            comment=self.comment.text().strip(),
        )

    def accept_part(self) -> None:
        self.ok_radio.setChecked(True)
        self.save()

    def reject_part(self) -> None:
        if self.part is not None and not any(b.isChecked() for b in self.checks.values()) and self.checks:
            next(iter(self.checks.values())).setChecked(True)  # the recipe's first class unless one is ticked
        self.ng_radio.setChecked(True)
        self.save()

    def _on_failed(self, _message: str) -> None:
        if self.part is not None and self.part.images is not None and self.part.row.part_id == self.selected_part_id():
            self._set_part_enabled(True)  # a save that failed may be tried again

    def _on_saved(self, part_id: str) -> None:
        self.window().statusBar().showMessage(f"Label of part {part_id} saved.")
        if self.page is not None:  # its label state (the filter may now leave it out), under the filters set now
            self.controller.load_page(self.current_filter(), self.offset)
        if self.selected_part_id() == part_id:  # not when the engineer has picked another part meanwhile
            self.next_part()
