"""The typed result that crosses from the inspection worker to the writer, the GUI and listeners."""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from models.base import DefectClass


class Verdict(str, enum.Enum):
    OK = "OK"
    NG = "NG"
    REVIEW = "REVIEW"


@dataclasses.dataclass(frozen=True)
class Timing:
    """Milliseconds per stage, in the order a part goes through them; they add up to `total_ms`, from
    the start of the grab (the software trigger, else the frame's arrival) to the verdict.
    `infer_ms` is the network's time for the micro-batch the view went in (one view in latency mode)."""

    grab_ms: float
    queue_ms: float  # preprocessed, waiting for the network
    preprocess_ms: float  # resizing and normalizing, on the grab thread
    infer_ms: float
    decide_ms: float  # post-processing (maps, mask, classes) and the verdict
    total_ms: float


@dataclasses.dataclass(frozen=True, eq=False)
class InspectionResult:
    part_id: str
    seq: int  # 1, 2, ... within the run
    run_id: int
    timestamp: float  # wall-clock time of the grab, seconds since the epoch
    camera_id: str
    frame_id: int
    recipe: str
    model_name: str
    model_version: str
    model_sha256: str
    score: float
    verdict: Verdict
    classes: tuple[DefectClass, ...]
    image: np.ndarray  # read-only, as grabbed
    defect_mask: np.ndarray  # bool, image-sized
    anomaly_map: np.ndarray  # float32, image-sized
    timing: Timing
    error: str = ""  # set when the model failed on this part (verdict REVIEW)
    view: int = 0  # which camera of the station took this view of the part (0: the first, or the only one)
    part_verdict: Verdict | None = None  # the part's verdict, the worst of its views (None: this view's verdict)
    recipe_version: int = 0  # the recipe's version (inspection.record.recipe_versions; 0: not recorded)
    lot_id: str = ""  # the lot the part belongs to ("": none)
    t0: float = 0.0  # time.perf_counter() when the part was imaged: the software trigger, else the frame's arrival
