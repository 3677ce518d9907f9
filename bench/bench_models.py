"""Model latency and throughput: each backend on the same images in one run - plain eager PyTorch
(fp32, contiguous NCHW, no channels_last, no compile: the reference the speed-ups are measured
against), torch with channels_last, torch.compile, ONNX Runtime; CUDA in fp32 and fp16 when there
is a GPU - with the score and verdict agreement between them, the speed-up over eager for the
network alone and for the whole predict (preprocess + network + search + post-processing), and
the throughput of micro-batches through the batch API (`forward` on N views, then `finish`).

    .venv/bin/python bench/bench_models.py [--model PKG] [--images DIR | --dataset DIR [--groups G1,G2]]
                                           [--n 50] [--threads 2] [--no-compile] [--json FILE]

`--dataset` with `--groups` takes the parts of those groups (the ones a cross-validation fold held
out of training, say); without `--groups`, all of the dataset. Agreement is measured on every
image once, against the CPU torch path; latency over `--n` predictions, the CPU backends taking
turns image by image so that a change in the machine's speed falls on all of them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import resources
from camera.base import image_files
from inspection.runtime.verdict import decide
from models.base import Inspector
from models.datasets import load_dataset, of_groups, read_image
from models.package import build_inspector, load_package, read_package
from models.runtime import resolve_backend

CPU_BACKENDS = (("cpu-eager", "eager"), ("cpu-torch", "torch"), ("cpu-compile", "compile"), ("cpu-onnx", "onnx"))
REFERENCE = "cpu-eager"  # the speed-ups' baseline
AGREEMENT_REFERENCE = "cpu-torch"  # the scores' baseline (as before the eager row existed)
BATCHES = (1, 2, 4, 8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=resources.DEMO_MODEL)
    ap.add_argument("--images", type=Path, default=None, help="a folder of images (default: the bundled samples)")
    ap.add_argument("--dataset", type=Path, default=None, help="a dataset folder (manifest.csv or MVTec AD layout)")
    ap.add_argument("--groups", default=None, metavar="G1,G2", help="with --dataset: only the parts of these groups")
    ap.add_argument("--n", type=int, default=50, help="timed predictions per backend")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the line PC's cores)")
    ap.add_argument(
        "--no-compile",
        action="store_true",
        help="leave out torch.compile (its first call compiles for tens of seconds)",
    )
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

    # CPU backends, loaded side by side and timed in turns.
    cpu: dict[str, Inspector] = {}
    setup_s: dict[str, float] = {}
    failed: dict[str, str] = {}
    for name, backend in CPU_BACKENDS:
        if backend == "compile" and a.no_compile:
            continue
        t0 = time.perf_counter()
        try:
            inspector = _load_cpu(a.model, backend)
            inspector.predict(images[0])  # the first call: torch.compile compiles here
        except Exception as exc:  # a backend that does not work here is reported, not fatal
            failed[name] = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            continue
        cpu[name] = inspector
        setup_s[name] = time.perf_counter() - t0
    results: dict[str, dict] = {name: _agreement(inspector, images) for name, inspector in cpu.items()}
    timings = _timed_in_turns(cpu, images, a.n)
    for name, t in timings.items():
        results[name].update(t, setup_s=round(setup_s[name], 1))

    # CUDA in both precisions; "(default)" marks the one the model kind runs in (CUDA_HALF).
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if gpu:
        for half in (False, True):
            inspector, default = _load(a.model, "cuda", "torch", half)
            name = "cuda-torch" + ("-fp16" if half else "-fp32") + (" (default)" if default else "")
            results[name] = _agreement(inspector, images)
            t = []
            for k in range(a.n):
                t0 = time.perf_counter()
                inspector.predict(images[k % len(images)])
                torch.cuda.synchronize()
                t.append((time.perf_counter() - t0) * 1000)
            results[name].update(predict_p50_ms=_p(t, 50), predict_p99_ms=_p(t, 99))

    any_inspector = next(iter(cpu.values()))
    th = any_inspector.info.thresholds
    base = results.get(AGREEMENT_REFERENCE)
    ref_scores = np.asarray(base["scores"]) if base else None
    ref_verdicts = base["verdict_list"] if base else []
    for r in results.values():
        scores = np.asarray(r.pop("scores"))
        verdicts = r.pop("verdict_list")
        if ref_scores is not None:
            diff = np.abs(scores - ref_scores)
            r.update(
                max_relative_score_difference=float((diff / np.maximum(np.abs(ref_scores), 1e-6)).max()),
                max_score_difference=float(diff.max()),
                # how near the thresholds the reference scores came: a difference above this could flip a verdict
                closest_score_to_a_threshold=float(
                    np.min(np.abs(ref_scores[:, None] - np.array([th.ok_below, th.ng_at])[None, :]))
                ),
                verdicts_differing=sum(v != w for v, w in zip(verdicts, ref_verdicts, strict=True)),
            )

    auto = "cpu-" + resolve_backend("auto", "cpu")
    fastest = min(timings, key=lambda n: timings[n]["predict_p50_ms"]) if timings else None
    speedup = {}
    if REFERENCE in timings and auto in timings:
        speedup = {
            "eager_speedup_predict": timings[REFERENCE]["predict_p50_ms"] / timings[auto]["predict_p50_ms"],
            "eager_speedup_network": timings[REFERENCE]["network_p50_ms"] / timings[auto]["network_p50_ms"],
        }
    batch = _batch_table(cpu[auto], images, a.n) if auto in cpu else []

    print(
        f"model {a.model.name} ({any_inspector.info.kind}), "
        f"{len(images)} images {images[0].shape[1]}x{images[0].shape[0]}, "
        f"{a.n} timed predictions each, torch {torch.__version__}, {a.threads} CPU threads"
        + (f", GPU {gpu}" if gpu else ", no CUDA GPU")
    )
    search = getattr(cpu.get(auto), "search", None)
    if search is not None:
        print(
            "memory bank search on the CPU: "
            f"{'bfloat16 candidates + exact float32' if search.use_bf16 else 'float32'} "
            f"(probe of 512 patches: {search.probe_ms} ms)"
        )
    for name, why in failed.items():
        print(f"{name:<26} failed: {why}")
    ref = timings.get(REFERENCE)
    for name, r in results.items():
        line = f"{name:<26} predict p50 {r['predict_p50_ms']:6.1f} ms  p99 {r['predict_p99_ms']:6.1f} ms"
        if "network_p50_ms" in r:
            line += (
                f"  [pre {r['preprocess_p50_ms']:4.1f} + network {r['network_p50_ms']:5.1f}"
                f" + search {r['search_p50_ms']:4.1f} + post {r['finish_p50_ms']:4.1f} ms]"
            )
            if ref:
                line += (
                    f"  vs eager: predict {ref['predict_p50_ms'] / r['predict_p50_ms']:4.2f}x, "
                    f"network {ref['network_p50_ms'] / r['network_p50_ms']:4.2f}x"
                )
        if "max_score_difference" in r:
            line += (
                f"  score difference max {r['max_score_difference']:.2e} "
                f"(relative {r['max_relative_score_difference']:.2e}; "
                f"closest score to a threshold {r['closest_score_to_a_threshold']:.2e})  "
                f"verdicts differing {r['verdicts_differing']} of {len(images)}"
            )
        print(line)
    if speedup:
        print(
            f"default (auto = {auto}) against eager PyTorch: whole predict {speedup['eager_speedup_predict']:.2f}x, "
            f"network alone {speedup['eager_speedup_network']:.2f}x"
        )
    if fastest:
        print(
            f"fastest CPU backend by whole predict: {fastest}"
            + ("" if fastest == auto else f" - NOT the one `auto` picks ({auto})")
        )
    if batch:
        print(f"micro-batches through forward + finish ({auto}, preprocess + forward + finish in one thread):")
        print("    N   batch p50 ms   forward p50 ms   ms per view   views/s   vs N=1")
        for row in batch:
            print(
                f"  {row['n']:3d}   {row['batch_p50_ms']:12.1f}   {row['forward_p50_ms']:14.1f}   "
                f"{row['ms_per_view']:11.2f}   {row['views_per_s']:7.1f}   "
                f"{row['views_per_s'] / batch[0]['views_per_s']:5.2f}x"
            )
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "model": str(a.model),
                    "images": len(images),
                    "threads": a.threads,
                    "torch": torch.__version__,
                    "gpu": gpu,
                    "auto": auto,
                    "fastest_cpu": fastest,
                    **speedup,
                    "batch": batch,
                    "failed": failed,
                    "backends": results,
                },
                indent=2,
            )
        )


def _load_cpu(model: Path, backend: str) -> Inspector:
    """The package on the CPU with `backend`; the reference backends (eager, compile) are built
    straight from the package, since no user can pick them."""
    if backend in ("torch", "onnx"):
        return load_package(model, device="cpu", backend=backend)
    meta, state, sha = read_package(model)
    return build_inspector(meta, state, sha256=sha, device="cpu", backend=backend)


def _network(inspector: Inspector) -> Any:
    """The model's network call (the Runtime), to time it alone."""
    return getattr(inspector, "features", None) or inspector.runtime


