"""Segmentation training: the moving average of the weights (validation scores it, the package holds
it), ties in validation, frozen encoder blocks."""

from __future__ import annotations

import pytest
import torch

from models import ModelError
from models.datasets import load_dataset, read_image
from models.package import build_inspector
from models.training.segmentation import SegConfig, WeightAverage, train_segmentation


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))


def test_weight_average_follows_the_live_weights_slowly():
    live = _net()
    average = WeightAverage(live, 0.9)
    start = average.net[0].weight.detach().clone()
    with torch.no_grad():
        live[0].weight.fill_(1.0)
        live[1].num_batches_tracked.fill_(7)
    average.update(1)  # early steps average over a short window: (1 + 1) / (10 + 1) of the old
    torch.testing.assert_close(average.net[0].weight, start * 2 / 11 + 9 / 11)
    assert int(average.net[1].num_batches_tracked) == 7  # integer buffers are copied, not averaged
    for step in range(2, 400):
        average.update(step)
    torch.testing.assert_close(average.net[0].weight, torch.ones_like(start))
    assert average.net is not live


def test_weight_average_of_zero_is_the_live_network():
    live = _net()
    assert WeightAverage(live, 0.0).net is live
    with pytest.raises(ModelError, match="decay"):
        WeightAverage(live, 1.0)


def test_package_records_the_weight_average(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    cfg = SegConfig(size=(64, 64), color=False, epochs=2, seed=0)
    meta, state = train_segmentation(ds.samples, range(len(ds.samples)), cfg, name="avg")
    assert meta["training"]["weight_average_decay"] == cfg.ema_decay == 0.99
    inspector = build_inspector(meta, state, backend="onnx")
    image = read_image(ds.samples[0].image, color=False)
    assert inspector.predict(image).anomaly_map.shape == image.shape


def test_validation_ties_go_to_the_later_epoch_and_frozen_blocks_are_recorded(tiny_dataset):
    """The tiny dataset's validation parts separate perfectly after a few epochs: of the tied
    epochs the package keeps the last one, the longest trained."""
    ds = load_dataset(tiny_dataset)
    cfg = SegConfig(size=(64, 64), color=False, epochs=8, patience=8, frozen_blocks=5, seed=0)
    meta, _ = train_segmentation(ds.samples, range(len(ds.samples)), cfg, name="ties")
    history = [h["val_image_auroc"] for h in meta["training"]["history"]]
    assert history.count(max(history)) > 1, history  # else this test shows nothing
    assert meta["training"]["best_epoch"] == max(i + 1 for i, v in enumerate(history) if v == max(history))
    assert meta["training"]["frozen_blocks"] == 5


def test_frozen_blocks_out_of_range_is_one_sentence(tiny_dataset):
    from models.training.train import train_model

    ds = load_dataset(tiny_dataset)
    with pytest.raises(ModelError, match="Frozen encoder blocks must be between 0 and 15"):
        train_model(ds, range(len(ds.samples)), "segmentation", size=(64, 64), frozen_blocks=16, name="x")
    with pytest.raises(ModelError, match="U-Net options"):
        train_model(ds, range(len(ds.samples)), "anomaly", size=(64, 64), frozen_blocks=3, name="x")


def test_every_trainable_weight_is_optimised_once_image_head_included():
    """The image head once sat outside the optimizer's groups and kept its random weights."""
    from models.segmentation import UNet
    from models.training.segmentation import param_groups

    net = UNet(2, pretrained=False)
    cfg = SegConfig(frozen_blocks=3)
    for module in [net.encoder.stem, *net.encoder.blocks[: cfg.frozen_blocks]]:
        module.requires_grad_(False)
    groups = param_groups(net, cfg)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in net.parameters() if p.requires_grad}
    head = {id(p) for p in [*net.image_conv.parameters(), *net.image_fc.parameters()]}
    assert head <= set(ids)
    assert groups[0]["lr"] == cfg.encoder_lr and head <= {id(p) for p in groups[1]["params"]}


def test_training_moves_the_image_head(tiny_dataset, monkeypatch):
    import models.training.segmentation as seg

    initial: list[dict[str, torch.Tensor]] = []

    class Recorded(seg.UNet):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            initial.append({k: v.detach().clone() for k, v in self.state_dict().items()})

    monkeypatch.setattr(seg, "UNet", Recorded)
    ds = load_dataset(tiny_dataset)
    _, state = train_segmentation(
        ds.samples, range(len(ds.samples)), SegConfig(size=(64, 64), color=False, epochs=2, seed=0), name="head"
    )
    for key in ("image_fc.weight", "image_conv.0.0.weight", "head.weight", "decoder.0.0.weight"):
        assert not torch.equal(state[key], initial[0][key]), key
    assert torch.equal(state["encoder.stem.0.weight"], initial[0]["encoder.stem.0.weight"])  # frozen


def test_separable_decoder_is_recorded_and_loads(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    cfg = SegConfig(size=(64, 64), color=False, epochs=1, decoder_block="separable", seed=0)
    meta, state = train_segmentation(ds.samples, range(len(ds.samples)), cfg, name="sep")
    assert meta["arch"]["block"] == "separable"
    assert state["decoder.0.3.weight"].shape[1] == 1  # depthwise
    image = read_image(ds.samples[0].image, color=False)
    for backend in ("torch", "onnx"):
        assert build_inspector(meta, state, backend=backend).predict(image).anomaly_map.shape == image.shape
    legacy = {**meta, "arch": {k: v for k, v in meta["arch"].items() if k != "block"}}
    with pytest.raises(ModelError, match="weights do not fit"):  # no `block`: the 3x3 decoder of older packages
        build_inspector(legacy, state, backend="torch")
    with pytest.raises(ModelError, match="Decoder block 'wide' is not one of conv, separable"):
        train_segmentation(ds.samples, range(len(ds.samples)), SegConfig(size=(64, 64), decoder_block="wide"), name="x")
