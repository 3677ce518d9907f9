"""Batch inspection of image files (`lepton-inspect predict`): a CSV of verdicts and, per image,
the anomaly map and the defect mask as PNG at the image's own size."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from camera.base import image_files
from inspection.errors import InspectionError
from inspection.verdict import decide
from models.base import Inspector
from models.datasets import read_image

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


def predict_files(inspector: Inspector, files: Sequence[Path], out: Path, *, color: bool = True, progress: Progress | None = None) -> Path:
    """Write out/predictions.csv and out/maps/<stem>_map.png, out/masks/<stem>_mask.png; returns the CSV path.
    Anomaly maps are scaled to 0-255 between the OK threshold (0) and twice the NG threshold (255)."""
    maps_dir, masks_dir = out / "maps", out / "masks"
    try:
        maps_dir.mkdir(parents=True, exist_ok=True)
        masks_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InspectionError(f"Cannot create the output folder {out}: {exc.strerror}.") from None
    t = inspector.info.thresholds
    lo, hi = t.ok_below, max(2 * t.ng_at, t.ok_below + 1e-6)
    csv_path = out / "predictions.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "score", "verdict", "defect_classes", "defect_area_px", "map", "mask", "error"])
        for i, f in enumerate(files):
            try:
                image = read_image(f, color)
            except Exception as exc:  # one unreadable file must not stop the batch
                w.writerow([str(f), "", "", "", "", "", "", str(exc)])
                continue
            p = inspector.predict(image)
            verdict = decide(p, t)
            stem = f"{i:05d}_{f.stem}"
            map_png = maps_dir / f"{stem}_map.png"
            mask_png = masks_dir / f"{stem}_mask.png"
            scaled = np.clip((p.anomaly_map - lo) / (hi - lo), 0, 1) * 255
            cv2.imwrite(str(map_png), scaled.astype(np.uint8))
            cv2.imwrite(str(mask_png), p.defect_mask.astype(np.uint8) * 255)
            w.writerow([str(f), f"{p.score:.6g}", verdict.value, ";".join(c.name for c in p.classes),
                        sum(c.area_px for c in p.classes), str(map_png.relative_to(out)), str(mask_png.relative_to(out)), ""])
            if progress:
                progress("predict", i + 1, len(files))
    return csv_path
