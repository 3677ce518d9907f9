"""Synthetic defects on good parts (a DRAEM / CutPaste-style cold start): each image of a batch may
get one defect drawn on the fly, with a mask of exactly the pixels it changed, so that the U-Net
can learn to segment anomalies for a product of which only good parts exist yet.

Five kinds, chosen at random per image: foreign texture in an irregular region, a displaced patch
of the part itself, scratches, dents and blotches (smooth shading), and small pits down to the
product's smallest defect size. Every random number comes from the caller's torch.Generator, so a
training run draws the same defects again. Images are float (N, 3, H, W) in [0, 1] on the CPU, as
`models.training.segmentation` builds its batches."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models.errors import ModelError

# The defect kinds, in the order `synthesize` draws them from.
KINDS: tuple[str, ...] = ("texture", "cutpaste", "scratch", "dent", "blob")
DEFAULT_AREA = (0.0005, 0.1)  # a region defect's area, as a share of the image (drawn log-uniformly)
DEFAULT_MIN_CHANGE = 0.02  # a pixel is defective when some channel moved by more than this


def defect_kinds() -> tuple[str, ...]:
    """The names `synthesize` accepts in `kinds`."""
    return KINDS


class _Rng:
    """Scalar draws from one torch.Generator (the only source of randomness here)."""

    def __init__(self, gen: torch.Generator) -> None:
        self.gen = gen

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand(1, generator=self.gen))

    def log_uniform(self, lo: float, hi: float) -> float:
        return math.exp(self.uniform(math.log(lo), math.log(hi)))

    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi)."""
        return lo + int(torch.randint(hi - lo, (1,), generator=self.gen))

    def chance(self, p: float) -> bool:
        return float(torch.rand(1, generator=self.gen)) < p


@dataclasses.dataclass(frozen=True)
class _Options:
    min_size_px: int
    area: tuple[float, float]
    min_change: float
    tries: int


def _fade(t: torch.Tensor) -> torch.Tensor:
    return t * t * t * (t * (t * 6 - 15) + 10)


