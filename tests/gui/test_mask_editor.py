"""The mask editor, offscreen, driven by real mouse and key events aimed through image_to_widget:
brush, eraser, polygon, fill, undo/redo, the model mask, zoom and pan, and what it paints."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence, QWheelEvent
from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget

from app.gui.mask_editor import MaskEditor

H, W = 60, 80  # fitted into 400 x 300: 5 widget pixels an image pixel
L, R, MID = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton


def disc(cx: int, cy: int, r: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def at(w: MaskEditor, x: float, y: float) -> QPoint:
    """The widget pixel over the centre of image pixel (x, y)."""
    return w.image_to_widget(x + 0.5, y + 0.5).toPoint()


def click(qtbot, w: MaskEditor, x: float, y: float, button: Qt.MouseButton = L) -> None:
    qtbot.mouseClick(w, button, pos=at(w, x, y))


def drag(qtbot, w: MaskEditor, points: list[tuple[float, float]], button: Qt.MouseButton = L) -> None:
    qtbot.mousePress(w, button, pos=at(w, *points[0]))
    for x, y in points[1:]:
        qtbot.mouseMove(w, at(w, x, y))
    qtbot.mouseRelease(w, button, pos=at(w, *points[-1]))


def colours_near(w: MaskEditor, x: float, y: float) -> set[tuple[int, int, int]]:
    """The colours painted within 1 widget pixel of the centre of image pixel (x, y)."""
    image, p = w.grab().toImage(), at(w, x, y)
    colours = (image.pixelColor(p.x() + dx, p.y() + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1))
    return {(c.red(), c.green(), c.blue()) for c in colours}


def make_editor(qtbot, image: np.ndarray | None = None, parent: QWidget | None = None) -> MaskEditor:
    w = MaskEditor(parent)
    top = parent or w
    qtbot.addWidget(top)
    top.resize(400, 300)
    top.show()
    qtbot.waitExposed(top)
    w.set_image(np.full((H, W), 128, np.uint8) if image is None else image)
    w.setFocus()
    return w


@pytest.fixture
def editor(qtbot) -> MaskEditor:
    return make_editor(qtbot)


def test_fitted_view_maps_image_to_widget_both_ways(editor):
    assert editor.zoom() == 5.0
    p = editor.image_to_widget(10.5, 20.25)
    assert (p.x(), p.y()) == (52.5, 101.25)
    assert editor.widget_to_image(p) == (10.5, 20.25)


def test_brush_click_paints_a_disc_and_a_drag_paints_a_line(qtbot, editor):
    editor.set_brush_size(5)
    click(qtbot, editor, 20, 30)
    assert np.array_equal(editor.mask(), disc(20, 30, 2))
    editor.clear()
    drag(qtbot, editor, [(10, 10), (20, 10), (30, 10), (40, 10)])
    m = editor.mask()
    assert m[8:13, 10:41].all() and m[10, 8:43].all()  # 5 pixels thick along the whole path, round ends
    assert not m[:8].any() and not m[13:].any() and not m[:, :8].any() and not m[:, 43:].any()
    assert not m[8, 8] and not m[12, 42]


def test_eraser_removes_only_around_the_click(qtbot, editor):
    full = np.zeros((H, W), bool)
    full[10:50, 10:70] = True
    editor.set_mask(full)
    qtbot.keyClick(editor, Qt.Key.Key_E)
    assert editor.tool() == "eraser"
    editor.set_brush_size(7)
    click(qtbot, editor, 30, 30)
    assert np.array_equal(editor.mask(), full & ~disc(30, 30, 3))


def test_brush_size_keys_clamps_and_painted_radius(qtbot, editor):
    editor.set_brush_size(10)
    qtbot.keyClick(editor, Qt.Key.Key_BracketRight)
    assert editor.brush_size() == 12
    qtbot.keyClick(editor, Qt.Key.Key_BracketLeft)
    assert editor.brush_size() == 10
    qtbot.keyClick(editor, Qt.Key.Key_BracketLeft)
    assert editor.brush_size() == 8
    editor.set_brush_size(500)
    assert editor.brush_size() == 200
    editor.set_brush_size(0)
    qtbot.keyClick(editor, Qt.Key.Key_BracketLeft)
    assert editor.brush_size() == 1
    click(qtbot, editor, 40, 30)
    assert np.argwhere(editor.mask()).tolist() == [[30, 40]]  # size 1: exactly the pixel clicked


def test_tool_keys_and_other_keys_reach_the_parent(qtbot):
    class Parent(QWidget):
        def __init__(self) -> None:
            super().__init__()
            self.keys: list[int] = []

        def keyPressEvent(self, e: QKeyEvent) -> None:
            if e.key() != Qt.Key.Key_Control:
                self.keys.append(e.key())

    parent = Parent()
    QVBoxLayout(parent)
    w = make_editor(qtbot, parent=parent)
    parent.layout().addWidget(w)
    for key, tool in (
        (Qt.Key.Key_G, "polygon"),
        (Qt.Key.Key_F, "fill"),
        (Qt.Key.Key_E, "eraser"),
        (Qt.Key.Key_B, "brush"),
    ):
        qtbot.keyClick(w, key)
        assert w.tool() == tool
    assert parent.keys == []
    qtbot.keyClick(w, Qt.Key.Key_X)
    qtbot.keyClick(w, Qt.Key.Key_Return)  # no open polygon: not ours
    qtbot.keyClick(w, Qt.Key.Key_Escape)
    qtbot.keyClick(w, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
    assert parent.keys == [Qt.Key.Key_X, Qt.Key.Key_Return, Qt.Key.Key_Escape, Qt.Key.Key_B]
    with pytest.raises(ValueError):
        w.set_tool("lasso")


def test_polygon_enter_fills_inside_only_one_undo_step(qtbot, editor):
    qtbot.keyClick(editor, Qt.Key.Key_G)
    for x, y in ((10, 10), (50, 10), (50, 40), (10, 40)):
        click(qtbot, editor, x, y)
    assert not editor.mask().any() and not editor.can_undo()  # nothing before it is closed
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    expected = np.zeros((H, W), bool)
    expected[10:41, 10:51] = True
    assert np.array_equal(editor.mask(), expected)
    assert editor.mask()[25, 30] and not editor.mask()[5, 30] and not editor.mask()[25, 55]
    editor.undo()
    assert not editor.mask().any() and not editor.can_undo()


def test_polygon_double_click_closes_backspace_drops_a_vertex(qtbot, editor):
    editor.set_tool("polygon")
    for x, y in ((10, 10), (50, 10), (50, 40), (10, 40)):
        click(qtbot, editor, x, y)
    qtbot.keyClick(editor, Qt.Key.Key_Backspace)  # triangle (10,10) (50,10) (50,40)
    qtbot.mouseDClick(editor, L, pos=at(editor, 50, 40))  # its first press adds (50, 40) again: harmless
    m = editor.mask()
    assert m[12, 45] and m[38, 49] and not m[38, 12] and not m[30, 20]
    assert m[10, 10:51].all() and m[10:41, 50].all() and not m[11:, 10].any()


def test_escape_cancels_the_open_polygon(qtbot, editor):
    editor.set_tool("polygon")
    for x, y in ((10, 10), (50, 10), (50, 40)):
        click(qtbot, editor, x, y)
    assert (255, 220, 0) in colours_near(editor, 30, 10)  # the open polygon is drawn, along its edges
    qtbot.keyClick(editor, Qt.Key.Key_Escape)
    assert colours_near(editor, 30, 10) == {(128, 128, 128)}
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert not editor.mask().any() and not editor.can_undo()


def test_fill_inside_a_brushed_ring_fills_the_hole_not_the_outside(qtbot, editor):
    editor.set_brush_size(3)
    drag(qtbot, editor, [(20, 20), (50, 20), (50, 45), (20, 45), (20, 20)])
    ring = editor.mask()
    assert not ring[32, 35]
    qtbot.keyClick(editor, Qt.Key.Key_F)
    click(qtbot, editor, 35, 32)
    hole = np.zeros((H, W), bool)
    hole[22:44, 22:49] = True  # inside the ring, 1 pixel either side of the path (20, 20) - (50, 45)
    assert not (ring & hole).any()
    assert np.array_equal(editor.mask(), ring | hole)
    click(qtbot, editor, 35, 32)  # on masked pixels: nothing changes, no undo step
    editor.undo()
    assert np.array_equal(editor.mask(), ring)
    editor.undo()  # the repeated fill left no step of its own: this one undoes the ring
    assert not editor.mask().any() and not editor.can_undo()
    editor.redo()
    click(qtbot, editor, 5, 5)  # outside the ring: all but the hole
    assert np.array_equal(editor.mask(), ~hole)


def test_undo_redo_restore_exact_masks_with_keys_and_cap(qtbot, editor):
    editor.set_brush_size(5)
    states = [editor.mask()]
    for x, y in ((10, 10), (30, 20), (60, 40)):
        click(qtbot, editor, x, y)
        states.append(editor.mask())
    editor.clear()
    states.append(editor.mask())
    for expected in reversed(states[:-1]):
        qtbot.keyClick(editor, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        assert np.array_equal(editor.mask(), expected)
    assert not editor.can_undo() and editor.can_redo()
    qtbot.keyClick(editor, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(editor.mask(), states[1])
    qtbot.keyClick(editor, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(editor.mask(), states[2])
    click(qtbot, editor, 70, 5)  # a new edit drops what could be redone
    assert not editor.can_redo()
    editor.set_brush_size(1)
    editor.clear()
    for i in range(55):
        click(qtbot, editor, i, 0)
    undos = 0
    while editor.can_undo():
        editor.undo()
        undos += 1
    assert undos == 50 and editor.mask().sum() == 5


def test_undo_key_wins_over_a_window_shortcut_other_shortcuts_still_work(qtbot):
    parent = QWidget()
    QVBoxLayout(parent)
    fired: list[str] = []
    for keys in ("Ctrl+Z", "Ctrl+Q"):
        action = QAction(keys, parent)
        action.setShortcut(QKeySequence(keys))
        action.triggered.connect(lambda *_, k=keys: fired.append(k))
        parent.addAction(action)
    w = make_editor(qtbot, parent=parent)
    parent.layout().addWidget(w)
    parent.activateWindow()
    qtbot.waitUntil(parent.isActiveWindow)  # window shortcuts work in the active window only
    w.setFocus()
    w.set_brush_size(1)
    click(qtbot, w, 3, 3)
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not w.mask().any() and fired == []
    qtbot.keyClick(w, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert fired == ["Ctrl+Q"]


def test_start_from_model_copies_and_is_undoable(qtbot, editor):
    model = np.zeros((H, W), bool)
    model[20:30, 40:60] = True
    editor.set_model_mask(model)
    assert not editor.mask().any()
    editor.start_from_model()
    model[:] = False  # the editor keeps its own copy
    assert editor.mask().sum() == 200 and editor.mask()[20:30, 40:60].all()
    editor.undo()
    assert not editor.mask().any()
    editor.redo()
    assert editor.mask().sum() == 200
    with pytest.raises(ValueError):
        editor.set_model_mask(np.zeros((H, W + 1), bool))


def test_zoom_pan_then_paint_hits_the_right_pixel(qtbot, editor):
    editor.set_brush_size(1)
    for _ in range(3):
        qtbot.keyClick(editor, Qt.Key.Key_Plus)
    assert editor.zoom() == pytest.approx(5 * 1.25**3)
    before = editor.image_to_widget(30, 20)
    qtbot.mousePress(editor, R, pos=QPoint(300, 250))
    qtbot.mouseMove(editor, QPoint(240, 210))
    qtbot.mouseRelease(editor, R, pos=QPoint(240, 210))
    after = editor.image_to_widget(30, 20)
    assert (after.x() - before.x(), after.y() - before.y()) == (-60, -40)
    assert not editor.mask().any()  # panning paints nothing
    click(qtbot, editor, 30, 20)
    assert np.argwhere(editor.mask()).tolist() == [[20, 30]]
    qtbot.mousePress(editor, MID, pos=QPoint(100, 100))
    qtbot.mouseMove(editor, QPoint(130, 90))
    qtbot.mouseRelease(editor, MID, pos=QPoint(130, 90))
    moved = editor.image_to_widget(30, 20)
    assert (moved.x() - after.x(), moved.y() - after.y()) == (30, -10)
    qtbot.keyClick(editor, Qt.Key.Key_0)
    assert editor.zoom() == 5.0
    qtbot.keyClick(editor, Qt.Key.Key_Minus)
    assert editor.zoom() == pytest.approx(4.0)


def test_wheel_zooms_about_the_cursor(qtbot, editor):
    pos = QPointF(123, 77)
    under = editor.widget_to_image(pos)
    event = QWheelEvent(
        pos,
        editor.mapToGlobal(pos),
        QPoint(),
        QPoint(0, 240),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(editor, event)
    assert editor.zoom() == pytest.approx(5 * 1.25**2)
    assert editor.widget_to_image(pos) == pytest.approx(under)


def test_is_modified_and_changed_signal(qtbot, editor):
    emitted: list[bool] = []
    editor.changed.connect(lambda: emitted.append(True))
    assert not editor.is_modified()
    drag(qtbot, editor, [(10, 10), (20, 10), (30, 10)])
    assert editor.is_modified() and len(emitted) == 1  # one signal a stroke
    editor.undo()
    assert not editor.is_modified() and len(emitted) == 2
    saved = np.zeros((H, W), bool)
    saved[5:9, 5:9] = True
    editor.set_mask(saved)
    assert not editor.is_modified() and not editor.can_undo() and len(emitted) == 2
    assert np.array_equal(editor.mask(), saved)
    editor.mask()[:] = False  # a copy
    assert editor.mask().sum() == 16
    editor.clear()
    assert editor.is_modified() and len(emitted) == 3
    editor.clear()  # nothing left to clear: no edit
    assert len(emitted) == 3 and editor.can_undo()
    editor.set_image(np.zeros((H, W, 3), np.uint8))
    assert not editor.mask().any() and not editor.can_undo() and not editor.is_modified()
    with pytest.raises(ValueError):
        editor.set_mask(np.zeros((H + 1, W), bool))


def test_paints_the_mask_in_red_and_the_model_outline_in_cyan(qtbot, editor):
    mask = np.zeros((H, W), bool)
    mask[10:20, 10:20] = True
    model = np.zeros((H, W), bool)
    model[30:40, 40:60] = True
    editor.set_mask(mask)
    editor.set_model_mask(model)

    def colour(x: float, y: float) -> tuple[int, int, int]:
        c = editor.grab().toImage().pixelColor(editor.image_to_widget(x, y).toPoint())
        return c.red(), c.green(), c.blue()

    for x, y in ((15, 15), (10.3, 10.3), (19.7, 19.7)):  # inside the masked block, near its corners too
        r, g, b = colour(x, y)
        assert r > g + 40 and g == b  # red overlay over grey
    assert colour(9.7, 9.7) == colour(20.3, 20.3) == (128, 128, 128)
    assert colour(30.5, 15.5) == (128, 128, 128)
    assert colour(50.5, 35.5) == (128, 128, 128)  # the model mask is an outline only
    assert (0, 255, 255) in colours_near(editor, 40, 35)  # on its left edge
    editor.show_model_mask(False)
    assert colours_near(editor, 40, 35) == {(128, 128, 128)}


def test_a_full_size_part_image_paints_where_clicked(qtbot):
    """A 1130 x 460 part (the ball screw's size) shrunk to fit: clicks still land on their pixels.
    (Its speed is measured by hand, not in a test: timed tests flake on shared machines.)"""
    rng = np.random.default_rng(0)
    w = make_editor(qtbot, rng.integers(0, 255, (460, 1130, 3), dtype=np.uint8))
    w.resize(1200, 520)
    w.set_brush_size(20)
    for i in range(10):
        click(qtbot, w, 100 + 50 * i, 200)
        w.repaint()
    m = w.mask()
    assert all(m[200, 100 + 50 * i] for i in range(10)) and not m[200, 75] and not m[300, 100]
