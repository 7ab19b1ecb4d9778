"""The build's choices that follow the installed torch (no compiling here)."""

import pytest

from gleam_core import _build


@pytest.mark.parametrize("version, std", [
    ("2.4.1", "c++17"), ("2.13.0", "c++17"), ("2.13.0+cpu", "c++17"), ("2.14.0", "c++20"),
    ("2.14.1+cu130", "c++20"), ("2.15.0", "c++20"), ("2.16.0a0+git1234", "c++20"), ("3.0.0", "c++20"),
    ("2.9.1+cu126", "c++17"), ("2.14.0.dev20260101", "c++20"),
])
def test_cxx_standard_follows_torch(version, std):
    assert _build.cxx_standard(version) == std


def test_cxx_standard_rejects_garbage():
    with pytest.raises(ValueError, match="torch version 'nightly'"):
        _build.cxx_standard("nightly")


def test_nvcc_gets_the_standard_of_the_running_torch():
    import torch
    cfg = _build.build_config()
    assert f"-std={_build.cxx_standard(torch.__version__)}" in cfg["cuda_flags"]


@pytest.mark.parametrize("log, first", [
    ("ninja: build stopped\n/x/ATen.h:5:2: error: #error C++20 or later compatible compiler is required\nmore",
     "/x/ATen.h:5:2: error: #error C++20 or later compatible compiler is required"),
    ("[1/9] c++ a.cpp\nFAILED: a.o\ncsrc/a.cu(12): error: identifier \"foo\" is undefined\nb.cu(3): error: x",
     "csrc/a.cu(12): error: identifier \"foo\" is undefined"),
    ("c++: fatal error: no input files\ncompilation terminated.", "c++: fatal error: no input files"),
    ("something broke\nat the end", "at the end"),
    ("FAILED: x.so\n/usr/bin/ld: cannot find -lcudart: No such file or directory\ncollect2: error: ld returned 1",
     "/usr/bin/ld: cannot find -lcudart: No such file or directory"),
])
def test_first_error_line(log, first):
    assert _build.first_error_line(log) == first
