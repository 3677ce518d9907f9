"""One part on its way through the runner: its views, each view's verdict, and the part's results.

A part is one view per camera. Each view is post-processed and decided on its own (`finish_view`);
the part's verdict is the worst of its views' (`worst`), and each view becomes one
`InspectionResult` (`part_results`) - a row in the record.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

import numpy as np

from camera.base import Frame
from inspection.result import InspectionResult, Timing, Verdict
from inspection.runtime.verdict import decide
from inspection.settings.recipe import Recipe
from models.base import Inspector, ModelInfo, Thresholds

log = logging.getLogger(__name__)

_SEVERITY = {Verdict.OK: 0, Verdict.REVIEW: 1, Verdict.NG: 2}


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """A part's verdict from its views' verdicts: NG if any view is NG, else REVIEW if any is, else OK."""
    return max(verdicts, key=_SEVERITY.__getitem__)


@dataclasses.dataclass(eq=False)
class View:
    """One camera's view of a part on its way through the pipeline (each stage's thread fills in its part)."""

    frame: Frame
    t0: float  # latency origin: the software trigger, else the frame's arrival
    data: Any  # preprocessed input, then the network's raw output; None once it failed
    error: str  # why the model failed on this view ("" when it did not)
    t_prepared: float
    index: int = 0  # the part it belongs to: the views of a part have the same index
    t_infer: float = 0.0  # when the network took it
    t_inferred: float = 0.0  # when the network was done with it


@dataclasses.dataclass(frozen=True)
class ViewOutcome:
    """What the model's post-processing and the recipe's decision made of one view."""

    verdict: Verdict
    score: float
    classes: tuple[Any, ...]
    mask: np.ndarray
    anomaly_map: np.ndarray
    error: str
    t_end: float  # when it was decided (perf_counter)


@dataclasses.dataclass(frozen=True)
class PartStamp:
    """What every result of a part carries besides its view: the run, the part's number, the recipe, the model."""

    run_id: int
    seq: int
    recipe: str
    recipe_version: int
    lot_id: str
    model: ModelInfo


def finish_view(inspector: Inspector, thresholds: Thresholds, recipe: Recipe, v: View) -> ViewOutcome:
    """One view's outcome: the model's post-processing and the recipe's decision; a model failure
    (or a view the network failed on) is REVIEW with the reason, for a person to look at."""
    shape = v.frame.image.shape
    if not v.error:
        try:
            prediction = inspector.finish(v.data, shape)
            verdict = decide(prediction, thresholds, recipe.min_defect_area_px, recipe.class_limits)
            return ViewOutcome(
                verdict,
                prediction.score,
                prediction.classes,
                prediction.defect_mask,
                prediction.anomaly_map,
                "",
                time.perf_counter(),
            )
        except Exception as exc:  # a model failure on one part: record it for a person to look at
            log.exception("model failed on frame %s", v.frame.frame_id)
            v.error = f"Model failed: {exc}"
    return ViewOutcome(
        Verdict.REVIEW,
        float("nan"),
        (),
        np.zeros(shape[:2], dtype=bool),
        np.zeros(shape[:2], dtype=np.float32),
        v.error,
        time.perf_counter(),
    )


def _timing(v: View, t_end: float) -> Timing:
    f = v.frame
    return Timing(
        grab_ms=(f.grabbed_at - v.t0) * 1000,
        preprocess_ms=(v.t_prepared - f.grabbed_at) * 1000,
        queue_ms=(v.t_infer - v.t_prepared) * 1000,
        infer_ms=(v.t_inferred - v.t_infer) * 1000,
        decide_ms=(t_end - v.t_inferred) * 1000,
        total_ms=(t_end - v.t0) * 1000,
    )


def part_results(
    part: list[View], outcomes: list[ViewOutcome], stamp: PartStamp
) -> tuple[Verdict, list[InspectionResult]]:
    """The part's verdict (the worst of its views') and one result per view."""
    part_verdict = worst(o.verdict for o in outcomes)
    several = len(part) > 1
    info = stamp.model
    out = []
    for k, (v, o) in enumerate(zip(part, outcomes, strict=True)):
        f = v.frame
        out.append(
            InspectionResult(
                part_id=uuid.uuid4().hex,
                seq=stamp.seq,
                run_id=stamp.run_id,
                timestamp=f.timestamp,
                camera_id=f.camera_id,
                frame_id=f.frame_id,
                recipe=stamp.recipe,
                model_name=info.name,
                model_version=info.version,
                model_sha256=info.sha256,
                score=o.score,
                verdict=o.verdict,
                classes=o.classes,
                image=f.image,
                defect_mask=o.mask,
                anomaly_map=o.anomaly_map,
                timing=_timing(v, o.t_end),
                error=o.error,
                view=k,
                part_verdict=part_verdict if several else None,
                recipe_version=stamp.recipe_version,
                lot_id=stamp.lot_id,
                t0=part[0].t0,
            )
        )
    return part_verdict, out
