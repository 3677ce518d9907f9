"""The mask editor: an engineer draws or corrects the defect mask of one part image (brush, eraser,
polygon, flood fill, undo/redo, zoom and pan) over the image, with the model's own mask shown as a
cyan outline. It only edits the arrays it is given; the caller loads and saves them."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import cv2
import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPolygonF,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from app.gui.widgets import to_qimage

TOOLS = ("brush", "eraser", "polygon", "fill")
HISTORY = 50  # undo steps kept, 1 bit a pixel each: 50 steps of 1130x460 are 3.2 MB
BRUSH_RANGE = (1, 200)
ZOOM_STEP = 1.25
ZOOM_RANGE = (0.02, 64.0)
OVERLAY = QColor(255, 0, 0, 110)
MODEL_OUTLINE = QColor(0, 255, 255)
POLYGON = QColor(255, 220, 0)
K = Qt.Key
M = Qt.KeyboardModifier
TOOL_KEYS = {K.Key_B: "brush", K.Key_E: "eraser", K.Key_G: "polygon", K.Key_F: "fill"}


class MaskEditor(QWidget):
    """Edits a bool H x W mask over an H x W image. Image coordinates are continuous: pixel (i, j)
    covers [i, i + 1) x [j, j + 1), so its centre is (i + 0.5, j + 0.5)."""

    changed = Signal()  # after each edit of the mask by the user or an undoable call (not after set_image/set_mask)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)  # the brush cursor and the open polygon follow the mouse
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.PreventContextMenu)  # right drag pans
        self.setCursor(Qt.CursorShape.CrossCursor)
        self._image: QImage | None = None
        self._mask = np.zeros((0, 0), np.uint8)  # 0/1, the mask being edited
        self._base = self._mask.copy()  # as last set from outside: is_modified compares with it
        self._overlay = QImage()
        self._model: np.ndarray | None = None
        self._contours: list[QPolygonF] = []
        self._show_model = True
        self._undo: deque[np.ndarray] = deque(maxlen=HISTORY)  # packed masks before each edit
        self._redo: list[np.ndarray] = []
        self._tool = "brush"
        self._size = 9
        self._zoom, self._offset, self._fitted = 1.0, QPointF(), True  # widget = offset + image * zoom
        self._polygon: list[tuple[int, int]] = []  # vertices of the open polygon, image pixels
        self._stroke: np.ndarray | None = None  # the mask before the stroke in progress
        self._last = (0, 0)
        self._pan_from: QPointF | None = None
        self._cursor: QPointF | None = None

    # -- image and masks ------------------------------------------------------------------------

    def set_image(self, image: np.ndarray) -> None:
        """A new H x W RGB or grey uint8 image: empty mask, no history, no model mask, view fitted."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ValueError(f"expected an H x W x 3 or H x W uint8 image, got {image.dtype} {image.shape}")
        self._image = to_qimage(image).convertToFormat(QImage.Format.Format_RGB32)  # the fastest to draw
        self._model, self._contours = None, []
        self._reset(np.zeros(image.shape[:2], np.uint8))
        self.fit()

    def set_mask(self, mask: np.ndarray) -> None:
        """The mask to start from (e.g. a saved annotation): not an edit, clears the history."""
        self._reset(self._checked(mask).astype(np.uint8))

    def mask(self) -> np.ndarray:
        return self._mask.astype(bool)

    def set_model_mask(self, mask: np.ndarray | None) -> None:
        self._model = None if mask is None else self._checked(mask).copy()
        self._contours = []
        if self._model is not None:
            contours, _ = cv2.findContours(self._model.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
            self._contours = [QPolygonF([QPointF(x + 0.5, y + 0.5) for x, y in c[:, 0]]) for c in contours]
        self.update()

    def show_model_mask(self, show: bool) -> None:
        self._show_model = show
        self.update()

    def start_from_model(self) -> None:
        if self._model is not None:
            before, self._mask = self._mask, self._model.astype(np.uint8)
            self._commit(before)

    def clear(self) -> None:
        before, self._mask = self._mask, np.zeros_like(self._mask)
        self._commit(before)

    def is_modified(self) -> bool:
        return not np.array_equal(self._mask, self._base)

    def _checked(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if self._image is None or mask.shape != self._mask.shape:
            raise ValueError(f"mask of shape {mask.shape} does not fit the image {self._mask.shape} (set_image first)")
        return mask != 0

    def _reset(self, mask: np.ndarray) -> None:
        self._mask, self._base = mask, mask.copy()
        self._undo.clear()
        self._redo.clear()
        self._polygon, self._stroke = [], None
        self._refresh()

    # -- history --------------------------------------------------------------------------------

    def undo(self) -> None:
        if self._undo and self._stroke is None:
            self._redo.append(np.packbits(self._mask))
            self._mask = self._unpack(self._undo.pop())
            self._edited()

    def redo(self) -> None:
        if self._redo and self._stroke is None:
            self._undo.append(np.packbits(self._mask))
            self._mask = self._unpack(self._redo.pop())
            self._edited()

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def _unpack(self, bits: np.ndarray) -> np.ndarray:
        return np.unpackbits(bits, count=self._mask.size).reshape(self._mask.shape)

    def _commit(self, before: np.ndarray) -> None:
        """One undo step from `before` to the current mask, if they differ."""
        if np.array_equal(before, self._mask):
            self.update()
            return
        self._undo.append(np.packbits(before))
        self._redo.clear()
        self._edited()

    def _edited(self) -> None:
        self._refresh()
        self.changed.emit()

    def _refresh(self) -> None:
        """Rebuild the cached red overlay from the mask (0/1 as the indices of a 2-colour table)."""
        h, w = self._mask.shape
        if self._mask.size:
            indexed = QImage(self._mask.data, w, h, w, QImage.Format.Format_Indexed8)
            indexed.setColorTable([0, OVERLAY.rgba()])
            self._overlay = indexed.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
        else:
            self._overlay = QImage()
        self.update()

    # -- tools ----------------------------------------------------------------------------------

    def set_tool(self, name: str) -> None:
        if name not in TOOLS:
            raise ValueError(f"unknown tool {name!r}, expected one of {TOOLS}")
        self._tool, self._polygon = name, []
        self.update()

    def tool(self) -> str:
        return self._tool

    def set_brush_size(self, px: int) -> None:
        """Brush diameter in image pixels: a disc of radius px // 2 around the pixel under the mouse."""
        self._size = int(np.clip(px, *BRUSH_RANGE))
        self.update()

    def brush_size(self) -> int:
        return self._size

    def _step_brush(self, sign: int) -> None:
        self.set_brush_size(self._size + sign * max(1, self._size // 5))

    def _dab(self, a: tuple[int, int], b: tuple[int, int]) -> None:
        r, value = self._size // 2, int(self._tool == "brush")
        cv2.circle(self._mask, b, r, value, -1)
        if a != b:  # (a thick line of cv2 has round ends: thickness 2r is the sweep of the radius-r disc)
            cv2.line(self._mask, a, b, value, max(1, 2 * r))
        self._refresh()

    def _fill(self, x: int, y: int) -> None:
        """Set the 4-connected region of equal mask value around (x, y)."""
        h, w = self._mask.shape
        if 0 <= x < w and 0 <= y < h:
            region = np.zeros((h + 2, w + 2), np.uint8)
            cv2.floodFill(self._mask.copy(), region, (x, y), 1, flags=4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
            before = self._mask.copy()
            self._mask[region[1:-1, 1:-1] > 0] = 1
            self._commit(before)

    def _close_polygon(self) -> None:
        points, self._polygon = self._polygon, []
        if len(points) < 3:
            self.update()
            return
        before = self._mask.copy()
        cv2.fillPoly(self._mask, [np.array(points, np.int32)], 1)
        self._commit(before)

    def _cancel_polygon(self) -> None:
        self._polygon = []
        self.update()

    def _pop_vertex(self) -> None:
        self._polygon.pop()
        self.update()

    # -- view -----------------------------------------------------------------------------------

    def image_to_widget(self, x: float, y: float) -> QPointF:
        return QPointF(self._offset.x() + x * self._zoom, self._offset.y() + y * self._zoom)

    def widget_to_image(self, p: QPointF | QPoint) -> tuple[float, float]:
        return (p.x() - self._offset.x()) / self._zoom, (p.y() - self._offset.y()) / self._zoom

    def zoom(self) -> float:
        return self._zoom

    def zoom_in(self) -> None:
        self._zoom_about(QRectF(self.rect()).center(), ZOOM_STEP)

    def zoom_out(self) -> None:
        self._zoom_about(QRectF(self.rect()).center(), 1 / ZOOM_STEP)

    def fit(self) -> None:
        """Whole image, centred; kept fitted on resize until the user zooms or pans."""
        self._fitted = True
        if self._image is not None:
            w, h = self._image.width(), self._image.height()
            self._zoom = float(np.clip(min(self.width() / w, self.height() / h), *ZOOM_RANGE))
            self._offset = QPointF((self.width() - w * self._zoom) / 2, (self.height() - h * self._zoom) / 2)
        self.update()

    def _zoom_about(self, p: QPointF, factor: float) -> None:
        """Zoom keeping the image point under p where it is."""
        if self._image is not None:
            x, y = self.widget_to_image(p)
            self._zoom = float(np.clip(self._zoom * factor, *ZOOM_RANGE))
            self._offset = QPointF(p.x() - x * self._zoom, p.y() - y * self._zoom)
            self._fitted = False
            self.update()

    def _pixel(self, p: QPointF) -> tuple[int, int]:
        x, y = self.widget_to_image(p)
        return math.floor(x), math.floor(y)

    # -- painting -------------------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        return QSize(800, 400)

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            self._paint(painter)
        finally:
            painter.end()

    def _paint(self, p: QPainter) -> None:
        p.fillRect(self.rect(), QColor(40, 40, 40))
        if self._image is None:
            p.setPen(QColor(160, 160, 160))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No image")
            return
        # Only the visible part of the image, whole pixels, so that a deep zoom stays cheap.
        (x0, y0), (x1, y1) = (
            self.widget_to_image(QPointF(0, 0)),
            self.widget_to_image(QPointF(self.width(), self.height())),
        )
        x0, y0 = max(0, math.floor(x0)), max(0, math.floor(y0))
        x1, y1 = min(self._image.width(), math.ceil(x1)), min(self._image.height(), math.ceil(y1))
        if x1 > x0 and y1 > y0:
            source = QRectF(x0, y0, x1 - x0, y1 - y0)
            target = QRectF(self.image_to_widget(x0, y0), self.image_to_widget(x1, y1))
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._zoom < 1)  # nearest when zoomed in
            p.drawImage(target, self._image, source)
            p.drawImage(target, self._overlay, source)
        if self._show_model and self._contours:
            p.save()
            p.setTransform(QTransform(self._zoom, 0, 0, self._zoom, self._offset.x(), self._offset.y()))
            pen = QPen(MODEL_OUTLINE, 2)
            pen.setCosmetic(True)  # 2 screen pixels at any zoom
            p.setPen(pen)
            for contour in self._contours:
                p.drawPolygon(contour)
            p.restore()
        if self._polygon:
            points = [self.image_to_widget(x + 0.5, y + 0.5) for x, y in self._polygon]
            p.setPen(QPen(POLYGON, 1.5))
            p.drawPolyline(QPolygonF(points + ([self._cursor] if self._cursor is not None else [])))
            for q in points:
                p.drawRect(QRectF(q.x() - 2, q.y() - 2, 4, 4))
        if self._cursor is not None and self._tool in ("brush", "eraser"):
            x, y = self._pixel(self._cursor)
            centre, radius = self.image_to_widget(x + 0.5, y + 0.5), (self._size // 2 + 0.5) * self._zoom
            for colour, width in ((QColor(0, 0, 0), 3), (QColor(255, 255, 255), 1)):
                p.setPen(QPen(colour, width))
                p.drawEllipse(centre, radius, radius)

    # -- events ---------------------------------------------------------------------------------

    def _key_action(self, e: QKeyEvent) -> Callable[[], None] | None:
        """What a key does here, None for a key left to the parent."""
        key, mods = e.key(), e.modifiers() & ~M.KeypadModifier
        if mods == M.ControlModifier:
            return {K.Key_Z: self.undo, K.Key_Y: self.redo}.get(key)
        if mods == M.ControlModifier | M.ShiftModifier:
            return self.redo if key == K.Key_Z else None
        if mods & ~M.ShiftModifier:
            return None
        if self._polygon:
            action = {
                K.Key_Return: self._close_polygon,
                K.Key_Enter: self._close_polygon,
                K.Key_Escape: self._cancel_polygon,
                K.Key_Backspace: self._pop_vertex,
            }.get(key)
            if action is not None:
                return action
        if mods == M.NoModifier and key in TOOL_KEYS:
            return lambda: self.set_tool(TOOL_KEYS[key])
        return {
            K.Key_BracketLeft: lambda: self._step_brush(-1),
            K.Key_BracketRight: lambda: self._step_brush(1),
            K.Key_Plus: self.zoom_in,
            K.Key_Equal: self.zoom_in,
            K.Key_Minus: self.zoom_out,
            K.Key_0: self.fit,
        }.get(key)

    def event(self, e: QEvent) -> bool:
        # Our keys win over a window's shortcuts (e.g. an Undo action) while the editor has the focus.
        if e.type() == QEvent.Type.ShortcutOverride and self._key_action(e) is not None:
            e.accept()
            return True
        return super().event(e)

    def keyPressEvent(self, e: QKeyEvent) -> None:
        action = self._key_action(e)
        if action is None:
            super().keyPressEvent(e)  # ignored: on to the parent
        else:
            action()
            e.accept()

    def mousePressEvent(self, e: QMouseEvent) -> None:
        if self._image is None:
            super().mousePressEvent(e)
        elif e.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.RightButton):
            self._pan_from = e.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif e.button() == Qt.MouseButton.LeftButton and self._pan_from is None:
            xy = self._pixel(e.position())
            if self._tool in ("brush", "eraser"):
                self._stroke, self._last = self._mask.copy(), xy
                self._dab(xy, xy)
            elif self._tool == "polygon":
                self._polygon.append(xy)
                self.update()
            else:
                self._fill(*xy)
        else:
            super().mousePressEvent(e)

    def mouseDoubleClickEvent(self, e: QMouseEvent) -> None:
        if e.button() == Qt.MouseButton.LeftButton and self._tool == "polygon" and self._polygon:
            self._close_polygon()  # the first press of the double click already added the last vertex
        else:
            self.mousePressEvent(e)

    def mouseMoveEvent(self, e: QMouseEvent) -> None:
        pos = self._cursor = e.position()
        if self._pan_from is not None:
            self._offset += pos - self._pan_from
            self._pan_from, self._fitted = pos, False
        elif self._stroke is not None:
            xy = self._pixel(pos)
            if xy != self._last:
                self._dab(self._last, xy)
                self._last = xy
        self.update()

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:
        if e.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.RightButton) and self._pan_from is not None:
            self._pan_from = None
            self.setCursor(Qt.CursorShape.CrossCursor)
        elif e.button() == Qt.MouseButton.LeftButton and self._stroke is not None:
            before, self._stroke = self._stroke, None
            self._commit(before)
        else:
            super().mouseReleaseEvent(e)

    def wheelEvent(self, e: QWheelEvent) -> None:
        steps = e.angleDelta().y() / 120
        if steps and self._image is not None:
            self._zoom_about(e.position(), ZOOM_STEP**steps)
            e.accept()
        else:
            super().wheelEvent(e)

    def leaveEvent(self, e: QEvent) -> None:
        self._cursor = None
        self.update()
        super().leaveEvent(e)

    def resizeEvent(self, e: QResizeEvent) -> None:
        super().resizeEvent(e)
        if self._fitted:
            self.fit()
