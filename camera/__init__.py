"""Cameras: the `Camera` interface, `Frame`, the Basler camera (pypylon) and a simulated camera."""

from camera.base import Camera, CameraInfo, CameraSettings, Frame, Roi, TriggerMode
from camera.errors import CameraError, CameraNotFoundError, CameraRemovedError, GrabFailed, GrabTimeout
from camera.spec import SPEC_HELP, list_cameras, open_camera, open_cameras

__all__ = [
    "Camera",
    "CameraError",
    "CameraInfo",
    "CameraNotFoundError",
    "CameraRemovedError",
    "CameraSettings",
    "Frame",
    "GrabFailed",
    "GrabTimeout",
    "Roi",
    "SPEC_HELP",
    "TriggerMode",
    "list_cameras",
    "open_camera",
    "open_cameras",
]
