"""Both model kinds trained on a tiny synthetic dataset: packages round-trip, thresholds are
calibrated on held-back good parts, defects outscore good parts."""

from __future__ import annotations

import numpy as np
import pytest

from models import ModelError
from models.calibration import calibrate
from models.datasets import load_dataset, read_image
from models.evaluation import evaluate
from models.package import load_package
from models.training.train import train_package


@pytest.fixture(scope="module")
def packages(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("pkgs")
    anomaly = out / "a.lpkg"
    seg = out / "s.lpkg"
    train_package(tiny_dataset, "anomaly", anomaly, size=(64, 64), color=False, seed=0)
    train_package(tiny_dataset, "segmentation", seg, size=(64, 64), color=False, epochs=12, seed=0)
    return {"anomaly": anomaly, "segmentation": seg}


@pytest.mark.parametrize("kind", ["anomaly", "segmentation"])
def test_trained_package_round_trip_and_scores(kind, packages, tiny_dataset):
    inspector = load_package(packages[kind], device="cpu")
    meta = inspector.info.metadata
    for key in (
        "kind",
        "backbone",
        "input",
        "tiling",
        "classes",
        "thresholds",
        "training",
        "calibration",
        "created_at",
    ):
        assert key in meta
    assert len(inspector.info.sha256) == 64 and meta["training"]["fingerprint"]
    import torch

    assert meta["training"]["device"] == (
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    )  # auto: the GPU when there is one
    ds = load_dataset(tiny_dataset)
    m = evaluate(inspector, ds.samples, color=False)
    assert m["image_auroc"] > 0.9, m
    assert m["pixel_auroc"] > 0.8, m
    # Same package, same image, same score.
    again = load_package(packages[kind], device="cpu")
    img = read_image(ds.samples[0].image, color=False)
    assert again.predict(img).score == pytest.approx(inspector.predict(img).score, rel=1e-5)


def test_segmentation_names_the_class(packages, tiny_dataset):
    inspector = load_package(packages["segmentation"], device="cpu")
    ds = load_dataset(tiny_dataset)
    defect = next(s for s in ds.samples if s.is_defect)
    p = inspector.predict(read_image(defect.image, color=False))
    assert inspector.info.classes == ("scratch",)
    assert p.score >= inspector.info.thresholds.ok_below
    assert [c.name for c in p.classes] == ["scratch"]


def test_calibration_hits_its_target_on_the_calibration_goods():
    rng = np.random.default_rng(3)
    goods = rng.normal(10, 2, size=400)
    t = calibrate(goods, false_reject=0.01, review_false_reject=0.05)
    assert np.mean(goods >= t["ng_at"]) == pytest.approx(0.01)
    assert np.mean(goods >= t["ok_below"]) == pytest.approx(0.05)
    assert t["ok_below"] <= t["ng_at"]


def test_mismatched_segmentation_weights_are_refused(packages, tmp_path):
    import torch

    from models.package import read_package, save_package

    meta, state, _ = read_package(packages["segmentation"])
    meta = {k: v for k, v in meta.items() if k not in ("format_version", "created_at")}
    meta["classes"] = ["scratch", "dent"]  # the head has one class fewer
    save_package(tmp_path / "m.lpkg", meta, state)
    with pytest.raises(ModelError, match=r"do not fit a 2-class U-Net \(size mismatch for head.weight"):
        load_package(tmp_path / "m.lpkg", device="cpu")
    meta2, state2, _ = read_package(packages["anomaly"])
    meta2 = {k: v for k, v in meta2.items() if k not in ("format_version", "created_at")}
    save_package(tmp_path / "b.lpkg", meta2, {"memory_bank": torch.zeros(4, 7)})
    with pytest.raises(ModelError, match="memory bank of shape"):
        load_package(tmp_path / "b.lpkg", device="cpu")


@pytest.mark.parametrize("kind", ["anomaly", "segmentation"])
def test_torch_and_onnx_runtime_agree(kind, packages, tiny_dataset):
    """The fast CPU path (ONNX Runtime) scores like the reference torch path: same verdicts."""
    from inspection.runtime.verdict import decide

    ref = load_package(packages[kind], device="cpu", backend="torch")
    fast = load_package(packages[kind], device="cpu", backend="onnx")
    ds = load_dataset(tiny_dataset)
    for s in ds.samples[::3]:
        img = read_image(s.image, color=False)
        a, b = ref.predict(img), fast.predict(img)
        assert b.score == pytest.approx(a.score, rel=1e-3, abs=1e-4)
        assert np.abs(a.anomaly_map - b.anomaly_map).max() <= 1e-3 * max(1.0, float(np.abs(a.anomaly_map).max()))
        t = ref.info.thresholds
        if min(abs(a.score - t.ok_below), abs(a.score - t.ng_at)) > 1e-3 * max(1.0, abs(a.score)):
            assert decide(a, t) is decide(b, fast.info.thresholds)  # (a score on a threshold may round either way)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("kind", ["anomaly", "segmentation"])
def test_cuda_agrees_with_the_cpu(kind, packages, tiny_dataset):
    """Each kind's CUDA path scores like the CPU reference and gives the same verdicts (on an H200,
    held-out ball-screw scores agreed to 1e-5)."""
    from inspection.runtime.verdict import decide

    ref = load_package(packages[kind], device="cpu", backend="torch")
    gpu = load_package(packages[kind], device="cuda", backend="torch")
    ds = load_dataset(tiny_dataset)
    for s in ds.samples[::3]:
        img = read_image(s.image, color=False)
        a, b = ref.predict(img), gpu.predict(img)
        assert b.score == pytest.approx(a.score, rel=1e-3, abs=1e-3)
        t = ref.info.thresholds
        if min(abs(a.score - t.ok_below), abs(a.score - t.ng_at)) > 1e-3 * max(1.0, abs(a.score)):
            assert decide(a, t) is decide(b, t)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("kind", ["anomaly", "segmentation"])
def test_training_on_cuda_gives_a_package_a_cpu_line_runs(kind, tiny_dataset, tmp_path):
    """Trained on the GPU, saved with CPU tensors, scored on the CPU as well as a CPU-trained model;
    the same seed gives the same model again."""
    options = {"size": (64, 64), "color": False, "seed": 0, "device": "cuda"} | (
        {"epochs": 12} if kind == "segmentation" else {}
    )
    _, meta = train_package(tiny_dataset, kind, tmp_path / "a.lpkg", **options)
    assert meta["training"]["device"] != "cpu"
    first = load_package(tmp_path / "a.lpkg", device="cpu", backend="torch")
    samples = load_dataset(tiny_dataset).samples
    assert evaluate(first, samples, color=False)["image_auroc"] > 0.9
    train_package(tiny_dataset, kind, tmp_path / "b.lpkg", **options)
    again = load_package(tmp_path / "b.lpkg", device="cpu", backend="torch")
    for s in samples[::4]:
        img = read_image(s.image, color=False)
        # CUDA adds a backward pass's gradients in no fixed order (bilinear upsampling's gradient
        # uses atomic adds), so a repeated training differs in the last digits: 1e-3 measured on an H200.
        assert again.predict(img).score == pytest.approx(first.predict(img).score, rel=1e-2, abs=1e-3)


def test_bad_backend_and_device_are_one_sentence(packages):
    with pytest.raises(ModelError, match="Backend 'tensorrt'"):
        load_package(packages["anomaly"], backend="tensorrt")
    with pytest.raises(ModelError, match="not one of auto, cpu"):
        load_package(packages["anomaly"], device="tpu")


def test_segmentation_at_a_scale_factor_takes_parts_of_any_size(tiny_dataset):
    """A model trained at a scale factor (on crops) keeps the pixel pitch: it scores images of other
    sizes without squashing them, with maps at each image's size."""
    from models.package import build_inspector
    from models.training.segmentation import SegConfig, train_segmentation

    ds = load_dataset(tiny_dataset)
    cfg = SegConfig(size=1.0, crop=(32, 32), color=False, epochs=12, seed=0)
    meta, state = train_segmentation(ds.samples, range(len(ds.samples)), cfg, name="scaled")
    assert meta["input"]["scale"] == 1.0 and "height" not in meta["input"]
    inspector = build_inspector(meta, state, backend="onnx")
    assert evaluate(inspector, ds.samples, color=False)["image_auroc"] > 0.9
    defect = read_image(next(s for s in ds.samples if s.is_defect).image, color=False)
    wide = np.concatenate([defect, defect[:, :32]], axis=1)  # 64 x 96: another part size
    p = inspector.predict(wide)
    assert p.anomaly_map.shape == wide.shape and p.score >= inspector.info.thresholds.ok_below
    with pytest.raises(ModelError, match="crops"):
        train_segmentation(ds.samples, range(len(ds.samples)), SegConfig(size=1.0, color=False), name="x")


def test_standardized_anomaly_model_ignores_a_lighting_change(tiny_dataset):
    """With `standardize`, a good part under other light (twice the contrast, another brightness:
    exact in 8 bits) scores as it did, while the plain model's score moves; defects still score high."""
    from models.package import build_inspector
    from models.training.anomaly import AnomalyConfig, train_patchcore

    ds = load_dataset(tiny_dataset)
    cfg = AnomalyConfig(size=(64, 64), color=False, standardize=True, seed=0)
    meta, state = train_patchcore(ds.samples, range(len(ds.samples)), cfg, name="std")
    assert meta["input"]["standardize"] is True
    inspector = build_inspector(meta, state)
    good = read_image(next(s for s in ds.samples if not s.is_defect).image, color=False)
    assert 90 <= good.min() and good.max() <= 150
    relit = (good.astype(np.int16) * 2 - 100).astype(np.uint8)
    assert inspector.predict(relit).score == pytest.approx(inspector.predict(good).score, abs=1e-2)
    plain_meta, plain_state = train_patchcore(
        ds.samples, range(len(ds.samples)), AnomalyConfig(size=(64, 64), color=False, seed=0), name="plain"
    )
    plain = build_inspector(plain_meta, plain_state)
    assert plain.predict(relit).score > plain.predict(good).score + 1.0
    defect = read_image(next(s for s in ds.samples if s.is_defect).image, color=False)
    assert inspector.predict(defect).score >= inspector.info.thresholds.ng_at


def test_segmentation_packages_keep_the_score_they_were_calibrated_with(packages, tiny_dataset):
    """New packages score by the map's plain maximum (score_pool 1); a package without the key was
    calibrated on a 5x5 average and keeps it; a nonsense value is refused in one sentence."""
    import torch.nn.functional as F

    from models.package import build_inspector, read_package
    from models.segmentation import defect_probability

    meta, state, _ = read_package(packages["segmentation"])
    assert meta["score_pool"] == 1
    ds = load_dataset(tiny_dataset)
    img = read_image(next(s for s in ds.samples if s.is_defect).image, color=False)
    new = build_inspector(meta, state)
    del meta["score_pool"]
    old = build_inspector(meta, state)
    assert old.score_pool == 5
    logits, image_logit = old.runtime(old.preprocess(img))
    p_def = defect_probability(logits)[0]
    head = float(image_logit.sigmoid()[0])
    assert new.predict(img).score == pytest.approx(0.5 * (head + float(p_def.max())), rel=1e-5)
    pooled = float(F.avg_pool2d(p_def[:, None], 5, stride=1, padding=2).max())
    assert old.predict(img).score == pytest.approx(0.5 * (head + pooled), rel=1e-5)
    meta["score_pool"] = 4
    with pytest.raises(ModelError, match="odd whole number"):
        build_inspector(meta, state)
