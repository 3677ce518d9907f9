"""Synthetic defects on good parts: a mask of exactly the changed pixels, every kind visible at a
plausible size, pits no smaller than the smallest defect, and the same defects from the same seed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import ModelError
from models.training.synthetic_defects import KINDS, defect_kinds, perlin_noise, synthesize

REGION_KINDS = ("texture", "cutpaste", "dent")


def _gradient(n: int = 8, h: int = 128, w: int = 128) -> torch.Tensor:
    """Smooth colour gradients in [0.15, 0.85], a little different per image and channel."""
    ys = torch.linspace(0, 1, h)[:, None]
    xs = torch.linspace(0, 1, w)[None, :]
    images = []
    for k in range(n):
        channels = [0.15 + 0.7 * (0.5 * ys + 0.5 * ((xs + 0.1 * (k + c)) % 1.0)) for c in range(3)]
        images.append(torch.stack([c.expand(h, w) for c in channels]))
    return torch.stack(images)


def _texture(n: int = 8, h: int = 128, w: int = 128, seed: int = 0) -> torch.Tensor:
    """Blurred random texture in about [0.2, 0.8], as a machined or pressed surface."""
    noise = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))
    return 0.2 + 0.6 * F.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False)


def _run(x: torch.Tensor, seed: int, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
    return synthesize(x, torch.Generator().manual_seed(seed), **kwargs)  # type: ignore[arg-type]


def _components(mask: torch.Tensor) -> np.ndarray:
    """Areas of the 8-connected components of a (h, w) bool mask."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.numpy().astype(np.uint8), connectivity=8)
    return stats[1:, cv2.CC_STAT_AREA]


def test_shapes_dtypes_and_range_and_the_input_is_left_alone():
    x = _texture(6, 96, 128)
    before = x.clone()
    out, mask = _run(x, 0)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert mask.shape == (6, 96, 128) and mask.dtype == torch.bool
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert torch.equal(x, before)
    assert mask.flatten(1).any(1).all()  # p = 1: every image has a defect


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("make", [_gradient, _texture])
def test_mask_marks_exactly_the_pixels_that_changed(kind: str, make):
    x = make()
    for seed in range(3):
        out, mask = _run(x, seed, kinds=[kind])
        change = (out - x).abs().amax(1)
        assert mask.any()
        assert float(change[~mask].max()) == 0.0  # outside the mask: the very same values
        assert float(change[mask].min()) > 0.02  # inside: a noticeable change in some channel


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_draws_a_visible_defect_of_plausible_area(kind: str):
    x = _texture(8, 128, 128)
    _, mask = _run(x, 1, kinds=[kind])
    share = mask.flatten(1).float().mean(1)
    assert (share > 0).all(), f"{kind}: an image without a defect"
    assert float(share.min()) >= 1e-4 and float(share.max()) <= 0.2, share
    if kind == "scratch":  # thin strokes: no pixel of one lies more than a few pixels inside it
        for m in mask:
            depth = cv2.distanceTransform(m.numpy().astype(np.uint8), cv2.DIST_L2, 3)
            assert float(depth.max()) <= 4.0
    if kind == "blob":  # a cluster of small pits, not a region
        assert int(mask.flatten(1).sum(1).max()) <= 60 * 4**2


@pytest.mark.parametrize("kind", REGION_KINDS)
def test_area_argument_sizes_region_defects(kind: str):
    x = _texture(8, 128, 128)
    small = _run(x, 2, kinds=[kind], area=(0.002, 0.002))[1].float().mean()
    large = _run(x, 2, kinds=[kind], area=(0.05, 0.05))[1].float().mean()
    assert float(large) > 4 * float(small) > 0
    assert float(large) < 0.15


@pytest.mark.parametrize("min_size", [3, 6, 10])
def test_pits_are_no_smaller_than_the_smallest_defect(min_size: int):
    x = _texture(12, 160, 160, seed=3)
    _, mask = _run(x, 4, kinds=["blob"], min_size_px=min_size)
    areas = np.concatenate([_components(m) for m in mask])
    assert len(areas) >= 12
    assert areas.min() >= 0.5 * min_size**2
    assert 1.5 * min_size**2 <= np.median(areas) <= 12 * min_size**2  # pits of about that size, not patches


def test_pit_fragments_smaller_than_the_smallest_defect_are_put_back():
    """On a surface 70 % black a dark pit changes only the bright pixels it covers: the fragments
    below the smallest defect's size are left out of the mask and restored."""
    bright = torch.rand(8, 1, 128, 128, generator=torch.Generator().manual_seed(0)) < 0.3
    x = torch.where(bright, 0.6, 0.0).expand(-1, 3, -1, -1).contiguous()
    for min_size in (3, 4, 6):
        out, mask = _run(x, 1, kinds=["blob"], min_size_px=min_size)
        areas = np.concatenate([_components(m) for m in mask])
        assert len(areas) and areas.min() >= 0.5 * min_size**2
        assert float((out - x).abs().amax(1)[~mask].max()) == 0.0


