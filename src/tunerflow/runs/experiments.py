"""Experiments: named groups of runs, kept in ``<home>/experiments.json`` so that they survive a restart.

A run names its experiment (``experiment_name``, default ``default``); starting
it creates the experiment if there is none of that name, as the reference
tool's ``fit`` does. An experiment may also be created empty, and outlives its
runs until it is deleted (which deletes its runs: see
:meth:`tunerflow.runs.RunManager.delete_experiment`).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from tunerflow.data.store import check_name
from tunerflow.errors import ConflictError, NotFoundError
from tunerflow.runs.record import now

EXPERIMENTS_FILE = "experiments.json"
ACTIVE = "ACTIVE"  # the only status an experiment has here; the reference tool's experiments report one too


class ExperimentStore:
    """The experiments of one home, each ``{name, description, created_at}``, written atomically.

    Args:
        path: the JSON file (created on the first write).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = self._read()

    def ensure(self, name: str, created_at: str | None = None) -> dict:
        """The experiment ``name``, created (and saved) if there is none."""
        with self._lock:
            if name not in self._entries:
                self._entries[name] = {"name": name, "description": "", "created_at": created_at or now()}
                self._write()
            return dict(self._entries[name])

    def create(self, name: str, description: str = "") -> dict:
        """A new, empty experiment; ConflictError if the name is taken."""
        check_name(name, "experiment")
        with self._lock:
            if name in self._entries:
                raise ConflictError(f"an experiment named {name!r} already exists; get it with get_experiment")
            self._entries[name] = {"name": name, "description": description, "created_at": now()}
            self._write()
            return dict(self._entries[name])

    def get(self, name: str) -> dict:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                known = ", ".join(sorted(self._entries)) or "none yet"
                raise NotFoundError(f"no experiment named {name!r} (experiments: {known})")
            return dict(entry)

    def list(self) -> list[dict]:
        """Every experiment, newest first."""
        with self._lock:
            return sorted((dict(e) for e in self._entries.values()), key=lambda e: e["created_at"], reverse=True)

    def remove(self, name: str) -> None:
        with self._lock:
            if self._entries.pop(name, None) is not None:
                self._write()

    def _read(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        entries = json.loads(self.path.read_text())
        return {entry["name"]: entry for entry in entries}

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        with partial.open("w") as handle:
            json.dump(list(self._entries.values()), handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(self.path)