def _agreement(inspector: Inspector, images: list[np.ndarray]) -> dict[str, Any]:
    predictions = [inspector.predict(image) for image in images]  # also the warm-up
    verdicts = [decide(p, inspector.info.thresholds) for p in predictions]
    return {
        "scores": [p.score for p in predictions],
        "verdict_list": verdicts,
        "verdicts": {v.name: verdicts.count(v) for v in sorted(set(verdicts), key=lambda v: v.name)},
    }


def _timed_in_turns(inspectors: dict[str, Inspector], images: list[np.ndarray], n: int) -> dict[str, dict[str, float]]:
    """Whole-predict latency, and apart from it each stage - preprocess, the network alone,
    forward (network + search), finish - with the backends taking turns on each image."""
    t: dict[str, dict[str, list[float]]] = {
        name: {k: [] for k in ("predict", "preprocess", "network", "forward", "finish")} for name in inspectors
    }
    for k in range(n):
        image = images[k % len(images)]
        for name, inspector in inspectors.items():
            tt = t[name]
            t0 = time.perf_counter()
            inspector.predict(image)
            t1 = time.perf_counter()
            x = inspector.preprocess(image)
            t2 = time.perf_counter()
            raw = inspector.forward([x])[0]
            t3 = time.perf_counter()
            inspector.finish(raw, image.shape)
            t4 = time.perf_counter()
            _network(inspector)(x)
            t5 = time.perf_counter()
            for key, v in (
                ("predict", t1 - t0),
                ("preprocess", t2 - t1),
                ("forward", t3 - t2),
                ("finish", t4 - t3),
                ("network", t5 - t4),
            ):
                tt[key].append(v * 1000)
    out = {}
    for name, tt in t.items():
        out[name] = {
            "predict_p50_ms": _p(tt["predict"], 50),
            "predict_p99_ms": _p(tt["predict"], 99),
            "preprocess_p50_ms": _p(tt["preprocess"], 50),
            "network_p50_ms": _p(tt["network"], 50),
            "forward_p50_ms": _p(tt["forward"], 50),
            "finish_p50_ms": _p(tt["finish"], 50),
            # what forward does beyond the network: the memory bank search (PatchCore), softmax and copies
            "search_p50_ms": max(0.0, _p(tt["forward"], 50) - _p(tt["network"], 50)),
        }
    return out


