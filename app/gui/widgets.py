"""Small widgets of the main window: the live image, the verdict panel, the counters, the NG-rate
trend, the filmstrip of rejects, the alarm banner, the camera light and the event log. Each only
shows what it is given; none reads a file or the database."""

from __future__ import annotations

import datetime as dt
import html

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPaintEvent, QPen, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from inspection.record.forwarding import ForwardStatus
from inspection.reports.stats import Counters, EventRow, PartRow, TrendPoint
from inspection.result import InspectionResult
from inspection.runtime.alarms import Alarm
from inspection.runtime.reject_gate import RejectStats


def append_item(view: QListWidget, text: str) -> QListWidgetItem:
    """Add a row to a list widget and return it. The item is made by Qt, not by Python: an item
    constructed in Python carries a hook back to its Python wrapper, and when a garbage collection
    had dropped that wrapper first, the list's clear() crashed in shiboken (seen in the GUI tests)."""
    view.addItem(text)
    return view.item(view.count() - 1)


def to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage that owns a copy of an RGB or grey uint8 array."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    if rgb.ndim == 2:
        return QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_Grayscale8).copy()
    return QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888).copy()


class ImageView(QLabel):
    """The latest part image, scaled to fit, aspect kept."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("liveView")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(320, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._pixmap: QPixmap | None = None
        self.setText("No image yet")

    def set_image(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        scale = min(self.width() / w, self.height() / h)
        if scale < 1:  # shrink the array, not the pixmap: less to convert and to upload to the screen
            rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_LINEAR)
        self._pixmap = QPixmap.fromImage(to_qimage(rgb))
        self._rescale()

    def show_text(self, text: str) -> None:
        """No image, a sentence instead (a resize must not bring back an earlier image)."""
        self._pixmap = None
        self.clear()
        self.setText(text)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is not None:
            # Fast scaling: at 30 Hz a smooth scale of a large frame would cost the GUI thread more than
            # the frame is worth.
            self.setPixmap(
                self._pixmap.scaled(
                    self.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
                )
            )


class VerdictPanel(QWidget):
    """The big verdict (OK green / NG red / REVIEW amber) with class and score of the last part."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.verdict = QLabel("-")
        self.verdict.setObjectName("verdict")
        self.verdict.setProperty("verdict", "none")
        self.verdict.setMinimumHeight(120)
        self.detail = QLabel("")
        self.detail.setObjectName("detail")
        self.detail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.verdict, 0, 0)
        layout.addWidget(self.detail, 1, 0)

    def show_result(self, result: InspectionResult) -> None:
        self.verdict.setText(result.verdict.value)
        if self.verdict.property("verdict") != result.verdict.value:  # re-styling costs: only on a change of colour
            self.verdict.setProperty("verdict", result.verdict.value)
            self.verdict.style().unpolish(self.verdict)
            self.verdict.style().polish(self.verdict)
        classes = ", ".join(f"{c.name} ({c.area_px} px)" for c in result.classes) or "no defect"
        score = "n/a" if result.score != result.score else f"{result.score:.3g}"
        self.detail.setText(f"Part {result.seq} - {classes} - score {score}")


class CountersPanel(QWidget):
    """Counters of the current shift and since the station started, side by side."""

    ROWS = (
        ("parts", "Inspected"),
        ("ok", "OK"),
        ("ng", "NG"),
        ("review", "REVIEW"),
        ("yield", "Yield"),
        ("rate", "Parts/min"),
        ("p50", "Latency p50"),
        ("p99", "Latency p99"),
        ("dropped", "Dropped"),
    )
    COLUMNS = ("shift", "start")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setVerticalSpacing(2)
        self.headers = {"shift": QLabel("Shift"), "start": QLabel("Since start")}
        for col, key in enumerate(self.COLUMNS, start=1):
            self.headers[key].setProperty("class", "counterHeader")
            grid.addWidget(self.headers[key], 0, col, alignment=Qt.AlignmentFlag.AlignRight)
        self.values: dict[str, dict[str, QLabel]] = {c: {} for c in self.COLUMNS}
        for row, (key, name) in enumerate(self.ROWS, start=1):
            label = QLabel(name)
            label.setProperty("class", "counterName")
            grid.addWidget(label, row, 0)
            for col, column in enumerate(self.COLUMNS, start=1):
                value = QLabel("-")
                value.setProperty("class", "counterValue")
                value.setObjectName(f"counter_{column}_{key}")
                value.setAlignment(Qt.AlignmentFlag.AlignRight)
                grid.addWidget(value, row, col)
                self.values[column][key] = value

    def show_counters(self, column: str, c: Counters, title: str | None = None) -> None:
        if title is not None:
            self.headers[column].setText(title)
        v = self.values[column]
        v["parts"].setText(str(c.parts))
        v["ok"].setText(str(c.ok))
        v["ng"].setText(str(c.ng))
        v["review"].setText(str(c.review))
        v["yield"].setText(f"{c.yield_pct:.1f} %" if c.yield_pct is not None else "-")
        v["rate"].setText(f"{c.parts_per_min:.0f}")
        v["p50"].setText(f"{c.latency_ms_p50:.0f} ms" if c.parts else "-")
        v["p99"].setText(f"{c.latency_ms_p99:.0f} ms" if c.parts else "-")
        v["dropped"].setText(str(c.dropped))

    def number(self, column: str, key: str) -> int:
        return int(self.values[column][key].text())


