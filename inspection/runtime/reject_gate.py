"""The reject gate: a pulse on the camera's output line when a rejected part reaches the gate, and
the deadline its verdict must meet.

A part is imaged at `t0` (its trigger, or its frame's arrival) and reaches the reject gate
`delay_ms` later (`after = "time"`) or once the conveyor's encoder has counted `encoder_counts`
more (`after = "encoder"`). Its verdict must be in hand, and the pulse scheduled, `ready_margin_ms`
before then. A part whose verdict comes later is a *miss*: counted, alarmed, and never pulsed (a
late pulse would reject the part behind it). This holds for every part, OK ones too: a late OK part
means that a bad one would have passed. A rejected part (NG always; REVIEW with `reject_review`)
gets a pulse of `pulse_ms` at the gate, driven by the gate's own thread (it sleeps until about
2 ms before, then spins); OK parts never pulse.

Encoder mode: frames carry no encoder count, so the gate's thread reads the encoder every `poll_s`
from `start()` and keeps the last seconds of readings; a part's count at `t0` is interpolated from
them, its gate count is that plus `encoder_counts`, and its pulse starts at the first reading at or
past the gate count (late by up to one poll and one read of the encoder; `late_pulse_ms_max` says
how late, from the crossing interpolated between two readings). The readiness check turns the
counts still to go into time at the conveyor's present speed: a belt that stands still is never
late, a part already past its gate count always is. The count must rise as parts move towards the
gate, and must not wrap (a wrapping counter is left out).

Overlapping pulses (two rejects closer together than `pulse_ms`) merge: the output goes on at the
first part's gate and off `pulse_ms` after the last one's, so each part gets at least its
`pulse_ms`; `merged` counts the parts that joined a pulse already on.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
import logging
import math
import queue
import threading
import time
from collections.abc import Callable

from camera.base import Camera
from camera.errors import CameraError
from inspection.result import InspectionResult, Verdict
from inspection.settings.io import RejectConfig

log = logging.getLogger(__name__)

SPIN_S = 0.002  # the gate's thread sleeps until this long before a pulse edge, then spins
RETRY_S = 0.05  # an output that could not be switched off is tried again this often
ERROR_PAUSE_S = 0.5  # a failed encoder read is tried again after this long (not in a busy loop)
FINISH_ENCODER_S = 10.0  # encoder mode: how long a stopping line's last pulses are waited for
HISTORY_S = 10.0  # encoder readings kept (a result later than this after its trigger is a miss)
SPEED_WINDOW_S = 0.1  # the conveyor's speed is measured over this long


@dataclasses.dataclass(frozen=True)
class RejectStats:
    """The gate's counts for the current run."""

    run_id: int | None
    pulses: int  # rejected parts pulsed (merged ones included)
    merged: int  # parts whose pulse joined one already on
    misses: int  # parts whose verdict came after the ready deadline (never pulsed)
    missed_rejects: int  # of the misses, parts that should have been rejected
    output_errors: int  # writes to the output, or reads of the encoder, that failed
    late_pulse_ms_max: float  # the latest start of a pulse after its part's gate time
    width_error_ms_max: float  # the largest (achieved - planned) width of a pulse
    last_miss: str
    last_error: str


@dataclasses.dataclass(frozen=True)
class _Finish:
    """The line stops: give the pulses due within `within_s`, then end."""

    within_s: float


@dataclasses.dataclass(frozen=True)
class _Part:
    seq: int
    run_id: int
    verdict: Verdict
    reject: bool
    t0: float  # perf_counter of its trigger


