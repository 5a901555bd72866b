"""Listing and deleting runs, and experiments: the part of :class:`~tunerflow.runs.RunManager` that manages records.

Deleting a run removes its record, log, checkpoints, plot and artifact (its
directory and zip) by their exact paths, never by a pattern, so that a run
named ``a`` leaves ``a-2`` and ``a.v2`` alone. A run that is queued or running
is not deleted: the call is refused (ConflictError) and says to cancel it first,
so that no worker is left writing into removed directories. The served
artifact's run is refused too (serve another run, or roll back, first).
Datasets are kept: other runs may name them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from tunerflow.data.store import check_name
from tunerflow.errors import ConflictError, NotFoundError
from tunerflow.runs.experiments import ACTIVE
from tunerflow.runs.record import RunRecord

if TYPE_CHECKING:
    import threading

    from tunerflow.runs.experiments import ExperimentStore
    from tunerflow.runs.publication import Publication


class RunAdmin:
    """Mixed into RunManager, whose lock, records, experiments, publication and directories it uses."""

    _lock: threading.Lock
    _records: dict[str, RunRecord]
    experiments: ExperimentStore
    publication: Publication
    runs_dir: Path
    artifacts: Path

    # ----------------------------------------------------------------- runs

    def list(self, experiment: str | None = None) -> list[RunRecord]:
        """Runs, newest first; only ``experiment``'s when given (NotFoundError for an unknown experiment)."""
        if experiment is not None:
            self.experiments.get(experiment)
        with self._lock:
            records = sorted(self._records.values(), key=lambda r: r.created_at)  # stable: creation order on ties
        return [r for r in reversed(records) if experiment is None or r.experiment_name == experiment]

    def delete(self, name: str, experiment: str | None = None) -> RunRecord:
        """Delete one run that has ended, and its files.

        Raises:
            NotFoundError: no run of that name (in ``experiment``, when given).
            ConflictError: it is queued or running (cancel it first), or its artifact is served.
        """
        with self._lock:
            record = self._lookup(name, experiment)
            self._remove([record])
        return record

    def delete_runs(self, experiment: str | None = None) -> list[RunRecord]:
        """Delete every run (of ``experiment``, when given): all of them, or none if one may not be deleted."""
        chosen = self.list(experiment)
        with self._lock:
            self._remove([self._records[r.run_name] for r in chosen if r.run_name in self._records])
        return chosen

    def _lookup(self, name: str, experiment: str | None) -> RunRecord:
        """The record of run ``name`` (the lock held); NotFoundError names the known runs."""
        record = self._records.get(name)
        if record is None or (experiment is not None and record.experiment_name != experiment):
            scope = f" in experiment {experiment!r}" if experiment is not None else ""
            known = sorted(r for r, v in self._records.items() if experiment is None or v.experiment_name == experiment)
            raise NotFoundError(f"no run named {name!r}{scope} (runs: {', '.join(known) or 'none yet'})")
        return record

    def _remove(self, records: list[RunRecord]) -> None:
        """Check every record first, then delete them all (the lock held)."""
        served = self.publication.served()["served"]
        for record in records:
            if not record.status.done:
                raise ConflictError(
                    f"run {record.run_name!r} is {record.status.value}; cancel it first "
                    f"(run.cancel() or `tunerflow cancel {record.run_name}`), then delete it once it is CANCELLED"
                )
            if served == record.run_name:
                raise ConflictError(
                    f"run {record.run_name!r}'s artifact is the one served; promote another run or roll back first"
                )
        for record in records:
            del self._records[record.run_name]
            remove_run_files(self.runs_dir, self.artifacts, record.run_name)

    # ---------------------------------------------------------- experiments

    def create_experiment(self, name: str, description: str = "") -> dict:
        return self._experiment(self.experiments.create(name, description))

    def get_experiment(self, name: str) -> dict:
        return self._experiment(self.experiments.get(name))

    def list_experiments(self) -> list[dict]:
        """Every experiment, newest first."""
        return [self._experiment(entry) for entry in self.experiments.list()]

    def delete_experiment(self, name: str) -> dict:
        """Delete an experiment and all its runs (none if one of them may not be deleted)."""
        entry = self.get_experiment(name)
        self.delete_runs(name)
        self.experiments.remove(name)
        return entry

    def delete_experiments(self) -> list[dict]:
        """Delete every experiment and every run (nothing if a run may not be deleted)."""
        entries = self.list_experiments()
        self.delete_runs()
        for entry in entries:
            self.experiments.remove(entry["name"])
        return entries

    def _experiment(self, entry: dict) -> dict:
        with self._lock:
            count = sum(1 for r in self._records.values() if r.experiment_name == entry["name"])
        return {**entry, "status": ACTIVE, "runs": count}


def remove_run_files(runs_dir: Path, artifacts: Path, name: str) -> None:
    """Remove ``runs/<name>/`` and ``artifacts/<name>/``, ``<name>.zip``: exact names, never a pattern."""
    check_name(name, "run")
    for directory in (artifacts / name, runs_dir / name):
        if directory.is_dir():
            shutil.rmtree(directory)
    for leftover in (f"{name}.zip", f".{name}.zip.partial"):
        (artifacts / leftover).unlink(missing_ok=True)
