"""Model latency: each backend (torch eager with channels_last, ONNX Runtime; CUDA in fp32 and fp16 when
there is a GPU) on the same images in one run, with the score and verdict agreement between them.

    .venv/bin/python bench/bench_models.py [--model PKG] [--images DIR | --dataset DIR [--groups G1,G2]]
                                           [--n 50] [--threads 2] [--json FILE]

`--dataset` with `--groups` takes the parts of those groups (the ones a cross-validation fold held
out of training, say); without `--groups`, all of the dataset. Agreement is measured on every
image once, against the CPU torch path (the reference); latency over `--n` predictions.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import resources
from camera.base import image_files
from inspection.verdict import decide
from models.datasets import load_dataset, of_groups, read_image
from models.package import load_package


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=resources.DEMO_MODEL)
    ap.add_argument("--images", type=Path, default=None, help="a folder of images (default: the bundled samples)")
    ap.add_argument("--dataset", type=Path, default=None, help="a dataset folder (manifest.csv or MVTec AD layout)")
    ap.add_argument("--groups", default=None, metavar="G1,G2", help="with --dataset: only the parts of these groups")
    ap.add_argument("--n", type=int, default=50, help="timed predictions per backend")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the line PC's cores)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: 1-minute load is {load1:.2f}: another process shares the cores, timings are not clean")
    if a.dataset is not None:
        samples = load_dataset(a.dataset).samples
        paths = [s.image for s in (of_groups(samples, a.groups) if a.groups else samples)]
    else:
        paths = image_files(a.images or resources.DEMO_SAMPLES)
    images = [read_image(p) for p in paths]
    # CUDA in both precisions; "(default)" marks the one the model kind runs in (CUDA_HALF).
    setups = [("cpu", "torch", False), ("cpu", "onnx", False)]
    if torch.cuda.is_available():
        setups += [("cuda", "torch", False), ("cuda", "torch", True)]
    results: dict[str, dict] = {}
    ref_scores: np.ndarray | None = None
    ref_verdicts: list = []
    search = None
    for device, backend, half in setups:
        inspector, default = _load(a.model, device, backend, half)
        name = f"{device}-{backend}" + (("-fp16" if half else "-fp32") + (" (default)" if default else "") if device == "cuda" else "")
        if device == "cpu" and search is None:
            search = getattr(inspector, "search", None)  # PatchCore's memory bank search, as chosen at load
        predictions = [inspector.predict(image) for image in images]  # also the warm-up
        scores = np.asarray([p.score for p in predictions])
        verdicts = [decide(p, inspector.info.thresholds) for p in predictions]
        t = []
        for k in range(a.n):
            image = images[k % len(images)]
            t0 = time.perf_counter()
            inspector.predict(image)
            if device == "cuda":
                torch.cuda.synchronize()
            t.append((time.perf_counter() - t0) * 1000)
        if ref_scores is None:
            ref_scores, ref_verdicts = scores, verdicts
        diff = np.abs(scores - ref_scores)
        th = inspector.info.thresholds
        results[name] = {
            "p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)),
            "max_relative_score_difference": float((diff / np.maximum(np.abs(ref_scores), 1e-6)).max()),
            "max_score_difference": float(diff.max()),
            # how near the thresholds the reference scores came: a difference above this could flip a verdict
            "closest_score_to_a_threshold": float(np.min(np.abs(ref_scores[:, None] - np.array([th.ok_below, th.ng_at])[None, :]))),
            "verdicts_differing": sum(v != r for v, r in zip(verdicts, ref_verdicts)),
            "verdicts": {v.name: verdicts.count(v) for v in sorted(set(verdicts), key=lambda v: v.name)},
        }
    ref = "cpu-torch"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print(f"model {a.model.name} ({inspector.info.kind}), {len(images)} images, {a.n} timed predictions each, "
          f"torch {torch.__version__}, {a.threads} CPU threads" + (f", GPU {gpu}" if gpu else ", no CUDA GPU"))
    if search is not None:
        print(f"memory bank search on the CPU: {'bfloat16 candidates + exact float32' if search.use_bf16 else 'float32'} "
              f"(probe of 512 patches: {search.probe_ms} ms)")
    for name, r in results.items():
        print(f"{name:<26} p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
              f"speed-up vs {ref} {results[ref]['p50_ms'] / r['p50_ms']:5.2f}x  "
              f"score difference max {r['max_score_difference']:.2e} (relative {r['max_relative_score_difference']:.2e}; "
              f"closest score to a threshold {r['closest_score_to_a_threshold']:.2e})  "
              f"verdicts differing {r['verdicts_differing']} of {len(images)}  {r['verdicts']}")
    if a.json:
        a.json.write_text(json.dumps({"model": str(a.model), "images": len(images), "threads": a.threads,
                                      "torch": torch.__version__, "gpu": gpu, "backends": results}, indent=2))


def _load(model: Path, device: str, backend: str, half: bool):
    """The package on `device`; on CUDA in fp16 or fp32 whatever its kind's default (CUDA_HALF), and
    whether that is the default."""
    from models.patchcore import PatchCoreInspector
    from models.segmentation import SegmentationInspector

    kinds = (PatchCoreInspector, SegmentationInspector)
    saved = {k: k.CUDA_HALF for k in kinds}
    try:
        for k in kinds:
            k.CUDA_HALF = half
        inspector = load_package(model, device=device, backend=backend)
    finally:
        for k, v in saved.items():
            k.CUDA_HALF = v
    return inspector, saved[type(inspector)] == half


if __name__ == "__main__":
    main()
