from __future__ import annotations

import cv2
import numpy as np
import pytest

from models import ModelError
from models.datasets import group_holdout, group_kfold, load_dataset, read_mask


def test_mvtec_layout(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    for rel in ("train/good/000.png", "train/good/001.png", "test/good/000.png", "test/crack/000.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / rel), img)
    (tmp_path / "ground_truth/crack").mkdir(parents=True)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:5] = 255
    cv2.imwrite(str(tmp_path / "ground_truth/crack/000_mask.png"), mask)
    ds = load_dataset(tmp_path)
    assert ds.format == "mvtec" and ds.classes == ("crack",)
    assert [(s.split, s.cls) for s in ds.samples] == [
        ("train", "good"),
        ("train", "good"),
        ("test", "crack"),
        ("test", "good"),
    ]
    crack = ds.samples[2]
    assert read_mask(crack, (8, 8)).sum() == 6 and read_mask(ds.samples[0], (8, 8)).sum() == 0


def test_manifest_errors(tmp_path):
    (tmp_path / "manifest.csv").write_text("image,label\nx.png,good\n")
    with pytest.raises(ModelError, match="lacks the column"):
        load_dataset(tmp_path)
    (tmp_path / "manifest.csv").write_text("image,label,class,mask,group\nx.png,maybe,,,g\n")
    with pytest.raises(ModelError, match="line 2"):
        load_dataset(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        load_dataset(tmp_path / "nope")


def test_group_splits_never_separate_a_group(datasets):
    for name in ("magnetic_tile", "bsdata_ballscrew"):
        ds = load_dataset(datasets / name)
        folds = group_kfold(ds.samples, 4)
        seen = []
        for train, test in folds:
            assert not {ds.samples[i].group for i in train} & {ds.samples[i].group for i in test}
            assert any(ds.samples[i].is_defect for i in test)
            seen += test
        assert sorted(seen) == list(range(len(ds.samples)))
        rest, held = group_holdout(ds.samples, folds[0][0], 0.2)
        assert not {ds.samples[i].group for i in rest} & {ds.samples[i].group for i in held}
        assert 0.1 < len(held) / len(folds[0][0]) < 0.45


def test_validation_holdout_keeps_good_and_defective_parts():
    """A group with no defect at all (as a clean ball-screw sequence) drawn first does not leave the
    validation split without defects: more groups are taken until it has both."""
    from pathlib import Path

    from models.datasets import Sample

    samples = [
        Sample(
            Path(f"g{g}_{k}.png"),
            "defect" if (g > 0 and k == 0) else "good",
            "d" if (g > 0 and k == 0) else "good",
            None,
            f"G{g}",
        )
        for g in range(8)
        for k in range(5)
    ]
    for seed in range(20):
        rest, held = group_holdout(samples, range(len(samples)), 0.1, seed=seed, both_labels=True)
        assert {samples[i].is_defect for i in held} == {True, False}
        assert not {samples[i].group for i in held} & {samples[i].group for i in rest}
    # Without the flag, the clean group alone can be the held part.
    assert any(
        {samples[i].is_defect for i in group_holdout(samples, range(len(samples)), 0.1, seed=s)[1]} == {False}
        for s in range(20)
    )


def test_good_frames_just_before_the_onset_are_doubtful(tmp_path):
    rows = ["image,label,cls,mask,sequence,frames_from_onset"]
    rows += [f"good/{k}.png,good,good,,s1,{k - 8}" for k in range(8)]  # -8..-1
    rows += ["defect/0.png,defect,pitting,,s1,0", "good/c.png,good,good,,s2,"]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(tmp_path)
    assert [s.doubtful for s in ds.samples] == [False] * 3 + [True] * 5 + [False, False]
    (tmp_path / "manifest.csv").write_text("\n".join(rows[:2] + ["good/x.png,good,good,,s1,soon"]) + "\n")
    with pytest.raises(ModelError, match="line 3: frames_from_onset must be a whole number"):
        load_dataset(tmp_path)


def test_the_ball_screw_doubtful_goods_are_left_out_of_training(datasets):
    """The real manifest: the five good frames before each sequence's onset are doubtful; training
    says how many it left out."""
    from models.training.train import train_model

    ds = load_dataset(datasets / "bsdata_ballscrew")
    doubtful = [s for s in ds.samples if s.doubtful]
    onsets = len({s.group for s in ds.samples if s.is_defect})
    assert len(doubtful) == 5 * onsets and not any(s.is_defect for s in doubtful)
    keep = [
        i
        for i, s in enumerate(ds.samples)
        if s.group in {doubtful[0].group, "01_477500_315"} and (s.doubtful or i % 6 == 0)
    ]
    meta, _ = train_model(ds, keep, "anomaly", size=(64, 160), coreset=64, name="t")
    assert meta["training"]["doubtful_goods_left_out"] == 5
    assert meta["training"]["good_parts"] + meta["calibration"]["good_parts"] == sum(
        not ds.samples[i].is_defect and not ds.samples[i].doubtful for i in keep
    )
