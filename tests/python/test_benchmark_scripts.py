"""The benchmark scripts still import and parse their options (they are not run by the other
tests, so a moved module would otherwise surface only when someone re-measures)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", ["ops", "data", "strategies", "distributed", "interop", "precision", "plan", "lanes", "inference"])
def test_benchmark_script_starts(script):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
