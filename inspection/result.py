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
    """Milliseconds per stage; `total_ms` runs from the start of the grab to the verdict."""

    grab_ms: float
    queue_ms: float
    preprocess_ms: float
    infer_ms: float
    decide_ms: float
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
