"""`lepton-inspect train`, `eval` and `predict` as a user runs them, on a tiny dataset."""

from __future__ import annotations

import csv
import json

import cv2
import pytest

from tests.integration.test_cli import assert_one_sentence_error, cli


def test_train_eval_predict(tiny_dataset, tmp_path):
    pkg = tmp_path / "tiny.lpkg"
    proc = cli(
        "train",
        "--dataset",
        str(tiny_dataset),
        "--kind",
        "anomaly",
        "--out",
        str(pkg),
        "--size",
        "64x64",
        "--grey",
        "--pooling",
        "joint",
        "--coreset",
        "500",
        "--beside-line",
        data_dir=tmp_path,
    )  # (one thread, lowest priority)
    assert proc.returncode == 0, proc.stderr
    assert "thresholds: OK below" in proc.stdout and pkg.is_file()
    from models.package import load_package

    meta = load_package(pkg, device="cpu").info.metadata
    assert meta["backbone"]["pooling"] == "joint" and meta["training"]["memory_bank"] == 500
    assert "features" in proc.stderr and "calibration" in proc.stderr  # progress: a line per stage off a terminal

    metrics = tmp_path / "m.json"
    proc = cli("eval", "--model", str(pkg), "--dataset", str(tiny_dataset), "--json", str(metrics), data_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(metrics.read_text())
    for key in (
        "image_auroc",
        "pixel_auroc",
        "aupro",
        "f1",
        "false_reject_rate",
        "escape_rate",
        "defects_passed_ok",
        "defects_to_review",
        "good_ng",
        "good_review",
        "escape_rate_at_1pct_false_rejects",
        "per_class",
        "latency_ms_p50",
        "latency_ms_p99",
    ):
        assert key in m
    # escape_rate counts a defect sent to REVIEW as an escape; the two are reported apart as well.
    assert m["escape_rate"] == pytest.approx(m["defects_passed_ok"] + m["defects_to_review"])
    assert m["parts"] == 48 and m["image_auroc"] > 0.9
    assert "image_auroc" in proc.stdout
    # Only the held-out groups: 2 groups of 6 parts.
    proc = cli(
        "eval",
        "--model",
        str(pkg),
        "--dataset",
        str(tiny_dataset),
        "--groups",
        "G6,G7",
        "--json",
        str(metrics),
        data_dir=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(metrics.read_text())["parts"] == 12
    assert_one_sentence_error(
        cli("eval", "--model", str(pkg), "--dataset", str(tiny_dataset), "--groups", "G6,G99", data_dir=tmp_path),
        "has no group G99",
    )

    out = tmp_path / "pred"
    proc = cli(
        "predict",
        "--model",
        str(pkg),
        "--input",
        str(tiny_dataset / "good"),
        str(tiny_dataset / "defect" / "scratch"),
        "--out",
        str(out),
        data_dir=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 48 and {r["verdict"] for r in rows} <= {"OK", "NG", "REVIEW"}
    row = rows[-1]
    assert cv2.imread(str(out / row["map"]), cv2.IMREAD_GRAYSCALE).shape == (64, 64)
    assert cv2.imread(str(out / row["mask"]), cv2.IMREAD_GRAYSCALE).shape == (64, 64)
    defect_ng = [r for r in rows if "scratch" in r["image"] and r["verdict"] != "OK"]
    assert len(defect_ng) >= 12  # most of the 16 scratched parts are caught


def test_model_commands_with_bad_input(tiny_dataset, tmp_path):
    assert_one_sentence_error(
        cli("eval", "--model", str(tmp_path / "none.lpkg"), "--dataset", str(tmp_path), data_dir=tmp_path),
        "does not exist",
    )
    assert_one_sentence_error(
        cli(
            "train",
            "--dataset",
            str(tmp_path / "nope"),
            "--kind",
            "anomaly",
            "--out",
            str(tmp_path / "x.lpkg"),
            data_dir=tmp_path,
        ),
        "does not exist",
    )
    bad_pooling = cli(
        "train",
        "--dataset",
        str(tiny_dataset),
        "--kind",
        "anomaly",
        "--out",
        str(tmp_path / "x.lpkg"),
        "--pooling",
        "max",
        data_dir=tmp_path,
    )
    assert_one_sentence_error(bad_pooling, "pooling must be one of per_tap, joint")
    assert_one_sentence_error(
        cli(
            "train",
            "--dataset",
            str(tiny_dataset),
            "--kind",
            "segmentation",
            "--out",
            str(tmp_path / "x.lpkg"),
            "--coreset",
            "9",
            data_dir=tmp_path,
        ),
        "PatchCore options",
    )
    import resources

    assert_one_sentence_error(
        cli(
            "predict",
            "--model",
            str(resources.DEMO_MODEL),
            "--input",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "o"),
            data_dir=tmp_path,
        ),
        "does not exist",
    )
