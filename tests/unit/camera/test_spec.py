"""Camera and station spec strings: parsing, the cameras they build, and their one-sentence errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from camera import SPEC_HELP, CameraError, CameraNotFoundError, open_camera, open_cameras
from camera.basler import BaslerCamera
from camera.simulated import SimulatedCamera
from camera.spec import split_station


@pytest.mark.parametrize(
    ("spec", "parts"),
    [
        ("emu:/a", ["emu:/a"]),
        ("emu:/a+emu:/b", ["emu:/a", "emu:/b"]),
        ("basler:123+basler:456", ["basler:123", "basler:456"]),
        ("sim:A+sim:B+emu:C", ["sim:A", "sim:B", "emu:C"]),
        ("basler+basler", ["basler", "basler"]),
        ("sim:/data/c++ parts", ["sim:/data/c++ parts"]),  # a '+' inside a folder name is not a separator
        ("sim:/data/a+b+emu:/x+y", ["sim:/data/a+b", "emu:/x+y"]),
        ("emu:/a+emx:/b", ["emu:/a", "emx:/b"]),  # a mistyped kind is reported, not taken for a folder
        ("emu:C:\\parts+D:\\more", ["emu:C:\\parts+D:\\more"]),  # a drive letter is no kind
    ],
)
def test_station_specs_split_where_a_camera_spec_follows(spec, parts):
    assert split_station(spec) == parts


def test_spec_help_mentions_stations():
    assert "+" in SPEC_HELP and "station" in SPEC_HELP


def test_open_camera_refuses_a_station_and_points_at_open_cameras():
    with pytest.raises(CameraError, match=r"station of 2 cameras.*open_cameras"):
        open_camera("emu:/a+emu:/b")


def test_open_camera_keeps_folders_with_a_plus(tmp_path: Path):
    cam = open_camera(f"sim:{tmp_path / 'a+b'}")
    assert isinstance(cam, SimulatedCamera) and cam.folder.name == "a+b"


def test_open_cameras_builds_one_camera_per_spec_in_order(samples):
    cams = open_cameras(f"emu:{samples}+sim:{samples}+emu:/elsewhere+basler:0815-0001")
    assert [type(c) for c in cams] == [BaslerCamera, SimulatedCamera, BaslerCamera, BaslerCamera]
    emu0, _, emu1, real = cams
    assert isinstance(emu0, BaslerCamera) and isinstance(emu1, BaslerCamera) and isinstance(real, BaslerCamera)
    # the k-th emu: spec gets the k-th emulated device, whatever stands between them
    assert (emu0.emulator_index, emu1.emulator_index) == (0, 1)
    assert emu0.emulators_needed == emu1.emulators_needed == 2
    assert emu1.playback_dir == Path("/elsewhere") and real.serial == "0815-0001" and not real.emulator
    assert emu0.camera_id != emu1.camera_id  # told apart before they are opened, too


def test_a_single_spec_is_a_station_of_one(samples):
    (cam,) = open_cameras(f"sim:{samples}")
    assert isinstance(cam, SimulatedCamera) and cam.camera_id == f"sim:{samples.name}"


def test_simulated_cameras_on_one_folder_are_allowed_and_numbered(samples):
    cams = open_cameras(f"sim:{samples}+sim:{samples}+emu:{samples}")
    assert [c.camera_id for c in cams[:2]] == [f"sim:{samples.name}#1", f"sim:{samples.name}#2"]


def test_the_same_basler_serial_twice_is_refused():
    with pytest.raises(CameraError, match="names Basler camera 123 twice"):
        open_cameras("basler:123+basler:456+basler:123")


def test_a_plain_basler_in_a_station_is_refused():
    with pytest.raises(CameraError, match=r"name each real camera of a station by serial"):
        open_cameras("basler+basler:456")
    assert open_cameras("basler")[0].serial is None  # alone it still means the first real camera


@pytest.mark.parametrize("spec", ["emu:/a+usb:0", "sim:/a+basler:", "+emu:/a", ""])
def test_a_bad_part_of_a_station_is_one_sentence(spec):
    with pytest.raises(CameraError, match="(?i)camera spec"):
        open_cameras(spec)


def test_too_few_emulated_cameras_says_how_many_to_ask_for(samples):
    """conftest sets PYLON_CAMEMU=2: a third emulated camera does not exist."""
    cams = open_cameras("+".join([f"emu:{samples}"] * 3))
    try:
        cams[0].open()
        cams[1].open()
        with pytest.raises(
            CameraNotFoundError,
            match=r"^The station needs 3 emulated cameras but pylon has 2 \(set PYLON_CAMEMU=3\)\.$",
        ):
            cams[2].open()
    finally:
        for cam in cams:
            cam.close()


def test_one_device_cannot_be_opened_twice_in_a_station(samples):
    """pylon would let the emulator open one device twice; two cameras would then share one stream."""
    emu, same = open_cameras(f"emu:{samples}+basler:0815-0000")
    emu.open()
    try:
        with pytest.raises(CameraError, match=r"^Basler camera 0815-0000 is already open in this program"):
            same.open()
        emu.close()
        same.open()  # free again once closed
        assert same.is_open
    finally:
        emu.close()
        same.close()


def test_emulator_index_must_not_be_negative():
    with pytest.raises(ValueError):
        BaslerCamera(emulator=True, emulator_index=-1)
