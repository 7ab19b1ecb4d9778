"""PNG figures of reconstructions: zero-filled | reconstruction | target | error map.

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

from .atomic import atomic_open


def middle_slice(x: Tensor) -> Tensor:
    """(M, *S) complex or real -> (H, W) magnitude of map set 0 (middle of any leading spatial axis)."""
    x = x[0].detach().abs().float().cpu()
    while x.dim() > 2:
        x = x[x.shape[0] // 2]
    return x


def comparison(zero_filled: Tensor, recon: Tensor, target: Tensor, error_gain: float = 5.0) -> np.ndarray:
    """An (H+label, 4W) uint8 grayscale panel from three (M, *S) images of one item."""
    zf, rec, tgt = (middle_slice(t) for t in (zero_filled, recon, target))
    scale = float(torch.quantile(tgt.flatten(), 0.995)) or 1.0
    panels = [zf, rec, tgt, (rec - tgt).abs() * error_gain]
    tiles = [np.clip(p.numpy() / scale * 255.0, 0, 255).astype(np.uint8) for p in panels]
    zoom = max(1, -(-160 // max(tiles[0].shape)))  # small images: enlarge (nearest) to >= 160 px
    tiles = [np.kron(t, np.ones((zoom, zoom), dtype=np.uint8)) for t in tiles]
    h, w = tiles[0].shape
    label_h = 14
    canvas = Image.new("L", (4 * w, h + label_h), 0)
    draw = ImageDraw.Draw(canvas)
    for i, (tile, name) in enumerate(zip(tiles, ["zero-filled", "recon", "target", f"error x{error_gain:g}"])):
        canvas.paste(Image.fromarray(tile), (i * w, label_h))
        draw.text((i * w + 2, 1), name, fill=255)
    return np.asarray(canvas)


def save_png(image: np.ndarray, path: str | Path) -> None:
    """Writes a uint8 (H, W) array as PNG, atomically."""
    with atomic_open(path, "wb") as f:
        Image.fromarray(image).save(f, format="PNG")
