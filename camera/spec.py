"""Camera spec strings, used the same everywhere: `sim:DIR`, `emu:DIR`, `basler`, `basler:SERIAL`,
and a station of several cameras as specs joined by `+` (`emu:DIR_A+emu:DIR_B`)."""

from __future__ import annotations

import re
from pathlib import Path

from camera.base import Camera, CameraInfo
from camera.errors import CameraError

SPEC_HELP = (
    "sim:DIR (simulated camera playing DIR), emu:DIR (Basler's emulator playing DIR), "
    "basler (first real Basler camera) or basler:SERIAL; "
    "a station of several cameras joins specs with + (emu:DIR_A+emu:DIR_B, basler:SERIAL+basler:SERIAL)"
)

# A `+` starts the next camera only where a spec follows (`kind:` of two letters or more, or a plain
# `basler`), so folders named `c++ parts` still work and a mistyped kind is still reported as one.
_STATION_SPLIT = re.compile(r"\+(?=[A-Za-z]\w+:|basler(?:\+|$))")


def split_station(spec: str) -> list[str]:
    """The camera specs of a station spec, in order (one for a plain camera spec)."""
    return _STATION_SPLIT.split(spec)


def open_camera(spec: str) -> Camera:
    """Build the one camera a spec names (not yet opened). Raises CameraError for a malformed spec."""
    parts = split_station(spec)
    if len(parts) > 1:
        raise CameraError(
            f"Camera spec {spec!r} names a station of {len(parts)} cameras joined by '+', "
            "but one camera is expected here (open_cameras opens a station)."
        )
    return _build(spec)


def open_cameras(spec: str) -> list[Camera]:
    """Build the cameras of a station spec, specs joined by `+`, in order (not yet opened).

    The k-th `emu:` camera gets the k-th emulated device pylon enumerates, so each plays its own
    folder. Real cameras must be named by serial and only once: two cameras on one device would
    fight over it. Simulated cameras on the same folder are independent and get numbered ids.
    """
    parts = split_station(spec)
    if len(parts) > 1:
        seen: set[str] = set()
        for part in parts:
            kind, _, arg = part.partition(":")
            if part == "basler":
                raise CameraError(
                    f"Station spec {spec!r} has a plain 'basler'; "
                    "name each real camera of a station by serial (basler:SERIAL)."
                )
            if kind == "basler" and arg:
                if arg in seen:
                    raise CameraError(
                        f"Station spec {spec!r} names Basler camera {arg} twice; each camera can be used once."
                    )
                seen.add(arg)
    n_emu = sum(1 for part in parts if part.startswith("emu:"))
    cameras: list[Camera] = []
    emu_index = 0
    for part in parts:
        cameras.append(_build(part, emulator_index=emu_index, emulators_needed=n_emu))
        emu_index += part.startswith("emu:")
    _number_duplicate_ids(cameras)
    return cameras


def _number_duplicate_ids(cameras: list[Camera]) -> None:
    """Give cameras that would share an id (simulated cameras on one folder, or on folders of one name)
    their station position, `sim:ballscrew#2`, so results and records tell them apart."""
    ids = [c.camera_id for c in cameras]
    for position, camera in enumerate(cameras, start=1):
        if ids.count(camera.camera_id) > 1 and camera.camera_id.startswith("sim:"):
            camera.camera_id = f"{camera.camera_id}#{position}"


def _build(spec: str, *, emulator_index: int = 0, emulators_needed: int | None = None) -> Camera:
    kind, sep, arg = spec.partition(":")
    if kind == "sim" and arg:
        from camera.simulated import SimulatedCamera

        return SimulatedCamera(Path(arg))
    if kind == "emu" and arg:
        from camera.basler import BaslerCamera

        return BaslerCamera(
            emulator=True, playback_dir=Path(arg), emulator_index=emulator_index, emulators_needed=emulators_needed
        )
    if kind == "basler":
        from camera.basler import BaslerCamera

        if sep and not arg:
            raise CameraError(f"Camera spec {spec!r} names no serial number; use {SPEC_HELP}.")
        return BaslerCamera(serial=arg or None)
    raise CameraError(f"Unknown camera spec {spec!r}; use {SPEC_HELP}.")


def list_cameras() -> list[CameraInfo]:
    """Every Basler camera pylon sees, real and emulated (simulated cameras are folders, not devices)."""
    from camera.pylon_driver import list_basler

    return list_basler()
