"""A run's state and its status snapshot (counts, rates, latencies, drops), as the runner reports them."""

from __future__ import annotations

import dataclasses
import enum
import logging

log = logging.getLogger(__name__)


class RunnerState(str, enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    FAULTED = "faulted"


@dataclasses.dataclass(frozen=True)
class RunnerStatus:
    state: RunnerState
    run_id: int | None
    parts: int
    ok: int
    ng: int
    review: int
    dropped: int  # frames grabbed (or skipped by the camera) but never inspected
    failed_grabs: int  # incomplete or corrupt frames, never inspected
    recorded: int  # rows committed to the database
    unwritten: int  # results that could not be written (the run faults when this happens)
    parts_per_s: float
    latency_ms_p50: float
    latency_ms_p99: float
    message: str
    fault: str = ""  # what faulted the run: "camera", "record" or "inspection"; "" when none
    camera_losses: int = 0  # times the camera was lost in this run
    reconnects: int = 0  # times it came back and inspection resumed
    reconnecting: bool = False  # faulted on a lost camera that is being tried again: the run goes on
    camera_lost: str = ""  # the last loss, in a sentence (kept once the camera is back)
    camera_back: str = ""  # the last reconnection, in a sentence
    images_missing: int = 0  # images that were to be kept but could not be (a full disk); their rows are recorded
    image_error: str = ""  # why, the last time
    cameras: int = 1  # views per part
    mode: str = "latency"  # runner.mode: "latency" or "throughput" (micro-batches)
    hand_off_ms_per_part: float = (
        0.0  # inspection-thread time spent handing a part's results to the writer (rows, images)
    )
    commit_ms_per_row: float = 0.0  # the writer thread's commit time per row

    @property
    def active(self) -> bool:
        """The run goes on: running, paused, stopping, or faulted while its camera is being reconnected."""
        return self.state in (RunnerState.RUNNING, RunnerState.PAUSED, RunnerState.STOPPING) or self.reconnecting
