"""Datasets: the project's format (a folder with `manifest.csv`) and the MVTec AD folder layout.

Project format - as in ../shared/datasets - a folder with `manifest.csv` whose columns are at least
`image, label, cls` (or `class`), `mask` and a group column (`group`, or `tile_group` / `sequence`):
paths are relative to the folder, `label` is `good` or `defect`, masks are 8-bit PNG (> 127 is defect).
The group names the physical part (or sequence): splits never separate one group. An optional
`frames_from_onset` column (sequences of one surface over time: the frame's distance to the
sequence's first labelled defect) marks good frames taken just before that onset as doubtful.

MVTec AD layout - `train/good/*.png`, `test/<type>/*.png`, `ground_truth/<type>/<stem>_mask.png`;
`test/good` holds good parts. MVTec has no groups: each image is its own.
"""

from __future__ import annotations

import csv
import dataclasses
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from models.base import MAX_IMAGE_PIXELS
from models.errors import ModelError

GOOD = "good"
GROUP_COLUMNS = ("group", "tile_group", "sequence")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Good frames this close before their sequence's first labelled defect may already hold it, too
# small to have been labelled (ball-screw pitting grows from a few pixels).
ONSET_MARGIN = 5


@dataclasses.dataclass(frozen=True)
class Sample:
    image: Path
    label: str  # "good" or "defect"
    cls: str  # "good" or the defect class
    mask: Path | None
    group: str
    split: str = ""  # "train" / "test" where the dataset says (MVTec), else ""
    doubtful: bool = False  # a good label that may be wrong (see ONSET_MARGIN): not trained on, still evaluated

    @property
    def is_defect(self) -> bool:
        return self.label != GOOD


@dataclasses.dataclass(frozen=True)
class Dataset:
    root: Path
    format: str  # "lepton" or "mvtec"
    samples: tuple[Sample, ...]

    @property
    def classes(self) -> tuple[str, ...]:
        """Defect classes, sorted."""
        return tuple(sorted({s.cls for s in self.samples if s.is_defect}))

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(sorted({s.group for s in self.samples}))


def load_dataset(root: str | Path) -> Dataset:
    root = Path(root)
    if not root.is_dir():
        raise ModelError(f"Dataset folder {root} does not exist.")
    if (root / "manifest.csv").is_file():
        return _load_manifest(root)
    if (root / "train" / GOOD).is_dir() or (root / "test").is_dir():
        return _load_mvtec(root)
    raise ModelError(f"Dataset folder {root} has neither a manifest.csv nor the MVTec layout (train/good, test/...).")


def _load_manifest(root: Path) -> Dataset:
    manifest = root / "manifest.csv"
    try:
        with manifest.open(newline="", encoding="utf-8") as fh:
            return _read_manifest(root, csv.DictReader(fh))
    except UnicodeDecodeError:
        raise ModelError(f"{manifest} is not UTF-8 text.") from None
    except csv.Error as exc:
        raise ModelError(f"{manifest} is not a valid CSV file ({exc}).") from None
    except OSError as exc:
        raise ModelError(f"{manifest} cannot be read: {exc.strerror or exc}.") from None


def _read_manifest(root: Path, reader: csv.DictReader[str]) -> Dataset:
    manifest = root / "manifest.csv"
    cols = set(reader.fieldnames or ())
    group_col = next((c for c in GROUP_COLUMNS if c in cols), None)
    cls_col = "cls" if "cls" in cols else "class" if "class" in cols else None
    missing = [
        c
        for c, ok in (
            ("image", "image" in cols),
            ("label", "label" in cols),
            ("cls or class", cls_col),
            ("mask", "mask" in cols),
            ("group", group_col),
        )
        if not ok
    ]
    if missing or cls_col is None or group_col is None:
        raise ModelError(f"{manifest} lacks the column(s) {', '.join(missing)}.")
    samples = []
    for n, row in enumerate(reader, start=2):
        if any(row.get(c) is None for c in ("image", "label", cls_col, "mask", group_col)):
            raise ModelError(f"{manifest} line {n} has fewer fields than the header names.")
        label = row["label"].strip().lower()
        if label not in (GOOD, "defect"):
            raise ModelError(f"{manifest} line {n}: label must be good or defect, not {row['label']!r}.")
        if not row["image"].strip():
            raise ModelError(f"{manifest} line {n} names no image.")
        samples.append(
            Sample(
                image=root / row["image"],
                label=label,
                cls=GOOD if label == GOOD else row[cls_col].strip(),
                mask=(root / row["mask"]) if row["mask"].strip() else None,
                group=row[group_col].strip(),
                doubtful=label == GOOD and _just_before_onset(row.get("frames_from_onset"), root, n),
            )
        )
    if not samples:
        raise ModelError(f"{manifest} lists no images.")
    return Dataset(root, "lepton", tuple(samples))


