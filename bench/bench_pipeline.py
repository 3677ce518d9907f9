"""The pipeline against its limits (`make bench`): one table, the same figures in bench/results.json.

Measured in one run, on this machine, with the default model (or --model) and images from disk:
- the raw model: predict on images already in memory, one after another (latency mode's limit), and
  preprocess + network + post-processing in micro-batches of --max-batch (throughput mode's limit),
  measured on the line's loaded model right before each of --rounds runs of the line (the
  machine's speed drifts; each end-to-end / raw ratio is of figures taken a second apart);
- end to end: Basler's pylon emulator playing the images (as BMP files: a real camera's frames
  need no decoding on the host, the emulator's JPEG decoding would be charged to the station;
  --playback-as-is plays the files as they are), software trigger, the whole line (grab,
  copy, preprocess, network, post-processing, verdict, SQLite rows, PNG images of rejects) into a
  fresh database, in latency mode and in throughput mode; grab-to-verdict latency is from the
  frame's arrival on the host to its verdict, trigger-to-verdict adds the camera's exposure and transfer;
- two emulated cameras inspected concurrently (a part = one view from each), and how that scales;
- the operator window's longest GUI-thread stall (app/gui_bench.py, for --gui-seconds);
- the default model against eager PyTorch at the same input (bench/bench_models.py).
On a machine with a CUDA GPU the model and line rows are measured on it as well.

    .venv/bin/python bench/bench_pipeline.py [--parts 300] [--rounds 3] [--images DIR] [--model PKG] [--max-batch 4]
                                             [--gui-seconds 20] [--playback-as-is] [--out bench/results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYLON_CAMEMU"] = "2"  # two emulated cameras, before pylon enumerates

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import resources  # noqa: E402
from bench.bench_models import micro_batches  # noqa: E402
from camera.base import image_files  # noqa: E402
from inspection.line import open_line  # noqa: E402
from models.base import Inspector  # noqa: E402
from models.datasets import read_image  # noqa: E402

WARMUP = 10  # parts left out of a run's figures (caches, first allocations)


def machine_is_idle() -> bool:
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: 1-minute load is {load1:.2f}; timings will be noisy (torch shares the cores)")
        return False
    return True


def raw_model(inspector: Inspector, images: list[np.ndarray], n: int, batch: int) -> dict[str, float]:
    """The model alone on images in memory: `n` predictions one after another (latency mode's
    limit), then `n` views in micro-batches of `batch` through preprocess, forward and finish, as
    the line's threads call them (throughput mode's)."""
    for image in images:
        inspector.predict(image)  # warm
    t = []
    for k in range(n):
        t0 = time.perf_counter()
        inspector.predict(images[k % len(images)])
        t.append(time.perf_counter() - t0)
    ms = np.asarray(t) * 1000
    batched = micro_batches(inspector, images, batch, max(1, n // batch))
    return {"pps": n / ms.sum() * 1000, "batch_pps": batched["views_per_s"], "ms": ms.tolist()}


def line_runs(
    spec: str,
    model: Path | None,
    device: str,
    mode: str,
    max_batch: int,
    parts: int,
    db: Path,
    images: list[np.ndarray],
    rounds: int,
) -> dict:
    """The whole line into a fresh database, in `rounds` runs of parts / rounds parts, each right
    after the raw model's figures on the same loaded model: this machine's speed drifts by a
    tenth or more from minute to minute, so each end-to-end figure has its raw figure beside it."""
    line = open_line(camera_spec=spec, model=model, db=db, device=device, mode=mode, max_batch=max_batch)
    raws, statuses = [], []
    try:
        for _ in range(rounds):
            raws.append(raw_model(line.inspector, images, 60, max_batch))
            runner = line.start(max_parts=parts // rounds)
            runner.wait()
            statuses.append(line.stop())
    finally:
        line.close()
    con = sqlite3.connect(db)
    rows = []
    for status in statuses:
        got = np.asarray(
            con.execute(
                "select seq, t_grab_ms, t_preprocess_ms, t_queue_ms, t_infer_ms, t_decide_ms, latency_ms "
                "from inspections where run_id=? order by id",
                (status.run_id,),
            ).fetchall(),
            dtype=np.float64,
        )
        if status.recorded != len(got) or int(got[:, 0].max()) != status.parts or status.unwritten:
            raise SystemExit(
                f"run {status.run_id} recorded {len(got)} rows for {status.parts} parts: something was lost"
            )
        rows.append(got[got[:, 0] > WARMUP])
    con.close()
    keep = np.concatenate(rows)
    grab_to_verdict = keep[:, 6] - keep[:, 1]
    views = statuses[0].recorded / statuses[0].parts
    pps = [s.parts_per_s for s in statuses]
    per_view = mode == "latency"  # the raw figure to compare with: one at a time, or in micro-batches
    ratios = [p * views / (r["pps"] if per_view else r["batch_pps"]) for p, r in zip(pps, raws, strict=True)]
    ms = np.concatenate([r["ms"] for r in raws])
    return {
        "parts": sum(s.parts for s in statuses),
        "views_per_part": views,
        "pps": float(np.median(pps)),
        "views_per_s": float(np.median(pps)) * views,
        "ratio_to_raw": float(np.median(ratios)),
        "ratios_to_raw": ratios,
        "raw": {
            "pps": float(np.median([r["pps"] for r in raws])),
            "batch_pps": float(np.median([r["batch_pps"] for r in raws])),
            "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)),
        },
        "latency_p50": float(np.percentile(grab_to_verdict, 50)),
        "latency_p99": float(np.percentile(grab_to_verdict, 99)),
        "trigger_p50": float(np.percentile(keep[:, 6], 50)),
        "trigger_p99": float(np.percentile(keep[:, 6], 99)),
        "stages_ms": {
            name: float(keep[:, i].mean())
            for i, name in enumerate(("grab", "preprocess", "queue", "network", "post"), start=1)
        },
        "dropped": sum(s.dropped for s in statuses),
        "hand_off_ms": float(np.mean([s.hand_off_ms_per_part for s in statuses])),
        "commit_ms_per_row": float(np.mean([s.commit_ms_per_row for s in statuses])),
    }


def as_bmp(folder: Path, out: Path) -> Path:
    """The images of `folder` as BMP files in `out`, in the same order, for the emulator to play."""
    out.mkdir()
    for k, path in enumerate(image_files(folder)):
        image = read_image(path)
        cv2.imwrite(str(out / f"{k:05d}.bmp"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
    return out


def bench_json(script: str, what: str, images: Path, model: Path | None, *args: str) -> dict | None:
    """Run another benchmark of bench/ in its own process and read the JSON it writes (None, with a
    warning, if it fails: the table goes on without its rows)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, str(ROOT / "bench" / script), "--images", str(images), "--json", str(out), *args]
        if model is not None:
            cmd += ["--model", str(model)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            print(f"warning: the {what} benchmark failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
            return None
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", type=int, default=300, help="parts per line run")
    ap.add_argument("--images", type=Path, default=resources.DEMO_SAMPLES)
    ap.add_argument("--model", type=Path, default=None, help="model package (default: the bundled demo model)")
    ap.add_argument("--max-batch", type=int, default=4, help="throughput mode's micro-batch")
    ap.add_argument(
        "--gui-seconds", type=float, default=20.0, help="seconds of the operator window under load (0: skip)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    ap.add_argument("--rounds", type=int, default=3, help="runs per line set-up, each beside its own raw-model figures")
    ap.add_argument(
        "--playback-as-is", action="store_true", help="the emulator plays the image files as they are (default: as BMP)"
    )
    a = ap.parse_args()
    idle = machine_is_idle()
    images = [read_image(p) for p in image_files(a.images)]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    res: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "idle_at_start": idle,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if "cuda" in devices else None,
        "images": str(a.images),
        "parts": a.parts,
        "max_batch": a.max_batch,
        "devices": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LEPTON_DATA_DIR"] = tmp  # reports, logs: nothing of the user's is touched
        spec = f"emu:{a.images if a.playback_as_is else as_bmp(a.images, Path(tmp) / 'playback')}"
        for device in devices:
            runs = {}
            for name, station, mode in (
                ("latency", spec, "latency"),
                ("throughput", spec, "throughput"),
                ("2 cameras, latency", f"{spec}+{spec}", "latency"),
                ("2 cameras, throughput", f"{spec}+{spec}", "throughput"),
            ):
                db = Path(tmp) / f"{device}-{len(runs)}.db"
                runs[name] = line_runs(station, a.model, device, mode, a.max_batch, a.parts, db, images, a.rounds)
            res["devices"][device] = {"raw": runs["latency"]["raw"], "runs": runs}
    gui = (
        bench_json("bench_gui.py", "GUI", a.images, a.model, "--seconds", str(a.gui_seconds))
        if a.gui_seconds > 0
        else None
    )
    models = bench_json("bench_models.py", "model", a.images, a.model)
    eager = (
        {k: models[k] for k in ("eager_speedup_predict", "eager_speedup_network") if k in models} if models else None
    )

    cpu = res["devices"]["cpu"]
    lat, thr = cpu["runs"]["latency"], cpu["runs"]["throughput"]
    bound = 1.5 * cpu["raw"]["p50"] + 15
    res.update(
        {
            "raw_model_pps": cpu["raw"]["pps"],
            "raw_model_latency_ms_p50": cpu["raw"]["p50"],
            "raw_model_latency_ms_p99": cpu["raw"]["p99"],
            "raw_model_batch_pps": cpu["raw"]["batch_pps"],
            "end_to_end_pps": lat["pps"],
            "end_to_end_ratio": lat["ratio_to_raw"],
            "end_to_end_throughput_mode_pps": thr["pps"],
            "end_to_end_throughput_mode_ratio": thr["ratio_to_raw"],
            "latency_ms_p50": lat["latency_p50"],
            "latency_ms_p99": lat["latency_p99"],
            "latency_bound_ms": bound,
            "dropped_frames": sum(r["dropped"] for r in cpu["runs"].values()),
            "hand_off_ms_per_part": lat["hand_off_ms"],
            "commit_ms_per_row": lat["commit_ms_per_row"],
            "two_camera_scaling": cpu["runs"]["2 cameras, latency"]["views_per_s"] / (2 * lat["views_per_s"]),
            "gui": gui,
            "eager": eager,
        }
    )
    a.out.write_text(json.dumps(res, indent=2))

    print(
        f"{res['machine']}, torch {res['torch']}"
        + (f", GPU {res['gpu']}" if res["gpu"] else ", no CUDA GPU")
        + f"; images {a.images} ({len(images)}, {images[0].shape[1]}x{images[0].shape[0]}); {a.parts} parts a run"
        + ("" if idle else "; THE MACHINE WAS NOT IDLE")
    )
    head = (
        f"{'device':<6} {'what':<28} {'parts/s':>8} {'views/s':>8} {'p50 ms':>7} {'p99 ms':>7} | {'trig p99':>8} "
        f"{'grab':>5} {'pre':>5} {'queue':>5} {'net':>5} {'post':>5} | {'drop':>4} {'hand-off':>8} {'commit/row':>10}"
    )
    print(head)
    print("-" * len(head))
    for device, d in res["devices"].items():
        r = d["raw"]
        print(
            f"{device:<6} {'raw model, batch 1':<28} {r['pps']:8.1f} {r['pps']:8.1f} {r['p50']:7.1f} {r['p99']:7.1f} |"
        )
        print(
            f"{device:<6} {f'raw model, batch {a.max_batch}':<28} {r['batch_pps']:8.1f} {r['batch_pps']:8.1f} "
            f"{'':>7} {'':>7} |"
        )
        for name, x in d["runs"].items():
            s = x["stages_ms"]
            print(
                f"{device:<6} {'line, ' + name:<28} {x['pps']:8.1f} {x['views_per_s']:8.1f} "
                f"{x['latency_p50']:7.1f} {x['latency_p99']:7.1f} | "
                f"{x['trigger_p99']:8.1f} {s['grab']:5.1f} {s['preprocess']:5.1f} {s['queue']:5.1f} "
                f"{s['network']:5.1f} {s['post']:5.1f} | "
                f"{x['dropped']:4d} {x['hand_off_ms']:7.3f}ms {x['commit_ms_per_row']:8.3f}ms"
            )
    print(
        "p50/p99: grab-to-verdict (frame on the host -> verdict); trig p99: trigger-to-verdict; "
        "stages: mean ms per view; "
        "hand-off: inspection-thread time per part giving rows and images to the writer; "
        "commit/row: the writer thread's"
    )
    checks = [
        (
            "end to end / raw model (latency mode; median of rounds)",
            res["end_to_end_ratio"],
            ">= 0.90",
            res["end_to_end_ratio"] >= 0.90,
        ),
        (
            "end to end / raw model (throughput mode, raw batched)",
            res["end_to_end_throughput_mode_ratio"],
            "(measured)",
            True,
        ),
        (
            "grab-to-verdict p99 / (1.5 x model p50 + 15 ms)",
            res["latency_ms_p99"] / bound,
            "<= 1",
            res["latency_ms_p99"] <= bound,
        ),
        ("writer hand-off ms per part", res["hand_off_ms_per_part"], "< 1 ms", res["hand_off_ms_per_part"] < 1.0),
        ("2 cameras: views/s / (2 x 1 camera)", res["two_camera_scaling"], "(measured)", True),
        ("throughput / latency mode, parts/s", thr["pps"] / lat["pps"], "(measured)", True),
        ("throughput / latency mode, p99 latency", thr["latency_p99"] / lat["latency_p99"], "(measured)", True),
    ]
    if eager:
        checks.append(
            (
                "default model / eager torch, whole predict",
                eager.get("eager_speedup_predict", float("nan")),
                ">= 2",
                eager.get("eager_speedup_predict", 0) >= 2,
            )
        )
        checks.append(
            (
                "default model / eager torch, network only",
                eager.get("eager_speedup_network", float("nan")),
                "(measured)",
                True,
            )
        )
    if gui:
        checks.append(("GUI-thread longest stall, ms", gui["gui_stall_ms_max"], "< 50", gui["gui_stall_ms_max"] < 50))
    print()
    for name, value, target, ok in checks:
        print(f"{name:<56} {value:8.3f}  {target:<10} {'ok' if ok else 'MISSED'}")
    print(f"\nwritten to {a.out}")


if __name__ == "__main__":
    main()