def perlin_noise(h: int, w: int, scale: float, gen: torch.Generator) -> torch.Tensor:
    """Perlin gradient noise (h, w), float32, about in [-1, 1] (mostly within +-0.7): random unit
    gradients on a lattice of period `scale` pixels (at a random phase), drawn with `gen`, blended
    with the quintic fade. Smooth at the lattice scale, so thresholding it gives blob-like regions.
    A period of 8 pixels or more is computed every scale / 4 pixels and interpolated bilinearly
    (several times faster; the noise barely bends between those points)."""
    if h < 1 or w < 1 or not scale > 0:
        raise ModelError(f"Perlin noise needs a positive size and scale, not {h}x{w} at {scale}.")
    step = max(1, int(scale / 4))
    hc, wc = ((h - 1) // step + 2, (w - 1) // step + 2) if step > 1 else (h, w)
    phase = torch.rand(2, generator=gen)
    ys = torch.arange(hc, dtype=torch.float32) * (step / scale) + phase[0]
    xs = torch.arange(wc, dtype=torch.float32) * (step / scale) + phase[1]
    noise = _gradient_noise(ys, xs, gen)
    if step > 1:
        size = ((hc - 1) * step + 1, (wc - 1) * step + 1)
        noise = F.interpolate(noise[None, None], size=size, mode="bilinear", align_corners=True)[0, 0, :h, :w]
    return noise


def _gradient_noise(ys: torch.Tensor, xs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Perlin noise (len(ys), len(xs)) at lattice coordinates `ys` x `xs` (increasing, from 0),
    gradients drawn with `gen`."""
    h, w = len(ys), len(xs)
    y0, x0 = ys.floor().long(), xs.floor().long()
    angle = torch.rand(int(y0[-1]) + 2, int(x0[-1]) + 2, generator=gen) * (2 * math.pi)
    grads = torch.stack([torch.cos(angle), torch.sin(angle)])  # (2, gh, gw): x and y components
    # Every pixel's four corner gradients in one gather: (2, dy, h, dx, w).
    g = grads.index_select(1, torch.cat([y0, y0 + 1])).index_select(2, torch.cat([x0, x0 + 1]))
    g = g.view(2, 2, h, 2, w)
    fy, fx = ys - y0, xs - x0
    dy = torch.stack([fy, fy - 1]).view(2, h, 1, 1)  # offsets from the upper and lower corners
    dx = torch.stack([fx, fx - 1]).view(1, 1, 2, w)
    n = g[0] * dx + g[1] * dy  # (dy, h, dx, w): each corner's gradient . offset
    u, v = _fade(fx), _fade(fy)[:, None]
    rows = n[:, :, 0] + (n[:, :, 1] - n[:, :, 0]) * u  # (dy, h, w)
    return (rows[0] + (rows[1] - rows[0]) * v) * math.sqrt(2)


def _fractal(h: int, w: int, scale: float, octaves: int, gen: torch.Generator) -> torch.Tensor:
    """Perlin noise summed over `octaves` halving periods (amplitudes halving too), about in [-1, 1]."""
    total = torch.zeros(h, w)
    for k in range(octaves):
        total += perlin_noise(h, w, max(1.0, scale / 2**k), gen) * 0.5**k
    return total / (2 - 0.5 ** (octaves - 1))


def _smoothstep(t: torch.Tensor) -> torch.Tensor:
    t = t.clamp(0, 1)
    return t * t * (3 - 2 * t)


@dataclasses.dataclass(frozen=True)
class _Region:
    """An irregular region in a box of the image at (`top`, `left`): `field` (bh, bw) is above 0
    inside, about 1 at its centre, and falls by about 1 / `minor` per pixel at its edge."""

    top: int
    left: int
    field: torch.Tensor
    minor: float

    def alpha(self, edge_px: float) -> torch.Tensor:
        """Coverage in [0, 1] with an edge about `edge_px` wide (anti-aliased, not a hard step)."""
        return (self.field * self.minor / edge_px + 0.5).clamp(0, 1)

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        bh, bw = self.field.shape
        return image[:, self.top : self.top + bh, self.left : self.left + bw]


def _shape(a: float, b: float, angle: float, rough: float, rect: bool, gen: torch.Generator) -> torch.Tensor:
    """The field of an ellipse (or rectangle) of semi-axes `a` >= `b` pixels turned by `angle`,
    its edge displaced by fractal noise of amplitude `rough`, in the smallest box that holds it."""
    c, s = math.cos(angle), math.sin(angle)
    if rect:
        ex, ey = a * abs(c) + b * abs(s), a * abs(s) + b * abs(c)
    else:
        ex, ey = math.hypot(a * c, b * s), math.hypot(a * s, b * c)
    bh, bw = 2 * math.ceil(ey * (1 + rough)) + 3, 2 * math.ceil(ex * (1 + rough)) + 3
    ys = (torch.arange(bh, dtype=torch.float32) - (bh - 1) / 2)[:, None]
    xs = (torch.arange(bw, dtype=torch.float32) - (bw - 1) / 2)[None, :]
    u, v = (xs * c + ys * s) / a, (ys * c - xs * s) / b
    field = 1 - (torch.maximum(u.abs(), v.abs()) if rect else torch.sqrt(u * u + v * v))
    if rough > 0:
        scale = max(2.0, b * (0.6 + float(torch.rand(1, generator=gen))))
        field = field + rough * _fractal(bh, bw, scale, 1 if b < 6 else 2, gen)  # a small shape: one octave
    return field


def _region(
    h: int, w: int, rng: _Rng, area_px: float, *, rough: float, min_minor: float, rect: bool = False
) -> _Region:
    """A region of about `area_px` pixels (aspect 1:1 to 4:1, any angle), its shorter axis at least
    `min_minor` pixels, placed at random wholly inside the (h, w) image (a region larger than the
    image is cut to it)."""
    e = rng.log_uniform(0.25, 1.0)
    a = math.sqrt(area_px / ((4.0 if rect else math.pi) * e))
    b = max(e * a, min_minor)
    a = max(a, b)
    field = _shape(a, b, rng.uniform(0, math.pi), rough, rect, rng.gen)
    fh, fw = field.shape
    bh, bw = min(h, fh), min(w, fw)
    field = field[(fh - bh) // 2 : (fh - bh) // 2 + bh, (fw - bw) // 2 : (fw - bw) // 2 + bw]
    return _Region(rng.integer(0, h - bh + 1), rng.integer(0, w - bw + 1), field, b)


def _area_px(h: int, w: int, rng: _Rng, o: _Options) -> float:
    return rng.log_uniform(*o.area) * h * w


def _sample(
    image: torch.Tensor, centre: tuple[float, float], angle: float, flip: bool, size: tuple[int, int]
) -> torch.Tensor:
    """A (3, *size) patch of `image` centred at `centre` (y, x), turned by `angle` and mirrored if
    `flip`; bilinear, reflected at the image border (exact pixels for an unturned, whole-pixel patch)."""
    h, w = image.shape[-2:]
    bh, bw = size
    c, s = math.cos(angle), math.sin(angle)
    ys = (torch.arange(bh, dtype=torch.float32) - (bh - 1) / 2)[:, None]
    xs = (torch.arange(bw, dtype=torch.float32) - (bw - 1) / 2)[None, :]
    xs = -xs if flip else xs
    px = centre[1] + xs * c - ys * s
    py = centre[0] + xs * s + ys * c
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], dim=-1)[None].to(image.dtype)
    out = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out[0]


@dataclasses.dataclass(frozen=True)
class _Drawn:
    """A drawn defect: its box's `top` and `left`, the box's `new` pixels (3, bh, bw), unclamped,
    and its `core` (bh, bw) bool: where it is meant to show (the region's inside, a stroke's
    middle, a dent's steep part); a defect that changes less than half of its core is redrawn."""

    top: int
    left: int
    new: torch.Tensor
    core: torch.Tensor


def _grey(patch: torch.Tensor) -> bool:
    """Whether the channels of `patch` (3, h, w) are equal: a grey camera's image, stacked."""
    return bool((patch.amax(0) - patch.amin(0)).max() < 1e-3)


def _noise_texture(old: torch.Tensor, rng: _Rng) -> torch.Tensor:
    """Foreign material for the region `old` (3, h, w): fractal noise between two colours near the
    region's mean (grey ones on a grey image), such as dirt, stains or a coating would leave."""
    bh, bw = old.shape[-2:]
    t = (_fractal(bh, bw, rng.log_uniform(1.5, 12.0), 3, rng.gen) * 0.5 + 0.5).clamp(0, 1)
    base, grey = old.mean(dim=(1, 2)), _grey(old)

    def colour() -> torch.Tensor:
        tint = torch.zeros(3) if grey else (torch.rand(3, generator=rng.gen) - 0.5) * 0.3
        return (base + rng.uniform(-0.5, 0.5) + tint).clamp(0, 1)[:, None, None]

    c0, c1 = colour(), colour()
    return c0 + (c1 - c0) * t


def _texture(x: torch.Tensor, i: int, rng: _Rng, o: _Options) -> _Drawn:
    """Foreign texture in an irregular region of thresholded noise, at an opacity of 0.3 to 1: noise
    between two colours, or another image of the batch (this one if it is alone) shifted and turned."""
    n, _, h, w = x.shape
    reg = _region(h, w, rng, _area_px(h, w, rng, o), rough=rng.uniform(0.3, 1.0), min_minor=o.min_size_px / 2)
    old = reg.crop(x[i])
    bh, bw = old.shape[-2:]
    if rng.chance(0.5):
        j = (i + rng.integer(1, n)) % n if n > 1 else i
        centre = (rng.uniform(0, h - 1), rng.uniform(0, w - 1))
        foreign = _sample(x[j], centre, rng.uniform(-math.pi, math.pi), rng.chance(0.5), (bh, bw))
    else:
        foreign = _noise_texture(old, rng)
    alpha = reg.alpha(1.0)
    return _Drawn(reg.top, reg.left, old + (foreign - old) * (alpha * rng.uniform(0.3, 1.0)), alpha > 0.5)


def _cutpaste(x: torch.Tensor, i: int, rng: _Rng, o: _Options) -> _Drawn:
    """A patch of the part itself from elsewhere in the image, half the time turned, half the time
    mirrored, with its brightness and contrast shifted, pasted into an irregular or rectangular region."""
    h, w = x.shape[-2:]
    rect = rng.chance(0.4)
    rough = 0.0 if rect else rng.uniform(0.2, 0.8)
    reg = _region(h, w, rng, _area_px(h, w, rng, o), rough=rough, min_minor=o.min_size_px / 2, rect=rect)
    old = reg.crop(x[i])
    bh, bw = old.shape[-2:]
    centre = (rng.integer(0, h - bh + 1) + (bh - 1) / 2, rng.integer(0, w - bw + 1) + (bw - 1) / 2)
    angle = rng.uniform(-math.pi, math.pi) if rng.chance(0.5) else 0.0
    patch = _sample(x[i], centre, angle, rng.chance(0.5), (bh, bw))
    mean = patch.mean()
    patch = (patch - mean) * rng.uniform(0.8, 1.25) + mean + rng.uniform(-0.12, 0.12)
    alpha = reg.alpha(0.7)
    return _Drawn(reg.top, reg.left, old + (patch - old) * alpha, alpha > 0.5)


def _polyline(
    rng: _Rng, start: tuple[float, float], heading: float, length: float, bend: float, size: tuple[int, int]
) -> np.ndarray:
    """Points (k, 2) as (x, y) of a stroke of about `length` pixels from `start` (x, y) along
    `heading`, turning by up to `bend` radians at each of its 3 to 9 segments; it ends where it
    would leave the image (it does not run along the border)."""
    k = rng.integer(3, 10)
    turns = heading + torch.cumsum((torch.rand(k, generator=rng.gen) * 2 - 1) * bend, 0)
    steps = torch.stack([torch.cos(turns), torch.sin(turns)], 1) * (length / k)
    pts = (torch.tensor([start]) + torch.cat([torch.zeros(1, 2), torch.cumsum(steps, 0)])).numpy()
    h, w = size
    outside = np.nonzero((pts < 0).any(1) | (pts[:, 0] > w - 1) | (pts[:, 1] > h - 1))[0]
    kept: np.ndarray = np.clip(pts[: outside[0] + 1] if len(outside) else pts, 0, [w - 1, h - 1])
    return kept


def _scratch(x: torch.Tensor, i: int, rng: _Rng, o: _Options) -> _Drawn:
    """One or two thin strokes 1 to 3 pixels wide, straight or curved, 8 % to 45 % of the image
    long, darker (a groove, a crack) or lighter (a bright scratch), their depth varying along them."""
    h, w = x.shape[-2:]
    start = (rng.uniform(0, w - 1), rng.uniform(0, h - 1))
    heading, length, bend = rng.uniform(0, 2 * math.pi), rng.uniform(0.08, 0.45) * min(h, w), rng.uniform(0, 0.35)
    end = (start[0] + length * math.cos(heading), start[1] + length * math.sin(heading))
    if not (0 <= end[0] <= w - 1 and 0 <= end[1] <= h - 1):
        heading += math.pi  # head into the image, not out of it at once
    lines = [_polyline(rng, start, heading, length, bend, (h, w))]
    if rng.chance(0.3):  # a second, nearly parallel stroke, as a dragged chip leaves
        gap = rng.uniform(3.0, 10.0)
        start2 = (start[0] - gap * math.sin(heading), start[1] + gap * math.cos(heading))
        turn = heading + rng.uniform(-0.15, 0.15)
        lines.append(_polyline(rng, start2, turn, length * rng.uniform(0.4, 1.0), bend, (h, w)))
    pts = np.concatenate(lines)
    x0, y0 = max(0, int(pts[:, 0].min()) - 4), max(0, int(pts[:, 1].min()) - 4)
    x1, y1 = min(w, int(pts[:, 0].max()) + 5), min(h, int(pts[:, 1].max()) + 5)
    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    thickness = 3 if rng.chance(0.15) else rng.integer(1, 3)  # cv2's anti-aliased width is about this + 1
    for line in lines:
        fixed = np.round((line - [x0, y0]) * 16).astype(np.int32)  # 4 fractional bits: sub-pixel strokes
        cv2.polylines(canvas, [fixed], False, 255, thickness, cv2.LINE_AA, shift=4)
    depth = 0.65 + 0.35 * perlin_noise(y1 - y0, x1 - x0, max(4.0, length / 4), rng.gen)
    stroke = torch.from_numpy(canvas).float() / 255
    alpha = stroke * depth.clamp(0, 1) * rng.uniform(0.35, 0.85)
    old = x[i, :, y0:y1, x0:x1]
    new = old * (1 - alpha) if rng.chance(0.65) else old + (1 - old) * alpha
    return _Drawn(y0, x0, new, stroke > 0.5)


def _dent(x: torch.Tensor, i: int, rng: _Rng, o: _Options) -> _Drawn:
    """A smooth change of brightness by 0.08 to 0.4 over an elliptical or noise-shaped region:
    a blotch (lighter or darker throughout) or a dent (lit on one side, shadowed on the other)."""
    h, w = x.shape[-2:]
    shaded = rng.chance(0.5)
    rough = 0.0 if rng.chance(0.5) else rng.uniform(0.3, 0.5 if shaded else 0.8)  # a rough slope looks torn
    reg = _region(h, w, rng, _area_px(h, w, rng, o), rough=rough, min_minor=max(2.0, o.min_size_px / 2))
    amp = rng.uniform(0.08, 0.4) * (1 if rng.chance(0.5) else -1)
    if not shaded:
        bump = _smoothstep(reg.field / rng.uniform(0.3, 1.0))
    else:  # the slope of a smooth bump, lit from one side
        bump = _smoothstep(reg.field / rng.uniform(0.7, 1.2)) ** 2
        gy, gx = torch.gradient(bump)
        light = rng.uniform(0, 2 * math.pi)
        shade = gx * math.cos(light) + gy * math.sin(light)
        bump = shade / shade.abs().max().clamp(min=1e-6)
    return _Drawn(reg.top, reg.left, reg.crop(x[i]) + amp * bump, bump.abs() > 0.5)


def _blob(x: torch.Tensor, i: int, rng: _Rng, o: _Options) -> _Drawn:
    """Pits: one to five small ragged spots, each `min_size_px` to three times that across, in a
    cluster, mostly dark (pitting, blowholes), sometimes light; mottled inside."""
    h, w = x.shape[-2:]
    m = o.min_size_px
    count = 1 if rng.chance(0.5) else rng.integer(2, 6)
    spread = rng.uniform(1.0, 4.0) * m
    cy, cx = rng.uniform(0, h - 1), rng.uniform(0, w - 1)
    spots = []  # (top, left, coverage), the centre kept in the image
    for _ in range(count):
        b = min(rng.log_uniform(m, 3.0 * m), min(h, w) / 2) / 2
        field = _shape(b * rng.uniform(1.0, 1.6), b, rng.uniform(0, math.pi), 0.4, False, rng.gen)
        sh, sw = field.shape
        y = round(min(max(cy + rng.uniform(-spread, spread), 0), h - 1)) - sh // 2
        x_ = round(min(max(cx + rng.uniform(-spread, spread), 0), w - 1)) - sw // 2
        spots.append((y, x_, (field * b / 0.7 + 0.5).clamp(0, 1)))
    y0, x0 = max(0, min(t for t, _, _ in spots)), max(0, min(le for _, le, _ in spots))
    y1 = min(h, max(t + s.shape[0] for t, _, s in spots))
    x1 = min(w, max(le + s.shape[1] for _, le, s in spots))
    canvas = torch.zeros(y1 - y0, x1 - x0)  # only the cluster's box: small tensors stay on one thread
    for t, le, spot in spots:
        _paste_max(canvas, spot, t - y0, le - x0)
    mottle = 0.75 + 0.25 * perlin_noise(y1 - y0, x1 - x0, max(2.0, m / 2), rng.gen)
    alpha = canvas * mottle * rng.uniform(0.55, 0.9)
    old = x[i, :, y0:y1, x0:x1]
    new = old * (1 - alpha) if rng.chance(0.85) else old + (1 - old) * alpha * 0.6
    return _Drawn(y0, x0, new, canvas > 0.5)


def _paste_max(canvas: torch.Tensor, spot: torch.Tensor, top: int, left: int) -> None:
    """Raises `canvas` (h, w) to `spot` (sh, sw) placed at (`top`, `left`); what falls outside is cut."""
    h, w = canvas.shape
    sh, sw = spot.shape
    t, le, b, r = max(0, top), max(0, left), min(h, top + sh), min(w, left + sw)
    canvas[t:b, le:r] = torch.maximum(canvas[t:b, le:r], spot[t - top : b - top, le - left : r - left])


_Kind = Callable[[torch.Tensor, int, _Rng, _Options], _Drawn]
_DRAW: dict[str, _Kind] = {
    "texture": _texture,
    "cutpaste": _cutpaste,
    "scratch": _scratch,
    "dent": _dent,
    "blob": _blob,
}


def _drop_specks(changed: torch.Tensor, smallest: int) -> torch.Tensor:
    """`changed` (h, w) bool without its 8-connected components of fewer than `smallest` pixels."""
    if smallest <= 1 or not changed.any():
        return changed
    _, labels, stats, _ = cv2.connectedComponentsWithStats(changed.numpy().astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= smallest
    keep[0] = False
    return torch.from_numpy(keep[labels])


def _draw(
    x: torch.Tensor, i: int, kind: str, rng: _Rng, o: _Options
) -> tuple[int, int, torch.Tensor, torch.Tensor] | None:
    """A defect of `kind` on image `i`: the box's top and left, its new pixels (those that did not
    change noticeably put back exactly), and its mask. Redrawn up to `tries` times while it barely
    shows (a dark pit in a dark groove, a patch pasted onto its like: less than half its core
    changed); None then. Specks smaller than the smallest defect (half of `min_size_px` squared for
    pits, `min_size_px` pixels for the rest) are put back too: they would teach the network labels
    it cannot see."""
    smallest = max(1, math.ceil(0.5 * o.min_size_px**2)) if kind == "blob" else o.min_size_px
    for _ in range(o.tries):
        drawn = _DRAW[kind](x, i, rng, o)
        top, left = drawn.top, drawn.left
        old = x[i, :, top : top + drawn.new.shape[1], left : left + drawn.new.shape[2]]
        new = drawn.new.clamp(0, 1).to(old.dtype)
        changed = _drop_specks((new - old).abs().amax(0) > o.min_change, smallest)
        if changed.any() and int((changed & drawn.core).sum()) >= 0.5 * int(drawn.core.sum()):
            return top, left, torch.where(changed, new, old), changed
    return None


def synthesize(
    x: torch.Tensor,
    gen: torch.Generator,
    *,
    min_size_px: int = 4,
    p: float = 1.0,
    kinds: Sequence[str] = KINDS,
    area: tuple[float, float] = DEFAULT_AREA,
    min_change: float = DEFAULT_MIN_CHANGE,
    tries: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Good images `x` (N, 3, H, W), float in [0, 1], with one synthetic defect each on a share `p`
    of them (a kind of `kinds` drawn per image), and the defects' masks (N, H, W) bool.

    A mask holds exactly the pixels whose value moved by more than `min_change` in some channel;
    every other pixel is returned unchanged, so the network is never told to find a defect that is
    not in the image. A defect that barely shows (less than half of where it is meant to show
    changed) is drawn again; after `tries` such draws its image is left good (mask all False).
    Region defects (texture, cutpaste, dent) cover `area` (a share of the image, drawn
    log-uniformly); pits are `min_size_px` (the product's smallest defect) to 3 times that across;
    scratches are 1 to 3 pixels wide. Deterministic for a given state of `gen`.

    Typical use in a training batch of good parts: `x, m = synthesize(x, gen, p=0.5)`, then
    `y = m.to(torch.uint8)` (class 1: anomaly) and the part label `m.flatten(1).any(1)`."""
    _check(x, min_size_px, p, kinds, area, tries, min_change)
    o = _Options(min_size_px, (float(area[0]), float(area[1])), min_change, tries)
    rng = _Rng(gen)
    out = x.clone()
    mask = torch.zeros(x.shape[0], *x.shape[2:], dtype=torch.bool)
    for i in range(x.shape[0]):
        if not rng.chance(p):
            continue
        drawn = _draw(x, i, kinds[rng.integer(0, len(kinds))], rng, o)
        if drawn is None:
            continue
        top, left, new, changed = drawn
        bh, bw = changed.shape
        out[i, :, top : top + bh, left : left + bw] = new
        mask[i, top : top + bh, left : left + bw] = changed
    return out, mask


def _check(
    x: torch.Tensor,
    min_size_px: int,
    p: float,
    kinds: Sequence[str],
    area: tuple[float, float],
    tries: int,
    min_change: float,
) -> None:
    """ModelError with one sentence for arguments `synthesize` cannot work with."""
    if x.ndim != 4 or x.shape[1] != 3 or not x.dtype.is_floating_point or x.device.type != "cpu":
        raise ModelError(f"Synthetic defects need float CPU images (N, 3, H, W), not {x.dtype} {tuple(x.shape)}.")
    if min_size_px < 1 or min_size_px > min(x.shape[-2:]) // 2:
        raise ModelError(f"The smallest defect must be 1 to half the image's side in pixels, not {min_size_px}.")
    if not 0 <= p <= 1 or tries < 1 or min_change < 0:
        raise ModelError(
            f"The defect probability must be in [0, 1], tries at least 1 and the least change at least 0, "
            f"not {p}, {tries} and {min_change}."
        )
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise ModelError(f"Defect kinds must be some of {', '.join(KINDS)}, not {list(kinds)}.")
    if not 0 < area[0] <= area[1] <= 1:
        raise ModelError(f"The defect area must be shares 0 < low <= high <= 1 of the image, not {area}.")


def add_to_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    defective: torch.Tensor,
    rows: slice,
    anomaly: int,
    gen: torch.Generator,
    **kw: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A training batch (images float (N, 3, H, W), class-index targets (N, H, W), part labels (N,))
    with a synthetic defect on each good part of `rows`: its pixels get the class index `anomaly`,
    its part label 1 (0 where no defect could be drawn). `kw` goes to `synthesize`."""
    drawn, mask = synthesize(x[rows], gen, **kw)
    x, y, defective = x.clone(), y.clone(), defective.clone()
    x[rows] = drawn
    targets = y[rows].clone()
    targets[mask] = anomaly
    y[rows] = targets
    defective[rows] = mask.flatten(1).any(1).to(defective.dtype)
    return x, y, defective


def validation_copies(images: Sequence[torch.Tensor], seed: int, **kw: Any) -> list[torch.Tensor | None]:
    """A copy of each good part (uint8 (3, h, w) images) with one synthetic defect, drawn from a
    generator of its own seeded with `seed` (the same copies every epoch and every run), e.g. for a
    validation split that holds no real defect; None where no defect could be drawn. `kw` goes to
    `synthesize`."""
    gen = torch.Generator().manual_seed(seed)
    copies: list[torch.Tensor | None] = []
    for image in images:
        drawn, mask = synthesize(image[None].float() / 255, gen, **kw)
        copies.append((drawn[0] * 255).round().to(torch.uint8) if mask.any() else None)
    return copies
