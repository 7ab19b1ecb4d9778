"""Registration of the gleam:: ops: opcheck on every op, torch.compile(fullgraph=True),
TorchScript, schema agreement between C++ and Python, and the pure-PyTorch fallback."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from gleam_core import ops
from ops_cases import CASES, make, rel


def _op_samples(device="cpu"):
    x, maps, y, mask = make(CASES[1], torch.complex128, device, seed=20)
    x, maps, y = x[..., :4, :3].contiguous(), maps[:, :3, ..., :4, :3].contiguous(), y[:, :3, :4, :3].contiguous()
    mask = mask[..., :4, :3].contiguous()
    step = torch.tensor([0.3], dtype=torch.float64, device=device)
    lam = torch.tensor(0.5, dtype=torch.float64, device=device)
    dims = [-2, -1]
    return {
        "sense_forward": (x.requires_grad_(), maps, mask, dims, 0),
        "sense_adjoint": (y.requires_grad_(), maps, mask, dims, 0),
        "sense_normal": (x.detach().clone().requires_grad_(), maps, mask, [-1], 0),
        "dc_gradient_step": (x.detach().clone().requires_grad_(), x.detach().clone() * 0.5, maps, mask,
                             step.requires_grad_(), dims, 0),
        "cg_solve": (x.detach().clone().requires_grad_(), maps, mask, lam.requires_grad_(), None, dims, 8, 0.0, 0),
    }


@pytest.mark.parametrize("name", list(ops.SCHEMAS))
def test_opcheck(name, devices):
    for device in devices:
        args = _op_samples(device)[name]
        torch.library.opcheck(getattr(torch.ops.gleam, name).default, args)


def test_schemas_agree_with_python_copy():
    for name, schema in ops.SCHEMAS.items():
        registered = str(getattr(torch.ops.gleam, name).default._schema)
        assert registered == "gleam::" + schema, (registered, schema)


@pytest.mark.filterwarnings("ignore:Torchinductor does not support code generation for complex")
def test_torch_compile_fullgraph():
    x, maps, y, mask = make(CASES[0], torch.complex64, seed=21)

    def recon_step(x, y, maps, mask):
        op = ops.SenseOp(maps, mask)
        ahy = op.adjoint(y)
        return op.gradient_step(x, 0.5, ahy=ahy) + op.normal(x)

    compiled = torch.compile(recon_step, fullgraph=True)
    assert rel(compiled(x, y, maps, mask), recon_step(x, y, maps, mask)) < 1e-6


def _scripted_normal(x: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.ops.gleam.sense_normal(x, maps, mask, [-1], 0) * 2.0


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript():
    scripted = torch.jit.script(_scripted_normal)
    x, maps, _, mask = make(CASES[0], torch.complex64, seed=22)
    assert rel(scripted(x, maps, mask), 2.0 * ops.sense_normal(x, maps, mask)) < 1e-6
    assert "gleam::sense_normal" in str(scripted.graph)


def test_reference_fallback_in_fresh_process():
    """With the extension disabled, import works with no error and the ops give the same numbers."""
    code = textwrap.dedent("""
        import torch, warnings
        warnings.simplefilter("error")  # disabling on purpose must not warn
        from gleam_core import ops
        assert ops.backend() == {"cpu": "reference (GLEAM_NO_EXT=1)", "cuda": "reference (GLEAM_NO_EXT=1)"}, \
            ops.backend()
        torch.manual_seed(0)
        x = torch.randn(2, 1, 6, 5, dtype=torch.complex128)
        maps = torch.randn(2, 4, 1, 6, 5, dtype=torch.complex128)
        mask = (torch.rand(5) < 0.5).double()
        torch.save(ops.sense_normal(x, maps, mask), "OUT_PATH")
    """)
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"gleam_fallback_{os.getpid()}.pt")
    env = dict(os.environ, GLEAM_NO_EXT="1")
    subprocess.run([sys.executable, "-c", code.replace("OUT_PATH", out)], check=True, env=env, timeout=300)
    torch.manual_seed(0)
    x = torch.randn(2, 1, 6, 5, dtype=torch.complex128)
    maps = torch.randn(2, 4, 1, 6, 5, dtype=torch.complex128)
    mask = (torch.rand(5) < 0.5).double()
    assert rel(torch.load(out), ops.sense_normal(x, maps, mask)) < 1e-12
    os.remove(out)


def test_build_failure_falls_back_with_one_warning(tmp_path):
    """A broken toolchain must not break import: one RuntimeWarning, then the reference ops."""
    code = textwrap.dedent("""
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from gleam_core import ops
        msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(msgs) == 1 and "reference" in msgs[0], msgs
        for device, name in ops.backend().items():  # the reason travels with the backend name
            assert name.startswith("reference (compiled build failed: "), (device, name)
    """)
    env = dict(os.environ, GLEAM_CACHE_DIR=str(tmp_path), CXX="/nonexistent/c++", CC="/nonexistent/cc")
    env.pop("GLEAM_NO_EXT", None)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)


def test_gleam_build_fails_loudly(tmp_path):
    """gleam-build exits non-zero and names the first error instead of falling back quietly."""
    env = dict(os.environ, GLEAM_CACHE_DIR=str(tmp_path), CXX="/nonexistent/c++", CC="/nonexistent/cc")
    env.pop("GLEAM_NO_EXT", None)
    done = subprocess.run([sys.executable, "-m", "gleam_core._build"], env=env, timeout=300,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "the build FAILED; first error:" in done.stderr, done.stderr
