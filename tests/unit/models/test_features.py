"""Patch features: where the neighbourhood average is taken, and packages that predate the choice;
the fast area resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import ModelError
from models.datasets import load_dataset, read_image
from models.features import PatchFeatures
from models.package import build_inspector
from models.training.anomaly import AnomalyConfig, train_patchcore


def test_per_tap_pooling_averages_each_tap_at_its_own_stride():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 96)
    per_tap, joint = PatchFeatures((4, 10)).eval(), PatchFeatures((4, 10), pooling="joint").eval()
    with torch.no_grad():
        shallow, deep = per_tap.extractor(x)
        a, b = per_tap(x), joint(x)
    assert a.shape == b.shape == (1, 40 + 112, 8, 12)
    expected_deep = F.interpolate(
        F.avg_pool2d(deep, 3, stride=1, padding=1), scale_factor=2, mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(a[:, 40:], expected_deep)
    torch.testing.assert_close(a[:, :40], b[:, :40])  # the shallowest tap is pooled the same either way
    assert not torch.allclose(a[:, 40:], b[:, 40:])
    with pytest.raises(ModelError, match="pooling"):
        PatchFeatures((4, 10), pooling="max")


def test_a_package_without_a_pooling_key_keeps_joint_pooling(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    meta, state = train_patchcore(
        ds.samples,
        range(len(ds.samples)),
        AnomalyConfig(size=(64, 64), color=False, pooling="joint", seed=0),
        name="old",
    )
    assert meta["backbone"]["pooling"] == "joint"
    image = read_image(ds.samples[-1].image, color=False)
    score = build_inspector(meta, state).predict(image).score
    del meta["backbone"]["pooling"]  # as packages made before the key was written
    assert build_inspector(meta, state).predict(image).score == pytest.approx(score, rel=1e-6)
    meta["backbone"]["pooling"] = "per_tap"  # the same bank read with the other features scores otherwise
    assert build_inspector(meta, state).predict(image).score != pytest.approx(score, rel=1e-3)
    new_meta, _ = train_patchcore(
        ds.samples, range(len(ds.samples)), AnomalyConfig(size=(64, 64), color=False, seed=0), name="new"
    )
    assert new_meta["backbone"]["pooling"] == "per_tap"


@pytest.mark.parametrize(
    "src, dst",
    [((460, 1130), (192, 480)), ((460, 1130), (224, 544)), ((1000, 1000), (250, 250)), ((289, 240), (256, 256))],
)
def test_shrink_is_area_averaging(src, dst):
    """The fast path (bilinear to a whole multiple, then exact k x k averaging) stays within a grey
    level of OpenCV's area resize on a textured image, and is that resize where it does not apply."""
    import cv2

    from models.features import shrink

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: src[0], : src[1]]
    image = np.clip(128 + 60 * np.sin(xx / 7.0) * np.cos(yy / 11.0) + rng.normal(0, 8, src), 0, 255).astype(np.uint8)
    image = np.repeat(image[:, :, None], 3, axis=2)
    fast = shrink(image, dst[1], dst[0])
    area = cv2.resize(image, (dst[1], dst[0]), interpolation=cv2.INTER_AREA)
    assert fast.shape == area.shape == (*dst, 3)
    diff = np.abs(fast.astype(int) - area.astype(int))
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 2, (diff.mean(), diff.max())
    if min(src[0] // dst[0], src[1] // dst[1]) < 2 or src == (1000, 1000):
        assert diff.max() == 0  # no fractional 2x shrink: exactly INTER_AREA
