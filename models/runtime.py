"""Inference backends for a model's network: torch (CPU or CUDA, fp32; fp16 on CUDA for a model kind
that sets CUDA_HALF, which none does: fp16 did not keep the scores) or ONNX Runtime (CPU).

`Runtime(net, example)` exports the network to ONNX when the backend is `onnx` (through a temporary
file, deleted at once: the state dict stays the one source of truth, nothing but the package is
stored), and is then called
like the network: tensor in, tensor out, for a batch of any size. `InputBatch` gathers several
preprocessed views into one reused input batch. bench/bench_models.py measures the backends.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.errors import ModelError

log = logging.getLogger(__name__)
BACKENDS = ("auto", "torch", "onnx")
# Reference backends for bench/bench_models.py only (no user picks them; resolve_backend refuses
# them): `eager` is plain PyTorch (fp32, contiguous NCHW, no channels_last, no compile), the
# baseline the speed-ups are measured against; `compile` is torch.compile on top of `torch`.
REFERENCE_BACKENDS = ("eager", "compile")


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, device: str) -> str:
    """`auto`: ONNX Runtime on the CPU when it is installed, torch on a GPU.

    ONNX Runtime is the measured fastest on the CPU (bench/bench_models.py, 2 cores, the demo
    model at 208x512 on 1130x460 images, backends timed in turns, p50): whole predict ONNX Runtime
    23.3 ms, torch.compile (freezing) 24.3, torch channels_last 35.9, eager 42.2; the network alone
    12.2 / 13.4 / 17.8 / 31.6 ms. In another run torch.compile's network was as fast (12.8 against
    13.0 ms) but its whole predict still slower (26.4 against 23.1), and it compiles for 10-35 s at
    load and again for each new input shape: `auto` stays ONNX Runtime. (This machine's speed
    drifts by a third from minute to minute; the ratios held.)"""
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
    """Calls `net` through the chosen backend. Input (N, 3, H, W) float32; N, H and W may vary
    (the ONNX graph has a dynamic batch axis `n` on its input and every output). A net that
    returns a tuple of tensors gets a tuple back from every backend. `half`: run in fp16 on CUDA
    (ignored on the CPU). `backend` is `torch`, `onnx` or one of REFERENCE_BACKENDS."""

    def __init__(self, net: nn.Module, example: torch.Tensor, *, backend: str, device: str, half: bool = False) -> None:
        if backend not in ("torch", "onnx", *REFERENCE_BACKENDS):
            raise ModelError(f"Backend {backend!r} is not one of torch, onnx, {', '.join(REFERENCE_BACKENDS)}.")
        self.backend = backend
        self.device = torch.device(device)
        self.half = half and self.device.type == "cuda"
        plain_swish(net)
        net.eval()
        with torch.inference_mode():
            probe = net.cpu()(example)
        self.n_outputs = len(probe) if isinstance(probe, tuple) else 0
        self._ranks = [o.dim() for o in probe] if self.n_outputs else [probe.dim()]
        self.net: Callable[[torch.Tensor], Any] | None = None  # the torch backends' network, ready to call
        if backend == "onnx":
            self.session = self._export(net, example)
        else:
            self.net = self._torch_net(net)

    def _torch_net(self, net: nn.Module) -> Callable[[torch.Tensor], Any]:
        """`net` on the device as the torch backends run it: fp16, or channels_last (not `eager`),
        compiled for `compile`."""
        net = net.to(self.device)
        if self.device.type == "cuda" and not self.half:
            # fp32 means fp32: cuDNN's default TF32 convolutions round inputs to fp16's 10-bit
            # mantissa. (A process-wide setting; CUDA training then runs in true fp32 too.)
            torch.backends.cudnn.allow_tf32 = False
        if self.half:
            net = net.half()
        elif self.backend != "eager":
            net = net.to(memory_format=torch.channels_last)
        if self.backend == "compile":
            # Freezing folds the (fixed) weights into the compiled graph: 17 -> 12 ms for the
            # demo model's features here, where plain torch.compile was no faster than channels_last.
            return torch.compile(net, options={"freezing": True})
        return net

    def _export(self, net: nn.Module, example: torch.Tensor) -> Any:
        import onnxruntime as ort

        names = [f"out{i}" for i in range(self.n_outputs)] if self.n_outputs else ["out"]
        # Axis 0 is the batch on the input and on every output, so one session runs N views at once.
        axes: dict[str, dict[int, str]] = {"image": {0: "n", 2: "h", 3: "w"}}
        axes.update(
            {
                n: ({0: "n", 2: "h", 3: "w"} if rank == 4 else {0: "n"})
                for n, rank in zip(names, self._ranks, strict=True)
                if rank >= 1
            }
        )
        with tempfile.TemporaryDirectory(prefix="lepton-onnx-") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_file = Path(tmp) / "net.onnx"
            torch.onnx.export(
                net.cpu(),
                (example,),
                onnx_file,
                dynamo=False,
                input_names=["image"],
                output_names=names,
                dynamic_axes=axes,
                opset_version=17,
            )
            graph = onnx_file.read_bytes()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        opts.inter_op_num_threads = 1
        # Spinning ORT threads would fight torch (which runs the rest of the model) for the cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> Any:
        if self.net is None:
            outs = [torch.from_numpy(o) for o in self.session.run(None, {"image": x.numpy()})]
        else:
            if self.device.type == "cuda":
                # Page-locked staging lets the copy run as DMA, queued on the stream the network runs
                # on (one network thread: one stream, in order), instead of a synchronous pageable copy.
                x = x.pin_memory().to(self.device, non_blocking=True)
            else:
                x = x.to(self.device)
            if self.half:
                x = x.half()
            elif self.backend != "eager":
                x = x.contiguous(memory_format=torch.channels_last)
            out = self.net(x)
            outs = [o.float() for o in out] if isinstance(out, tuple) else [out.float()]
        return tuple(outs) if self.n_outputs else outs[0]


def shape_groups(inputs: Sequence[torch.Tensor]) -> list[list[int]]:
    """Indices of `inputs` grouped by shape, each group in input order, groups in order of first
    appearance: the views one network call can take together."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(inputs):
        groups.setdefault(tuple(x.shape), []).append(i)
    return list(groups.values())


class InputBatch:
    """Preprocessed views (1, 3, h, w) of one shape -> one (N, 3, h, w) batch, copied into a buffer
    kept per shape (at most MAX_SHAPES, the least recently used dropped) instead of a new
    allocation per call. A single view is passed through as it is.

    Not thread-safe, and the batch it returns is overwritten by the next call: only a model's
    `forward` uses it, on the one network thread, and the outputs never alias it."""

    MAX_SHAPES = 4

    def __init__(self) -> None:
        self._buffers: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()

    def __call__(self, views: Sequence[torch.Tensor]) -> torch.Tensor:
        if any(v.dim() != 4 or v.shape[0] != 1 or v.shape != views[0].shape for v in views):
            raise ModelError(
                f"A batch takes preprocessed views of one shape (1, 3, h, w), not {[tuple(v.shape) for v in views]}."
            )
        if len(views) == 1:
            return views[0]
        shape = (len(views), *views[0].shape[1:])
        buf = self._buffers.pop(shape, None)
        if buf is None:
            buf = torch.empty(shape, dtype=torch.float32)
        self._buffers[shape] = buf
        while len(self._buffers) > self.MAX_SHAPES:
            self._buffers.popitem(last=False)
        for i, v in enumerate(views):
            buf[i].copy_(v[0])
        return buf
