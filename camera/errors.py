"""Camera errors. Each message is one sentence a line operator can act on."""

from __future__ import annotations


class CameraError(Exception):
    """A camera could not be found, opened, configured or read."""


class CameraNotFoundError(CameraError):
    """No camera matches the requested spec."""


class CameraRemovedError(CameraError):
    """The camera was disconnected (cable pulled, power lost) while in use."""


class GrabTimeout(CameraError):
    """No frame arrived within the timeout (normal while waiting for a hardware trigger)."""


class TriggerNotReady(GrabTimeout):
    """The camera was not ready for a software trigger in time: the trigger was not fired."""


class GrabFailed(CameraError):
    """A frame arrived but is incomplete or corrupt; it must never be inspected as a part."""
