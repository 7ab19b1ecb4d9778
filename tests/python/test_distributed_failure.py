"""Failures of a 2-process module-parallel run (fault injection through GLEAM_FAULT): a rank
killed mid-run ends the job with a message naming it (rank and stage) and the last consistent
checkpoint, which ``--resume`` continues to the weights of an uninterrupted run; a hung rank
ends the job within distributed.timeout_s; torchrun --max-restarts resumes by itself."""

from __future__ import annotations

import pytest

from distributed_cases import assert_same_training_state, reference, state, torchrun, write_spec
from gleam_core.train.checkpoints import list_checkpoints

pytestmark = pytest.mark.usefixtures("single_thread")

ITERATIONS = 16
LAYOUT = ("distributed.stages=2", "schedule.checkpoint_every=4")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return reference(tmp_path_factory.mktemp("ref"), "single", "schedule.checkpoint_every=4", iterations=ITERATIONS)


def test_killed_rank_is_named_and_resume_completes(uninterrupted, tmp_path):
    spec, run = write_spec(tmp_path, "killed", *LAYOUT, iterations=ITERATIONS)
    code, out, _ = torchrun(spec, 2, fault="rank=1,iteration=10,mode=kill")
    assert code != 0
    # the surviving rank names the dead one and where to continue from
    assert "rank 0 (stage 0, replica 0): lost rank 1 (stage 1, replica 0)" in out, out
    assert "that rank died" in out
    assert "the last consistent checkpoint is" in out and "iter_00000008.pt" in out
    assert [p.name for p in list_checkpoints(run)] == ["iter_00000004.pt", "iter_00000008.pt"]
    assert_same_training_state(state(run), state(uninterrupted, 8))   # consistent: all stages at 8
    code, out, _ = torchrun(spec, 2, "--resume")
    assert code == 0, out
    assert "resuming" in out and "(iteration 8)" in out
    assert_same_training_state(state(run), state(uninterrupted))


def test_hung_rank_ends_the_job_within_the_timeout(tmp_path):
    spec, run = write_spec(tmp_path, "hung", *LAYOUT, "distributed.timeout_s=3", iterations=ITERATIONS)
    code, out, seconds = torchrun(spec, 2, fault="rank=1,iteration=6,mode=hang", timeout=120)
    assert code != 0
    assert "gave up on rank 1 (stage 1, replica 0)" in out and "distributed.timeout_s=3" in out, out
    assert "rank 1 (stage 1, replica 0): in iteration 6, computing" in out     # the status table
    assert "furthest behind: rank 1 (stage 1, replica 0)" in out
    assert seconds < 60
    assert [p.name for p in list_checkpoints(run)] == ["iter_00000004.pt"]


def test_elastic_restart_resumes_from_the_last_checkpoint(uninterrupted, tmp_path):
    spec, run = write_spec(tmp_path, "elastic", *LAYOUT, iterations=ITERATIONS)
    code, out, _ = torchrun(spec, 2, fault="rank=1,iteration=7,mode=exit,attempt=0", restarts=1)
    assert code == 0, out
    assert "injected fault 'exit' after iteration 7" in out
    assert "elastic restart 1: resuming from the latest checkpoint" in out and "(iteration 4)" in out
    assert_same_training_state(state(run), state(uninterrupted))
    train = [line for line in (run / "metrics.jsonl").read_text().splitlines() if '"train"' in line]
    assert len(train) == ITERATIONS // 4   # records after the checkpoint were dropped, then rewritten once
