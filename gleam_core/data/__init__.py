"""``gleam_core.data``: k-space datasets, sampling masks, ESPIRiT maps, synthetic data.

Every dataset returns items of one contract (see :mod:`gleam_core.data.transforms`):
``kspace`` (C, *S) undersampled, ``maps`` (C, M, *S), ``mask`` (1, *S') compact, ``target``
(M, *S), ``meta``; :func:`collate` batches them. Datasets: :class:`FastMRIDataset` (fastMRI
multi-coil, slices), :class:`Volume3DDataset` (3D volumes or ky-kz slices),
:class:`CineDataset` (2D + time), :class:`CmrxReconDataset` (CMRxRecon challenge files,
cine and mapping), :class:`SyntheticDataset` (generated on the fly);
:func:`open_dataset` picks one from a source string.
"""

from .base import H5Dataset, MaskedDataset
from .cine import CineDataset, write_cine
from .cmrxrecon import CmrxReconDataset, read_mask_file, write_cmrxrecon, write_cmrxrecon_mask
from .collate import collate
from .espirit import espirit_maps, espirit_maps_volume
from .fastmri import FastMRIDataset, write_fastmri
from .formats import DataFormatError
from .masks import (EquispacedMask1D, KtMask, MaskFunc, PoissonMask2D, RandomMask1D, UniformMask1D, mask_from_spec,
                    poisson_disc, training_seed)
from .open import open_dataset
from .splits import resolve_files, split_files
from .synthetic import SynthConfig, SyntheticDataset, write_synthetic
from .transforms import make_item
from .volume import Volume3DDataset, write_volume

__all__ = [
    "CineDataset", "CmrxReconDataset", "DataFormatError", "EquispacedMask1D", "FastMRIDataset", "H5Dataset", "KtMask",
    "MaskFunc", "MaskedDataset", "PoissonMask2D", "RandomMask1D", "SynthConfig", "SyntheticDataset", "UniformMask1D",
    "Volume3DDataset", "collate", "espirit_maps", "espirit_maps_volume", "make_item", "mask_from_spec", "open_dataset",
    "poisson_disc", "read_mask_file", "resolve_files", "split_files", "training_seed", "write_cine", "write_cmrxrecon",
    "write_cmrxrecon_mask", "write_fastmri", "write_synthetic", "write_volume",
]
