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
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch

from models.base import Inspector, ModelInfo, Thresholds
from models.errors import ModelError

FORMAT_VERSION = 1
SUFFIX = ".lpkg"
REQUIRED_KEYS = ("format_version", "kind", "name", "version", "created_at", "thresholds", "classes")

# kind -> factory(info, metadata, state_dict, device, backend) -> Inspector. Filled by the model modules.
_KINDS: dict[str, Callable[[ModelInfo, dict[str, Any], dict[str, torch.Tensor], str, str], Inspector]] = {}


def register_kind(kind: str) -> Callable[[Any], Any]:
    def deco(factory: Any) -> Any:
        _KINDS[kind] = factory
        return factory

    return deco


def _known_kinds() -> dict[str, Any]:
    import models.patchcore  # noqa: F401  (each model module registers its kind)
    import models.segmentation  # noqa: F401

    return _KINDS


def save_package(path: str | Path, metadata: dict[str, Any], state: dict[str, torch.Tensor]) -> str:
    """Write a package atomically; returns its sha256."""
    path = Path(path)
    meta = {"format_version": FORMAT_VERSION, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(), **metadata}
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


def read_package(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """Metadata, state dict and sha256 of a package; ModelError with one sentence if unusable."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Model package {path} does not exist.")
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            meta = json.loads(zf.read("metadata.json"))
            weights = zf.read("weights.pt")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise ModelError(f"Model package {path} is corrupt or not a Lepton model package ({exc.__class__.__name__}).") from exc
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"Model package {path} has format version {meta.get('format_version') if isinstance(meta, dict) else '?'}; this program reads version {FORMAT_VERSION}.")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelError(f"Model package {path} lacks metadata {', '.join(missing)}.")
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged or unsafe pickle
        raise ModelError(f"Model package {path} holds unreadable or unsafe weights ({exc.__class__.__name__}).") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"Model package {path} does not hold a state dict of tensors.")
    return meta, state, sha


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
    return ModelInfo(
        name=str(meta["name"]),
        version=str(meta["version"]),
        kind=str(meta["kind"]),
        sha256=sha256,
        thresholds=Thresholds(float(t["ok_below"]), float(t["ng_at"]), float(t["pixel"])),
        classes=tuple(meta["classes"]),
        metadata=meta,
    )


def build_inspector(meta: dict[str, Any], state: dict[str, torch.Tensor], *, sha256: str = "", device: str = "cpu",
                    backend: str = "torch") -> Inspector:
    """An Inspector straight from metadata and weights (training uses this before a package exists)."""
    return _known_kinds()[meta["kind"]](model_info(meta, sha256), meta, state, device, backend)


def load_package(path: str | Path, device: str = "auto", backend: str = "auto") -> Inspector:
    """Load a model package into a ready Inspector (`backend`: auto, torch or onnx; see models.runtime)."""
    from models.runtime import resolve_backend

    meta, state, sha = read_package(path)
    kinds = _known_kinds()
    kind = meta["kind"]
    if kind not in kinds:
        raise ModelError(f"Model package {path} is of kind {kind!r}, which this program does not know (known: {', '.join(sorted(kinds))}).")
    try:
        info = model_info(meta, sha)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"Model package {path} has invalid thresholds or classes ({exc}).") from exc
    dev = resolve_device(device)
    return kinds[kind](info, meta, state, dev, resolve_backend(backend, dev))
