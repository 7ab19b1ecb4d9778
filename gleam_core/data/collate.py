"""Batching of dataset items (see :mod:`gleam_core.data.transforms` for the item contract)."""

from __future__ import annotations

from typing import Any

import torch


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacks items into a batch: kspace (B, C, *S), maps (B, C, M, *S), mask (B, 1, *S'),
    target (B, M, *S) and meta (a list of dicts). Raises ValueError naming the items' files
    when keys or shapes differ (e.g. fastMRI volumes of different widths: use batch size 1)."""
    if not items:
        raise ValueError("collate: got an empty list of items")
    keys = set(items[0])
    for it in items[1:]:
        if set(it) != keys:
            raise ValueError(f"collate: items have different keys: {sorted(keys)} ({items[0]['meta'].get('file')}) vs "
                             f"{sorted(it)} ({it['meta'].get('file')})")
    batch: dict[str, Any] = {"meta": [it["meta"] for it in items]}
    for key in sorted(keys - {"meta"}):
        shapes = [tuple(it[key].shape) for it in items]
        if len(set(shapes)) > 1:
            files = [(it["meta"].get("file"), it["meta"].get("slice")) for it in items]
            raise ValueError(f"collate: '{key}' shapes differ within the batch: "
                             + ", ".join(f"{f}[{s}]: {sh}" for (f, s), sh in zip(files, shapes))
                             + "; use batch size 1 or data of one shape")
        batch[key] = torch.stack([it[key] for it in items])
    return batch
