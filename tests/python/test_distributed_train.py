"""2-process (and one 4-process) gleam-train runs under torchrun on gloo: module-parallel with
queue depth 1 gives bitwise the weights and optimizer states of the single-process gleam run on
the same batches; data-parallel (and 2 stages x 2 replicas) matches single-process training on
the union of the replicas' batches up to summation order; both lower the validation loss; the
one checkpoint they write is read by gleam-eval and resumed by a single process; a layout that
does not fit the world is refused with a message naming the keys."""

from __future__ import annotations

import json
import shutil

import pytest

from distributed_cases import (assert_same_training_state, max_rel_diff, reference, spec_overrides, state,
                               torchrun, write_spec)
from gleam_core.cli.eval import main as eval_main
from gleam_core.train.trainer import Trainer
from train_cases import tiny_spec

pytestmark = pytest.mark.usefixtures("single_thread")

# Data-parallel differs from the single-process run only in how the two replicas' gradient sums
# are added (all-reduce of two per-replica means vs one mean over the batch): float32 rounding,
# amplified a little by Adam's normalization over 24 steps. Measured: ~3e-6.
DP_RTOL = 1e-4


def initial_val_loss(tmp_path, *overrides: str) -> float:
    return Trainer(tiny_spec(tmp_path / "initial", *spec_overrides(*overrides))).validate()["loss"]


def records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def module_parallel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mp")
    spec, run = write_spec(tmp, "dist", "distributed.stages=2", "gleam.queue_depth=1")
    code, out, seconds = torchrun(spec, 2)
    assert code == 0, out
    return tmp, run, out


def test_module_parallel_equals_single_process(module_parallel, tmp_path):
    tmp, run, out = module_parallel
    assert "2 ranks = 2 stages x 1 replicas" in out and "rank 1 (stage 1, replica 0): modules [1]" in out
    single = reference(tmp_path, "single")
    for it in (16, 24):
        assert_same_training_state(state(run, it), state(single, it))
    assert state(run)["last_val"] == state(single)["last_val"]
    train = [r for r in records(run) if r["split"] == "train"]
    assert [r["iteration"] for r in train] == [4, 8, 12, 16, 20, 24]
    assert [r["loss"] for r in train] == [r["loss"] for r in records(single) if r["split"] == "train"]
    assert all(len(r["stage_step_s"]) == 2 and len(r["stage_wait_s"]) == 2 and len(r["time_s"]) == 2 for r in train)
    final = [r for r in records(run) if r["split"] == "val"][-1]
    assert final["loss"] < 0.9 * initial_val_loss(tmp_path)
    assert (run / "spec.yaml").exists() and (run / "figures" / "val_00000024.png").exists()


def test_distributed_checkpoint_for_eval_and_single_process_resume(module_parallel, tmp_path, capsys):
    _, run, _ = module_parallel
    assert eval_main(["--run", str(run), "--out", str(tmp_path / "eval.csv")]) == 0
    assert "mean" in capsys.readouterr().out and (tmp_path / "eval.csv").exists()
    # one process continues the 2-process run to 32 iterations = an uninterrupted single-process run
    copy = tmp_path / "cont" / "run"
    shutil.copytree(run, copy)
    resumed = Trainer(tiny_spec(tmp_path / "cont", *spec_overrides(), iterations=32), resume=True)
    assert resumed.iteration == 24
    resumed.run()
    assert_same_training_state(state(copy), state(reference(tmp_path, "single32", iterations=32)))


@pytest.fixture(scope="module")
def batch2_reference(tmp_path_factory):
    """Single-process run with batch 2: the items 2 replicas x batch 1 see per step."""
    return reference(tmp_path_factory.mktemp("ref"), "single_b2", "data.batch_size=2")


def test_data_parallel_matches_single_process_on_the_union_of_batches(batch2_reference, tmp_path):
    spec, run = write_spec(tmp_path, "dp", "distributed.replicas=2", "data.batch_size=1")
    code, out, _ = torchrun(spec, 2)
    assert code == 0, out
    assert "2 ranks = 1 stages x 2 replicas" in out
    a, b = state(run), state(batch2_reference)
    assert a["iteration"] == 24 and a["data_state"] == b["data_state"]
    assert max_rel_diff(a, b) < DP_RTOL
    final = [r for r in records(run) if r["split"] == "val"][-1]
    assert final["loss"] < 0.9 * initial_val_loss(tmp_path)


def test_two_stages_two_replicas(batch2_reference, tmp_path):
    spec, run = write_spec(tmp_path, "sr", "distributed.stages=2", "distributed.replicas=2", "data.batch_size=1",
                           "gleam.queue_depth=2", iterations=8)
    code, out, _ = torchrun(spec, 4)
    assert code == 0, out
    assert "rank 2 (stage 0, replica 1): modules [0]" in out
    ckpt = state(run)
    assert ckpt["distributed"]["stages"] == 2 and ckpt["distributed"]["replicas"] == 2
    assert max_rel_diff(ckpt, state(batch2_reference, 8)) < DP_RTOL


def test_layout_that_does_not_fit_the_world_is_refused(tmp_path):
    spec, run = write_spec(tmp_path, "bad", "distributed.stages=2", "distributed.replicas=2")
    code, out, _ = torchrun(spec, 2)
    assert code != 0
    assert ("spec error at 'distributed': stages 2 x replicas 2 = 4 ranks, but torchrun started 2 (WORLD_SIZE)"
            in out)
    assert not (run / "checkpoints").exists()
