"""Packaging: Python files plus a copy of csrc/ and python/ inside the wheel.

Nothing is compiled here. The extension is built on first use (``gleam_core/_build.py``)
against the torch that is actually installed, which sidesteps pip's build isolation and
torch-version mismatches. ``gleam-build`` compiles it ahead of time.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithSources(build_py):
    def run(self):
        super().run()
        dst = Path(self.build_lib) / "gleam_core" / "_src"
        for sub in ("csrc", "python"):
            shutil.copytree(ROOT / sub, dst / sub, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.o", "__pycache__", "*.so"))


setup(cmdclass={"build_py": BuildPyWithSources})
