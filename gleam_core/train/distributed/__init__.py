"""Distributed GLEAM training under ``torchrun``: module-parallel pipeline stages and
data-parallel replicas on ``torch.distributed`` (gloo on CPUs, NCCL on GPUs).

- :mod:`.config`: the spec's ``distributed:`` section.
- :mod:`.world`: rank -> (stage, replica) layout, process groups, device and backend.
- :mod:`.handoff`: point-to-point hand-offs with credit-based flow control and timeouts.
- :mod:`.data`: each replica's share of the training batches.
- :mod:`.stage`: one stage's modules (DistributedDataParallel over replicas), train/infer step.
- :mod:`.replay`: optional DGL-style replay buffer.
- :mod:`.reporting`: statistics and status through the job's store, combined by rank 0.
- :mod:`.trainer`: the loop, validation, consistent checkpoints.
- :mod:`.launch`: the ``gleam-train`` entry under torchrun; failure reports.
- :mod:`.faults`: test-only fault injection (``GLEAM_FAULT``).

See docs/distributed.md. Importing this package is light (the spec imports :mod:`.config`).
"""

from .config import DistributedOptions, ReplayOptions

__all__ = ["DistributedOptions", "ReplayOptions"]
