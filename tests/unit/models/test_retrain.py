"""Candidates from labels: the held-back split, a grown PatchCore bank, a segmentation model
fine-tuned from its parent's weights."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models import ModelError
from models.datasets import Dataset, Sample, load_dataset, read_image
from models.package import build_inspector
from models.training.anomaly import AnomalyConfig, train_patchcore
from models.training.retrain import RetrainOptions, held_back_split, is_held_back, next_version, retrain
from models.training.segmentation import SegConfig, train_segmentation


def _samples(groups: list[str], defect_every: int = 3) -> list[Sample]:
    return [
        Sample(
            image=f"{g}.png",
            label="defect" if k % defect_every == 0 else "good",
            cls="x" if k % defect_every == 0 else "good",
            mask=None,
            group=g,
        )
        for k, g in enumerate(groups)
    ]


def test_held_back_split_is_by_group_and_stable_as_labels_grow():
    few = _samples([f"part{k}" for k in range(30)])
    more = _samples([f"part{k}" for k in range(300)])
    train, held = held_back_split(few)
    train2, held2 = held_back_split(more)
    held_names, held_names2 = {few[i].group for i in held}, {more[i].group for i in held2}
    assert held_names and held_names <= held_names2  # once held back, held back when more labels come
    assert not held_names & {few[i].group for i in train} and not held_names2 & {more[i].group for i in train2}
    assert 0.15 < len(held2) / len(more) < 0.45  # about the fraction
    two_per_part = _samples([f"p{k // 2}" for k in range(40)])  # two images of each part: never split apart
    t, h = held_back_split(two_per_part)
    assert not {two_per_part[i].group for i in t} & {two_per_part[i].group for i in h}
    _, h3 = held_back_split(more, trained=held_names)  # what the current model learnt from is never held back
    assert not {more[i].group for i in h3} & held_names and h3
    with pytest.raises(ModelError, match="new to the current model"):
        held_back_split(few, trained={s.group for s in few})


def test_held_back_split_with_very_few_parts_leaves_something_on_each_side():
    for names in (["a", "b"], ["x1", "x2", "x3"]):
        samples = [Sample(f"{n}.png", "good", "good", None, n) for n in names]
        train, held = held_back_split(samples)
        assert train and held
    with pytest.raises(ModelError, match="two physical parts"):
        held_back_split([Sample("a.png", "good", "good", None, "a")])
    assert next_version("3") == "4" and next_version("1.2") == "1.2.1"
    assert is_held_back("abc") == is_held_back("abc")


def test_patchcore_candidate_learns_the_good_parts_it_was_shown(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    first = [i for i, s in enumerate(ds.samples) if s.group in ("G0", "G1", "G2", "G3")]
    meta, state = train_patchcore(
        ds.samples, first, AnomalyConfig(size=(64, 64), color=False, coreset_size=64, seed=0), name="tiny"
    )
    new_good = [i for i, s in enumerate(ds.samples) if s.group in ("G4", "G5", "G6", "G7") and not s.is_defect]
    cand_meta, cand_state = retrain(meta, state, ds, new_good, options=RetrainOptions(bank_growth=1.0))
    assert cand_state["memory_bank"].shape[0] == 128 and torch.equal(
        cand_state["memory_bank"][:64], state["memory_bank"]
    )
    assert (cand_meta["name"], cand_meta["version"], cand_meta["parent"]["version"]) == ("tiny", "2", "1")
    assert cand_meta["training"]["labels"]["good"] == len(new_good)
    before, after = build_inspector(meta, state), build_inspector(cand_meta, cand_state)
    image = read_image(ds.samples[new_good[0]].image, color=False)
    assert after.predict(image).score < before.predict(image).score  # its own patches are in the bank now
    defects = [i for i in new_good if ds.samples[i].is_defect] or [i for i, s in enumerate(ds.samples) if s.is_defect]
    with pytest.raises(ModelError, match="relabel false rejects OK"):
        retrain(meta, state, ds, defects)


def test_segmentation_candidate_starts_from_its_parents_weights(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    cfg = SegConfig(size=(64, 64), color=False, epochs=1, seed=0, frozen_blocks=5)
    meta, state = train_segmentation(ds.samples, list(range(len(ds.samples))), cfg, name="tiny-seg")
    cand_meta, cand_state = retrain(meta, state, ds, list(range(len(ds.samples))), options=RetrainOptions(epochs=1))
    assert cand_meta["training"]["started_from"] == "the current model's weights" and cand_meta["version"] == "2"
    fresh_meta, fresh_state = train_segmentation(
        ds.samples, list(range(len(ds.samples))), dataclasses.replace(cfg, seed=1), name="fresh"
    )
    # A layer that learns: one epoch moves it a little from the parent, a fresh start is far away.
    key = "decoder.0.0.weight"
    assert (cand_state[key] - state[key]).norm() < 0.5 * (fresh_state[key] - state[key]).norm()
    assert cand_meta["training"]["frozen_blocks"] == 5  # the parent's, carried over
    renamed = Dataset(
        ds.root,
        ds.format,
        tuple(dataclasses.replace(s, cls="pit") if s.is_defect and s.group == "G0" else s for s in ds.samples),
    )
    new_meta, _ = retrain(meta, state, renamed, list(range(len(ds.samples))), options=RetrainOptions(epochs=1))
    assert new_meta["classes"] == ["pit", "scratch"] and new_meta["training"]["started_from"].endswith(
        "new class heads"
    )
    assert 0 < new_meta["training"]["tensors_from_init"] < len(state)
    no_masks = Dataset(ds.root, ds.format, tuple(dataclasses.replace(s, mask=None) for s in ds.samples))
    with pytest.raises(ModelError, match="mask"):
        retrain(meta, state, no_masks, list(range(len(ds.samples))), options=RetrainOptions(epochs=1))
