"""Test doubles for unit tests and fault injection (the real path is tested with the real parts), and
`wait_for`, the one way tests wait for a state."""

from __future__ import annotations

import socket
import sqlite3
import time

import numpy as np

from models.base import DefectClass, Inspector, ModelInfo, Prediction, Thresholds

FAKE_THRESHOLDS = Thresholds(115.0, 125.0, 125.0)
"""The fake's thresholds unless a test gives its own: OK below 115, NG from 125 (mean grey)."""


class FakeInspector(Inspector):
    """Scores a frame by its mean grey level; optionally slow, optionally failing on every k-th part."""

    def __init__(self, delay_s: float = 0.0, fail_every: int = 0, thresholds: Thresholds = FAKE_THRESHOLDS) -> None:
        self.info = ModelInfo("fake", "1", "fake", "f" * 64, thresholds, ("blob",), {})
        self.delay_s, self.fail_every, self.calls = delay_s, fail_every, 0

    def preprocess(self, image):
        return image

    def infer(self, batch, image_shape):
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError("injected model failure")
        time.sleep(self.delay_s)
        score = float(batch.mean())
        amap = np.full(image_shape[:2], score, dtype=np.float32)
        mask = amap >= self.info.thresholds.pixel
        return Prediction(score, amap, mask, (DefectClass("blob", int(mask.sum()), score),) if mask.any() else ())


def wait_for(predicate, timeout_s: float = 30.0, poll_s: float = 0.02) -> bool:
    """Poll generously for a state (never a timing assertion): True once it holds, False after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def free_port() -> int:
    """A TCP port free on the loopback address now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sql(path, query: str, *params) -> list[tuple]:
    """The rows of `query` on the SQLite file at `path` (a connection of its own, closed after)."""
    con = sqlite3.connect(path)
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()
