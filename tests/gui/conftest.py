"""GUI tests: Qt objects left in reference cycles by a test are collected here, on the GUI thread,
never later by a garbage collection that happens to run on a worker thread (Qt objects must be
destroyed on their own thread; that crashed the test process)."""

from __future__ import annotations

import gc

import pytest


@pytest.fixture(autouse=True)
def collect_qt_garbage_on_the_gui_thread(qapp):
    yield
    qapp.processEvents()
    gc.collect()
