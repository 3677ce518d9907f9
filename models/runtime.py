"""Inference backends for a model's network: torch (CPU or CUDA, fp32; fp16 on CUDA for a model kind
that sets CUDA_HALF, which none does: fp16 did not keep the scores) or ONNX Runtime (CPU).

`Runtime(net, example)` exports the network to ONNX in memory when the backend is `onnx` (the
state dict stays the one source of truth: nothing but the package is stored), and is then called
like the network: tensor in, tensor out. `benchmark` in bench/ measured which is faster here.
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import Any

import torch
from torch import nn

from models.errors import ModelError

log = logging.getLogger(__name__)
BACKENDS = ("auto", "torch", "onnx")


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, device: str) -> str:
    """`auto`: ONNX Runtime on the CPU when it is installed, torch on a GPU."""
    if backend not in BACKENDS:
        raise ModelError(f"Backend {backend!r} is not one of {', '.join(BACKENDS)}.")
    if backend == "auto":
        return "onnx" if device == "cpu" and onnxruntime_available() else "torch"
    if backend == "onnx" and device != "cpu":
        raise ModelError("The ONNX Runtime backend runs on the CPU here; use --device cpu or the torch backend.")
    if backend == "onnx" and not onnxruntime_available():
        raise ModelError("The ONNX Runtime backend needs the onnxruntime package, which is not installed.")
    return backend


def plain_swish(net: nn.Module) -> None:
    """Replace any memory-efficient swish (a custom autograd function, for training memory only,
    which ONNX cannot export) by the plain x * sigmoid(x): the same values. EfficientNet-Lite
    itself uses ReLU6, which is left alone."""
    from efficientnet_lite_pytorch.utils import MemoryEfficientSwish, Swish

    for module in list(net.modules()):
        for name, child in module.named_children():
            if isinstance(child, MemoryEfficientSwish):
                setattr(module, name, Swish())


class Runtime:
    """Calls `net` through the chosen backend. Input (N, 3, H, W) float32; H and W may vary. A net
    that returns a tuple of tensors gets a tuple back from every backend. `half`: run in fp16 on
    CUDA (ignored on the CPU)."""

    def __init__(self, net: nn.Module, example: torch.Tensor, *, backend: str, device: str, half: bool = False) -> None:
        self.backend = backend
        self.device = torch.device(device)
        self.half = half and self.device.type == "cuda"
        plain_swish(net)
        net.eval()
        with torch.inference_mode():
            probe = net.cpu()(example)
        self.n_outputs = len(probe) if isinstance(probe, tuple) else 0
        self._ranks = [o.dim() for o in probe] if self.n_outputs else [probe.dim()]
        if backend == "onnx":
            self.session = self._export(net, example)
            self.net = None
        else:
            self.net = net.to(self.device)
            if self.device.type == "cuda" and not self.half:
                # fp32 means fp32: cuDNN's default TF32 convolutions round inputs to fp16's 10-bit
                # mantissa. (A process-wide setting; CUDA training then runs in true fp32 too.)
                torch.backends.cudnn.allow_tf32 = False
            if self.half:
                self.net = self.net.half()
            else:
                self.net = self.net.to(memory_format=torch.channels_last)

    def _export(self, net: nn.Module, example: torch.Tensor) -> Any:
        import onnxruntime as ort

        buf = io.BytesIO()
        names = [f"out{i}" for i in range(self.n_outputs)] if self.n_outputs else ["out"]
        axes: dict[str, dict[int, str]] = {"image": {2: "h", 3: "w"}}
        axes.update({n: {2: "h", 3: "w"} for n, rank in zip(names, self._ranks) if rank == 4})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net.cpu(), (example,), buf, dynamo=False, input_names=["image"], output_names=names,
                              dynamic_axes=axes, opset_version=17)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        opts.inter_op_num_threads = 1
        # Spinning ORT threads would fight torch (which runs the rest of the model) for the cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> Any:
        if self.net is None:
            outs = [torch.from_numpy(o) for o in self.session.run(None, {"image": x.numpy()})]
        else:
            x = x.to(self.device)
            x = x.half() if self.half else x.contiguous(memory_format=torch.channels_last)
            out = self.net(x)
            outs = [o.float() for o in out] if isinstance(out, tuple) else [out.float()]
        return tuple(outs) if self.n_outputs else outs[0]
