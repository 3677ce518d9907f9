"""Small widgets of the main window: the live image, the verdict panel, the counters."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

from inspection.result import InspectionResult
from inspection.runner import RunnerStatus


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
        self._pixmap = QPixmap.fromImage(to_qimage(rgb))
        self._rescale()

    def resizeEvent(self, event) -> None:  # noqa: ANN001, N802 (Qt's name)
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap is not None:
            self.setPixmap(self._pixmap.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))


class VerdictPanel(QWidget):
    """The big verdict (OK green / NG red / REVIEW amber) with class and score of the last part."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QGridLayout(self)
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
        self.verdict.setProperty("verdict", result.verdict.value)
        self.verdict.style().unpolish(self.verdict)
        self.verdict.style().polish(self.verdict)
        classes = ", ".join(f"{c.name} ({c.area_px} px)" for c in result.classes) or "no defect"
        score = "n/a" if result.score != result.score else f"{result.score:.2f}"
        self.detail.setText(f"Part {result.seq} - {classes} - score {score}")


class CountersPanel(QWidget):
    """Counters of the current run."""

    FIELDS = (
        ("parts", "Inspected"), ("ok", "OK"), ("ng", "NG"), ("review", "REVIEW"), ("yield", "Yield"),
        ("rate", "Parts/min"), ("p50", "Latency p50"), ("p99", "Latency p99"), ("dropped", "Dropped"), ("recorded", "Recorded"),
    )

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        self.values: dict[str, QLabel] = {}
        for i, (key, name) in enumerate(self.FIELDS):
            value = QLabel("0")
            value.setProperty("class", "counterValue")
            value.setObjectName(f"counter_{key}")
            label = QLabel(name)
            label.setProperty("class", "counterName")
            grid.addWidget(label, (i // 2) * 2, i % 2)
            grid.addWidget(value, (i // 2) * 2 + 1, i % 2)
            self.values[key] = value

    def show_status(self, s: RunnerStatus) -> None:
        v = self.values
        v["parts"].setText(str(s.parts))
        v["ok"].setText(str(s.ok))
        v["ng"].setText(str(s.ng))
        v["review"].setText(str(s.review))
        v["yield"].setText(f"{100.0 * s.ok / s.parts:.1f} %" if s.parts else "-")
        v["rate"].setText(f"{60 * s.parts_per_s:.0f}")
        v["p50"].setText(f"{s.latency_ms_p50:.0f} ms")
        v["p99"].setText(f"{s.latency_ms_p99:.0f} ms")
        v["dropped"].setText(str(s.dropped + s.failed_grabs))
        v["recorded"].setText(str(s.recorded))
