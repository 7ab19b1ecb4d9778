"""``gleam_core.recon``: inference with trained networks, outside training.

:func:`load_model` (a run's or checkpoint's network), :class:`ReconNet` (the network as
``forward(kspace, maps, mask) -> image``, what ``gleam-export`` captures),
:func:`reconstruct_volumes` (whole datasets, file by file, for gleam-recon and gleam-eval) and
:mod:`.export` (``torch.export`` + AOTInductor and TorchScript artifacts), and writing
reconstructions (:mod:`.formats`: h5, NIfTI, DICOM, PNG). Training imports this package, never
the reverse.
"""

from .loading import (best_checkpoint, describe_checkpoint, latest_checkpoint, load_checkpoint, load_model,
                      resolve_checkpoint)
from .net import ReconNet, robust_peak
from .volumes import Volume, batch_problem, image_metrics, reconstruct_volumes

__all__ = ["ReconNet", "Volume", "batch_problem", "best_checkpoint", "describe_checkpoint", "image_metrics",
           "latest_checkpoint", "load_checkpoint", "load_model", "reconstruct_volumes", "resolve_checkpoint", "robust_peak"]
