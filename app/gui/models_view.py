"""The engineer's Models tab: train a candidate from the labels (progress, cancel), compare it with the
running model on held-back labelled parts, promote it, roll back; export the labels as a dataset.
Nothing here reads a file or the database: the ReviewController does, off the GUI thread.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.review_controller import ModelsState, ReviewController
from app.gui.session import SessionController
from app.gui.widgets import labelled
from inspection.access.users import User


class ModelsView(QWidget):
    """Train a candidate (progress, cancel), compare it with the running model, promote, roll back."""

    def __init__(self, controller: ReviewController, session: SessionController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.session = session
        self.state: ModelsState | None = None
        self.rows: list[tuple[str, str, str]] = []  # what the comparison table shows
        self._build_widgets()
        self._lay_out()
        self._connect(controller)
        self.promote_button.setEnabled(False)
        self.rollback_button.setEnabled(False)

    def _build_widgets(self) -> None:
        self.running = QLabel("")
        self.running.setObjectName("runningModel")
        self.train_button = QPushButton("Train a candidate from the labels")
        self.train_button.setObjectName("trainButton")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.export_button = QPushButton("Export labels as a dataset...")
        self.export_button.setObjectName("exportButton")
        self.progress = QProgressBar()
        self.progress.setObjectName("trainProgress")
        self.stage = QLabel("")
        self.candidates = QListWidget()
        self.candidates.setObjectName("candidates")
        # The comparison as a rich-text table (no table items made in Python: see widgets.append_item).
        self.table = QLabel("")
        self.table.setObjectName("comparison")
        self.table.setTextFormat(Qt.TextFormat.RichText)
        self.table.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.held = QLabel("")
        self.held.setWordWrap(True)
        self.promote_button = QPushButton("Promote the candidate")
        self.promote_button.setObjectName("promoteButton")
        self.rollback_button = QPushButton("Roll back")
        self.rollback_button.setObjectName("rollbackButton")
        self.history = QListWidget()
        self.history.setObjectName("promotions")

    def _lay_out(self) -> None:
        """The running model and the export and rollback on top, training below; the candidates and the
        promotions on the left, the chosen candidate's comparison on the right."""
        top = QHBoxLayout()
        top.addWidget(self.running, 1)
        top.addWidget(self.export_button)
        top.addWidget(self.rollback_button)
        train = QHBoxLayout()
        train.addWidget(self.train_button)
        train.addWidget(self.progress, 1)
        train.addWidget(self.cancel_button)
        left = QVBoxLayout()
        left.addWidget(labelled("Candidates (newest first)", self.candidates), 1)
        left.addWidget(labelled("Promotions and rollbacks", self.history), 1)
        right = QVBoxLayout()
        right.addWidget(self.held)
        right.addWidget(self.table, 1)
        right.addWidget(self.promote_button)
        body = QHBoxLayout()
        body.addLayout(left, 1)
        body.addLayout(right, 2)
        outer = QVBoxLayout(self)
        outer.addLayout(top)
        outer.addLayout(train)
        outer.addWidget(self.stage)
        outer.addLayout(body, 1)

    def _connect(self, controller: ReviewController) -> None:
        self.train_button.clicked.connect(self.train)
        self.export_button.clicked.connect(self.export)
        controller.exported.connect(self.stage.setText)
        self.cancel_button.clicked.connect(controller.cancel_training)
        self.promote_button.clicked.connect(self.promote)
        self.rollback_button.clicked.connect(self.rollback)
        self.candidates.currentRowChanged.connect(self._show_candidate)
        controller.models_loaded.connect(self._on_models)
        controller.training_progress.connect(self._on_progress)
        controller.training_finished.connect(self._on_finished)
        controller.failed.connect(self._on_failed)

    def activate(self) -> None:
        self.controller.load_models()

    def _on_models(self, state: ModelsState) -> None:
        self.state = state
        self.running.setText(f"Recipe <b>{state.recipe}</b> runs <b>{state.running}</b>")
        self.rollback_button.setEnabled(state.can_roll_back)
        self.history.clear()
        for p in state.promotions:
            self.history.addItem(
                f"{p.at:%Y-%m-%d %H:%M} UTC {p.action} {p.model} by {p.who}" + (f": {p.comment}" if p.comment else "")
            )
        self.candidates.blockSignals(True)
        self.candidates.clear()
        for path, comparison in state.candidates:
            text = path.name
            if comparison:
                c = comparison["models"]["candidate"]
                text += (
                    f"  (escapes {c['escapes']}, false rejects {c['false_rejects']} of {comparison['parts']} held back)"
                )
            self.candidates.addItem(text)
        self.candidates.blockSignals(False)
        if state.candidates:
            self.candidates.setCurrentRow(0)
            self._show_candidate(0)
        else:
            self._show_rows([])
            self.held.setText("No candidate yet: relabel parts in Review, then train one.")
            self.promote_button.setEnabled(False)

    def selected_candidate(self) -> tuple[Path, dict[str, Any] | None] | None:
        row = self.candidates.currentRow()
        if self.state is None or not 0 <= row < len(self.state.candidates):
            return None
        return self.state.candidates[row]

    def _show_candidate(self, row: int) -> None:
        chosen = self.selected_candidate()
        self._show_rows([])
        self.promote_button.setEnabled(chosen is not None and chosen[1] is not None)  # promoted only on a comparison
        if chosen is None or chosen[1] is None:
            self.held.setText("This candidate has no comparison." if chosen else "")
            return
        s = chosen[1]
        parts = f"{s['parts']} labelled part" + ("s" if s["parts"] != 1 else "")
        self.held.setText(
            f"Both models judged the same {parts} ({s['good']} OK, {s['defective']} NG) held back from training; "
            f"the candidate learnt from {s['trained_on_labels']} other labelled parts."
        )
        self._show_rows(comparison_rows(s))

    def _show_rows(self, rows: list[tuple[str, str, str]]) -> None:
        self.rows = rows
        if not rows:
            self.table.setText("")
            return
        cells = "".join(
            f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td>{html.escape(c)}</td></tr>" for a, b, c in rows
        )
        self.table.setText(
            "<table cellpadding='6'><tr><th align='left'>held-back labelled parts</th><th align='left'>current</th>"
            f"<th align='left'>candidate</th></tr>{cells}</table>"
        )

    def export(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "An empty folder for the dataset")
        if folder and (user := self._user()):
            self.controller.export(Path(folder), user)

    def train(self) -> None:
        if (user := self._user()) is None:
            return
        self.progress.setRange(0, 0)  # busy until the first step says how many
        self.stage.setText("Starting the training (its own process, lowest priority, one thread)")
        self.train_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.controller.train_candidate(user)

    def _on_progress(self, stage: str, i: int, n: int) -> None:
        self.progress.setRange(0, max(n, 1))
        self.progress.setValue(i)
        self.stage.setText(f"{stage}: {i} of {n}")

    def _on_finished(self, candidate: str, message: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if candidate else 0)
        self.stage.setText(message)
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.controller.load_models()

    def _user(self) -> User | None:
        if self.session.user is None:
            self.stage.setText("Log in first: training, promotions and rollbacks record who made them.")
        return self.session.user

    def promote(self) -> None:
        chosen = self.selected_candidate()
        if chosen is not None and (user := self._user()):
            self._changing()
            self.controller.promote(chosen[0], user)

    def rollback(self) -> None:
        if user := self._user():
            self._changing()
            self.controller.rollback(user)

    def _changing(self) -> None:
        """One change at a time: the buttons come back with the reloaded models (or a failure)."""
        self.promote_button.setEnabled(False)
        self.rollback_button.setEnabled(False)
        self.stage.setText("Changing the model; the line reopens on it ...")

    def _on_failed(self, message: str) -> None:
        if self.state is not None and not self.controller.training:
            self.stage.setText(message)
            self.rollback_button.setEnabled(self.state.can_roll_back)
            chosen = self.selected_candidate()
            self.promote_button.setEnabled(chosen is not None and chosen[1] is not None)