class TrendStrip(QWidget):
    """NG rate per bar over the last hour; empty bars (no parts) are drawn as gaps; a dashed line
    marks the NG-rate alarm limit."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trend")
        self.setMinimumHeight(84)
        self.points: tuple[TrendPoint, ...] = ()
        self.limit = 0.0
        self.setToolTip("NG rate, last hour (5-minute bars)")

    def show_trend(self, points: tuple[TrendPoint, ...], limit: float) -> None:
        self.points, self.limit = points, limit
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        p = QPainter(self)
        r = QRectF(self.rect()).adjusted(4, 4, -4, -16)
        p.fillRect(self.rect(), QColor("#0b0d10"))
        p.setPen(QColor("#9aa0a6"))
        p.drawText(QRectF(4, r.bottom() + 1, r.width(), 14), Qt.AlignmentFlag.AlignLeft, "NG rate, last hour")
        top = max([self.limit * 1.25, 0.1] + [pt.ng_rate or 0.0 for pt in self.points])
        n = max(1, len(self.points))
        w = r.width() / n
        for i, pt in enumerate(self.points):
            if pt.ng_rate is None:
                continue
            h = r.height() * pt.ng_rate / top
            color = QColor("#c62828") if self.limit and pt.ng_rate > self.limit else QColor("#4f8fd6")
            p.fillRect(QRectF(r.left() + i * w + 1, r.bottom() - h, w - 2, h), color)
        if self.limit:
            y = r.bottom() - r.height() * self.limit / top
            p.setPen(QPen(QColor("#e69a00"), 1, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(r.left(), y), QPointF(r.right(), y))
        p.end()


class Filmstrip(QListWidget):
    """Thumbnails of the latest rejects, newest first; a click opens the part."""

    part_clicked = Signal(object)  # PartRow

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("filmstrip")
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setFlow(QListWidget.Flow.LeftToRight)
        self.setWrapping(False)
        self.setIconSize(QSize(240, 96))
        self.setFixedHeight(150)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self._shown: tuple[str, ...] = ()
        self.itemClicked.connect(lambda item: self.part_clicked.emit(item.data(Qt.ItemDataRole.UserRole)))

    def show_rejects(self, rejects: tuple[tuple[PartRow, np.ndarray | None], ...], tz: dt.tzinfo | None = None) -> None:
        ids = tuple(r.part_id for r, _ in rejects)
        if ids == self._shown:
            return  # unchanged: keep the widget (and the operator's scroll position) as it is
        self._shown = ids
        self.clear()
        for row, thumb in rejects:
            when = row.ts.replace(tzinfo=dt.UTC).astimezone(tz).strftime("%H:%M:%S")
            item = append_item(self, f"{row.verdict} {when}")
            if thumb is not None:
                item.setIcon(QIcon(QPixmap.fromImage(to_qimage(thumb))))
            item.setData(Qt.ItemDataRole.UserRole, row)
            item.setToolTip(
                f"Part {row.part_id}, score {row.score if row.score is not None else 'n/a'}, "
                f"{', '.join(row.classes) or 'no class'}"
            )


class AlarmBanner(QWidget):
    """The active alarms (newest shown, with how many), and an Acknowledge button."""

    acknowledge = Signal(object)  # the event ids of the alarms on show (never ones raised since)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("alarmBanner")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        self.text = QLabel("")
        self.text.setObjectName("banner")
        self.text.setWordWrap(True)
        self.ack_button = QPushButton("Acknowledge")
        self.ack_button.setObjectName("ackButton")
        self.ack_button.clicked.connect(self._ack)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.ack_button)
        self.alarms: tuple[Alarm, ...] = ()
        self.message = ""  # an error without an alarm row (a bad model at start-up, a refused action)
        self.hide()

    def show_alarms(self, alarms: tuple[Alarm, ...]) -> None:
        self.alarms = alarms
        self._update()

    def show_message(self, message: str) -> None:
        self.message = message
        self._update()

    def _update(self) -> None:
        if self.alarms:
            newest = self.alarms[-1]
            more = f"  (+{len(self.alarms) - 1} more)" if len(self.alarms) > 1 else ""
            self.text.setText(f"ALARM: {newest.message}{more}")
            self.ack_button.setText("Acknowledge all" if len(self.alarms) > 1 else "Acknowledge")
        elif self.message:
            self.text.setText(self.message)
            self.ack_button.setText("Dismiss")
        self.setVisible(bool(self.alarms or self.message))

    def _ack(self) -> None:
        if self.alarms:
            self.acknowledge.emit(tuple(a.event_id for a in self.alarms))
        self.message = ""
        self._update()


class SignalsPanel(QLabel):
    """The line's wiring at a glance: the recipe in force (version, PLC index), the lot, the PLC
    link's signals as lamps, and the reject gate's pulses and misses. Rich text, redrawn only when
    something shown changed."""

    LAMPS = ("Ready", "Busy", "ResultReady", "ResultOK", "ResultNG", "Error", "Heartbeat")
    INPUTS = ("Trigger", "ResultAck")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("signalsPanel")
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setWordWrap(True)
        self._shown = ""

    def show_signals(
        self,
        recipe: str,
        version: int,
        index: int,
        lot: str,
        plc: dict | None,
        reject: RejectStats | None,
        plant: ForwardStatus | None = None,
    ) -> None:
        """`plc`: PlcLink.signals() (None: the link is off); `reject`: RejectStats (None: no reject
        output); `plant`: the plant database forwarder's status (None: the record is local only)."""
        lines = [
            f"<b>Recipe</b> {html.escape(recipe)} v{version}"
            + (f" (PLC index {index})" if index else "")
            + (f" &middot; <b>Lot</b> {html.escape(lot)}" if lot else "")
        ]
        if plc is None:
            lines.append("<b>PLC</b> link off")
        else:
            lamps = " ".join(
                _lamp(name, bool(plc.get(name)), "#d33" if name in ("ResultNG", "Error") else "#2a2")
                for name in self.LAMPS
            )
            inputs = " ".join(_lamp(name, bool(plc.get(name)), "#28c") for name in self.INPUTS)
            code = plc.get("ErrorCode", 0)
            endpoint = html.escape(str(plc.get("endpoint", "")))
            lines.append(
                f"<b>PLC</b> {endpoint}<br>{lamps}<br>{inputs} RecipeIndex {plc.get('RecipeIndex', 0)}"
                + (f" &middot; <span style='color:#d33'>ErrorCode {code}</span>" if code else "")
                + f" &middot; {plc.get('count_triggers', 0)} triggers, {plc.get('count_trigger_overrun', 0)} overruns"
            )
        if reject is None:
            lines.append("<b>Reject output</b> off")
        else:
            misses, errors = reject.misses, reject.output_errors
            lines.append(
                f"<b>Reject</b> {reject.pulses} pulses, "
                + (f"<span style='color:#d33'>{misses} misses</span>" if misses else "0 misses")
                + (f", <span style='color:#d33'>{errors} output errors</span>" if errors else "")
            )
        if plant is not None:
            state = (
                "connected"
                if plant.connected
                else f"<span style='color:#d33'>unreachable</span> ({html.escape(plant.last_error)})"
                if plant.last_error
                else "connecting"
            )
            lines.append(f"<b>Plant database</b> {state}, {plant.backlog} rows waiting")
        text = "<br>".join(lines)
        if text != self._shown:
            self._shown = text
            self.setText(text)


