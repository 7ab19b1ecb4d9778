"""GLEAM engine: fast multi-coil MRI operators and greedy training of unrolled networks.

Subpackages: ``gleam_core.ops`` (SENSE operators, data consistency, FFT utilities),
``gleam_core.data``, ``gleam_core.models``, ``gleam_core.train``, ``gleam_core.cli``.
"""

__version__ = "0.1.0"