def _just_before_onset(value: str | None, root: Path, line: int) -> bool:
    if value is None or not value.strip():
        return False
    try:
        return -ONSET_MARGIN <= int(value) < 0
    except ValueError:
        raise ModelError(
            f"{root / 'manifest.csv'} line {line}: frames_from_onset must be a whole number, not {value!r}."
        ) from None


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def _load_mvtec(root: Path) -> Dataset:
    samples = [Sample(p, GOOD, GOOD, None, f"train/{p.stem}", "train") for p in _images(root / "train" / GOOD)]
    test = root / "test"
    for kind in sorted(d.name for d in test.iterdir() if d.is_dir()) if test.is_dir() else []:
        for p in _images(test / kind):
            if kind == GOOD:
                samples.append(Sample(p, GOOD, GOOD, None, f"test/{kind}/{p.stem}", "test"))
            else:
                mask = root / "ground_truth" / kind / f"{p.stem}_mask.png"
                samples.append(
                    Sample(p, "defect", kind, mask if mask.is_file() else None, f"test/{kind}/{p.stem}", "test")
                )
    if not samples:
        raise ModelError(f"MVTec folder {root} holds no images.")
    return Dataset(root, "mvtec", tuple(samples))


def fingerprint(paths: Iterable[Path]) -> str:
    """sha256 over the names and bytes of image files, in order: what a model was trained on."""
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


MAX_IMAGE_BYTES = 1 << 30  # a file larger than this is no image this program reads
IMAGE_FORMATS = "PNG, JPEG, BMP or TIFF"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"  # the last chunk, with its fixed CRC
# JPEG start-of-frame markers (they carry the size): C0-CF but DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: no length


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """What an image file's header declares, read without decoding it."""

    format: str  # "PNG", "JPEG", "BMP" or "TIFF"
    width: int
    height: int
    complete: bool  # False where the file visibly ends early (no PNG IEND, no JPEG EOI, BMP pixels short)


def image_header(data: bytes) -> ImageHeader | None:
    """The format and size an image file's bytes declare; None if they are no PNG, JPEG, BMP or TIFF
    header (or are cut off before its size)."""
    try:
        if data.startswith(_PNG_SIGNATURE):
            if len(data) < 24 or data[12:16] != b"IHDR":
                return None
            w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
            return ImageHeader("PNG", w, h, data.find(_PNG_IEND, 33) != -1)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_header(data)
        if data.startswith(b"BM"):
            return _bmp_header(data)
        if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _tiff_header(data)
    except (IndexError, ValueError):  # a field cut off by the end of the data
        return None
    return None


