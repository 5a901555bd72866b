"""Listing and deleting runs, and experiments, on a RunManager (no Flow: records are written as a tuner leaves them)."""

from __future__ import annotations

import pytest

from tests.training_helpers import toy_manager, toy_options
from tunerflow.artifact.publish import write_latest
from tunerflow.artifact.save import zip_artifact
from tunerflow.errors import ConflictError, NotFoundError
from tunerflow.runs.record import RunRecord, RunStatus

NAMES = ("pair", "pair-2", "pair.v2")  # one is a prefix of the others, and a suffix away from 'pair.zip'


def _finished(home, name: str, experiment: str = "default", created_at: str = "2026-01-01T00:00:00+00:00") -> None:
    """A FINISHED run's files as the tuner leaves them: record, log, checkpoint, artifact directory and zip."""
    run_dir, artifact = home / "runs" / name, home / "artifacts" / name
    (run_dir / "checkpoint").mkdir(parents=True)
    (run_dir / "log.txt").write_text(f"log of {name}\n")
    (run_dir / "checkpoint" / "state.pt").write_text("x")
    artifact.mkdir(parents=True)
    (artifact / "tunerflow.json").write_text("{}")
    zip_artifact(artifact)
    record = RunRecord(
        name, {"epochs": 1}, experiment_name=experiment, status=RunStatus.FINISHED, created_at=created_at
    )
    record.artifact = str(artifact)
    record.save(run_dir)


def _files(home, name: str) -> list:
    return [
        p for p in (home / "runs" / name, home / "artifacts" / name, home / "artifacts" / f"{name}.zip") if p.exists()
    ]


def test_deleting_a_run_removes_its_files_and_never_another_runs(tmp_path):
    for index, name in enumerate(NAMES):
        _finished(tmp_path, name, created_at=f"2026-01-0{index + 1}T00:00:00+00:00")
    manager = toy_manager(tmp_path, start_worker=False)
    assert manager.artifact_zip("pair.v2").name == "pair.v2.zip"  # its own zip, not run pair's
    assert [r.run_name for r in manager.list()] == ["pair.v2", "pair-2", "pair"]  # newest first
    manager.delete("pair")
    assert _files(tmp_path, "pair") == []
    for other in ("pair-2", "pair.v2"):
        assert len(_files(tmp_path, other)) == 3 and manager.get(other).status is RunStatus.FINISHED
    with pytest.raises(NotFoundError, match="no run named 'pair'"):
        manager.get("pair")
    reopened = toy_manager(tmp_path, start_worker=False)  # the deletion holds across a restart
    assert sorted(r.run_name for r in reopened.list()) == ["pair-2", "pair.v2"]


def test_queued_running_and_served_runs_are_refused(tmp_path, tiny_model_dir):
    _finished(tmp_path, "served-run")
    manager = toy_manager(tmp_path, start_worker=False)
    manager.start(toy_options(tiny_model_dir, run_name="queued"))
    with pytest.raises(ConflictError, match="is CREATED; cancel it first"):
        manager.delete("queued")
    with pytest.raises(ConflictError, match="cancel it first"):
        manager.delete_runs()  # all or nothing: the finished run is kept too
    assert len(_files(tmp_path, "served-run")) == 3
    manager.cancel("queued")
    write_latest(tmp_path / "artifacts", "served-run", run="served-run", reason="test")
    with pytest.raises(ConflictError, match="is the one served"):
        manager.delete("served-run")
    manager.delete("queued")  # cancelled now: it goes
    assert [r.run_name for r in manager.list()] == ["served-run"]


def test_experiments_group_runs_and_survive_a_restart(tmp_path):
    _finished(tmp_path, "a1", "exp-a")
    _finished(tmp_path, "a2", "exp-a")
    _finished(tmp_path, "b1", "exp-b")
    manager = toy_manager(tmp_path, start_worker=False)
    manager.create_experiment("empty", "nothing yet")
    with pytest.raises(ConflictError, match="already exists"):
        manager.create_experiment("exp-a")
    reopened = toy_manager(tmp_path, start_worker=False)
    assert {e["name"]: e["runs"] for e in reopened.list_experiments()} == {"empty": 0, "exp-a": 2, "exp-b": 1}
    assert reopened.get_experiment("empty")["description"] == "nothing yet"
    assert [r.run_name for r in reopened.list("exp-b")] == ["b1"]
    with pytest.raises(NotFoundError, match="no run named 'b1' in experiment 'exp-a'"):
        reopened.get("b1", "exp-a")
    with pytest.raises(NotFoundError, match="no experiment named 'ghost'"):
        reopened.list("ghost")
    reopened.delete_experiment("exp-a")
    assert _files(tmp_path, "a1") == [] and _files(tmp_path, "a2") == [] and len(_files(tmp_path, "b1")) == 3
    assert sorted(e["name"] for e in toy_manager(tmp_path, start_worker=False).list_experiments()) == ["empty", "exp-b"]
    with pytest.raises(NotFoundError):
        reopened.delete_experiment("exp-a")
