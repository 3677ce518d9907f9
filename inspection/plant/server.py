"""The base of the PLC transports' servers: a server on its own thread and asyncio loop, started and
closed from the caller's thread, refusing to start in one sentence (`PlcError`)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from inspection.errors import InspectionError

log = logging.getLogger(__name__)


class PlcError(InspectionError):
    """The PLC link cannot start (its address cannot be bound)."""


class PlcServer:
    """A server on its own thread and asyncio loop; `start` and `close` from the caller's thread.
    Subclasses serve in `_serve` (calling `self._started.set()` once listening, returning when
    `_stopping()` was called on the loop) and say what they are in `what`."""

    what = "server"  # e.g. "OPC UA server"
    thread_name = "lepton-plc"
    START_TIMEOUT_S = 60.0
    endpoint: str

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Listen; PlcError (one sentence) when the address cannot be bound."""
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._started.wait(self.START_TIMEOUT_S):
            raise PlcError(f"The {self.what} for the PLC did not start within {self.START_TIMEOUT_S:g} s.")
        if self._error is not None:
            self._thread.join()
            raise PlcError(f"The {self.what} for the PLC cannot listen on {self.endpoint}: {self._why(self._error)}.")

    def publish(self, changes: dict[str, Any]) -> None:
        """Output changes (any thread; never blocks), applied in order on the server's loop."""
        self._on_loop(self._apply, changes)

    def close(self) -> None:
        """Stop serving; the port is free when this returns."""
        self._on_loop(self._stopping)
        if self._thread is not None:
            self._thread.join(timeout=30.0)

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # the loop has just closed
                pass

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(), which raises it as one sentence
            self._error = exc
            if not self._started.is_set():
                self._started.set()
            else:
                log.exception("the %s for the PLC failed", self.what)
        finally:
            loop.close()

    def _why(self, exc: BaseException) -> str:
        """Why it could not listen, in a few words."""
        if isinstance(exc, OSError) and exc.errno:
            return os.strerror(exc.errno).lower()
        return str(exc).rstrip(".") or type(exc).__name__

    async def _serve(self) -> None:
        raise NotImplementedError

    def _apply(self, changes: dict[str, Any]) -> None:
        """(on the loop) Output changes."""
        raise NotImplementedError

    def _stopping(self) -> None:
        """(on the loop) End `_serve`."""
        raise NotImplementedError
