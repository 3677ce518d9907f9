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

    scores = {
        p.name: demo_inspector.predict(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)).score
        for p in samples.glob("*.jpg")
    }
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
        load_package(
            _rewrite(
                resources.DEMO_MODEL,
                tmp_path / "b.lpkg",
                meta=lambda m: {**m, "backbone": {**m["backbone"], "weights_sha256": "0" * 64}},
            ),
            device="cpu",
        )


class _Evil:
    def __reduce__(self):
        return (print, ("code ran on load",))


def test_a_pickled_object_is_refused_not_executed(tmp_path, capsys):
    buf = io.BytesIO()
    torch.save({"mean": _Evil()}, buf, pickle_module=pickle)
    with pytest.raises(ModelError, match="unsafe"):
        load_package(_rewrite(resources.DEMO_MODEL, tmp_path / "e.lpkg", weights=buf.getvalue()))
    assert "code ran on load" not in capsys.readouterr().out


# -- bad packages: each one sentence naming the file, nothing unpickled but tensors ----------------


def _one_sentence(exc: pytest.ExceptionInfo, path: Path) -> str:
    message = str(exc.value)
    assert str(path) in message and "\n" not in message and message.endswith("."), message
    return message


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (bytes(range(256)) * 40, "corrupt or not a Lepton model package"),
        (b"PK\x05\x06" + b"\0" * 18, "not a Lepton model package"),  # an empty zip
    ],
)
def test_bytes_that_are_no_package(tmp_path, data, words):
    path = tmp_path / "bad.lpkg"
    path.write_bytes(data)
    with pytest.raises(ModelError, match=words) as err:
        load_package(path, device="cpu")
    _one_sentence(err, path)


@pytest.mark.parametrize("cut", [0.01, 0.3, 0.6, 0.95, 0.999])
def test_truncated_anywhere(tmp_path, cut):
    data = resources.DEMO_MODEL.read_bytes()
    path = tmp_path / "cut.lpkg"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ModelError) as err:
        load_package(path, device="cpu")
    _one_sentence(err, path)


def test_a_folder_or_an_unreadable_file(tmp_path):
    with pytest.raises(ModelError, match="does not exist") as err:
        load_package(tmp_path, device="cpu")
    _one_sentence(err, tmp_path)


def test_another_zip_is_not_ours(tmp_path):
    path = tmp_path / "photos.lpkg"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("holiday.txt", "not a model")
    with pytest.raises(ModelError, match="not a Lepton model package .*metadata.json") as err:
        load_package(path, device="cpu")
    _one_sentence(err, path)


def test_a_torch_checkpoint_of_a_plain_dict_is_not_ours(tmp_path):
    path = tmp_path / "checkpoint.lpkg"
    torch.save({"epoch": 3, "state_dict": {"w": torch.zeros(2)}}, path)  # torch's own zip format
    with pytest.raises(ModelError, match="not a Lepton model package") as err:
        load_package(path, device="cpu")
    _one_sentence(err, path)


class _Net(torch.nn.Module):  # a whole module pickled: code on load unless weights_only
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)

    def __reduce_ex__(self, protocol):  # what a hostile pickle does: run something while loading
        return (print, ("module code ran on load",))


def test_a_whole_pickled_module_is_refused_not_run(tmp_path, capsys):
    buf = io.BytesIO()
    torch.save(_Net(), buf, pickle_module=pickle)
    # As weights of our own package, and as the package file itself.
    for path in (_rewrite(resources.DEMO_MODEL, tmp_path / "m.lpkg", weights=buf.getvalue()), tmp_path / "raw.lpkg"):
        if path.name == "raw.lpkg":
            path.write_bytes(buf.getvalue())
        with pytest.raises(ModelError) as err:
            load_package(path, device="cpu")
        _one_sentence(err, path)
    assert "module code ran on load" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "weights, words",
    [
        ({"memory_bank": torch.full((10, 152), float("nan"))}, "not finite"),
        ({}, "state dict of tensors"),
        ({"memory_bank": [1, 2, 3]}, "state dict of tensors"),
        ({3: torch.zeros(2)}, "state dict of tensors"),
        ({"memory_bank": torch.zeros(0, 152)}, "memory bank of shape"),
        ({"something_else": torch.zeros(10, 152)}, "expected memory_bank"),
    ],
)
def test_weights_that_are_no_state_dict_for_the_model(tmp_path, weights, words):
    buf = io.BytesIO()
    torch.save(weights, buf)
    path = _rewrite(resources.DEMO_MODEL, tmp_path / "w.lpkg", weights=buf.getvalue())
    with pytest.raises(ModelError, match=words) as err:
        load_package(path, device="cpu")
    _one_sentence(err, path)


