"""Model packages: the bundled one loads and predicts; bad packages fail with one sentence."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import resources
from models import ModelError
from models.package import load_package, read_package, save_package


def _rewrite(src: Path, dst: Path, *, meta=None, weights: bytes | None = None) -> Path:
    with zipfile.ZipFile(src) as zf:
        m = json.loads(zf.read("metadata.json"))
        w = zf.read("weights.pt")
    if meta is not None:
        m = meta(m)
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr("metadata.json", json.dumps(m))
        zf.writestr("weights.pt", weights if weights is not None else w)
    return dst


def test_bundled_model_predicts_image_sized_maps(demo_inspector, samples):
    import cv2

    image = cv2.cvtColor(cv2.imread(str(sorted(samples.glob("*.jpg"))[0])), cv2.COLOR_BGR2RGB)
    p = demo_inspector.predict(image)
    assert p.anomaly_map.shape == image.shape[:2] and p.anomaly_map.dtype == np.float32
    assert p.defect_mask.shape == image.shape[:2] and p.defect_mask.dtype == bool
    assert np.isfinite(p.score) and p.score == pytest.approx(float(p.anomaly_map.max()))
    info = demo_inspector.info
    assert info.kind == "patchcore" and len(info.sha256) == 64
    assert info.thresholds.ok_below <= info.thresholds.ng_at
    # The same image as grey (Mono8) also works.
    assert demo_inspector.predict(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)).anomaly_map.shape == image.shape[:2]


def test_defective_samples_score_above_good_ones(demo_inspector, samples):
    """The bundled samples come from a sequence the demo model never trained on."""
    import cv2

    scores = {p.name: demo_inspector.predict(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)).score for p in samples.glob("*.jpg")}
    good = [s for n, s in scores.items() if "_good_" in n]
    bad = [s for n, s in scores.items() if "_defect_" in n]
    assert good and bad and min(bad) > np.median(good)


def test_onnx_and_torch_agree_on_a_non_square_part(samples):
    """The demo model works at the image's aspect (512 x 208): the exported graph must follow it."""
    import cv2

    image = cv2.cvtColor(cv2.imread(str(sorted(samples.glob("*.jpg"))[-1])), cv2.COLOR_BGR2RGB)
    a = load_package(resources.DEMO_MODEL, device="cpu", backend="torch").predict(image)
    b = load_package(resources.DEMO_MODEL, device="cpu", backend="onnx").predict(image)
    assert b.score == pytest.approx(a.score, rel=1e-3)
    assert np.abs(a.anomaly_map - b.anomaly_map).max() < 1e-2


def test_save_and_read_round_trip(tmp_path):
    meta, state, sha = read_package(resources.DEMO_MODEL)
    out = tmp_path / "copy.lpkg"
    meta = {k: v for k, v in meta.items() if k not in ("format_version", "created_at")}
    sha2 = save_package(out, meta, state)
    meta2, state2, sha3 = read_package(out)
    assert sha2 == sha3 and set(state2) == set(state)
    assert all(torch.equal(state[k], state2[k]) for k in state)


def test_missing_package(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_package(tmp_path / "none.lpkg")


def test_truncated_package(tmp_path):
    bad = tmp_path / "bad.lpkg"
    bad.write_bytes(resources.DEMO_MODEL.read_bytes()[:5000])
    with pytest.raises(ModelError, match="corrupt"):
        load_package(bad)


def test_unknown_kind_and_format(tmp_path):
    with pytest.raises(ModelError, match="kind 'magic'"):
        load_package(_rewrite(resources.DEMO_MODEL, tmp_path / "k.lpkg", meta=lambda m: {**m, "kind": "magic"}))
    with pytest.raises(ModelError, match="format version"):
        load_package(_rewrite(resources.DEMO_MODEL, tmp_path / "f.lpkg", meta=lambda m: {**m, "format_version": 99}))


def test_mismatched_weights(tmp_path):
    buf = io.BytesIO()
    torch.save({"memory_bank": torch.zeros(10, 7)}, buf)  # 7 features where the backbone taps give 152
    with pytest.raises(ModelError, match="memory bank of shape"):
        load_package(_rewrite(resources.DEMO_MODEL, tmp_path / "w.lpkg", weights=buf.getvalue()), device="cpu")
    with pytest.raises(ModelError, match="other efficientnet-lite0 weights"):
        load_package(_rewrite(resources.DEMO_MODEL, tmp_path / "b.lpkg",
                              meta=lambda m: {**m, "backbone": {**m["backbone"], "weights_sha256": "0" * 64}}), device="cpu")


class _Evil:
    def __reduce__(self):
        return (print, ("code ran on load",))


def test_a_pickled_object_is_refused_not_executed(tmp_path, capsys):
    buf = io.BytesIO()
    torch.save({"mean": _Evil()}, buf, pickle_module=pickle)
    with pytest.raises(ModelError, match="unsafe"):
        load_package(_rewrite(resources.DEMO_MODEL, tmp_path / "e.lpkg", weights=buf.getvalue()))
    assert "code ran on load" not in capsys.readouterr().out
