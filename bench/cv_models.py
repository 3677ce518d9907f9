"""Cross-validated accuracy of a model kind on a dataset: k folds over groups (physical parts or
sequences), each fold trained on the other folds (which also give its validation and calibration
groups) and evaluated on parts it never saw. Prints each fold and the mean and spread.

    python bench/cv_models.py --dataset ../shared/datasets/magnetic_tile --kind segmentation --grey \
        --size 256x256 --folds 5 --epochs 14 --json cv.json

The operating threshold of every fold is the one its training calibrated on its own held-back
good groups, so the false-reject and escape rates are what a line would see, not a best case.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.datasets import group_kfold, load_dataset  # noqa: E402
from models.evaluation import evaluate  # noqa: E402
from models.features import POOLINGS  # noqa: E402
from models.package import build_inspector, save_package  # noqa: E402
from models.segmentation import BLOCKS  # noqa: E402
from models.training.train import COLD_STARTS, train_model  # noqa: E402

SUMMARY = (
    "image_auroc",
    "pixel_auroc",
    "aupro",
    "escape_rate_at_5pct_false_rejects",
    "escape_rate_at_1pct_false_rejects",
    "f1",
    "false_reject_rate",
    "escape_rate",
    "defects_passed_ok",
    "defects_to_review",
    "good_ng",
    "good_review",
    "latency_ms_p50",
)


def parse_size(text: str) -> int | float | tuple[int, int]:
    if "x" in text:
        h, w = (int(v) for v in text.lower().split("x"))
        return (h, w)
    return float(text) if "." in text else int(text)


def summarize(folds: list[dict]) -> dict:
    out = {}
    for key in SUMMARY:
        values = [f[key] for f in folds if key in f]
        if values:
            out[key] = {
                "mean": float(np.mean(values)),
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                "min": float(np.min(values)),
                "max": float(np.max(values)),
            }
    for key in ("per_class", "per_class_at_5pct_false_rejects"):
        classes = sorted({c for f in folds for c in f.get(key, {})})
        out[key] = {c: float(np.mean([f[key][c] for f in folds if c in f.get(key, {})])) for c in classes}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--kind", choices=("anomaly", "segmentation"), required=True)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only", type=int, nargs="*", default=None, help="run only these fold numbers")
    ap.add_argument("--size", type=parse_size, default=None, help="HxW, N (long side) or F.F (scale factor)")
    ap.add_argument("--crop", type=parse_size, default=None, help="segmentation: train on HxW crops")
    ap.add_argument("--grey", action="store_true")
    ap.add_argument("--pooling", choices=POOLINGS, default=None, help="anomaly: where patch features are averaged")
    ap.add_argument("--coreset", type=int, default=None, help="anomaly: memory bank rows (default 8192)")
    ap.add_argument(
        "--frozen-blocks", type=int, default=None, help="segmentation: encoder blocks kept at their ImageNet weights"
    )
    ap.add_argument("--decoder", choices=BLOCKS, default=None, help="segmentation: decoder blocks")
    ap.add_argument(
        "--epochs", type=int, default=None, help="segmentation: epochs per fold (repeatable, unlike a time limit)"
    )
    ap.add_argument("--time-limit", type=float, default=None, help="segmentation: training seconds per fold")
    ap.add_argument(
        "--cold-start", choices=COLD_STARTS, default=None, help="anomaly: synthetic defects (U-Net) or PatchCore"
    )
    ap.add_argument(
        "--synthetic", type=float, default=None, help="segmentation: share of each batch's defects drawn synthetically"
    )
    ap.add_argument("--min-defect-px", type=int, default=None, help="U-Net: the smallest synthetic defect, in pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--device", default="auto", help="training device: auto (a CUDA GPU when there is one), cpu or cuda"
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="save each fold's package in this folder")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset)
    splits = group_kfold(ds.samples, args.folds, seed=args.seed)
    results = []
    for k, (train_idx, test_idx) in enumerate(splits):
        if args.only is not None and k not in args.only:
            continue
        t0 = time.monotonic()
        meta, state = train_model(
            ds,
            train_idx,
            args.kind,
            size=args.size,
            color=not args.grey,
            epochs=args.epochs,
            time_limit_s=args.time_limit,
            crop=args.crop,
            pooling=args.pooling,
            coreset=args.coreset,
            frozen_blocks=args.frozen_blocks,
            decoder=args.decoder,
            cold_start=args.cold_start,
            synthetic=args.synthetic,
            min_defect_px=args.min_defect_px,
            seed=args.seed,
            name=f"cv{k}",
            device=args.device,
        )
        train_s = time.monotonic() - t0
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            save_package(args.keep / f"{args.dataset.name}-{args.kind}-fold{k}.lpkg", meta, state)
        inspector = build_inspector(meta, state, backend="onnx")
        test = [ds.samples[i] for i in test_idx]
        r = evaluate(inspector, test, color=not args.grey)
        r.update(
            {
                "fold": k,
                "train_s": round(train_s, 1),
                "test_groups": len({s.group for s in test}),
                "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            }
        )
        results.append(r)
        print(
            f"fold {k}: "
            + " ".join(f"{key}={r[key]:.3f}" for key in SUMMARY if key in r)
            + f" caught@5%FR={ {c: round(v, 2) for c, v in r.get('per_class_at_5pct_false_rejects', {}).items()} }"
            + f" train {train_s:.0f} s"
            + f" peak memory {r['peak_rss_gb']:.1f} GB",
            flush=True,
        )
    summary = summarize(results)
    print(f"{args.dataset.name} {args.kind}, {len(results)} of {args.folds} group folds (mean +- std, min..max):")
    for key, v in summary.items():
        if not key.startswith("per_class"):
            print(f"  {key:<36} {v['mean']:.3f} +- {v['std']:.3f}  ({v['min']:.3f}..{v['max']:.3f})")
    for c, v in summary["per_class"].items():
        print(
            f"  {c:<14} caught at the NG threshold {v:.2f}, at 5 % false rejects "
            f"{summary['per_class_at_5pct_false_rejects'].get(c, float('nan')):.2f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"dataset": str(args.dataset), "kind": args.kind, "folds": results, "summary": summary},
                indent=2,
                default=float,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
