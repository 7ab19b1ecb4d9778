"""Distributed training without processes: the rank -> (stage, replica) layout, the spec's
``distributed`` section and its errors, each replica's share of the batches and its saved
position, the records rank 0 combines, the test-only fault hook, and the grace period after torchrun's SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from gleam_core.train.batches import BatchStream
from gleam_core.train.distributed.config import DistributedOptions
from gleam_core.train.distributed.data import ShardedBatchStream
from gleam_core.train.distributed.faults import Fault, parse_fault
from gleam_core.train.distributed.launch import check_launch
from gleam_core.train.distributed.reporting import combine
from gleam_core.train.distributed.world import Layout, World, choose_backend
from gleam_core.train.schema import SpecError, to_dict
from gleam_core.train.spec import parse_spec
from train_cases import tiny_spec


def test_layout_maps_ranks_to_stages_replicas_and_modules():
    lay = Layout(stages=2, replicas=3, modules=4)
    assert lay.world_size == 6
    assert [(lay.stage_of(r), lay.replica_of(r)) for r in range(6)] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    assert all(lay.rank_of(lay.stage_of(r), lay.replica_of(r)) == r for r in range(6))
    assert lay.stage_ranks(1) == [1, 3, 5]
    assert [lay.modules_of(s) for s in range(2)] == [[0, 1], [2, 3]]  # contiguous groups
    uneven = Layout(stages=3, replicas=1, modules=5)
    assert [uneven.modules_of(s) for s in range(3)] == [[0, 1], [2, 3], [4]]
    assert [uneven.stage_of_module(m) for m in range(5)] == [0, 0, 1, 1, 2]
    assert lay.describe(3) == "rank 3 (stage 1, replica 1)"
    assert "rank 5 (stage 1, replica 2): modules [2, 3]" in lay.table()


def test_world_neighbours():
    lay = Layout(stages=3, replicas=2, modules=3)
    w = World(lay, rank=4, local_rank=0, device=torch.device("cpu"), backend="gloo", timeout_s=5)
    assert (w.stage, w.replica, w.first, w.last) == (1, 1, False, False)
    assert (w.prev_rank, w.next_rank) == (3, 5)
    first = World(lay, rank=3, local_rank=0, device=torch.device("cpu"), backend="gloo", timeout_s=5)
    assert first.prev_rank is None and first.next_rank == 4


@pytest.mark.parametrize("stages,replicas,world,modules,expected", [
    (None, None, 4, 2, (2, 2)),   # as many stages as modules allow, the rest replicas
    (None, None, 3, 2, (1, 3)),
    (None, None, 2, 4, (2, 1)),
    (2, None, 4, 4, (2, 2)),
    (None, 2, 4, 4, (2, 2)),
    (1, 2, 2, 1, (1, 2)),
])
def test_layout_resolves_null_entries(stages, replicas, world, modules, expected):
    lay = Layout.from_spec(DistributedOptions(stages=stages, replicas=replicas), modules, world)
    assert (lay.stages, lay.replicas) == expected


@pytest.mark.parametrize("stages,replicas,world,modules,key,message", [
    (2, 2, 2, 4, "distributed", "stages 2 x replicas 2 = 4 ranks, but torchrun started 2 (WORLD_SIZE); allowed: "
                                "stages x replicas = 2, e.g. (stages 1, replicas 2) or (stages 2, replicas 1)"),
    (3, None, 4, 4, "distributed.stages", "got 3, which does not divide the world size 4"),
    (None, 3, 4, 4, "distributed.replicas", "got 3, which does not divide the world size 4"),
    (4, 1, 4, 2, "distributed.stages", "got 4 stages for gleam.modules=2"),
])
def test_bad_layouts_name_the_keys(stages, replicas, world, modules, key, message):
    with pytest.raises(SpecError) as err:
        Layout.from_spec(DistributedOptions(stages=stages, replicas=replicas), modules, world)
    assert err.value.key == key and message in str(err.value)


@pytest.mark.parametrize("override,key,message", [
    ("distributed.stages=3", "distributed.stages", "got 3, more stages than gleam.modules=2"),
    ("gleam.queue_depth=0", "gleam.queue_depth", "expected a value >= 1"),
    ("distributed.backend=mpi", "distributed.backend", "allowed: 'auto', 'gloo', 'nccl'"),
    ("distributed.stage=2", "distributed.stage", "did you mean 'stages'?"),
    ("distributed.queue_depth=2", "distributed.queue_depth", "this key moved to 'gleam.queue_depth'"),
    ("distributed.timeout_s=0", "distributed.timeout_s", "expected a value >= 1.0"),
    ("distributed.replay.size=0", "distributed.replay.size", "expected a value >= 1"),
])
def test_bad_distributed_spec(tmp_path, override, key, message):
    with pytest.raises(SpecError) as err:
        tiny_spec(tmp_path, "strategy=gleam", override)
    assert err.value.key == key and message in str(err.value)


def test_spec_section_round_trips_and_defaults(tmp_path):
    spec = tiny_spec(tmp_path, "strategy=gleam", "distributed.stages=2", "distributed.replay.enabled=true")
    d = spec.distributed
    assert (d.stages, d.replicas, d.backend, d.replay.enabled, spec.gleam.queue_depth) == (2, None, "auto", True, 1)
    assert parse_spec(to_dict(spec)).distributed == d
    assert tiny_spec(tmp_path).distributed == DistributedOptions()


def test_launch_rules(tmp_path):
    with pytest.raises(SpecError, match="'strategy': got 'e2e'; distributed runs .* 'gleam' only"):
        check_launch(tiny_spec(tmp_path, "strategy=e2e"))
    with pytest.raises(SpecError, match="'gleam.devices'.*leave gleam.devices null"):
        check_launch(tiny_spec(tmp_path, "strategy=gleam", "gleam.devices=[cpu, cpu]"))
    check_launch(tiny_spec(tmp_path, "strategy=gleam"))
    with pytest.raises(SpecError, match="'distributed.backend': got 'nccl', which needs CUDA"):
        choose_backend("nccl", torch.device("cpu"))
    assert choose_backend("auto", torch.device("cpu")) == "gloo"


class Items(Dataset):
    """Items are their own index; ``set_epoch`` is recorded."""

    def __init__(self, n: int) -> None:
        self.n, self.epochs = n, []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


def _take(stream, k: int) -> list[list[int]]:
    return [next(stream) for _ in range(k)]


@pytest.mark.parametrize("n,batch,replicas", [(12, 2, 2), (10, 2, 2), (9, 2, 3), (8, 4, 1)])
def test_replicas_share_the_single_process_batches(n, batch, replicas):
    single = BatchStream(Items(n), batch, list, seed=3)
    per_epoch = single.batches_per_epoch
    everything = _take(single, 2 * per_epoch)  # two epochs
    shards = [ShardedBatchStream(Items(n), batch, list, seed=3, replica=q, replicas=replicas) for q in range(replicas)]
    steps = shards[0].batches_per_epoch
    assert steps == -(-per_epoch // replicas)
    got = [_take(s, 2 * steps) for s in shards]
    for epoch in range(2):
        first = everything[epoch * per_epoch:(epoch + 1) * per_epoch]
        for i in range(steps):
            for q in range(replicas):
                # step i of replica q is single-process batch i*R + q (wrapping inside the epoch)
                assert got[q][epoch * steps + i] == first[(i * replicas + q) % per_epoch]


def test_sharded_position_is_saved_in_single_process_terms():
    n, batch = 16, 2
    shard = ShardedBatchStream(Items(n), batch, list, seed=1, replica=0, replicas=2)
    _take(shard, 3)
    saved = shard.state_dict()
    assert saved == {"epoch": 0, "batch": 6, "seed": 1}
    single = BatchStream(Items(n), batch, list, seed=1)
    reference = _take(BatchStream(Items(n), batch, list, seed=1), 8)
    single.load_state_dict(saved)
    assert next(single) == reference[6]
    other = ShardedBatchStream(Items(n), batch, list, seed=1, replica=1, replicas=2)
    other.load_state_dict(saved)
    assert next(other) == reference[7]
    three = ShardedBatchStream(Items(n), batch, list, seed=1, replica=0, replicas=4)
    with pytest.raises(ValueError, match="batch 6.*not a multiple of distributed.replicas=4"):
        three.load_state_dict(saved)
    with pytest.raises(ValueError, match="replica must be in"):
        ShardedBatchStream(Items(n), batch, list, replica=2, replicas=2)


def test_rank0_combines_the_records_of_all_ranks():
    lay = Layout(stages=2, replicas=2, modules=3)   # stage 0: modules 0, 1; stage 1: module 2
    w = World(lay, rank=0, local_rank=0, device=torch.device("cpu"), backend="gloo", timeout_s=5)

    def rec(rank, loss, step, wait):
        stage, replica = lay.stage_of(rank), lay.replica_of(rank)
        mods = lay.modules_of(stage)
        return {"rank": rank, "stage": stage, "replica": replica, "modules": mods, "loss": loss,
                "time_s": [0.1 * (rank + 1)] * len(mods), "peak_bytes": 100 * (rank + 1),
                "module_peak_bytes": [10 * (rank + 1)] * len(mods), "lr": [0.5 + replica] * len(mods),
                "step_s": step, "wait_s": wait, "epoch": 1}
    out = combine([rec(0, [1.0, 2.0], 0.3, 0.0), rec(1, [3.0], 0.4, 0.1), rec(2, [3.0, 4.0], 0.5, 0.2),
                   rec(3, [5.0], 0.6, 0.3)], w)
    assert out["loss"] == [2.0, 3.0, 4.0]
    assert out["time_s"] == pytest.approx([0.2, 0.2, 0.3])
    assert out["module_peak_bytes"] == [30, 30, 40] and out["peak_bytes"] == 400
    assert out["lr"] == [0.5, 0.5, 0.5] and out["step_time_s"] == 0.3 and out["epoch"] == 1
    assert out["stage_step_s"] == pytest.approx([0.4, 0.5]) and out["stage_wait_s"] == pytest.approx([0.1, 0.2])


def test_fault_hook_parsing():
    assert parse_fault(None) is None and parse_fault("") is None
    assert parse_fault("rank=1,iteration=6,mode=hang") == Fault(1, 6, "hang", 0)
    assert parse_fault("rank=0,iteration=2,attempt=any") == Fault(0, 2, "exit", None)
    with pytest.raises(ValueError, match="GLEAM_FAULT=.*malformed"):
        parse_fault("rank=1,mode=explode,iteration=2")
    with pytest.raises(ValueError, match="malformed"):
        parse_fault("iteration=2")


STOPPING = Path(__file__).resolve().parents[2] / "gleam_core" / "train" / "distributed" / "stopping.py"
WATCHED = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("stopping", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
watcher = mod.StopWatcher(0.3, lambda: "stopped: described")
print("ready", flush=True)
if sys.argv[2] == "report":
    time.sleep(0.1)              # the main thread notices its own failure within the grace period
    watcher.reporting.set()
    print("reporting", flush=True)
    time.sleep(0.05)
    sys.exit(1)
time.sleep(30)
"""


