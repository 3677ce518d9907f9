"""Basler cameras through pypylon: real cameras and Basler's camera emulator alike.

This module and `camera.pylon_driver` (pypylon's loading, device listing, buffers, device release
and removal events) are the only ones that import pypylon. Feature names differ between camera generations
(`ExposureTime` on SFNC 2 cameras, `ExposureTimeAbs` on older ones); `_FEATURES` maps them here
and nowhere else.

Lines (`configure_io`): the hardware trigger's input (`LineSelector`, `LineMode=Input`, the
debouncer), `TriggerSource`/`TriggerActivation`/`TriggerDelay` of the FrameStart trigger, and the
reject output (`LineMode=Output`, `LineSource=UserOutputN`, `LineInverter`), driven by
`UserOutputSelector`/`UserOutputValue`. The encoder is read from `EncoderValue` (SFNC encoder
control, racer 2; the selector left at its default) or `ShaftEncoderModuleCounter` (the shaft
encoder module of ace GigE cameras). Basler's emulator has the lines and the trigger delay, but no
debouncer and no encoder.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from camera.base import (
    Camera,
    CameraSettings,
    Frame,
    IoSettings,
    PixelFormat,
    Roi,
    TriggerMode,
    check_playback_folder,
)
from camera.errors import CameraError, CameraNotFoundError, CameraRemovedError, GrabFailed, GrabTimeout, TriggerNotReady
from camera.pylon_driver import (
    EMULATOR_CLASS,
    copy_out,
    describe,
    genicam_module,
    list_basler,
    pylon_module,
    release,
    removal_handler,
    short,
)

log = logging.getLogger(__name__)

# GigE: pylon reports a camera removed when its heartbeat has been missing this long (pylon's default
# is 3 s); USB cameras report removal at once, the emulator has no heartbeat.
HEARTBEAT_TIMEOUT_MS = 1000

# Our name -> the feature names cameras use for it, newest first.
_FEATURES: dict[str, tuple[str, ...]] = {
    "exposure_us": ("ExposureTime", "ExposureTimeAbs"),
    "gain_db": ("Gain", "GainAbs"),
    "frame_rate": ("AcquisitionFrameRate", "AcquisitionFrameRateAbs"),
    "frame_rate_enable": ("AcquisitionFrameRateEnable",),
    "debounce_us": ("LineDebouncerTime", "LineDebouncerTimeAbs"),
    "trigger_delay_us": ("TriggerDelay", "TriggerDelayAbs"),
    "encoder": ("EncoderValue", "ShaftEncoderModuleCounter"),
}
# Our pixel format -> pylon's names for it.
_PIXEL_FORMATS: dict[PixelFormat, tuple[str, ...]] = {"Mono8": ("Mono8",), "RGB8": ("RGB8", "RGB8Packed")}


# Serial -> the BaslerCamera that has that device open in this process. pylon lets the emulator open one
# device twice (a real camera refuses with a vague access error), so a station that named one device
# twice would have two cameras share, and reconfigure, one stream. Weak: a camera dropped unclosed
# does not block its device for the rest of the process.
_open_by_serial: weakref.WeakValueDictionary[str, BaslerCamera] = weakref.WeakValueDictionary()
_open_by_serial_lock = threading.Lock()


class BaslerCamera(Camera):
    """A Basler camera by serial number, or the first real one (`serial=None`), or an emulated one
    playing `playback_dir` (`emulator=True`).

    `emulator_index` picks the k-th emulated device in pylon's enumeration order, so that the
    emulated cameras of one station never share a device; `emulators_needed` (the station's count)
    only makes the error for too few emulated cameras name the PYLON_CAMEMU value that fixes it.
    """

    def __init__(
        self,
        serial: str | None = None,
        *,
        emulator: bool = False,
        playback_dir: str | Path | None = None,
        emulator_index: int = 0,
        emulators_needed: int | None = None,
    ) -> None:
        if emulator_index < 0:
            raise ValueError(f"emulator_index must be 0 or more, not {emulator_index}")
        self.serial = serial
        self.emulator = emulator
        self.playback_dir = Path(playback_dir) if playback_dir is not None else None
        self.emulator_index = emulator_index
        self.emulators_needed = max(emulators_needed or 0, emulator_index + 1)
        if serial:
            self.camera_id = f"basler:{serial}"
        elif emulator:
            self.camera_id = "emu" if emulator_index == 0 else f"emu#{emulator_index + 1}"
        else:
            self.camera_id = "basler"
        self._cam: Any = None
        # Set by pylon's removal event; a new one per connection, so that a late event from a closed
        # connection never marks the next one removed.
        self._removed = threading.Event()
        self._settings = CameraSettings()
        self._converter: Any = None
        self._held_serial: str | None = None  # this camera's entry in _open_by_serial
        self._io: IoSettings | None = None  # the lines' wiring (configure_io), applied again by every configure()
        # The line and user-output selectors (set_output and encoder_position come from other
        # threads), and self._cam while close() lets it go.
        self._io_lock = threading.Lock()

    # -- open / close ------------------------------------------------------------------
    def _find_device(self) -> Any:
        pylon = pylon_module()
        devices = list(pylon.TlFactory.GetInstance().EnumerateDevices())
        if self.serial is not None:
            for dev in devices:
                if dev.GetSerialNumber() == self.serial:
                    return dev
            raise CameraNotFoundError(f"No Basler camera with serial {self.serial}; {describe(list_basler())}.")
        if self.emulator:
            emulated = [dev for dev in devices if dev.GetDeviceClass() == EMULATOR_CLASS]
            if self.emulator_index < len(emulated):
                return emulated[self.emulator_index]
            if emulated or self.emulators_needed > 1:
                n = self.emulators_needed
                raise CameraNotFoundError(
                    f"The station needs {n} emulated cameras but pylon has {len(emulated)} (set PYLON_CAMEMU={n})."
                )
            raise CameraNotFoundError(f"No emulated Basler camera (is PYLON_CAMEMU=0?); {describe(list_basler())}.")
        for dev in devices:
            if dev.GetDeviceClass() != EMULATOR_CLASS:
                return dev
        raise CameraNotFoundError(f"No real Basler camera is connected; {describe(list_basler())}.")

    def open(self) -> None:
        """Enumerate, attach and open (again after a removal: the serial found first is kept)."""
        self.close()  # a lost connection is released before a new one is made
        if self.playback_dir is not None:
            check_playback_folder(self.playback_dir)
        pylon = pylon_module()
        device = self._find_device()
        serial = device.GetSerialNumber()
        with _open_by_serial_lock:
            holder = _open_by_serial.get(serial)
            if holder is not None and holder is not self and holder._held_serial == serial:
                raise CameraError(
                    f"Basler camera {serial} is already open in this program; each camera can be used once."
                )
            _open_by_serial[serial] = self
            self._held_serial = serial
        removed = threading.Event()
        cam = None
        try:
            cam = pylon.InstantCamera(pylon.TlFactory.GetInstance().CreateDevice(device))
            # Cleanup_Delete: the handler goes with the InstantCamera (close() releases both).
            cam.RegisterConfiguration(removal_handler(removed), pylon.RegistrationMode_Append, pylon.Cleanup_Delete)
            cam.Open()
        except genicam_module().GenericException as exc:
            if cam is not None:
                release(cam, self.camera_id)
            self._let_go_of_serial()
            raise CameraError(
                f"Basler camera {serial} cannot be opened (in use by another program?): {short(exc)}."
            ) from exc
        self._cam = cam
        self._removed = removed
        self._set_heartbeat()
        self.serial = device.GetSerialNumber()
        self.camera_id = f"basler:{self.serial}"
        self._is_emulator = device.GetDeviceClass() == EMULATOR_CLASS
        if self.playback_dir is not None:
            if not self._is_emulator:
                raise CameraError("Image playback works only on Basler's camera emulator, not on a real camera.")
            self._set("TestImageSelector", "Off")
            self._set("ImageFileMode", "On")
            # Full sensor, so that played images are not cropped (the image size wins over Width/Height).
            self._cam.OffsetX.Value = 0
            self._cam.OffsetY.Value = 0
            self._cam.Width.Value = self._cam.Width.Max
            self._cam.Height.Value = self._cam.Height.Max
            self._set("ImageFilename", str(self.playback_dir.resolve()))
        self.configure(CameraSettings())

    def _set_heartbeat(self) -> None:
        """GigE cameras: removal detected within HEARTBEAT_TIMEOUT_MS (the transport layer's node;
        the emulator and USB cameras have none)."""
        try:
            node = self._cam.GetTLNodeMap().GetNode("HeartbeatTimeout")
            genicam = genicam_module()
            if node is not None and genicam.IsAvailable(node) and genicam.IsWritable(node):
                node.SetValue(HEARTBEAT_TIMEOUT_MS)
        except genicam_module().GenericException as exc:
            log.warning("camera %s: heartbeat timeout not set: %s", self.camera_id, short(exc))

    def close(self) -> None:
        """Stop grabbing, close and destroy the device (also a removed one); the InstantCamera and
        its removal handler are released."""
        with self._io_lock:
            cam, self._cam = self._cam, None
        if cam is not None:
            release(cam, self.camera_id)
        self._let_go_of_serial()

    def _let_go_of_serial(self) -> None:
        serial, self._held_serial = self._held_serial, None
        if serial is not None:
            with _open_by_serial_lock:
                if _open_by_serial.get(serial) is self:
                    del _open_by_serial[serial]

    @property
    def is_open(self) -> bool:
        return self._cam is not None and self._cam.IsOpen()

    @property
    def is_grabbing(self) -> bool:
        return self._cam is not None and self._cam.IsGrabbing()

    @property
    def removed(self) -> bool:
        return self._removed.is_set() or (self._cam is not None and self._cam.IsCameraDeviceRemoved())

    def fire_removal(self) -> None:
        """Emulator only: pretend the cable was pulled (pylon's `FirePnPCallback`)."""
        self._require_open()
        self._cam.FirePnPCallback.Execute()

    def fail_next(self, count: int = 1) -> None:
        """Emulator only: make the next `count` grabs fail (`ForceFailedBuffer`)."""
        self._require_open()
        self._cam.ForceFailedBufferCount.Value = count
        self._cam.ForceFailedBuffer.Execute()

    def _require_open(self) -> None:
        if self.removed:
            raise CameraRemovedError(f"Camera {self.camera_id} was disconnected.")
        if self._cam is None:
            raise CameraError(f"Camera {self.camera_id} is not open.")

    # -- features ----------------------------------------------------------------------
    def _node(self, name: str) -> Any:
        node = self._cam.GetNodeMap().GetNode(name)
        genicam = genicam_module()
        if node is None or not genicam.IsAvailable(node):
            return None
        return node

    def _set(self, name: str, value: Any) -> None:
        node = self._node(name)
        if node is None:
            raise CameraError(f"Camera {self.camera_id} has no feature {name}.")
        node.SetValue(value) if not isinstance(value, str) else node.FromString(value)

    def _feature(self, ours: str) -> Any:
        for name in _FEATURES[ours]:
            node = self._node(name)
            if node is not None:
                return node
        return None

    def configure(self, settings: CameraSettings) -> None:
        self._require_open()
        if self._cam.IsGrabbing():
            raise CameraError("Camera settings can only change while the camera is not grabbing.")
        genicam = genicam_module()
        try:
            self._set_pixel_format(settings.pixel_format)
            if settings.roi is not None:
                self._apply_roi(settings.roi)
            for ours in ("exposure_us", "gain_db"):
                value = getattr(settings, ours)
                if value is not None:
                    node = self._feature(ours)
                    if node is None:
                        raise CameraError(f"Camera {self.camera_id} cannot set {ours.split('_')[0]}.")
                    node.SetValue(float(value))
            enable = self._feature("frame_rate_enable")
            rate = self._feature("frame_rate")
            if settings.frame_rate is not None and rate is not None:
                if enable is not None:
                    enable.SetValue(True)
                rate.SetValue(float(settings.frame_rate))
            if self._io is not None:
                self._apply_io(self._io)
            self._apply_trigger(settings.trigger, self._io or IoSettings())
        except genicam.GenericException as exc:
            raise CameraError(f"Camera {self.camera_id} refused the settings: {short(exc)}.") from exc
        self._settings = settings

    def configure_io(self, io: IoSettings) -> None:
        self._require_open()
        if self._cam.IsGrabbing():
            raise CameraError("Camera lines can only change while the camera is not grabbing.")
        try:
            self._apply_io(io)
            self._apply_trigger(self._settings.trigger, io)
        except genicam_module().GenericException as exc:
            raise CameraError(f"Camera {self.camera_id} refused the line settings: {short(exc)}.") from exc
        self._io = io

    def _apply_io(self, io: IoSettings) -> None:
        with self._io_lock:
            self._set_enum("LineSelector", io.trigger_line)
            if self._node("LineMode") is not None:
                self._set_enum("LineMode", "Input")
            if io.debounce_us is not None:
                node = self._feature("debounce_us")
                if node is None:
                    raise CameraError(
                        f"Camera {self.camera_id} has no line debouncer (LineDebouncerTime), so no debounce can be set."
                    )
                node.SetValue(float(io.debounce_us))
            if io.reject_line is None:
                return
            self._set_enum("LineSelector", io.reject_line)
            if self._node("LineMode") is not None:
                self._set_enum("LineMode", "Output")
            self._set_enum("LineSource", io.reject_output)
            inverter = self._node("LineInverter")
            if inverter is None and io.reject_inverted:
                raise CameraError(
                    f"Camera {self.camera_id} has no LineInverter, so {io.reject_line} cannot be inverted."
                )
            if inverter is not None:
                inverter.SetValue(io.reject_inverted)
            self._set_enum("UserOutputSelector", io.reject_output)
            self._set("UserOutputValue", False)

    def _set_enum(self, name: str, value: str) -> None:
        """Set an enumeration, unless it holds `value` already (a fixed line's mode is read-only)."""
        node = self._node(name)
        if node is None:
            raise CameraError(f"Camera {self.camera_id} has no feature {name}.")
        offered = list(node.Symbolics)
        if value not in offered:
            raise CameraError(f"Camera {self.camera_id} has no {value} for {name}; it offers {', '.join(offered)}.")
        if node.ToString() != value:
            node.FromString(value)

    def set_output(self, value: bool) -> None:
        io = self._io
        if io is None or io.reject_line is None:
            raise CameraError(f"Camera {self.camera_id} has no reject output configured.")
        with self._io_lock:
            self._require_open()
            try:
                self._set_enum("UserOutputSelector", io.reject_output)
                self._set("UserOutputValue", bool(value))
            except genicam_module().GenericException as exc:
                raise CameraError(f"Camera {self.camera_id} cannot set {io.reject_output}: {short(exc)}.") from exc

    def encoder_position(self) -> int:
        with self._io_lock:
            self._require_open()
            node = self._feature("encoder")
            if node is None:
                raise CameraError(
                    f"Camera {self.camera_id} has no encoder (EncoderValue or ShaftEncoderModuleCounter)."
                )
            try:
                return int(node.GetValue())
            except genicam_module().GenericException as exc:
                raise CameraError(f"Camera {self.camera_id} cannot read its encoder: {short(exc)}.") from exc

    def _set_pixel_format(self, fmt: PixelFormat) -> None:
        node = self._node("PixelFormat")
        available = list(node.Symbolics)
        for name in _PIXEL_FORMATS[fmt]:
            if name in available:
                node.FromString(name)
                return
        raise CameraError(
            f"Camera {self.camera_id} does not offer pixel format {fmt}; it offers {', '.join(available)}."
        )

    def _apply_roi(self, roi: Roi) -> None:
        cam = self._cam
        cam.OffsetX.Value = 0
        cam.OffsetY.Value = 0
        cam.Width.Value = roi.width
        cam.Height.Value = roi.height
        cam.OffsetX.Value = roi.x
        cam.OffsetY.Value = roi.y

    def _apply_trigger(self, mode: TriggerMode, io: IoSettings) -> None:
        """The FrameStart trigger; a hardware trigger on `io`'s line, edge and delay (a delay we set
        is put back to 0 for the software trigger, which it would delay too)."""
        self._set("TriggerSelector", "FrameStart")
        if mode is TriggerMode.FREE_RUN:
            self._set("TriggerMode", "Off")
            return
        self._set("TriggerMode", "On")
        hardware = mode is TriggerMode.HARDWARE
        self._set_enum("TriggerSource", io.trigger_line if hardware else "Software")
        if hardware and self._node("TriggerActivation") is not None:
            self._set_enum("TriggerActivation", io.trigger_activation)
        elif hardware and io.trigger_activation != "RisingEdge":
            raise CameraError(
                f"Camera {self.camera_id} has no TriggerActivation, so it cannot trigger on a falling edge."
            )
        if io.trigger_delay_us is not None:
            delay = self._feature("trigger_delay_us")
            if delay is None:
                raise CameraError(f"Camera {self.camera_id} has no trigger delay (TriggerDelay), so none can be set.")
            delay.SetValue(float(io.trigger_delay_us) if hardware else 0.0)

    def settings(self) -> CameraSettings:
        return self._settings

    def save_settings(self, path: Path) -> None:
        self._require_open()
        try:
            pylon_module().FeaturePersistence.Save(str(path), self._cam.GetNodeMap())
        except genicam_module().GenericException as exc:
            raise CameraError(f"Cannot save camera settings to {path}: {short(exc)}.") from exc

    def load_settings(self, path: Path) -> None:
        self._require_open()
        if not Path(path).is_file():
            raise CameraError(f"Camera settings file {path} does not exist.")
        try:
            pylon_module().FeaturePersistence.Load(str(path), self._cam.GetNodeMap(), True)
        except genicam_module().GenericException as exc:
            raise CameraError(
                f"Camera settings file {path} does not fit camera {self.camera_id}: {short(exc)}."
            ) from exc
        self._settings = self._read_settings()
        if self._io is None:
            return
        try:  # the station's wiring wins over the lines in a recipe's file
            self._apply_io(self._io)
            self._apply_trigger(self._settings.trigger, self._io)
        except genicam_module().GenericException as exc:
            raise CameraError(f"Camera {self.camera_id} refused the line settings: {short(exc)}.") from exc

    def device_settings(self) -> CameraSettings:
        """The settings in force on the camera, read back from it (ROI and frame rate left out)."""
        self._require_open()
        return self._read_settings()

    def _read_settings(self) -> CameraSettings:
        pixel = self._node("PixelFormat").ToString()
        fmt: PixelFormat = next((ours for ours, names in _PIXEL_FORMATS.items() if pixel in names), "Mono8")
        trigger = TriggerMode.FREE_RUN
        if self._node("TriggerMode").ToString() == "On":
            trigger = (
                TriggerMode.SOFTWARE if self._node("TriggerSource").ToString() == "Software" else TriggerMode.HARDWARE
            )
        exposure, gain = self._feature("exposure_us"), self._feature("gain_db")
        return CameraSettings(
            pixel_format=fmt,
            trigger=trigger,
            exposure_us=exposure.GetValue() if exposure is not None else None,
            gain_db=gain.GetValue() if gain is not None else None,
        )

    # -- grabbing ----------------------------------------------------------------------
    def start(self) -> None:
        self._require_open()
        pylon = pylon_module()
        # OneByOne: every part image is delivered in order; none is silently replaced by a newer one.
        self._cam.MaxNumBuffer.Value = 16
        self._cam.StartGrabbing(pylon.GrabStrategy_OneByOne)

    def stop(self) -> None:
        if self._cam is not None and self._cam.IsGrabbing():
            try:
                self._cam.StopGrabbing()
            except genicam_module().GenericException as exc:
                if not self.removed:
                    raise CameraError(f"Camera {self.camera_id} cannot stop grabbing: {short(exc)}.") from exc
                log.debug("stopping removed camera %s: %s", self.camera_id, exc)

    def grab(self, timeout_s: float = 1.0) -> Frame:
        self._require_open()
        pylon, genicam = pylon_module(), genicam_module()
        cam = self._cam
        timeout_ms = max(1, int(timeout_s * 1000))
        try:
            if self._settings.trigger is TriggerMode.SOFTWARE:
                if not cam.WaitForFrameTriggerReady(timeout_ms, pylon.TimeoutHandling_Return):
                    raise TriggerNotReady(
                        f"Camera {self.camera_id} was not ready for a trigger within {timeout_s:.1f} s."
                    )
                cam.ExecuteSoftwareTrigger()
            result = cam.RetrieveResult(timeout_ms, pylon.TimeoutHandling_Return)
        except genicam.GenericException as exc:
            if self.removed:
                raise CameraRemovedError(f"Camera {self.camera_id} was disconnected.") from exc
            raise GrabFailed(f"Grab from camera {self.camera_id} failed: {short(exc)}.") from exc
        if self.removed:
            if result is not None and result.IsValid():
                result.Release()
            raise CameraRemovedError(f"Camera {self.camera_id} was disconnected.")
        if result is None or not result.IsValid():
            raise GrabTimeout(f"No frame from camera {self.camera_id} within {timeout_s:.1f} s.")
        try:
            if not result.GrabSucceeded():
                raise GrabFailed(
                    f"Frame {result.BlockID} from camera {self.camera_id} failed: {result.ErrorDescription}"
                )
            image = self._copy_image(result)
            return Frame(
                image=image,
                frame_id=int(result.BlockID),
                timestamp=time.time(),
                camera_id=self.camera_id,
                exposure_us=self._settings.exposure_us,
                grabbed_at=time.perf_counter(),
            )
        finally:
            result.Release()  # hand the buffer back to the driver at once

    def _copy_image(self, result: Any) -> np.ndarray:
        """The frame's pixels in a fresh array: one copy straight out of pylon's buffer (Mono8, RGB8),
        or one conversion and then one copy (other pixel formats). `GetArray()` would copy once itself
        and a safe array needs a second copy; `GetArrayZeroCopy()` views the buffer in place."""
        pylon = pylon_module()
        ptype = result.GetPixelType()
        if ptype in (pylon.PixelType_Mono8, pylon.PixelType_RGB8packed):
            return copy_out(result, int(result.GetPaddingX()))
        if self._converter is None:
            self._converter = pylon.ImageFormatConverter()
        want = self._settings.pixel_format
        self._converter.OutputPixelFormat = pylon.PixelType_Mono8 if want == "Mono8" else pylon.PixelType_RGB8packed
        converted = self._converter.Convert(result)
        try:
            return copy_out(converted, int(converted.GetPaddingX()))
        finally:
            converted.Release()
