"""Inspection of image files (`lepton-inspect predict`): a CSV of verdicts and, per image,
the anomaly map and the defect mask as PNG at the image's own size."""

from __future__ import annotations

import csv
import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from camera.base import image_files
from inspection.errors import USER_ERRORS, InspectionError
from inspection.runtime.verdict import decide
from models.base import Inspector
from models.datasets import read_image

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


def collect_inputs(inputs: Sequence[Path]) -> list[Path]:
    """Image files named directly or found (not recursively) in the folders named."""
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            files.extend(image_files(p))
        elif p.is_file():
            files.append(p)
        else:
            raise InspectionError(f"Input {p} does not exist.")
    if not files:
        raise InspectionError("The inputs hold no PNG, JPG, BMP or TIFF images.")
    return files


@dataclasses.dataclass(frozen=True)
class FilesSummary:
    """What predicting on files did: the CSV (one row per input file, in order), and the files it could not
    inspect with the sentence that says why (also in the CSV's error column)."""

    csv: Path
    inspected: int
    failed: tuple[tuple[Path, str], ...]


def predict_files(
    inspector: Inspector, files: Sequence[Path], out: Path, *, color: bool = True, progress: Progress | None = None
) -> FilesSummary:
    """Write out/predictions.csv and out/maps/<stem>_map.png, out/masks/<stem>_mask.png.
    Anomaly maps are scaled to 0-255 between the OK threshold (0) and twice the NG threshold (255).
    A file that cannot be read or inspected (damaged, truncated, not an image, too large, a model
    failure) gets a row with its error, and the batch goes on: nothing else is lost."""
    maps_dir, masks_dir = out / "maps", out / "masks"
    try:
        maps_dir.mkdir(parents=True, exist_ok=True)
        masks_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InspectionError(f"Cannot create the output folder {out}: {exc.strerror}.") from None
    t = inspector.info.thresholds
    lo, hi = t.ok_below, max(2 * t.ng_at, t.ok_below + 1e-6)
    csv_path = out / "predictions.csv"
    failed: list[tuple[Path, str]] = []
    try:
        fh = csv_path.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise InspectionError(f"Cannot write {csv_path}: {exc.strerror}.") from None
    with fh:
        w = csv.writer(fh)
        w.writerow(["image", "score", "verdict", "defect_classes", "defect_area_px", "map", "mask", "error"])
        for i, f in enumerate(files):
            try:
                row = _predict_one(inspector, f, i, out, maps_dir, masks_dir, color, lo, hi)
            except USER_ERRORS as exc:  # one bad file must not stop the batch
                row = [str(f), "", "", "", "", "", "", str(exc)]
                failed.append((f, str(exc)))
            except Exception as exc:  # a model failure the model did not put in a sentence
                log.info("predict failed on %s", f, exc_info=True)  # the trace goes to the log file, not the terminal
                message = f"Inspecting {f} failed: {exc.__class__.__name__}: {exc}".replace("\n", " ")
                row = [str(f), "", "", "", "", "", "", message]
                failed.append((f, message))
            w.writerow(row)
            fh.flush()
            if progress:
                progress("predict", i + 1, len(files))
    return FilesSummary(csv_path, len(files) - len(failed), tuple(failed))


def _predict_one(
    inspector: Inspector, f: Path, i: int, out: Path, maps_dir: Path, masks_dir: Path, color: bool, lo: float, hi: float
) -> list[object]:
    image = read_image(f, color)
    p = inspector.predict(image)
    verdict = decide(p, inspector.info.thresholds)
    stem = f"{i:05d}_{f.stem}"
    map_png = maps_dir / f"{stem}_map.png"
    mask_png = masks_dir / f"{stem}_mask.png"
    scaled = np.clip((p.anomaly_map - lo) / (hi - lo), 0, 1) * 255
    for png, array in ((map_png, scaled.astype(np.uint8)), (mask_png, p.defect_mask.astype(np.uint8) * 255)):
        if not cv2.imwrite(str(png), array):
            raise InspectionError(f"Cannot write {png}.")
    return [
        str(f),
        f"{p.score:.6g}",
        verdict.value,
        ";".join(c.name for c in p.classes),
        sum(c.area_px for c in p.classes),
        str(map_png.relative_to(out)),
        str(mask_png.relative_to(out)),
        "",
    ]