@pytest.mark.parametrize("mode", ["silent", "report"])
def test_sigterm_gives_a_grace_period_then_describes(mode):
    """torchrun's SIGTERM does not kill a rank at once: it may still report its own failure
    (and exits with its own status); a rank that reports nothing prints its description and
    exits with 143."""
    proc = subprocess.Popen([sys.executable, "-c", WATCHED, str(STOPPING), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    if mode == "silent":
        assert proc.returncode == 143 and "stopped: described" in out
        assert 0.25 < time.perf_counter() - t0 < 10
    else:
        assert proc.returncode == 1 and "reporting" in out and "described" not in out


def test_example_spec_validates_and_lays_out():
    from gleam_core.train.spec import load_spec
    spec = load_spec(Path(__file__).resolve().parents[2] / "examples" / "distributed.yaml")
    check_launch(spec)
    assert spec.strategy == "gleam" and spec.distributed == DistributedOptions()
    layouts = {w: Layout.from_spec(spec.distributed, spec.gleam.modules, w) for w in (1, 2, 4, 8)}
    assert {w: (lay.stages, lay.replicas) for w, lay in layouts.items()} == {1: (1, 1), 2: (2, 1), 4: (4, 1),
                                                                             8: (4, 2)}
    assert layouts[2].modules_of(1) == [2, 3]