def comparison_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, current, candidate) rows of a comparison."""
    cur, cand = summary["models"]["current"], summary["models"]["candidate"]

    def cell(m: dict[str, Any], key: str, fmt: str) -> str:
        return fmt.format(m[key]) if m.get(key) is not None else "-"

    rows = [
        ("model", cur["model"], cand["model"]),
        ("escapes (NG passed)", cell(cur, "escapes", "{}"), cell(cand, "escapes", "{}")),
        ("false rejects (OK rejected)", cell(cur, "false_rejects", "{}"), cell(cand, "false_rejects", "{}")),
        ("escape rate", cell(cur, "escape_rate", "{:.1%}"), cell(cand, "escape_rate", "{:.1%}")),
        ("false-reject rate", cell(cur, "false_reject_rate", "{:.1%}"), cell(cand, "false_reject_rate", "{:.1%}")),
        ("image AUROC", cell(cur, "image_auroc", "{:.3f}"), cell(cand, "image_auroc", "{:.3f}")),
        ("latency p50 (ms)", cell(cur, "latency_ms_p50", "{:.1f}"), cell(cand, "latency_ms_p50", "{:.1f}")),
    ]
    for cls in sorted(set(cur.get("per_class", {})) | set(cand.get("per_class", {}))):
        rows.append(
            (
                f"caught: {cls}",
                cell(cur.get("per_class", {}), cls, "{:.0%}"),
                cell(cand.get("per_class", {}), cls, "{:.0%}"),
            )
        )
    return rows
