"""Shared pytest configuration: deterministic seeds, and the `cuda` marker, whose tests
skip only when no CUDA device is present (they run on GPU machines)."""

import os

import pytest
import torch

# Two threads keep CI timings stable on small machines; override with GLEAM_TEST_THREADS.
torch.set_num_threads(int(os.environ.get("GLEAM_TEST_THREADS", "2")))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none present)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
    yield


@pytest.fixture
def devices():
    """Devices to test: the CPU, plus CUDA when present."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def single_thread():
    """Tiny convolutions run fastest on one thread, and a second OpenMP thread stalls whenever the
    shared CI cores are busy; the previous count is restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
