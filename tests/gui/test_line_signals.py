"""The operator window shows the line's wiring: the recipe in force with its version and PLC index,
the lot, the PLC link's signals (a real OPC UA server on loopback, the heartbeat toggling) and the
reject gate's pulses, on the pylon emulator with the demo model and a real SQLite file."""

from __future__ import annotations

import argparse
import threading

from PySide6.QtCore import QSettings

from app.gui.main import build_window
from tests.fakes import free_port
from tests.gui.test_main_window import TIMEOUT_MS, accounts, close, log_in


def test_the_window_shows_recipe_lot_plc_signals_and_reject_counts(qtbot, tmp_path, samples):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "a.toml").write_text('name = "prod-a"\nindex = 4\n', encoding="utf-8")
    (tmp_path / "recipes" / "b.toml").write_text('name = "prod-b"\nindex = 5\n', encoding="utf-8")
    port = free_port()
    (tmp_path / "station.toml").write_text(
        '[recipes]\nfolder = "recipes"\n'
        f'[plc]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\nheartbeat_s = 0.1\n'
        "[reject]\nenabled = true\ndelay_ms = 2000.0\n",
        encoding="utf-8",
    )
    db = tmp_path / "gui.db"
    accounts(db, ("eng", "engineer"))
    args = argparse.Namespace(
        camera=f"emu:{samples}",
        model=None,
        db=db,
        recipe=tmp_path / "recipes" / "a.toml",
        config=tmp_path / "station.toml",
        device="cpu",
    )
    win = build_window(
        args, default_camera_spec="unused", settings=QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    )
    win.show()
    try:
        log_in(qtbot, win, "eng")
        qtbot.waitUntil(win.start_button.isEnabled, timeout=TIMEOUT_MS)
        panel = win.signals
        qtbot.waitUntil(lambda: f"opc.tcp://127.0.0.1:{port}" in panel.text(), timeout=TIMEOUT_MS)
        assert "prod-a v1 (PLC index 4)" in panel.text() and "Reject output</b> off" in panel.text()
        seen = set()

        def beat() -> bool:  # the heartbeat lamp as drawn, both ways
            text = panel.text()
            at = text.index("Heartbeat")
            seen.add(text[at - 40 : at])
            return len(seen) >= 2

        qtbot.waitUntil(beat, timeout=TIMEOUT_MS)
        win.start_button.click()
        qtbot.waitUntil(lambda: win.controller.running, timeout=TIMEOUT_MS)
        qtbot.waitUntil(lambda: "<b>Reject</b> 0 pulses, 0 misses" in panel.text(), timeout=TIMEOUT_MS)
        win.controller.line.set_lot("LOT-42")
        qtbot.waitUntil(lambda: "<b>Lot</b> LOT-42" in panel.text(), timeout=TIMEOUT_MS)
        win.controller.line.trigger_gate.request()  # (what a PLC's Trigger does: one part)
        qtbot.waitUntil(lambda: win.controller.status().parts == 1, timeout=TIMEOUT_MS)
        # A changeover the PLC asked for (RecipeIndex 5, on the link's thread): the window follows.
        changer = threading.Thread(target=win.controller.line.change_recipe_index, args=(5,))
        changer.start()
        qtbot.waitUntil(
            lambda: win.choices.recipe_name == "prod-b" and "prod-b" in win.windowTitle(), timeout=TIMEOUT_MS
        )
        changer.join(60)
        assert win.recipe_box.currentText() == "prod-b" and "prod-b v1 (PLC index 5)" in panel.text()
        assert win.controller.running and win.stop_button.isEnabled()
    finally:
        close(qtbot, win)


def test_the_window_says_when_the_plant_database_cannot_be_reached(qtbot, tmp_path, samples):
    """A station pointed at a plant database server that does not answer opens on its buffer, inspects,
    and its window says the server is unreachable and how many rows wait."""
    buffer = tmp_path / "buffer.db"
    accounts(buffer, ("eng", "engineer"))
    url = f"postgresql://lepton:secret@127.0.0.1:{free_port()}/plant"
    args = argparse.Namespace(
        camera=f"sim:{samples}", model=None, db=url, buffer=buffer, recipe=None, config=None, device="cpu"
    )
    win = build_window(
        args, default_camera_spec="unused", settings=QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    )
    win.show()
    try:
        log_in(qtbot, win, "eng")
        qtbot.waitUntil(win.start_button.isEnabled, timeout=TIMEOUT_MS)
        win.start_button.click()
        qtbot.waitUntil(lambda: win.controller.running and win.controller.status().parts >= 3, timeout=TIMEOUT_MS)
        qtbot.waitUntil(
            lambda: "<b>Plant database</b> <span style='color:#d33'>unreachable</span>" in win.signals.text(),
            timeout=TIMEOUT_MS,
        )
        assert "cannot be reached" in win.signals.text() and "secret" not in win.signals.text()
        qtbot.waitUntil(lambda: " 0 rows waiting" not in win.signals.text(), timeout=TIMEOUT_MS)
    finally:
        close(qtbot, win)
