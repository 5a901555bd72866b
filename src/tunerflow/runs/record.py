"""The record of one run, kept as ``runs/<name>/record.json`` and rewritten atomically."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path


class RunStatus(str, Enum):
    """``CREATED -> STARTED -> FINISHED | FAILED | CANCELLED``; a run shut down mid-way stays STARTED and resumes."""

    CREATED = "CREATED"
    STARTED = "STARTED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def done(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass
class RunRecord:
    """What is known about a run; everything a status, metrics or list query answers."""

    run_name: str
    recipe: dict
    experiment_name: str = "default"
    description: str = ""
    status: RunStatus = RunStatus.CREATED
    details: str = ""
    created_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    progress: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    artifact: str | None = None
    promoted: bool | None = None  # served by the publication gate or /runs/promote; None until FINISHED
    promotion: str = ""  # why it was, or was not, served
    data_aware: list = field(default_factory=list)  # the options chosen from the training data, with reasons
    data_statistics: dict = field(default_factory=dict)  # what they were chosen from
    hardware: list = field(default_factory=list)  # options left to auto chosen for this machine (precision)
    probe: dict = field(default_factory=dict)  # what the recipe probe measured and chose (recipe: after its choice)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> RunRecord:
        """The record in ``data``; keys this version does not know (a newer tuner wrote them) are left out."""
        known = {f.name for f in fields(cls)}
        data = {key: value for key, value in data.items() if key in known}
        data["status"] = RunStatus(data["status"])
        return cls(**data)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        partial = directory / ".record.json.partial"
        with partial.open("w") as handle:
            json.dump(self.to_dict(), handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(directory / "record.json")

    @classmethod
    def load(cls, directory: Path) -> RunRecord:
        return cls.from_dict(json.loads((directory / "record.json").read_text()))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
