"""PNG figures of reconstructions: zero-filled | reconstruction | target | error map (the last
two only where a fully sampled target exists).

Images are magnitudes of one 2D slice (the first map set; the middle slice or frame of 3D and
cine data), shown on the target's scale (its 99.5th percentile is white); the error map
|recon - target| is magnified (x5 by default).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from ..atomic import atomic_open


def middle_slice(x: Tensor) -> Tensor:
    """(M, *S) complex or real -> (H, W) magnitude of map set 0 (middle of any leading spatial axis)."""
    x = x[0].detach().abs().float().cpu()
    while x.dim() > 2:
        x = x[x.shape[0] // 2]
    return x


def strip(named: list[tuple[str, Tensor]], scale: float) -> np.ndarray:
    """Side-by-side (H, W) magnitude panels with labels, on one ``scale`` (white): uint8 array."""
    tiles = [np.clip(img.numpy() / scale * 255.0, 0, 255).astype(np.uint8) for _, img in named]
    zoom = max(1, -(-160 // max(tiles[0].shape)))  # small images: enlarge (nearest) to >= 160 px
    tiles = [np.kron(t, np.ones((zoom, zoom), dtype=np.uint8)) for t in tiles]
    h, w = tiles[0].shape
    label_h = 14
    canvas = Image.new("L", (len(tiles) * w, h + label_h), 0)
    draw = ImageDraw.Draw(canvas)
    for i, (tile, (name, _)) in enumerate(zip(tiles, named)):
        canvas.paste(Image.fromarray(tile), (i * w, label_h))
        draw.text((i * w + 2, 1), name, fill=255)
    return np.asarray(canvas)


def display_scale(img: Tensor) -> float:
    """The value shown white: the 99.5th percentile of a magnitude image."""
    return float(torch.quantile(img.flatten(), 0.995)) or 1.0


def comparison(zero_filled: Tensor, recon: Tensor, target: Tensor | None = None, error_gain: float = 5.0
               ) -> np.ndarray:
    """Panels of one item's (M, *S) images: zero-filled, recon, and with a target also the
    target and the magnified error map; on the target's (else the recon's) scale."""
    zf, rec = middle_slice(zero_filled), middle_slice(recon)
    if target is None:
        return strip([("zero-filled", zf), ("recon", rec)], display_scale(rec))
    tgt = middle_slice(target)
    error = (rec - tgt).abs() * error_gain
    return strip([("zero-filled", zf), ("recon", rec), ("target", tgt), (f"error x{error_gain:g}", error)],
                 display_scale(tgt))


def save_png(image: np.ndarray, path: str | Path) -> None:
    """Writes a uint8 (H, W) array as PNG, atomically."""
    with atomic_open(path, "wb") as f:
        Image.fromarray(image).save(f, format="PNG")
