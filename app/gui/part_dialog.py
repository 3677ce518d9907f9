"""The dialog that shows a recorded reject (a click on the filmstrip) at full size."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLabel, QPushButton, QVBoxLayout, QWidget

from app.gui.controller import PartView
from app.gui.widgets import ImageView


class PartDialog(QDialog):
    """A recorded reject at full size with its defect outline, its verdict, classes and score."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Part")
        self.resize(1000, 560)
        layout = QVBoxLayout(self)
        self.info = QLabel("")
        self.info.setObjectName("detail")
        self.view = ImageView()
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        layout.addWidget(self.info)
        layout.addWidget(self.view, 1)
        layout.addWidget(close, alignment=Qt.AlignmentFlag.AlignRight)

    def show_part(self, part: PartView, tz: dt.tzinfo | None = None) -> None:
        r = part.row
        score = f"{r.score:.3g}" if r.score is not None else "n/a"
        when = r.ts.replace(tzinfo=dt.UTC).astimezone(tz)
        self.info.setText(
            f"{r.verdict} - part {r.seq} ({r.part_id}) at {when:%Y-%m-%d %H:%M:%S %Z} - "
            f"{', '.join(r.classes) or 'no class'} - score {score}" + (f"\n{part.message}" if part.message else "")
        )
        if part.image is not None:
            self.view.set_image(part.image)
        else:
            self.view.show_text(part.message)
        self.show()
        self.raise_()
