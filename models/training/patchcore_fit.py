"""Build a PatchCore memory bank: patch features of good images, a bounded pool, a greedy coreset."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from models.errors import ModelError
from models.features import DEFAULT_TAPS, InputSpec, PatchFeatures

Progress = Callable[[str, int, int], None]


@torch.inference_mode()
def collect_patches(
    images: Iterable[np.ndarray],
    total: int,
    spec: InputSpec,
    *,
    taps: tuple[int, ...] = DEFAULT_TAPS,
    pooling: str = "per_tap",
    pool_cap: int = 200_000,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress | None = None,
) -> torch.Tensor:
    """Patch features of all images (computed on `device`), reservoir-subsampled to at most
    `pool_cap` rows (bounded memory, kept on the CPU)."""
    net = PatchFeatures(taps, pooling).eval().to(device)
    gen = torch.Generator().manual_seed(seed)
    pool: torch.Tensor | None = None
    seen = 0
    for i, image in enumerate(images):
        f = net(spec.tensor(image).to(device))
        v = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).float().cpu()
        if pool is None:
            pool = torch.empty((pool_cap, v.shape[1]), dtype=torch.float32)
        for row in _reservoir(v, seen, pool_cap, gen):
            slot, src = row
            pool[slot] = v[src]
        seen += v.shape[0]
        if progress:
            progress("features", i + 1, total)
    if pool is None:
        raise ModelError("There are no good images to train on.")
    return pool[: min(seen, pool_cap)].clone()


def _reservoir(v: torch.Tensor, seen: int, cap: int, gen: torch.Generator) -> list[tuple[int, int]]:
    """Reservoir sampling (algorithm R) for a block of rows: (pool slot, block row) assignments."""
    n = v.shape[0]
    out: list[tuple[int, int]] = []
    direct = max(0, min(n, cap - seen))
    out.extend((seen + j, j) for j in range(direct))
    if direct < n:
        idx = torch.arange(seen + direct, seen + n, dtype=torch.float64)
        draws = (torch.rand(n - direct, generator=gen, dtype=torch.float64) * (idx + 1)).long()
        keep = torch.nonzero(draws < cap).flatten()
        out.extend((int(draws[k]), direct + int(k)) for k in keep)
    return out


@torch.inference_mode()
def greedy_coreset(
    pool: torch.Tensor,
    size: int,
    *,
    projection_dim: int = 128,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress | None = None,
) -> torch.Tensor:
    """Indices (on the CPU) of a greedy k-center coreset of `pool` (PatchCore), on a random
    projection of the features computed on `device`: each step adds the pool row farthest from
    everything chosen so far."""
    n = pool.shape[0]
    if size >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    if projection_dim and pool.shape[1] > projection_dim:
        proj = torch.randn(pool.shape[1], projection_dim, generator=gen) / projection_dim**0.5
        x = pool.to(device) @ proj.to(device)
    else:
        x = pool.to(device)
    x_sq = (x * x).sum(1)
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = int(torch.randint(n, (1,), generator=gen))
    min_d = torch.full((n,), float("inf"), device=x.device)
    for k in range(1, size):
        c = x[chosen[k - 1]]
        d = x_sq - 2.0 * (x @ c) + (c @ c)
        torch.minimum(min_d, d, out=min_d)
        chosen[k] = int(torch.argmax(min_d))
        if progress and (k % 256 == 0 or k == size - 1):
            progress("coreset", k + 1, size)
    return chosen