def test_pits_grow_with_the_smallest_defect():
    x = _texture(12, 160, 160, seed=3)
    small = np.median(np.concatenate([_components(m) for m in _run(x, 5, kinds=["blob"], min_size_px=3)[1]]))
    large = np.median(np.concatenate([_components(m) for m in _run(x, 5, kinds=["blob"], min_size_px=10)[1]]))
    assert large > 4 * small


def test_p_sets_the_share_of_defective_images():
    x = _texture(40, 64, 64)
    out, mask = _run(x, 0, p=0.0)
    assert torch.equal(out, x) and not mask.any()
    _, mask = _run(x, 0, p=0.5)
    defective = mask.flatten(1).any(1).float().mean()
    assert 0.25 <= float(defective) <= 0.75


def test_a_defect_that_changes_nothing_leaves_its_image_good():
    x = _gradient(4, 64, 64)
    out, mask = _run(x, 0, min_change=1.0)  # no pixel can move by more than 1
    assert torch.equal(out, x) and not mask.any()


def test_same_seed_same_defects_other_seed_others():
    x = _texture(8, 96, 96)
    a, ma = _run(x, 7)
    b, mb = _run(x, 7)
    c, mc = _run(x, 8)
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert not torch.equal(a, c) and not torch.equal(ma, mc)


def test_the_generator_state_moves_on():
    x = _texture(4, 64, 64)
    gen = torch.Generator().manual_seed(0)
    first = synthesize(x, gen)[1]
    second = synthesize(x, gen)[1]
    assert not torch.equal(first, second)


@pytest.mark.parametrize("kind", KINDS)
def test_grey_images_get_grey_defects(kind: str):
    x = _texture(6, 96, 96)[:, :1].expand(-1, 3, -1, -1).contiguous()
    out, mask = _run(x, 3, kinds=[kind])
    assert mask.any()
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


def test_small_images_and_a_single_image_work():
    for kind in KINDS:
        out, mask = _run(_texture(1, 32, 40), 0, kinds=[kind])
        assert out.shape == (1, 3, 32, 40) and mask.shape == (1, 32, 40)


def test_kinds_are_named_and_checked():
    assert defect_kinds() == KINDS
    assert set(KINDS) == {"texture", "cutpaste", "scratch", "dent", "blob"}
    x = _texture(2, 64, 64)
    with pytest.raises(ModelError, match="kinds"):
        _run(x, 0, kinds=["rust"])
    with pytest.raises(ModelError, match="kinds"):
        _run(x, 0, kinds=[])


@pytest.mark.parametrize(
    ("x", "kwargs"),
    [
        (torch.rand(2, 1, 64, 64), {}),
        (torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8), {}),
        (torch.rand(2, 3, 64, 64), {"p": 1.5}),
        (torch.rand(2, 3, 64, 64), {"min_size_px": 0}),
        (torch.rand(2, 3, 64, 64), {"area": (0.2, 0.1)}),
        (torch.rand(2, 3, 64, 64), {"tries": 0}),
        (torch.rand(2, 3, 64, 64), {"min_change": -0.1}),
        (torch.rand(2, 3, 64, 64), {"kinds": "scratch"}),  # a string is not a list of kinds
    ],
)
def test_bad_arguments_are_refused(x: torch.Tensor, kwargs: dict[str, object]):
    with pytest.raises(ModelError):
        _run(x, 0, **kwargs)


def test_perlin_noise_is_smooth_bounded_and_seeded():
    n = perlin_noise(90, 130, 16.0, torch.Generator().manual_seed(0))
    assert n.shape == (90, 130) and n.dtype == torch.float32
    assert float(n.abs().max()) <= 1.05 and float(n.std()) > 0.1
    assert float((n[1:] - n[:-1]).abs().max()) < 0.3 and float((n[:, 1:] - n[:, :-1]).abs().max()) < 0.3
    assert torch.equal(n, perlin_noise(90, 130, 16.0, torch.Generator().manual_seed(0)))
    assert not torch.equal(n, perlin_noise(90, 130, 16.0, torch.Generator().manual_seed(1)))


def test_perlin_noise_varies_at_its_scale():
    gen = torch.Generator().manual_seed(0)
    steps = [float((perlin_noise(128, 128, s, gen).diff(dim=1)).abs().mean()) for s in (2.0, 8.0, 32.0)]
    assert steps[0] > 2 * steps[1] > 4 * steps[2]
    with pytest.raises(ModelError):
        perlin_noise(8, 8, 0.0, gen)
