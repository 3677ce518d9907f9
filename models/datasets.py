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

import cv2
import numpy as np

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
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        group_col = next((c for c in GROUP_COLUMNS if c in cols), None)
        cls_col = "cls" if "cls" in cols else "class" if "class" in cols else None
        missing = [c for c, ok in (("image", "image" in cols), ("label", "label" in cols), ("cls or class", cls_col),
                                   ("mask", "mask" in cols), ("group", group_col)) if not ok]
        if missing:
            raise ModelError(f"{root / 'manifest.csv'} lacks the column(s) {', '.join(missing)}.")
        samples = []
        for n, row in enumerate(reader, start=2):
            label = row["label"].strip().lower()
            if label not in (GOOD, "defect"):
                raise ModelError(f"{root / 'manifest.csv'} line {n}: label must be good or defect, not {row['label']!r}.")
            samples.append(Sample(
                image=root / row["image"],
                label=label,
                cls=GOOD if label == GOOD else row[cls_col].strip(),  # type: ignore[index]
                mask=(root / row["mask"]) if row["mask"].strip() else None,
                group=row[group_col].strip(),  # type: ignore[index]
                doubtful=label == GOOD and _just_before_onset(row.get("frames_from_onset"), root, n),
            ))
    if not samples:
        raise ModelError(f"{root / 'manifest.csv'} lists no images.")
    return Dataset(root, "lepton", tuple(samples))


def _just_before_onset(value: str | None, root: Path, line: int) -> bool:
    if value is None or not value.strip():
        return False
    try:
        return -ONSET_MARGIN <= int(value) < 0
    except ValueError:
        raise ModelError(f"{root / 'manifest.csv'} line {line}: frames_from_onset must be a whole number, not {value!r}.") from None


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
                samples.append(Sample(p, "defect", kind, mask if mask.is_file() else None, f"test/{kind}/{p.stem}", "test"))
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


def read_image(path: Path, color: bool = True) -> np.ndarray:
    """uint8 RGB (H, W, 3) or grey (H, W); ModelError if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ModelError(f"Image {path} cannot be read.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color else image


def read_mask(sample: Sample, shape: tuple[int, int]) -> np.ndarray:
    """The sample's defect mask as bool (H, W); all False for good parts or a missing mask."""
    if sample.mask is None:
        return np.zeros(shape, dtype=bool)
    mask = cv2.imread(str(sample.mask), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ModelError(f"Mask {sample.mask} cannot be read.")
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


def group_holdout(samples: Sequence[Sample], indices: Iterable[int], fraction: float, seed: int = 0,
                  both_labels: bool = False) -> tuple[list[int], list[int]]:
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
