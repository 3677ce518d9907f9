"""Model latency: each backend (torch eager with channels_last, ONNX Runtime; CUDA fp16 when
there is a GPU) on the same images in one run, with the score agreement between them.

    .venv/bin/python bench/bench_models.py [--model PKG] [--images DIR] [--n 50]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

import resources
from camera.base import image_files
from models.datasets import read_image
from models.package import load_package


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=resources.DEMO_MODEL)
    ap.add_argument("--images", type=Path, default=resources.DEMO_SAMPLES)
    ap.add_argument("--n", type=int, default=50)
    a = ap.parse_args()
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: 1-minute load is {load1:.2f}: another process shares the cores, timings are not clean")
    images = [read_image(p) for p in image_files(a.images)]
    setups = [("cpu", "torch"), ("cpu", "onnx")] + ([("cuda", "torch")] if torch.cuda.is_available() else [])
    scores: dict[str, list[float]] = {}
    times: dict[str, np.ndarray] = {}
    search = None
    for device, backend in setups:
        name = f"{device}-{backend}" + ("-fp16" if device == "cuda" else "")
        inspector = load_package(a.model, device=device, backend=backend)
        if device == "cpu":
            search = getattr(inspector, "search", None)  # PatchCore's memory bank search, as chosen at load
        for image in images[:3]:
            inspector.predict(image)  # warm-up
        t = []
        s = []
        for k in range(a.n):
            image = images[k % len(images)]
            t0 = time.perf_counter()
            p = inspector.predict(image)
            if device == "cuda":
                torch.cuda.synchronize()
            t.append((time.perf_counter() - t0) * 1000)
            s.append(p.score)
        times[name], scores[name] = np.asarray(t), s
    print(f"model {a.model.name} ({inspector.info.kind}), {a.n} predictions of {len(images)} images, torch threads {torch.get_num_threads()}")
    if search is not None:
        print(f"memory bank search on the CPU: {'bfloat16 candidates + exact float32' if search.use_bf16 else 'float32'} "
              f"(probe of 512 patches: {search.probe_ms} ms)")
    ref = "cpu-torch"
    for name, t in times.items():
        diff = np.max(np.abs(np.asarray(scores[name]) - np.asarray(scores[ref])) / np.maximum(np.abs(scores[ref]), 1e-6))
        print(f"{name:<16} p50 {np.percentile(t, 50):7.1f} ms  p99 {np.percentile(t, 99):7.1f} ms  "
              f"speed-up vs {ref} {np.percentile(times[ref], 50) / np.percentile(t, 50):4.2f}x  max relative score difference {diff:.2e}")


if __name__ == "__main__":
    main()
