"""Model packages: one `.lpkg` file (a zip) with `metadata.json` and `weights.pt` (a state dict).

The weights are loaded with `torch.load(..., weights_only=True)`: a package can hold tensors and
plain data, never code. Everything the model needs to score exactly as it did in training -
input size, normalization, backbone, thresholds - is in the metadata.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from models.base import Inspector, ModelInfo, Thresholds
from models.errors import ModelError
from models.kinds import KINDS
from models.runtime import resolve_backend

FORMAT_VERSION = 1
SUFFIX = ".lpkg"
REQUIRED_KEYS = ("format_version", "kind", "name", "version", "created_at", "thresholds", "classes")


def save_package(path: str | Path, metadata: dict[str, Any], state: dict[str, torch.Tensor]) -> str:
    """Write a package atomically; returns its sha256."""
    path = Path(path)
    meta = {"format_version": FORMAT_VERSION, "created_at": dt.datetime.now(dt.UTC).isoformat(), **metadata}
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelError(f"Model metadata lacks {', '.join(missing)}.")
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, buf)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", json.dumps(meta, indent=2, sort_keys=True))
        zf.writestr("weights.pt", buf.getvalue())
    tmp.replace(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


MAX_PACKAGE_BYTES = 2 << 30  # a package file larger than this is none of ours
MAX_METADATA_BYTES = 16 << 20  # metadata.json, unpacked (the demo's is 3 kB)
MAX_WEIGHTS_BYTES = 2 << 30  # weights.pt, unpacked: a zip bomb is refused before it is inflated
# A working size outside these is no model this program trained (fixed sizes, long sides: pixels).
INPUT_SIDE = (16, 8192)
INPUT_SCALE = (0.0, 4.0)


def read_package(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """Metadata, state dict and sha256 of a package; ModelError with one sentence naming the file if
    it is unusable: missing, unreadable, not ours (any other zip, a torch checkpoint, random bytes),
    damaged or truncated, from a newer format, with metadata missing or out of range, or with weights
    that are not a state dict of finite tensors. Weights are unpickled with `weights_only=True`: a
    package that holds code is refused, never run."""
    path = Path(path)
    data = _package_bytes(path)
    sha = hashlib.sha256(data).hexdigest()
    meta, weights = _unpack(data, path)
    check_metadata(meta, path)
    return meta, _state_dict(weights, path), sha


def _package_bytes(path: Path) -> bytes:
    """The whole file, unless it is missing, unreadable, empty or larger than any package of ours."""
    if not path.is_file():
        raise ModelError(f"Model package {path} does not exist.")
    try:
        size = path.stat().st_size
        if size > MAX_PACKAGE_BYTES:
            raise ModelError(f"Model package {path} is {size / 2**30:.1f} GiB, larger than any Lepton model package.")
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"Model package {path} cannot be read: {exc.strerror or exc}.") from None
    if not data:
        raise ModelError(f"Model package {path} is empty (0 bytes).")
    return data


def _unpack(data: bytes, path: Path) -> tuple[Any, bytes]:
    """The parsed `metadata.json` (not yet checked) and the raw `weights.pt` of a package's bytes;
    each member's size is checked before it is inflated."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for name, limit in (("metadata.json", MAX_METADATA_BYTES), ("weights.pt", MAX_WEIGHTS_BYTES)):
                if zf.getinfo(name).file_size > limit:
                    raise ModelError(
                        f"Model package {path} holds a {name} of {zf.getinfo(name).file_size:,} bytes, "
                        "far more than a Lepton model package does."
                    )
            return json.loads(zf.read("metadata.json")), zf.read("weights.pt")
    except ModelError:
        raise
    except KeyError as exc:  # a zip, but not ours (a torch checkpoint is a zip too)
        raise ModelError(f"Model package {path} is not a Lepton model package (it lacks {_missing(exc)}).") from None
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        ValueError,
        OSError,
        EOFError,
        RuntimeError,
        zlib.error,
        RecursionError,
    ) as exc:
        # ValueError: JSON and text decoding; RuntimeError: encrypted or unsupported compression
        raise ModelError(
            f"Model package {path} is corrupt or not a Lepton model package ({exc.__class__.__name__})."
        ) from None


def _state_dict(weights: bytes, path: Path) -> dict[str, torch.Tensor]:
    """`weights.pt` unpickled with `weights_only=True`: a state dict of finite tensors, or ModelError."""
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged or unsafe pickle
        raise ModelError(
            f"Model package {path} holds unreadable or unsafe weights ({exc.__class__.__name__})."
        ) from None
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise ModelError(f"Model package {path} does not hold a state dict of tensors.")
    bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise ModelError(f"Model package {path} holds weights that are not finite numbers ({bad}).")
    return state


def _missing(exc: KeyError) -> str:
    """The member a KeyError from zipfile names ("There is no item named 'x' in the archive")."""
    text = str(exc.args[0]) if exc.args else ""
    return text.split("named ")[-1].split(" in the")[0] if "named " in text else "metadata.json and weights.pt"


