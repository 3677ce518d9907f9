"""The synthetic-defect cold start: a U-Net trained on good parts only (every defect drawn on them),
and mixed training, where synthetic defects join the labelled ones as a class of their own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import app.cli.parser as cli_parser
from models import ModelError
from models.datasets import load_dataset, read_image
from models.metrics import auroc
from models.package import build_inspector
from models.training import synthetic_defects, train
from models.training.segmentation import ANOMALY_CLASS


def _scores(meta, state, ds, color=False) -> tuple[np.ndarray, np.ndarray]:
    inspector = build_inspector(meta, state, backend="onnx")
    scores = np.array([inspector.predict(read_image(s.image, color=color)).score for s in ds.samples])
    return np.array([s.is_defect for s in ds.samples]), scores


def test_the_cold_start_learns_from_good_parts_only_and_finds_real_defects(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    meta, state = train.train_model(
        ds, range(len(ds.samples)), "anomaly", cold_start="synthetic", size=(64, 64), color=False, epochs=12, name="c"
    )
    t = meta["training"]
    assert meta["kind"] == "segmentation" and meta["classes"] == [ANOMALY_CLASS]
    assert t["cold_start"] == "synthetic" and t["defective"] == 0 and t["synthetic"]["share"] == 1.0
    assert t["synthetic"]["validation"] > 0  # its validation parts: good ones and synthetic copies of them
    assert meta["calibration"]["good_parts"] > 0
    labels, scores = _scores(meta, state, ds)
    # It never saw a real scratch, only synthetic defects: it still ranks the real ones above the goods.
    assert auroc(labels, scores) > 0.8, auroc(labels, scores)


def test_mixed_training_keeps_the_labelled_classes_and_adds_the_anomaly_class(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    meta, _ = train.train_model(
        ds, range(len(ds.samples)), "segmentation", synthetic=0.5, size=(64, 64), color=False, epochs=2, name="m"
    )
    assert meta["classes"] == ["scratch", ANOMALY_CLASS]
    assert meta["training"]["synthetic"]["share"] == 0.5 and meta["training"]["synthetic"]["validation"] == 0
    assert meta["training"]["defective"] > 0 and meta["training"]["cold_start"] is None


def test_options_of_the_wrong_model_are_one_sentence(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    everything = range(len(ds.samples))
    with pytest.raises(ModelError, match="U-Net options"):
        train.train_model(ds, everything, "anomaly", cold_start="patchcore", synthetic=0.5, name="x")
    with pytest.raises(ModelError, match="cold start"):
        train.train_model(ds, everything, "segmentation", cold_start="synthetic", name="x")
    with pytest.raises(ModelError, match="cold start"):
        train.train_model(ds, everything, "anomaly", cold_start="memory", name="x")


def test_add_to_batch_marks_only_the_rows_it_was_given():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 64, 64, generator=gen) * 0.2 + 0.4
    y = torch.zeros(4, 64, 64, dtype=torch.uint8)
    y[0, :4, :4] = 1  # a real defect in row 0
    defective = torch.tensor([1.0, 0.0, 0.0, 0.0])
    x2, y2, d2 = synthetic_defects.add_to_batch(x, y, defective, slice(1, 3), 2, torch.Generator().manual_seed(1))
    assert torch.equal(x2[[0, 3]], x[[0, 3]]) and torch.equal(y2[[0, 3]], y[[0, 3]])
    for row in (1, 2):
        changed = (x2[row] != x[row]).any(0)
        assert changed.any() and torch.equal(changed, y2[row] == 2) and d2[row] == 1.0
    assert d2[0] == 1.0 and d2[3] == 0.0 and torch.equal(defective, torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_validation_copies_are_the_same_every_time_and_show_their_defect():
    images = [
        (torch.rand(3, 48, 48, generator=torch.Generator().manual_seed(k)) * 255).to(torch.uint8) for k in range(3)
    ]
    first = synthetic_defects.validation_copies(images, 7)
    again = synthetic_defects.validation_copies(images, 7)
    assert all(a is not None and b is not None and torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(c is not None and (c != image).any() for c, image in zip(first, images, strict=True))


def test_the_command_line_offers_the_cold_starts_the_training_knows():
    assert cli_parser.COLD_STARTS == train.COLD_STARTS and cli_parser.DEFAULT_COLD_START == train.DEFAULT_COLD_START