def _drop(key):
    return lambda m: {k: v for k, v in m.items() if k != key}


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda m: {**m, "format_version": 2}, "newer Lepton Inspect"),
        (lambda m: {**m, "format_version": "1"}, "format version '1'"),
        (lambda m: [m], "not a JSON object"),
        (_drop("thresholds"), "lacks metadata thresholds"),
        (_drop("kind"), "lacks metadata kind"),
        (_drop("input"), "incomplete input metadata"),
        (_drop("backbone"), "incomplete backbone metadata"),
        (lambda m: {**m, "kind": ["patchcore"]}, "no kind name"),  # once: TypeError, unhashable list
        (lambda m: {**m, "kind": "magic"}, "kind 'magic'"),
        (lambda m: {**m, "thresholds": {"ok_below": 2, "ng_at": 1, "pixel": 1}}, "invalid thresholds"),
        (lambda m: {**m, "thresholds": {**m["thresholds"], "ng_at": float("nan")}}, "invalid thresholds"),
        (lambda m: {**m, "thresholds": "high"}, "invalid thresholds"),
        (lambda m: {**m, "classes": []}, "invalid thresholds or classes"),  # once: IndexError at the first defect
        (lambda m: {**m, "classes": "anomaly"}, "invalid thresholds or classes"),
        (lambda m: {**m, "input": {**m["input"], "height": 100000}}, "input size"),  # would allocate gigabytes at load
        (lambda m: {**m, "input": {**m["input"], "height": 0}}, "input size"),
        (lambda m: {**m, "input": {**m["input"], "width": "wide"}}, "input size"),
        (
            lambda m: {**m, "input": {k: v for k, v in m["input"].items() if k != "width"}},
            "only one of height and width",
        ),
        (lambda m: {**m, "input": {**m["input"], "std": [0.2, 0.0, 0.2]}}, "std"),
        (lambda m: {**m, "input": {**m["input"], "mean": [0.5]}}, "mean"),
        (lambda m: {**m, "input": "512x208"}, "input size"),
        (lambda m: {**m, "backbone": {**m["backbone"], "name": "resnet18"}}, "needs backbone 'resnet18'"),
        (lambda m: {**m, "backbone": {**m["backbone"], "taps": []}}, "cannot be loaded"),  # once: IndexError
        (lambda m: {**m, "backbone": {**m["backbone"], "pooling": "max"}}, "Patch pooling"),
        (lambda m: {**m, "map_blur_sigma": "soft"}, "cannot be loaded"),  # once: ValueError from float()
    ],
)
def test_metadata_edited(tmp_path, edit, words):
    path = _rewrite(resources.DEMO_MODEL, tmp_path / "edited.lpkg", meta=edit)
    with pytest.raises(ModelError, match=words) as err:
        load_package(path, device="cpu")
    _one_sentence(err, path)


def test_not_json_metadata(tmp_path):
    path = tmp_path / "j.lpkg"
    with zipfile.ZipFile(resources.DEMO_MODEL) as zf:
        weights = zf.read("weights.pt")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", b"\xff\xfe{not json")
        zf.writestr("weights.pt", weights)
    with pytest.raises(ModelError, match="corrupt") as err:
        load_package(path, device="cpu")
    _one_sentence(err, path)


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    import models.package as package

    monkeypatch.setattr(package, "MAX_WEIGHTS_BYTES", 1 << 20)  # the demo's weights are 1.2 MB unpacked
    with pytest.raises(ModelError, match="far more than") as err:
        load_package(resources.DEMO_MODEL, device="cpu")
    _one_sentence(err, resources.DEMO_MODEL)