def check_metadata(meta: Any, path: str | Path) -> None:
    """ModelError with one sentence naming the file unless `meta` is metadata this program reads:
    format version, the required keys, a kind name, thresholds, classes and input size in range.
    (What a kind needs beyond these - backbone, weights shapes - its factory checks.)"""
    if not isinstance(meta, dict):
        raise ModelError(f"Model package {path} is not a Lepton model package (its metadata is not a JSON object).")
    version = meta.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise ModelError(
            f"Model package {path} was written by a newer Lepton Inspect (format version {version}); "
            f"this program reads version {FORMAT_VERSION}."
        )
    if version != FORMAT_VERSION:
        raise ModelError(
            f"Model package {path} has format version {version!r}; this program reads version {FORMAT_VERSION}."
        )
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelError(f"Model package {path} lacks metadata {', '.join(missing)}.")
    if not isinstance(meta["kind"], str):
        raise ModelError(f"Model package {path} names its kind {str(meta['kind'])[:40]!r}, which is no kind name.")
    try:
        model_info(meta)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"Model package {path} has invalid thresholds or classes ({_short(exc)}).") from None
    if "input" in meta:
        problem = _input_problem(meta["input"])
        if problem:
            raise ModelError(f"Model package {path} has an invalid input size or normalization ({problem}).")


def _short(exc: BaseException, limit: int = 120) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _input_problem(inp: Any) -> str:
    """What is wrong with a package's `input` metadata, or ""."""
    if not isinstance(inp, dict):
        return "input is not a table"
    lo, hi = INPUT_SIDE
    sides = [k for k in ("height", "width", "long_side") if k in inp]
    for key in sides:
        if isinstance(inp[key], bool) or not isinstance(inp[key], int) or not lo <= inp[key] <= hi:
            return f"{key} {str(inp[key])[:20]} is not a whole number of pixels from {lo} to {hi}"
    if ("height" in inp) != ("width" in inp):
        return "it gives only one of height and width"
    if "scale" in inp and not (_number(inp["scale"]) and INPUT_SCALE[0] < inp["scale"] <= INPUT_SCALE[1]):
        return f"scale {str(inp['scale'])[:20]} is not above {INPUT_SCALE[0]:g} and at most {INPUT_SCALE[1]:g}"
    if not sides and "scale" not in inp:
        return "it gives no size"
    multiple = inp.get("multiple", 16)
    if isinstance(multiple, bool) or not isinstance(multiple, int) or not 1 <= multiple <= 256:
        return f"multiple {str(multiple)[:20]} is not a whole number from 1 to 256"
    for key in ("mean", "std"):
        v = inp.get(key)
        if not isinstance(v, list) or len(v) != 3 or not all(_number(x) for x in v) or (key == "std" and min(v) <= 0):
            return f"{key} must be three finite numbers" + (" above 0" if key == "std" else "")
    return ""


def resolve_device(device: str = "auto") -> str:
    """`auto` (a CUDA GPU when there is one), `cpu`, `cuda` or `cuda:N`."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ModelError(f"Device {device!r} is not one of auto, cpu, cuda, cuda:N.") from None
    if dev.type not in ("cpu", "cuda"):
        raise ModelError(f"Device {device!r} is not one of auto, cpu, cuda, cuda:N.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("CUDA was asked for but no CUDA GPU is available.")
    return device


def model_info(meta: dict[str, Any], sha256: str = "") -> ModelInfo:
    """The identity and thresholds of a model from its metadata (ValueError-family if malformed)."""
    t = meta["thresholds"]
    if not isinstance(t, dict):
        raise TypeError(f"thresholds is {type(t).__name__}, not a table")
    values = (float(t["ok_below"]), float(t["ng_at"]), float(t["pixel"]))
    # Infinity is allowed: a provisional model in training has pixel = inf (no mask).
    if any(math.isnan(v) for v in values):
        raise ValueError(f"thresholds {values} are not all numbers")
    classes = meta["classes"]
    if (
        not isinstance(classes, list)
        or not classes
        or not all(isinstance(c, str) and c for c in classes)
        or len(set(classes)) != len(classes)
    ):
        raise ValueError(f"classes {str(classes)[:60]} are not distinct names, at least one")
    return ModelInfo(
        name=str(meta["name"]),
        version=str(meta["version"]),
        kind=str(meta["kind"]),
        sha256=sha256,
        thresholds=Thresholds(*values),
        classes=tuple(classes),
        metadata=meta,
    )


def build_inspector(
    meta: dict[str, Any],
    state: dict[str, torch.Tensor],
    *,
    sha256: str = "",
    device: str = "cpu",
    backend: str = "torch",
) -> Inspector:
    """An Inspector straight from metadata and weights (training uses this before a package exists)."""
    return KINDS[meta["kind"]](model_info(meta, sha256), meta, state, device, backend)


def load_package(path: str | Path, device: str = "auto", backend: str = "auto") -> Inspector:
    """Load a model package into a ready Inspector (`backend`: auto, torch or onnx; see models.runtime)."""
    meta, state, sha = read_package(path)
    kind = meta["kind"]
    if kind not in KINDS:
        raise ModelError(
            f"Model package {path} is of kind {kind[:40]!r}, which this program does not know "
            f"(known: {', '.join(sorted(KINDS))})."
        )
    info = model_info(meta, sha)  # checked by read_package
    dev = resolve_device(device)
    chosen = resolve_backend(backend, dev)
    try:
        return KINDS[kind](info, meta, state, dev, chosen)
    except Exception as exc:  # metadata or weights the kind cannot build a model from: one sentence naming the file
        if isinstance(exc, ModelError):
            reason = _short(exc, 240).rstrip(".")
            reason = "model" + reason[5:] if reason.startswith("Model ") else reason
        else:
            reason = f"{exc.__class__.__name__}: {_short(exc)}".rstrip(".")
        raise ModelError(f"Model package {path} cannot be loaded: {reason}.") from exc