def _lamp(name: str, on: bool, color: str) -> str:
    return f"<span style='color:{color if on else '#777'}'>&#9679;</span>&nbsp;{name}"


class StatusLight(QLabel):
    """The camera's state as a coloured light with a word: live, paused, ready, busy, fault, off."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("statusLight")
        self.state = ""
        self.set_state("off", "Camera not open")

    def set_state(self, state: str, tip: str) -> None:
        if state != self.state:
            self.state = state
            self.setText(f"\u25cf Camera {state}")
            self.setProperty("light", state)
            self.style().unpolish(self)
            self.style().polish(self)
        self.setToolTip(tip)


class EventLog(QListWidget):
    """The latest events of the record, newest first; alarms in red until acknowledged."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("eventLog")
        self._shown: tuple[tuple[int, bool], ...] = ()

    def show_events(self, events: tuple[EventRow, ...], tz: dt.tzinfo | None = None) -> None:
        key = tuple((e.id, e.acknowledged_at is not None) for e in events)
        if key == self._shown:
            return
        self._shown = key
        self.clear()
        for e in events:
            when = e.ts.replace(tzinfo=dt.UTC).astimezone(tz).strftime("%H:%M:%S")
            ack = "" if e.level != "alarm" else (" (acknowledged)" if e.acknowledged_at else " (not acknowledged)")
            item = append_item(self, f"{when}  {e.level.upper():<7} {e.message}{ack}")
            item.setToolTip(e.message)
            if e.level == "alarm":
                item.setForeground(QColor("#ff6b6b") if e.acknowledged_at is None else QColor("#c9a227"))


def labelled(title: str, widget: QWidget) -> QWidget:
    """A widget under a small title."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    label = QLabel(title)
    label.setProperty("class", "sectionTitle")
    layout.addWidget(label)
    layout.addWidget(widget)
    return box
