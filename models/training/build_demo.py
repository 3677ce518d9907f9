"""Build the bundled demo model from the ball-screw development data, split by sequence.

    python -m models.training.build_demo --dataset ../shared/datasets/bsdata_ballscrew \\
        --out resources/models/demo_ballscrew.lpkg

A PatchCore model (good parts only) with a small memory bank, so that the package stays small:
it learns from the good frames of six sequences (a group-aware share of them held back to
calibrate the thresholds), is measured on the two held-out sequences, and a few held-out frames
(CC BY-SA 4.0) are copied into resources/samples/ballscrew as the embedded demo images.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from models.datasets import load_dataset
from models.evaluation import evaluate
from models.package import build_inspector, save_package
from models.training.anomaly import AnomalyConfig, train_patchcore

HELD_OUT = ("01_397500_315", "01_635000_270")
SAMPLE_SEQUENCE = "01_635000_270"
# Joint patch pooling: finer maps for tiny pitting.
CONFIG = AnomalyConfig(size=(208, 512), color=True, coreset_size=2048, pooling="joint", seed=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--samples", type=Path, default=Path("resources/samples/ballscrew"))
    args = ap.parse_args(argv)
    ds = load_dataset(args.dataset)
    rows = _manifest_rows(args.dataset)
    # Good frames just before a sequence's first labelled defect may hold unlabelled pitting
    # (Sample.doubtful): not learnt from, but measured on like every held-out frame.
    train = [i for i, s in enumerate(ds.samples) if s.group not in HELD_OUT and not s.is_defect and not s.doubtful]
    test = [s for s in ds.samples if s.group in HELD_OUT]
    print(
        f"learning from {len(train)} good frames of {len({ds.samples[i].group for i in train})} sequences",
        file=sys.stderr,
    )
    meta, state = train_patchcore(
        ds.samples,
        train,
        CONFIG,
        name="demo-ballscrew",
        progress=lambda stage, i, n: print(f"\r  {stage} {i}/{n}   ", end="", file=sys.stderr),
    )
    print(file=sys.stderr)
    m = evaluate(build_inspector(meta, state, backend="onnx"), test, color=CONFIG.color)
    meta["metrics"] = {
        "evaluated_on": f"held-out sequences {', '.join(HELD_OUT)} (never trained on, nor calibrated on)",
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items() if k != "thresholds"},
    }
    meta["training"]["dataset"] = "bsdata_ballscrew (Schlagenhauf & Landwehr, arXiv:2103.13003, CC BY-SA 4.0)"
    sha = save_package(args.out, meta, state)
    print(f"wrote {args.out} sha256={sha}\nthresholds={meta['thresholds']}\nmetrics={meta['metrics']}", file=sys.stderr)
    _copy_samples(args.dataset, rows, args.samples)
    return 0


def _manifest_rows(dataset: Path) -> list[dict[str, str]]:
    import csv

    with (dataset / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _copy_samples(dataset: Path, rows: list[dict[str, str]], out: Path) -> None:
    seq = sorted((r for r in rows if r["sequence"] == SAMPLE_SEQUENCE), key=lambda r: int(r["frame_idx"]))
    good = [r for r in seq if r["label"] == "good"][::8][:5]
    bad = [r for r in seq if r["label"] == "defect"][::3][:3]
    out.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(sorted(good + bad, key=lambda r: int(r["frame_idx"]))):
        shutil.copyfile(dataset / r["image"], out / f"{i:02d}_{r['label']}_{Path(r['image']).name}")


if __name__ == "__main__":
    raise SystemExit(main())
