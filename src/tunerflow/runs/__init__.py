"""Training runs as background jobs: records that survive restarts, a queue, logs, cancellation."""

from tunerflow.runs.manager import RunManager
from tunerflow.runs.record import RunRecord, RunStatus

__all__ = ["RunManager", "RunRecord", "RunStatus"]
