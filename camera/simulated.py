"""A pure-Python camera that plays an image folder, looping, with fault injection for tests."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np

from camera.base import (
    Camera,
    CameraSettings,
    Frame,
    IoSettings,
    Roi,
    TriggerMode,
    check_playback_folder,
    pixel_format,
)
from camera.errors import CameraError, CameraNotFoundError, CameraRemovedError, GrabFailed, GrabTimeout

_PFS_HEADER = "# Lepton Inspect simulated camera settings (pylon .pfs layout: name<TAB>value)\n"


class SimulatedCamera(Camera):
    """Plays the images of `folder` in alphabetical order, looping.

    Fault injection (thread-safe, may be called from any thread): `fail_next(n)` makes the next
    n grabs fail, `disconnect()` pulls the virtual cable (grabs raise CameraRemovedError, and
    `open()` CameraNotFoundError until `plug_in()` puts it back), `frame_delay_s` slows every
    frame. Frame ids go on counting across a reconnection, as the played images do.

    Lines: `configure_io` keeps the wiring; `set_output` records `(time.perf_counter(), value)` in
    `outputs` (`fail_outputs(n)` makes the next n calls fail); the encoder counts
    `encoder_counts_per_s` (settable with `set_encoder_speed`) since it was made, or has none at all
    with `has_encoder=False`.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        frame_delay_s: float = 0.0,
        encoder_counts_per_s: float = 0.0,
        has_encoder: bool = True,
    ) -> None:
        self.folder = Path(folder)
        self.camera_id = f"sim:{self.folder.name}"
        self.frame_delay_s = frame_delay_s
        self._settings = CameraSettings(frame_rate=30.0)
        self._files: list[Path] = []
        self._open = False
        self._grabbing = False
        self._index = 0
        self._frame_id = 0
        self._next_due = 0.0
        self._lock = threading.Lock()
        self._fail_count = 0
        self._removed = False  # this connection was lost: close and open again
        self._unplugged = False  # the virtual cable is out: open() finds no camera
        self.io: IoSettings | None = None
        self.outputs: list[tuple[float, bool]] = []  # (perf_counter, value) of each set_output
        self._output_failures = 0
        self.has_encoder = has_encoder
        self._encoder_base = 0.0  # counts at _encoder_since
        self._encoder_since = time.perf_counter()
        self.encoder_counts_per_s = encoder_counts_per_s

    # -- fault injection ---------------------------------------------------------------
    def fail_next(self, count: int = 1) -> None:
        with self._lock:
            self._fail_count += count

    def disconnect(self) -> None:
        """Pull the virtual cable."""
        with self._lock:
            self._removed = True
            self._unplugged = True

    def fail_outputs(self, count: int = 1) -> None:
        """Make the next `count` set_output calls raise CameraError."""
        with self._lock:
            self._output_failures += count

    def set_encoder_speed(self, counts_per_s: float) -> None:
        """Change the conveyor's speed from now on (the count so far is kept)."""
        with self._lock:
            now = time.perf_counter()
            self._encoder_base += self.encoder_counts_per_s * (now - self._encoder_since)
            self._encoder_since = now
            self.encoder_counts_per_s = counts_per_s

    def plug_in(self) -> None:
        """Put the virtual cable back: the camera can be opened again (the lost connection stays lost)."""
        with self._lock:
            self._unplugged = False

    # -- Camera ------------------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            if self._unplugged:
                raise CameraNotFoundError(f"Camera {self.camera_id} is not connected.")
        self._files = check_playback_folder(self.folder)
        with self._lock:
            self._open = True
            self._removed = False

    def close(self) -> None:
        self._grabbing = False
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def is_grabbing(self) -> bool:
        return self._grabbing

    @property
    def removed(self) -> bool:
        return self._removed

    def _require_open(self) -> None:
        if self._removed:
            raise CameraRemovedError(f"Camera {self.camera_id} was disconnected.")
        if not self._open:
            raise CameraError(f"Camera {self.camera_id} is not open.")

    def configure(self, settings: CameraSettings) -> None:
        self._require_open()
        if self._grabbing:
            raise CameraError("Camera settings can only change while the camera is not grabbing.")
        self._settings = settings

    def settings(self) -> CameraSettings:
        return self._settings

    def configure_io(self, io: IoSettings) -> None:
        self._require_open()
        if self._grabbing:
            raise CameraError("Camera lines can only change while the camera is not grabbing.")
        self.io = io

    def set_output(self, value: bool) -> None:
        with self._lock:
            if self.io is None or self.io.reject_line is None:
                raise CameraError(f"Camera {self.camera_id} has no reject output configured.")
            if self._removed or not self._open:
                raise CameraError(f"Camera {self.camera_id} is not connected, so its output cannot be set.")
            if self._output_failures > 0:
                self._output_failures -= 1
                raise CameraError(f"Camera {self.camera_id} did not accept the output value.")
            self.outputs.append((time.perf_counter(), bool(value)))

    def encoder_position(self) -> int:
        if not self.has_encoder:
            raise CameraError(f"Camera {self.camera_id} has no encoder.")
        with self._lock:
            return int(self._encoder_base + self.encoder_counts_per_s * (time.perf_counter() - self._encoder_since))

    def start(self) -> None:
        self._require_open()
        self._grabbing = True
        self._next_due = time.perf_counter()

    def stop(self) -> None:
        self._grabbing = False

    def grab(self, timeout_s: float = 1.0) -> Frame:
        self._require_open()
        if not self._grabbing:
            raise CameraError(f"Camera {self.camera_id} is not grabbing.")
        s = self._settings
        if s.trigger is TriggerMode.HARDWARE:
            # A simulated camera has no trigger line: nothing ever arrives.
            time.sleep(timeout_s)
            raise GrabTimeout(f"No hardware trigger on {self.camera_id} within {timeout_s:.1f} s.")
        if s.trigger is TriggerMode.FREE_RUN and s.frame_rate:
            wait = self._next_due - time.perf_counter()
            if wait > timeout_s:
                time.sleep(timeout_s)
                raise GrabTimeout(f"No frame from {self.camera_id} within {timeout_s:.1f} s.")
            if wait > 0:
                time.sleep(wait)
            self._next_due = max(self._next_due, time.perf_counter() - 1.0) + 1.0 / s.frame_rate
        if self.frame_delay_s:
            time.sleep(self.frame_delay_s)
        path = self._files[self._index % len(self._files)]
        self._index += 1
        self._frame_id += 1
        with self._lock:
            if self._removed:
                raise CameraRemovedError(f"Camera {self.camera_id} was disconnected.")
            if self._fail_count > 0:
                self._fail_count -= 1
                raise GrabFailed(f"Frame {self._frame_id} from {self.camera_id} was incompletely grabbed.")
        image = _read(path, s.pixel_format)
        if s.roi is not None:
            image = _crop(image, s.roi)
        return Frame(
            image=image,
            frame_id=self._frame_id,
            timestamp=time.time(),
            camera_id=self.camera_id,
            exposure_us=s.exposure_us,
            grabbed_at=time.perf_counter(),
            source=str(path),
        )

    def save_settings(self, path: Path) -> None:
        s = self._settings
        values = {
            "PixelFormat": s.pixel_format,
            "TriggerMode": s.trigger.value,
            "ExposureTime": s.exposure_us,
            "Gain": s.gain_db,
            "AcquisitionFrameRate": s.frame_rate,
            "Roi": None if s.roi is None else f"{s.roi.x},{s.roi.y},{s.roi.width},{s.roi.height}",
        }
        lines = [f"{k}\t{v}\n" for k, v in values.items() if v is not None]
        Path(path).write_text(_PFS_HEADER + "".join(lines), encoding="utf-8")

    def load_settings(self, path: Path) -> None:
        values: dict[str, str] = {}
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CameraError(f"Cannot read camera settings file {path}: {exc.strerror}.") from exc
        for line in text.splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition("\t")
                values[key] = value
        try:
            roi = None
            if "Roi" in values:
                x, y, w, h = (int(v) for v in values["Roi"].split(","))
                roi = Roi(x, y, w, h)
            settings = CameraSettings(
                trigger=TriggerMode(values.get("TriggerMode", "software")),
                exposure_us=float(values["ExposureTime"]) if "ExposureTime" in values else None,
                gain_db=float(values["Gain"]) if "Gain" in values else None,
                frame_rate=float(values["AcquisitionFrameRate"]) if "AcquisitionFrameRate" in values else None,
                roi=roi,
                pixel_format=pixel_format(values.get("PixelFormat", "Mono8")),  # checked last, as CameraSettings does
            )
        except ValueError as exc:
            raise CameraError(f"Camera settings file {path} is not valid: {exc}.") from exc
        self.configure(settings)


def _read(path: Path, pixel_format: str) -> np.ndarray:
    flag = cv2.IMREAD_GRAYSCALE if pixel_format == "Mono8" else cv2.IMREAD_COLOR
    image = cv2.imread(str(path), flag)
    if image is None:
        raise GrabFailed(f"Image file {path} cannot be read.")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def _crop(image: np.ndarray, roi: Roi) -> np.ndarray:
    return np.ascontiguousarray(image[roi.y : roi.y + roi.height, roi.x : roi.x + roi.width])