def _jpeg_header(data: bytes) -> ImageHeader | None:
    i, size = 2, None
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _JPEG_SOF and i + 9 <= len(data):
            size = (int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big"))
        if marker == 0xDA:  # start of scan: entropy-coded data follows, with every 0xFF stuffed, up to EOI
            if size is None:
                return None
            return ImageHeader("JPEG", size[0], size[1], data.find(b"\xff\xd9", i + 2 + length) != -1)
        if length < 2:
            return None
        i += 2 + length
    return ImageHeader("JPEG", size[0], size[1], False) if size else None


def _bmp_header(data: bytes) -> ImageHeader | None:
    dib = int.from_bytes(data[14:18], "little")
    offset = int.from_bytes(data[10:14], "little")
    if dib == 12:  # BITMAPCOREHEADER
        w, h = int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
        bpp, compression = int.from_bytes(data[24:26], "little"), 0
    elif dib >= 40:
        if len(data) < 34:
            return None
        w, h = (
            int.from_bytes(data[18:22], "little", signed=True),
            abs(int.from_bytes(data[22:26], "little", signed=True)),
        )
        bpp, compression = int.from_bytes(data[28:30], "little"), int.from_bytes(data[30:34], "little")
    else:
        return None
    if w < 0:
        return None
    row = (w * bpp + 31) // 32 * 4
    complete = compression not in (0, 3) or len(data) >= offset + row * h  # uncompressed: every row must be there
    return ImageHeader("BMP", w, h, complete)


def _tiff_header(data: bytes) -> ImageHeader | None:
    order: Literal["little", "big"] = "little" if data[:2] == b"II" else "big"
    big = data[2:4] in (b"+\x00", b"\x00+")  # BigTIFF: 8-byte offsets and counts

    def num(at: int, n: int) -> int:
        if at + n > len(data):
            raise ValueError("cut off")
        return int.from_bytes(data[at : at + n], order)

    ifd = num(8, 8) if big else num(4, 4)
    count = num(ifd, 8) if big else num(ifd, 2)
    entry, first = (20, ifd + 8) if big else (12, ifd + 2)
    size: dict[int, int] = {}
    for k in range(min(count, 4096)):
        at = first + k * entry
        tag, typ = num(at, 2), num(at + 2, 2)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or LONG8, inline
            width = {3: 2, 4: 4, 16: 8}.get(typ)
            if width is None:
                return None
            size[tag] = num(at + (12 if big else 8), width)
    if 256 not in size or 257 not in size:
        return None
    return ImageHeader("TIFF", size[256], size[257], True)


def decode_image(data: bytes, name: str | Path, color: bool = True) -> np.ndarray:
    """An image file's bytes -> uint8 RGB (H, W, 3) or grey (H, W), whatever the file holds (16-bit
    is scaled to 8, alpha dropped, grey and colour converted as asked); ModelError with one sentence
    naming `name` if the bytes are no whole PNG, JPEG, BMP or TIFF image of a size this program reads."""
    if not data:
        raise ModelError(f"Image {name} is empty (0 bytes).")
    head = image_header(data)
    if head is None:
        raise ModelError(f"Image {name} is not a {IMAGE_FORMATS} image (or its header is cut off).")
    if head.width < 1 or head.height < 1:
        raise ModelError(f"Image {name} declares a size of {head.width} x {head.height} pixels.")
    if head.width * head.height > MAX_IMAGE_PIXELS:
        raise ModelError(
            f"Image {name} declares {head.width} x {head.height} pixels, more than the "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels this program reads."
        )
    if not head.complete:
        raise ModelError(f"Image {name} is a truncated {head.format} file (it ends before its image data does).")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise ModelError(f"Image {name} is a damaged {head.format} file that cannot be decoded.")
    if image.dtype != np.uint8:  # OpenCV scales 16-bit to 8 itself; anything else (float TIFF) is clipped
        image = np.clip(image, 0, 255).astype(np.uint8)
    if not color:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image(path: Path, color: bool = True) -> np.ndarray:
    """uint8 RGB (H, W, 3) or grey (H, W); ModelError with one sentence naming the file if it is
    missing, unreadable, no image, damaged, truncated or too large (see decode_image)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise ModelError(f"Image {path} is {size / 2**30:.1f} GiB, larger than any image this program reads.")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"Image {path} does not exist.") from None
    except OSError as exc:
        raise ModelError(f"Image {path} cannot be read: {exc.strerror or exc}.") from None
    return decode_image(data, path, color)


def read_mask(sample: Sample, shape: tuple[int, int]) -> np.ndarray:
    """The sample's defect mask as bool (H, W); all False for good parts or a missing mask."""
    if sample.mask is None:
        return np.zeros(shape, dtype=bool)
    mask = read_image(sample.mask, color=False)  # the same checks as any image: one sentence naming the file
    if mask.shape != shape:
        mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return mask > 127


def of_groups(samples: Sequence[Sample], groups: str | Iterable[str]) -> list[Sample]:
    """The samples of the named groups (a comma-separated text or names); an unknown name is an error."""
    names = groups.split(",") if isinstance(groups, str) else groups
    wanted = {g.strip() for g in names if g.strip()}
    unknown = sorted(wanted - {s.group for s in samples})
    if unknown:
        raise ModelError(f"The dataset has no group {', '.join(unknown)}.")
    return [s for s in samples if s.group in wanted]


def group_kfold(samples: Sequence[Sample], k: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """k (train, test) index splits; every group lies wholly in one test fold. Groups are dealt
    to folds so that each fold gets a similar number of defective and of good images."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.group, []).append(i)
    if len(groups) < k:
        raise ModelError(f"{len(groups)} groups cannot be split into {k} folds.")
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    # Largest groups first (by defects, then size), each to the fold that has fewest so far.
    names.sort(key=lambda g: (-sum(samples[i].is_defect for i in groups[g]), -len(groups[g])))
    folds: list[list[int]] = [[] for _ in range(k)]
    load = [(0, 0)] * k
    for g in names:
        idx = groups[g]
        d = sum(samples[i].is_defect for i in idx)
        # A group with defects goes where defects are fewest; a good-only group where images are fewest.
        f = min(range(k), key=lambda j: load[j] if d else (load[j][1], load[j][0]))
        folds[f].extend(idx)
        load[f] = (load[f][0] + d, load[f][1] + len(idx))
    everything = set(range(len(samples)))
    return [(sorted(everything - set(f)), sorted(f)) for f in folds]


def group_holdout(
    samples: Sequence[Sample], indices: Iterable[int], fraction: float, seed: int = 0, both_labels: bool = False
) -> tuple[list[int], list[int]]:
    """Split `indices` by group into (rest, held) with about `fraction` of the images held; with
    `both_labels`, groups are added until the held part also has good and defective parts (a
    validation split needs both; some groups hold no defect at all)."""
    indices = list(indices)
    groups: dict[str, list[int]] = {}
    for i in indices:
        groups.setdefault(samples[i].group, []).append(i)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    held: list[int] = []
    target = fraction * len(indices)
    for g in names:
        if len(held) >= target and (not both_labels or len({samples[i].is_defect for i in held}) == 2):
            break
        held.extend(groups[g])
    held_set = set(held)
    return [i for i in indices if i not in held_set], sorted(held)
