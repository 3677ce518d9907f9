"""Camera spec strings, used the same everywhere: `sim:DIR`, `emu:DIR`, `basler`, `basler:SERIAL`."""

from __future__ import annotations

from pathlib import Path

from camera.base import Camera, CameraInfo
from camera.errors import CameraError

SPEC_HELP = "sim:DIR (simulated camera playing DIR), emu:DIR (Basler's emulator playing DIR), basler (first real Basler camera) or basler:SERIAL"


def open_camera(spec: str) -> Camera:
    """Build the camera a spec names (not yet opened). Raises CameraError for a malformed spec."""
    kind, sep, arg = spec.partition(":")
    if kind == "sim" and arg:
        from camera.simulated import SimulatedCamera

        return SimulatedCamera(Path(arg))
    if kind == "emu" and arg:
        from camera.basler import BaslerCamera

        return BaslerCamera(emulator=True, playback_dir=Path(arg))
    if kind == "basler":
        from camera.basler import BaslerCamera

        if sep and not arg:
            raise CameraError(f"Camera spec {spec!r} names no serial number; use {SPEC_HELP}.")
        return BaslerCamera(serial=arg or None)
    raise CameraError(f"Unknown camera spec {spec!r}; use {SPEC_HELP}.")


def list_cameras() -> list[CameraInfo]:
    """Every Basler camera pylon sees, real and emulated (simulated cameras are folders, not devices)."""
    from camera.basler import list_basler

    return list_basler()
