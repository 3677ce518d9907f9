"""The pypylon layer under `camera.basler`: pypylon imported on first use, the devices it lists,
frames copied out of its buffers, devices released, and the handler of its removal events.

This module and `camera.basler` are the only ones that import pypylon.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

import numpy as np

from camera.base import CameraInfo

log = logging.getLogger("camera.basler")  # the Basler cameras' log, one for both modules

EMULATOR_CLASS = "BaslerCamEmu"


def pylon_module() -> Any:
    """Import pypylon on first use. Emulated cameras are enumerated unless PYLON_CAMEMU says otherwise."""
    os.environ.setdefault("PYLON_CAMEMU", "1")
    from pypylon import pylon

    return pylon


def genicam_module() -> Any:
    from pypylon import genicam

    return genicam


def list_basler() -> list[CameraInfo]:
    """Every Basler camera pylon can see, emulated ones included."""
    pylon = pylon_module()
    infos = []
    for dev in pylon.TlFactory.GetInstance().EnumerateDevices():
        emulated = dev.GetDeviceClass() == EMULATOR_CLASS
        infos.append(
            CameraInfo(
                spec=f"basler:{dev.GetSerialNumber()}",
                kind="emulator" if emulated else "basler",
                model=dev.GetModelName(),
                serial=dev.GetSerialNumber(),
            )
        )
    return infos


def describe(infos: list[CameraInfo]) -> str:
    if not infos:
        return "pylon sees no cameras at all"
    return "pylon sees: " + ", ".join(f"{i.model} {i.serial} ({i.kind})" for i in infos)


def copy_out(image: Any, padding_x: int = 0) -> np.ndarray:
    """One copy of an 8-bit Mono or RGB pylon image (grab result or converted image) into a fresh,
    contiguous array. No view may outlive the `with`: pylon checks it and the buffer goes back."""
    if padding_x == 0:
        with image.GetArrayZeroCopy() as view:
            out = np.array(view, dtype=np.uint8, copy=True)
            del view
        return out
    # Rows padded to an alignment: view the raw buffer with the row stride and copy the pixels only.
    height, width = int(image.GetHeight()), int(image.GetWidth())
    channels = 1 if image.GetPixelType() == pylon_module().PixelType_Mono8 else 3
    shape = (height, width) if channels == 1 else (height, width, channels)
    strides = (width * channels + padding_x, channels, 1)[: len(shape)]
    with image.GetArrayZeroCopy(raw=True) as raw:
        rows = np.lib.stride_tricks.as_strided(raw, shape=shape, strides=strides, writeable=False)
        out = np.array(rows, dtype=np.uint8, copy=True)
        del rows, raw
    return out


def short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(" : ")[0].rstrip(".")


def release(cam: Any, camera_id: str) -> None:
    """Stop grabbing, close and destroy a device, each step on its own: a removed device may refuse
    one politely, and DestroyDevice must still run (else the device and its handlers leak)."""
    genicam = genicam_module()
    for step in ("StopGrabbing", "Close", "DestroyDevice"):
        try:
            if step != "StopGrabbing" or cam.IsGrabbing():
                getattr(cam, step)()
        except genicam.GenericException as exc:
            log.debug("closing %s, %s: %s", camera_id, step, exc)


# Removal handlers alive now (one per open connection; more would be a leak across reconnections).
live_removal_handlers: weakref.WeakSet[Any] = weakref.WeakSet()
_handler_class: Any = None


def removal_handler(flag: threading.Event) -> Any:
    """A pylon configuration handler that sets `flag` when the device is removed (pylon's thread)."""
    global _handler_class
    if _handler_class is None:

        class RemovalHandler(pylon_module().ConfigurationEventHandler):  # type: ignore[misc]
            def __init__(self, flag: threading.Event) -> None:
                super().__init__()
                self.flag = flag

            def OnCameraDeviceRemoved(self, camera: Any) -> None:  # noqa: N802 (pylon's name)
                log.warning("camera %s removed", camera.GetDeviceInfo().GetSerialNumber())
                self.flag.set()

        _handler_class = RemovalHandler
    handler = _handler_class(flag)
    live_removal_handlers.add(handler)
    return handler