class RejectGate:
    """Pulses `camera`'s reject output for rejected parts (see the module's notes).

    `on_result` is a result listener (inspection thread, constant time); everything else happens
    on the gate's thread between `start()` and `close()`. `clock` is injectable for tests (a
    perf_counter-like function).
    """

    def __init__(
        self,
        camera: Camera,
        config: RejectConfig,
        *,
        poll_s: float = 0.002,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.camera = camera
        self.config = config
        self.poll_s = poll_s
        self._clock = clock
        self._inbox: queue.SimpleQueue[_Part | _Finish | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the counts
        self._stats = RejectStats(None, 0, 0, 0, 0, 0, 0.0, 0.0, "", "")
        # The gate's thread only
        self._order = itertools.count()
        self._due: list[tuple[float, int, _Part]] = []  # (gate time or gate count, order, part)
        self._on_at: float | None = None  # when the output went on (None: off)
        self._off_at = 0.0  # when it goes off (while on)
        self._history: collections.deque[tuple[float, int]] = collections.deque(maxlen=max(16, int(HISTORY_S / poll_s)))
        self._next_poll = 0.0

    # -- any thread ------------------------------------------------------------------------
    def on_result(self, result: InspectionResult) -> None:
        """A result listener: hands the part (its first view) to the gate's thread."""
        if result.view != 0:
            return
        verdict = result.part_verdict or result.verdict
        reject = verdict is Verdict.NG or (verdict is Verdict.REVIEW and self.config.reject_review)
        self._inbox.put(_Part(result.seq, result.run_id, verdict, reject, result.t0))

    def stats(self) -> RejectStats:
        with self._lock:
            return self._stats

    def start(self) -> None:
        """Switch the output off (and read the encoder, in encoder mode) and start the thread; a
        camera without the output or the encoder raises CameraError here."""
        self.camera.set_output(False)
        if self.config.after == "encoder":
            self._poll(self._clock())
        self._thread = threading.Thread(target=self._loop, name="lepton-reject", daemon=True)
        self._thread.start()

    def close(self, finish: bool = False) -> None:
        """Stop the thread and leave the output off. With `finish` (a line stopping while its parts
        still travel to the gate) the pulses already due are given first, for at most the time a
        part takes to the gate (time mode) or FINISH_ENCODER_S (encoder mode); else they are dropped."""
        if self._thread is not None:
            c = self.config
            within = (c.delay_ms + c.pulse_ms) / 1000 + 0.5 if c.after == "time" else FINISH_ENCODER_S
            self._inbox.put(_Finish(within) if finish else None)
            self._thread.join(within + 10 if finish else 10)
            self._thread = None
        try:
            self.camera.set_output(False)
        except CameraError as exc:
            log.warning("reject output not switched off at close: %s", exc)

    # -- the gate's thread -----------------------------------------------------------------
    def _loop(self) -> None:
        finish_by: float | None = None  # finishing: return once nothing is due, or at this time
        while True:
            if finish_by is not None and ((not self._due and self._on_at is None) or self._clock() >= finish_by):
                for _, _, late in sorted(self._due):  # (the belt stopped, in encoder mode): counted, never silent
                    self._miss(late, "was still on its way to the reject gate when the line stopped")
                return
            wake, edge = self._next_wake()
            block_until = wake - SPIN_S if edge else wake  # a pulse edge is spun for, a read is not
            now = self._clock()
            try:
                if block_until > now:
                    part = self._inbox.get(timeout=None if wake == math.inf else block_until - now)
                    if part is None:
                        return
                    if isinstance(part, _Finish):
                        finish_by = self._clock() + part.within_s
                        continue
                    self._accept(part)
                    continue
            except queue.Empty:
                pass
            except CameraError as exc:  # the encoder could not be read for a new part
                self._count_error(exc)
                continue
            try:
                if edge:
                    self._sleep_until(wake)
                self._fire()
            except CameraError as exc:
                self._count_error(exc)
            except Exception:  # the gate must go on: log and carry on with the next part
                log.exception("reject gate step failed")

    def _next_wake(self) -> tuple[float, bool]:
        """When the next thing is due, and whether it is a pulse edge (time mode's start, the
        output's end) rather than an encoder read."""
        edge = math.inf
        if self._due and self.config.after == "time":
            edge = self._due[0][0]
        if self._on_at is not None:
            edge = min(edge, self._off_at)
        if self.config.after == "encoder" and self._next_poll < edge - SPIN_S:
            return self._next_poll, False
        return edge, edge != math.inf

    def _sleep_until(self, when: float) -> None:
        while (left := when - self._clock()) > 0:
            time.sleep(left / 2 if left > 2e-4 else 0)

    def _accept(self, part: _Part) -> None:
        """Schedule a part's pulse, or count it as a miss when it is too late for the gate."""
        with self._lock:
            if part.run_id != self._stats.run_id:  # a new run: its counts start at 0
                self._stats = RejectStats(part.run_id, 0, 0, 0, 0, 0, 0.0, 0.0, "", "")
        c = self.config
        now = self._clock()
        margin_s = c.ready_margin_ms / 1000
        if c.after == "time":
            gate: float = part.t0 + c.delay_ms / 1000
            late_ms = (now - (gate - margin_s)) * 1000
        else:
            try:
                self._poll(now)
            except CameraError as exc:
                self._count_error(exc)
                self._miss(part, "could not be placed on the belt: the encoder could not be read")
                return
            start = self._position_at(part.t0)
            if start is None:
                self._miss(
                    part,
                    f"reached the reject gate before its verdict (its trigger is older than the last {HISTORY_S:g} s "
                    "of encoder counts)",
                )
                return
            gate = start + c.encoder_counts
            to_go = gate - self._history[-1][1]
            speed = self._speed()
            late_ms = (margin_s - to_go / speed) * 1000 if speed > 0 else (1000 * margin_s if to_go <= 0 else -1.0)
        if late_ms > 0:
            self._miss(part, f"reached the reject gate before its verdict (late by {late_ms:.0f} ms)")
        elif part.reject:
            heapq.heappush(self._due, (gate, next(self._order), part))

    def _miss(self, part: _Part, what: str) -> None:
        """Count a part the gate could not serve; `what` says why ("reached the reject gate ...")."""
        with self._lock:
            s = self._stats
            message = f"Part {part.seq} ({part.verdict.value}) {what}: {s.misses + 1} misses this run."
            self._stats = dataclasses.replace(
                s, misses=s.misses + 1, missed_rejects=s.missed_rejects + part.reject, last_miss=message
            )
        log.warning("%s", message)

    def _fire(self) -> None:
        """Everything due now: encoder read, pulses whose gate is reached, the output's end."""
        now = self._clock()
        if self.config.after == "encoder" and now >= self._next_poll:
            self._poll(now)
            t_now, p_now = self._history[-1]
            t_prev, p_prev = self._history[-2] if len(self._history) > 1 else self._history[-1]
            while self._due and self._due[0][0] <= p_now:
                gate, _, _ = heapq.heappop(self._due)
                crossed = t_now if p_now == p_prev else t_prev + (gate - p_prev) / (p_now - p_prev) * (t_now - t_prev)
                self._pulse_on(max(t_prev, crossed))
        while self.config.after == "time" and self._due and self._due[0][0] <= now:
            gate, _, _ = heapq.heappop(self._due)
            self._pulse_on(gate)
        if self._on_at is not None and self._clock() >= self._off_at:
            self._pulse_off()

    def _pulse_on(self, gate_time: float) -> None:
        width_s = self.config.pulse_ms / 1000
        if self._on_at is not None:  # overlapping: one longer pulse covers both parts
            self._off_at = max(self._off_at, self._clock() + width_s)
            self._count(merged=1, pulses=1)
            return
        ok = self._write(True)
        on = self._clock()
        self._on_at, self._off_at = on, on + width_s
        if ok:
            with self._lock:
                s = self._stats
                self._stats = dataclasses.replace(
                    s, pulses=s.pulses + 1, late_pulse_ms_max=max(s.late_pulse_ms_max, (on - gate_time) * 1000)
                )

    def _pulse_off(self) -> None:
        planned = self._off_at - (self._on_at or self._off_at)
        if not self._write(False):
            self._off_at = self._clock() + RETRY_S
            return
        width = self._clock() - (self._on_at or 0.0)
        self._on_at = None
        with self._lock:
            s = self._stats
            self._stats = dataclasses.replace(s, width_error_ms_max=max(s.width_error_ms_max, (width - planned) * 1000))

    def _write(self, value: bool) -> bool:
        try:
            self.camera.set_output(value)
            return True
        except CameraError as exc:
            self._count_error(exc)
            return False

    def _count_error(self, exc: CameraError) -> None:
        log.error("reject gate: %s", exc)
        with self._lock:
            s = self._stats
            self._stats = dataclasses.replace(s, output_errors=s.output_errors + 1, last_error=str(exc))

    def _count(self, **added: int) -> None:
        with self._lock:
            s = self._stats
            self._stats = dataclasses.replace(s, **{k: getattr(s, k) + v for k, v in added.items()})

    # -- the encoder (gate's thread, and start()) ----------------------------------------------
    def _poll(self, now: float) -> None:
        """Read the encoder; a run of equal readings keeps only its first and last. A read that
        fails (CameraError) is tried again after ERROR_PAUSE_S."""
        self._next_poll = now + ERROR_PAUSE_S
        position = self.camera.encoder_position()
        t = self._clock()
        h = self._history
        if len(h) >= 2 and h[-1][1] == position and h[-2][1] == position:
            h[-1] = (t, position)
        else:
            h.append((t, position))
        self._next_poll = now + self.poll_s

    def _position_at(self, t: float) -> float | None:
        """The encoder count at time `t`, interpolated between readings; None before the first kept one."""
        later: tuple[float, int] | None = None
        for sample in reversed(self._history):
            if sample[0] <= t:
                if later is None or later[0] == sample[0]:
                    return float(sample[1])
                return sample[1] + (later[1] - sample[1]) * (t - sample[0]) / (later[0] - sample[0])
            later = sample
        return None

    def _speed(self) -> float:
        """Counts per second over the last SPEED_WINDOW_S of readings (0: not enough readings)."""
        t_last, p_last = self._history[-1]
        for t, p in reversed(self._history):
            if t_last - t >= SPEED_WINDOW_S:
                return (p_last - p) / (t_last - t)
        t_first, p_first = self._history[0]
        return (p_last - p_first) / (t_last - t_first) if t_last > t_first else 0.0