def _batch_table(inspector: Inspector, images: list[np.ndarray], n: int) -> list[dict[str, float]]:
    """Views per second through preprocess + forward (N views at once) + finish, one thread: the
    throughput a micro-batch buys and the latency it costs (a view waits for its whole batch)."""
    return [micro_batches(inspector, images, size, max(5, (2 * n) // size)) for size in BATCHES]


def micro_batches(inspector: Inspector, images: list[np.ndarray], size: int, rounds: int) -> dict[str, float]:
    """`rounds` micro-batches of `size` views through preprocess, forward and finish, one thread
    (as the line's threads call them, one after another): per-batch times and views per second."""
    views = [images[k % len(images)] for k in range(size)]
    inspector.forward([inspector.preprocess(v) for v in views])  # warm-up at this batch size
    batch_ms, forward_ms = [], []
    start = time.perf_counter()
    for _ in range(rounds):
        t0 = time.perf_counter()
        inputs = [inspector.preprocess(v) for v in views]
        t1 = time.perf_counter()
        raws = inspector.forward(inputs)
        t2 = time.perf_counter()
        for raw, v in zip(raws, views, strict=True):
            inspector.finish(raw, v.shape)
        batch_ms.append((time.perf_counter() - t0) * 1000)
        forward_ms.append((t2 - t1) * 1000)
    total = time.perf_counter() - start
    return {
        "n": size,
        "batch_p50_ms": _p(batch_ms, 50),
        "forward_p50_ms": _p(forward_ms, 50),
        "ms_per_view": total * 1000 / (rounds * size),
        "views_per_s": rounds * size / total,
    }


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


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
