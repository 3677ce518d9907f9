"""The camera interface shared by the Basler and the simulated camera.

A `Camera` is opened, configured while not grabbing, started, and then hands out one `Frame`
per `grab()`. In software-trigger mode `grab()` fires the trigger itself, so the pipeline does
not care which trigger mode is in force.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from camera.errors import CameraError

PixelFormat = Literal["Mono8", "RGB8"]
PIXEL_FORMATS: tuple[PixelFormat, ...] = ("Mono8", "RGB8")


def pixel_format(value: str) -> PixelFormat:
    """`value` as a pixel format; ValueError unless it is one of PIXEL_FORMATS."""
    for fmt in PIXEL_FORMATS:
        if fmt == value:
            return fmt
    raise ValueError(f"pixel format must be one of {', '.join(PIXEL_FORMATS)}, not {value!r}")


class TriggerMode(str, enum.Enum):
    FREE_RUN = "free-run"
    SOFTWARE = "software"
    HARDWARE = "hardware"  # an edge on an input line: IoSettings (default: rising edge on Line1)


@dataclasses.dataclass(frozen=True)
class Roi:
    x: int
    y: int
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class CameraSettings:
    """What a recipe asks of a camera. `None` leaves the camera's own value."""

    pixel_format: PixelFormat = "Mono8"
    trigger: TriggerMode = TriggerMode.SOFTWARE
    exposure_us: float | None = None
    gain_db: float | None = None
    frame_rate: float | None = None  # free-run only
    roi: Roi | None = None

    def __post_init__(self) -> None:
        pixel_format(self.pixel_format)  # ValueError for another
        object.__setattr__(self, "trigger", TriggerMode(self.trigger))


TRIGGER_ACTIVATIONS: tuple[str, ...] = ("RisingEdge", "FallingEdge")


@dataclasses.dataclass(frozen=True)
class IoSettings:
    """How a camera is wired to the line: the hardware trigger's input and the reject output.
    `None` leaves the camera's own value; `reject_line=None` leaves every output alone."""

    trigger_line: str = "Line1"
    trigger_activation: str = "RisingEdge"
    debounce_us: float | None = None
    trigger_delay_us: float | None = None  # hardware trigger only
    reject_line: str | None = None
    reject_output: str = "UserOutput1"  # the user output that drives reject_line
    reject_inverted: bool = False

    def __post_init__(self) -> None:
        if self.trigger_activation not in TRIGGER_ACTIVATIONS:
            raise ValueError(
                f"trigger activation must be one of {', '.join(TRIGGER_ACTIVATIONS)}, not {self.trigger_activation!r}"
            )
        if self.reject_line is not None and self.reject_line == self.trigger_line:
            raise ValueError(f"the reject line cannot be the trigger line ({self.trigger_line})")


@dataclasses.dataclass(frozen=True)
class CameraInfo:
    """One entry of a camera listing."""

    spec: str  # what to pass to open_camera()
    kind: str  # "basler", "emulator", "simulated"
    model: str
    serial: str


@dataclasses.dataclass(frozen=True, eq=False)
class Frame:
    """One image from a camera, already copied out of the driver's buffer (read-only)."""

    image: np.ndarray  # uint8, (H, W) for Mono8 or (H, W, 3) RGB for RGB8
    frame_id: int  # the camera's block id / frame counter
    timestamp: float  # host wall-clock time of the grab, seconds since the epoch
    camera_id: str
    exposure_us: float | None
    grabbed_at: float  # time.perf_counter() when the frame reached the host (latency origin)
    source: str = ""  # image file the frame came from, when known (simulated camera)

    def __post_init__(self) -> None:
        if self.image.dtype != np.uint8 or self.image.ndim not in (2, 3):
            raise ValueError(
                f"frame image must be uint8 (H, W) or (H, W, 3), got {self.image.dtype} {self.image.shape}"
            )
        self.image.setflags(write=False)


class Camera(abc.ABC):
    """A source of frames. Not thread-safe: one thread grabs, others leave it alone (except
    `set_output` and `encoder_position`, which any thread may call)."""

    camera_id: str

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def is_open(self) -> bool: ...

    @property
    @abc.abstractmethod
    def is_grabbing(self) -> bool: ...

    @property
    @abc.abstractmethod
    def removed(self) -> bool:
        """True once the camera has been disconnected; it must be closed and opened anew."""

    @abc.abstractmethod
    def configure(self, settings: CameraSettings) -> None:
        """Apply settings; only while not grabbing."""

    @abc.abstractmethod
    def settings(self) -> CameraSettings: ...

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def grab(self, timeout_s: float = 1.0) -> Frame:
        """The next frame. Raises GrabTimeout, GrabFailed or CameraRemovedError."""

    def configure_io(self, io: IoSettings) -> None:
        """Wire the trigger input and the reject output (only while not grabbing); kept across a
        reconnection and used by TriggerMode.HARDWARE."""
        raise CameraError(f"Camera {self.camera_id} has no trigger or output lines.")

    def set_output(self, value: bool) -> None:
        """Drive the reject output (any thread, also while another grabs)."""
        raise CameraError(f"Camera {self.camera_id} has no output line.")

    def encoder_position(self) -> int:
        """The shaft encoder's count now (any thread)."""
        raise CameraError(f"Camera {self.camera_id} has no encoder.")

    @abc.abstractmethod
    def save_settings(self, path: Path) -> None:
        """Write the camera's settings to a `.pfs` file."""

    @abc.abstractmethod
    def load_settings(self, path: Path) -> None:
        """Load a `.pfs` file written by save_settings; only while not grabbing."""

    def __enter__(self) -> Camera:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def image_files(folder: Path) -> list[Path]:
    """The image files of a playback folder in the order a camera plays them (alphabetical)."""
    try:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as exc:
        raise CameraError(f"Image folder {folder} cannot be read: {exc.strerror}.") from None


def check_playback_folder(folder: Path) -> list[Path]:
    """The images of a playback folder; CameraError unless it exists and at least one image decodes."""
    if not folder.is_dir():
        raise CameraError(f"Image folder {folder} does not exist or is not a folder.")
    files = image_files(folder)
    if not files:
        raise CameraError(f"Image folder {folder} holds no PNG, JPG, BMP or TIFF images.")
    if not any(cv2.imread(str(f), cv2.IMREAD_REDUCED_GRAYSCALE_8) is not None for f in files):
        raise CameraError(f"None of the {len(files)} images in {folder} can be read.")
    return files
