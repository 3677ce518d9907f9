"""The batch API (`forward` on several views, `finish` on one): the same predictions as `predict`
one image at a time, for both model kinds, both CPU backends, and views of different sizes."""

from __future__ import annotations

import json
import zipfile

import cv2
import numpy as np
import pytest
import torch

import resources
from models import ModelError, backbone
from models.package import build_inspector, load_package
from models.patchcore import map_to_prediction
from models.runtime import InputBatch, shape_groups
from models.segmentation import DEFAULT_ARCH, UNet
from tests.fakes import FakeInspector


def _images(seed: int = 0) -> list[np.ndarray]:
    """Two views of one size and one of another: at a long side of 128, inputs 80x128 (64x128 at a
    multiple of 32) and 32x128."""
    rng = np.random.default_rng(seed)
    base = [
        cv2.GaussianBlur((rng.random(shape) * 255).astype(np.uint8), (5, 5), 1.5)
        for shape in ((120, 200, 3), (120, 200, 3), (60, 200, 3))
    ]
    base[1][40:50, 60:120] = 250  # a bright scratch, so the three differ in more than noise
    return base


def _meta(kind: str, multiple: int) -> dict:
    return {
        "kind": kind,
        "name": f"tiny-{kind}",
        "version": "1",
        "classes": ["anomaly" if kind == "patchcore" else "scratch"],
        "thresholds": {"ok_below": 1.0, "ng_at": 2.0, "pixel": 0.5},
        "backbone": {"name": backbone.NAME, "taps": [4, 10], "pooling": "per_tap"},
        "input": {
            "long_side": 128,
            "multiple": multiple,
            "mean": list(backbone.IMAGENET_MEAN),
            "std": list(backbone.IMAGENET_STD),
            "color": "rgb",
        },
    }


def _patchcore(backend: str, map_at: str | None = "input"):
    torch.manual_seed(0)
    meta = {**_meta("patchcore", 16), "map_blur_sigma": 4.0, **({"map_at": map_at} if map_at else {})}
    return build_inspector(meta, {"memory_bank": torch.randn(300, 152)}, backend=backend)


def _segmentation(backend: str):
    torch.manual_seed(0)
    meta = {**_meta("segmentation", 32), "score": "mean", "score_pool": 1, "arch": DEFAULT_ARCH}
    return build_inspector(meta, UNet(1, pretrained=False).state_dict(), backend=backend)


def _same(batched, single) -> None:
    assert batched.score == pytest.approx(single.score, rel=1e-4, abs=1e-6)
    assert batched.anomaly_map.shape == single.anomaly_map.shape and batched.anomaly_map.dtype == np.float32
    np.testing.assert_allclose(
        batched.anomaly_map, single.anomaly_map, rtol=1e-4, atol=1e-4 * float(np.abs(single.anomaly_map).max())
    )
    assert batched.defect_mask.dtype == bool and batched.defect_mask.shape == single.defect_mask.shape


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize("make", [_patchcore, _segmentation], ids=["patchcore", "segmentation"])
def test_forward_on_a_mixed_batch_gives_what_predict_gives(make, backend):
    inspector = make(backend)
    images = _images()
    inputs = [inspector.preprocess(im) for im in images]
    assert inputs[0].shape == inputs[1].shape != inputs[2].shape
    singles = [inspector.predict(im) for im in images]
    raws = inspector.forward(inputs)
    assert len(raws) == 3
    for raw, image, single in zip(raws, images, singles, strict=True):
        _same(inspector.finish(raw, image.shape), single)
    # The reused input buffer holds nothing the outputs depend on: a second batch leaves the first's results alone.
    first = [inspector.finish(r, im.shape).score for r, im in zip(raws, images, strict=True)]
    inspector.forward([inspector.preprocess(im) for im in _images(seed=1)])
    assert [inspector.finish(r, im.shape).score for r, im in zip(raws, images, strict=True)] == first


def test_demo_model_batch_of_three_parts(demo_inspector, samples):
    """The bundled model (fixed 208x512 input, ONNX Runtime): one batch of three equal views."""
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(samples.glob("*.jpg"))[-3:]]
    singles = [demo_inspector.predict(im) for im in images]
    raws = demo_inspector.forward([demo_inspector.preprocess(im) for im in images])
    for raw, image, single in zip(raws, images, singles, strict=True):
        _same(demo_inspector.finish(raw, image.shape), single)


def test_the_defaults_pass_inputs_through_for_kinds_that_do_not_split():
    fake = FakeInspector()
    image = np.full((8, 8), 120, np.uint8)
    raws = fake.forward([fake.preprocess(image), fake.preprocess(image)])
    assert len(raws) == 2 and raws[0] is image
    assert fake.finish(raws[0], image.shape).score == fake.predict(image).score == 120.0


def test_input_batch_reuses_one_buffer_per_shape():
    batch = InputBatch()
    a, b = torch.ones(1, 3, 16, 32), torch.zeros(1, 3, 16, 32)
    assert batch([a]) is a  # one view: no copy
    first = batch([a, b])
    assert torch.equal(first[0], a[0]) and torch.equal(first[1], b[0])
    assert batch([b, a]) is first and torch.equal(first[0], b[0])  # the same buffer, refilled
    for h in (48, 64, 80, 96):
        batch([torch.ones(1, 3, h, 32)] * 2)
    assert batch([a, b]) is not first  # at most MAX_SHAPES shapes are kept
    with pytest.raises(ModelError, match="one shape"):
        batch([a, torch.ones(1, 3, 32, 32)])
    assert shape_groups([a, torch.ones(1, 3, 32, 32), b]) == [[0, 2], [1]]


def test_a_package_without_map_at_keeps_the_image_sized_blur():
    """Packages calibrated before `map_at` keep their numbers: upsample to the image, then blur."""
    inspector = _patchcore("torch", map_at=None)
    small = np.random.default_rng(0).random((10, 16)).astype(np.float32)
    p = inspector.finish(small, (300, 260))
    ref = cv2.GaussianBlur(cv2.resize(small, (260, 300), interpolation=cv2.INTER_LINEAR), (0, 0), 4.0 * 260 / 128)
    assert np.array_equal(p.anomaly_map, ref) and p.score == float(ref.max())
    # `input`: blurred at the input size (80x128), then upsampled; the score is the peak of the image-sized map.
    q = map_to_prediction(small, (300, 260), (80, 128), 4.0, inspector.info, at_input=True)
    assert q.anomaly_map.shape == (300, 260) and q.score == float(q.anomaly_map.max())
    assert q.score == pytest.approx(p.score, rel=0.05)


def test_an_unknown_map_at_is_one_sentence(tmp_path):
    src = resources.DEMO_MODEL
    with zipfile.ZipFile(src) as zf:
        meta, weights = json.loads(zf.read("metadata.json")), zf.read("weights.pt")
    bad = tmp_path / "bad.lpkg"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("metadata.json", json.dumps({**meta, "map_at": "moon"}))
        zf.writestr("weights.pt", weights)
    with pytest.raises(ModelError, match="anomaly map at 'moon'"):
        load_package(bad, device="cpu")
