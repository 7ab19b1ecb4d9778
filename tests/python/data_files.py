"""Helpers for the data tests: a fastMRI file built by hand with h5py (no gleam writer), and an
independent numpy centered inverse FFT to check targets against."""

import h5py
import numpy as np
import torch

from gleam_core.data import phantoms

# The fields of a real fastMRI header that matter, plus some that do not (readers must ignore them).
HEADER = """<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <studyInformation><studyTime>12:00:00</studyTime></studyInformation>
  <acquisitionSystemInformation><systemVendor>SIEMENS</systemVendor><receiverChannels>{coils}</receiverChannels>
  </acquisitionSystemInformation>
  <experimentalConditions><H1resonanceFrequency_Hz>123259991</H1resonanceFrequency_Hz></experimentalConditions>
  <encoding>
    <encodedSpace><matrixSize><x>{h}</x><y>{w}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>280</x><y>140</y><z>4.5</z></fieldOfView_mm></encodedSpace>
    <reconSpace><matrixSize><x>{rh}</x><y>{rw}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>140</x><y>140</y><z>3</z></fieldOfView_mm></reconSpace>
    <trajectory>cartesian</trajectory>
    <encodingLimits>
      <kspace_encoding_step_1><minimum>0</minimum><maximum>{maximum}</maximum><center>{center}</center>
      </kspace_encoding_step_1>
      <kspace_encoding_step_2><minimum>0</minimum><maximum>0</maximum><center>0</center></kspace_encoding_step_2>
      <slice><minimum>0</minimum><maximum>{slices}</maximum><center>0</center></slice>
    </encodingLimits>
  </encoding>
</ismrmrdHeader>"""


def ifft2c_np(k: np.ndarray) -> np.ndarray:
    """fastMRI's ifft2c in numpy: ifftshift -> ifft2(norm="ortho") -> fftshift over the last two axes."""
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def fft2c_np(x: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def coil_data(slices: int, coils: int, h: int, w: int, seed: int = 0):
    """Known maps (slices, C, H, W) and their k-space (slices, C, H, W) of brain-like objects."""
    rng = np.random.default_rng(seed)
    ks, ms = [], []
    for s in range(slices):
        c = phantoms.grid_coords((h, w), -0.1 + 0.1 * s)
        image = phantoms.brain(np.random.default_rng(seed), c, 0.5 / max(h, w)).numpy()
        image = image * np.exp(1j * phantoms.background_phase(np.random.default_rng(seed + 1), c).numpy())
        maps = phantoms.CoilArray.ring(np.random.default_rng(seed + 2), coils, 2, (0.9, 1.0))(c).numpy()
        k = fft2c_np(maps * image)
        ks.append(k + 0.01 * np.abs(k).max() * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape)))
        ms.append(maps)
    return np.stack(ks).astype(np.complex64), np.stack(ms).astype(np.complex64)


def write_fastmri_by_hand(path, kspace: np.ndarray, *, first: int, end: int, recon=(24, 24), mask=None,
                          maps=None) -> None:
    """The fastMRI multi-coil layout, written directly with h5py; columns outside [first, end)
    are zero, as in fastMRI's zero-padded k-space."""
    slices, coils, h, w = kspace.shape
    k = kspace.copy()
    k[..., :first] = 0
    k[..., end:] = 0
    if mask is not None:
        k = k * mask.reshape(1, 1, 1, w)
    center = w // 2 - first
    image = np.sqrt((np.abs(ifft2c_np(k)) ** 2).sum(1))
    top, left = (h - recon[0]) // 2, (w - recon[1]) // 2
    rss = image[:, top:top + recon[0], left:left + recon[1]].astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=k.astype(np.complex64))
        f.create_dataset("reconstruction_rss", data=rss)
        f.create_dataset("ismrmrd_header", data=HEADER.format(coils=coils, h=h, w=w, rh=recon[0], rw=recon[1],
                                                              maximum=end - first - 1, center=center,
                                                              slices=slices - 1))
        if mask is not None:
            f.create_dataset("mask", data=mask.astype(np.float32))
            f.attrs["acceleration"] = 4
        if maps is not None:
            f.create_dataset("maps", data=maps.astype(np.complex64))
        f.attrs["acquisition"] = "CORPD_FBK"
        f.attrs["max"] = float(rss.max())
        f.attrs["norm"] = float(np.linalg.norm(rss))
        f.attrs["patient_id"] = "abc123"


def to_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
