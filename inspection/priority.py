"""CPU priority of the station's background threads.

On the line PC the cores belong to inspection: the network and the threads that feed it. Writing
images and rows, retention, alarms and shift reports must get done, but never by taking a core
from a part waiting for its verdict. Each of those threads lowers its own priority when it starts
(a nice value per thread is a Linux feature; elsewhere nothing changes). They still get all the
CPU that inspection leaves, and their queues are bounded, so they keep up.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

BACKGROUND_NICE = 10  # CFS then gives such a thread about a tenth of the share of one at 0 when both want a core


def background_thread() -> None:
    """Lower the calling thread's priority to BACKGROUND_NICE (Linux; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return  # elsewhere setpriority(PRIO_PROCESS, ...) would take the whole process down with it
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), BACKGROUND_NICE))
    except OSError as exc:  # a sandbox that refuses: the thread runs at the usual priority
        log.debug("thread priority unchanged: %s", exc)
