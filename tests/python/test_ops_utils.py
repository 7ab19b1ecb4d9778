"""FFT and coil utilities against independent numpy definitions."""

import numpy as np
import pytest
import torch

from gleam_core import ops


@pytest.mark.parametrize("shape", [(6, 8), (7, 5), (3, 4, 5)])
def test_centered_fft_matches_numpy_fastmri_definition(shape):
    x = torch.randn(2, *shape, dtype=torch.complex128)
    axes = tuple(range(-len(shape), 0))
    a = x.numpy()
    want = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(a, axes=axes), axes=axes, norm="ortho"), axes=axes)
    got = ops.fftnc(x, axes)
    assert np.allclose(got.numpy(), want, atol=1e-12)
    assert torch.allclose(ops.ifftnc(got, axes), x, atol=1e-12)
    if len(shape) == 2:
        assert torch.allclose(ops.fft2c(x), got) and torch.allclose(ops.ifft2c(got), x, atol=1e-12)
    else:
        assert torch.allclose(ops.fft3c(x), got) and torch.allclose(ops.ifft3c(got), x, atol=1e-12)


def test_fft_rejects_real_input():
    with pytest.raises(ValueError, match="expected a complex tensor"):
        ops.fft2c(torch.randn(4, 4))
    with pytest.raises(ValueError, match="FFT axis 3 is out of range"):
        ops.fftnc(torch.randn(4, 4, dtype=torch.complex64), (3,))


def test_rss_and_coil_combine():
    coils = torch.randn(2, 4, 5, 6, dtype=torch.complex128)
    assert torch.allclose(ops.rss(coils), torch.from_numpy(np.sqrt((np.abs(coils.numpy()) ** 2).sum(1))))
    maps = torch.randn(2, 4, 1, 5, 6, dtype=torch.complex128)
    want = np.einsum("bcmhw,bchw->bmhw", np.conj(maps.numpy()), coils.numpy())
    assert np.allclose(ops.coil_combine(coils, maps).numpy(), want)
    with pytest.raises(ValueError, match="maps .* do not fit coil images"):
        ops.coil_combine(coils, maps[:, :3])


def test_zero_filled_is_adjoint_of_kspace():
    maps = torch.randn(1, 3, 1, 6, 6, dtype=torch.complex64)
    y = torch.randn(1, 3, 6, 6, dtype=torch.complex64)
    want = ops.coil_combine(ops.ifft2c(y), maps)
    assert torch.allclose(ops.zero_filled(y, maps), want, atol=1e-5)
    assert torch.allclose(ops.zero_filled_rss(y), ops.rss(ops.ifft2c(y)), atol=1e-6)
