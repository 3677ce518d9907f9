"""Patch features: where the neighbourhood average is taken, and packages that predate the choice."""

from __future__ import annotations

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
    expected_deep = F.interpolate(F.avg_pool2d(deep, 3, stride=1, padding=1), scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(a[:, 40:], expected_deep)
    torch.testing.assert_close(a[:, :40], b[:, :40])  # the shallowest tap is pooled the same either way
    assert not torch.allclose(a[:, 40:], b[:, 40:])
    with pytest.raises(ModelError, match="pooling"):
        PatchFeatures((4, 10), pooling="max")


def test_a_package_without_a_pooling_key_keeps_joint_pooling(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    meta, state = train_patchcore(ds.samples, range(len(ds.samples)), AnomalyConfig(size=(64, 64), color=False, pooling="joint", seed=0), name="old")
    assert meta["backbone"]["pooling"] == "joint"
    image = read_image(ds.samples[-1].image, color=False)
    score = build_inspector(meta, state).predict(image).score
    del meta["backbone"]["pooling"]  # as packages made before the key was written
    assert build_inspector(meta, state).predict(image).score == pytest.approx(score, rel=1e-6)
    meta["backbone"]["pooling"] = "per_tap"  # the same bank read with the other features scores otherwise
    assert build_inspector(meta, state).predict(image).score != pytest.approx(score, rel=1e-3)
    new_meta, _ = train_patchcore(ds.samples, range(len(ds.samples)), AnomalyConfig(size=(64, 64), color=False, seed=0), name="new")
    assert new_meta["backbone"]["pooling"] == "per_tap"
