"""Which run's artifact is served: the gate's decision, promotion, rollback and the history, under one lock."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from tunerflow.artifact.publish import ServeAction, read_history, read_latest, rollback, served_stack, write_latest
from tunerflow.errors import ArtifactError, ConflictError
from tunerflow.runs.gate import Decision
from tunerflow.runs.record import RunRecord, RunStatus

log = logging.getLogger(__name__)


class Publication:
    """Serves artifacts under ``artifacts``: its ``LATEST`` and ``HISTORY.jsonl`` (:mod:`tunerflow.artifact.publish`).

    Args:
        artifacts: the root the encoders follow.
    """

    def __init__(self, artifacts: Path) -> None:
        self.artifacts = Path(artifacts)
        self._lock = threading.Lock()

    def apply(self, record: RunRecord, decision: Decision, run_log: logging.Logger) -> None:
        """Serve a just-finished run's artifact if ``decision`` says so; note the outcome on ``record``."""
        record.promoted, record.promotion = decision.promote, decision.reason
        if decision.promote:
            with self._lock:
                write_latest(self.artifacts, record.run_name, run=record.run_name, reason=decision.reason)
            run_log.info("published: the encoders now serve %s (%s)", record.run_name, decision.reason)
        else:
            run_log.info("%s", decision.reason)

    def promote(self, record: RunRecord, reason: str = "promoted by request") -> dict:
        """Serve the finished run's artifact now, whatever its policy said."""
        if record.status is not RunStatus.FINISHED or not record.artifact:
            raise ConflictError(f"run {record.run_name!r} has no artifact to promote: it is {record.status.value}")
        if not (self.artifacts / record.run_name).is_dir():
            raise ArtifactError(f"run {record.run_name!r}'s artifact is no longer there; start the run again")
        with self._lock:
            current = read_latest(self.artifacts)
            if current is not None and current.name == record.run_name:
                return {**self.served(), "changed": False}
            write_latest(
                self.artifacts, record.run_name, action=ServeAction.PROMOTE, run=record.run_name, reason=reason
            )
        record.promoted, record.promotion = True, reason
        log.info("promoted %s", record.run_name)
        return {**self.served(), "changed": True}

    def rollback(self) -> dict:
        """Serve the artifact served before the current one again."""
        with self._lock:
            entry = rollback(self.artifacts)
        log.info("rolled back to %s (%s)", entry.artifact, entry.reason)
        return {**self.served(), "changed": True}

    def served(self) -> dict:
        """The served artifact, the ones a rollback would go back through, and the whole history."""
        latest = read_latest(self.artifacts)
        return {
            "served": latest.name if latest else None,
            "rollback_to": served_stack(self.artifacts)[-2::-1],
            "history": [entry.to_dict() for entry in read_history(self.artifacts)],
        }
