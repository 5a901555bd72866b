"""A run on a remote tuner, as the reference tool's ``Run``."""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from tunerflow.client.connection import Connection
from tunerflow.errors import ArtifactError

DONE = ("FINISHED", "FAILED", "CANCELLED")
log = logging.getLogger(__name__)


class Run:
    """Handle on one run: status, logs, metrics, artifact.

    Args:
        name: the run's name.
        connection: the Flow it runs on.
        experiment_name: the run's experiment, when known (it is then checked on every call).
        summary: what a listing said of the run (``config``, ``created_at``, ...), kept as given.
    """

    def __init__(
        self, name: str, connection: Connection, experiment_name: str | None = None, summary: dict | None = None
    ) -> None:
        self.name = name
        self.connection = connection
        self._experiment = experiment_name
        self._summary = dict(summary or {})

    def __repr__(self) -> str:
        return f"Run({self.name!r}, host={self.connection.host!r})"

    def record(self) -> dict:
        """Everything the tuner knows about the run."""
        query = {"run_name": self.name}
        if self._experiment is not None:
            query["experiment_name"] = self._experiment
        record = self.connection.call("/runs/status", query)
        self._experiment = record.get("experiment_name", self._experiment)
        self._summary.update(config=record.get("recipe"), description=record.get("description"))
        self._summary.update(created_at=record.get("created_at"))
        return record

    @property
    def summary(self) -> dict:
        """What the listing that made this handle said of the run (status and times as they were then)."""
        return dict(self._summary)

    @property
    def experiment_name(self) -> str:
        """The experiment the run belongs to (``default`` unless ``fit`` named one)."""
        if self._experiment is None:
            self.record()
        return self._experiment

    @property
    def config(self) -> dict:
        """The run's options as the tuner stored them (its whole recipe, defaults filled in)."""
        return self._known("config")

    @property
    def created_at(self) -> str:
        return self._known("created_at")

    @property
    def description(self) -> str:
        return self._known("description")

    def _known(self, key: str):
        """A fixed fact of the run: from the listing that made this handle, else asked for once."""
        if self._summary.get(key) is None:
            self.record()
        return self._summary[key]

    @property
    def artifact_id(self) -> str | None:
        """The finished run's artifact as ``model_artifact=`` and the tuner's catalogue name it; None before.

        The reference tool raises while a run is not finished; here it is None, so that it can be polled.
        """
        record = self.record()
        return self.name if record["status"] == "FINISHED" and record.get("artifact") else None

    def display_metrics(self) -> None:
        """Print the retrieval metrics before and after fine-tuning as a table (or say why there are none)."""
        from tunerflow.cli.tables import metrics_table

        metrics = self.metrics()
        if metrics.get("before") and metrics.get("after"):
            print(metrics_table(metrics))
        else:
            print(
                f"run {self.name} has no evaluation metrics (it is {self.status()['status']}; "
                "evaluate with callbacks=[EvaluationCallback(query_data=..., index_data=...)])"
            )

    def status(self) -> dict:
        """``{'status': CREATED | STARTED | FINISHED | FAILED | CANCELLED, 'details': ..., 'progress': ...}``."""
        record = self.record()
        return {"status": record["status"], "details": record["details"], "progress": record.get("progress", {})}

    def logs(self) -> str:
        """The whole log so far."""
        return self.connection.call("/runs/logs", {"run_name": self.name})["text"]

    def stream_logs(self, interval: float = 1.0) -> Iterator[str]:
        """Yield log lines as they are written, until the run has ended."""
        offset, pending = 0, ""
        while True:
            answer = self.connection.call("/runs/logs", {"run_name": self.name, "offset": offset})
            offset = answer["next_offset"]
            pending += answer["text"]
            *lines, pending = pending.split("\n")
            yield from lines
            if answer["status"] in DONE and not answer["text"]:
                if pending:
                    yield pending
                return
            if not answer["text"]:
                time.sleep(interval)

    def metrics(self) -> dict:
        """Metrics before fine-tuning, per epoch and after, under the reference tool's names."""
        return self.connection.call("/runs/metrics", {"run_name": self.name})

    def wait(self, interval: float = 2.0, timeout: float | None = None) -> dict:
        """Poll until the run has ended; returns its final status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (status := self.status())["status"] not in DONE:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.name} is still {status['status']} after {timeout} s")
            time.sleep(interval)
        return status

    def cancel(self) -> dict:
        return self.connection.call("/runs/cancel", {"run_name": self.name})

    def promote(self) -> dict:
        """Serve this finished run's artifact now, whatever its ``publish`` policy decided.

        Returns ``{'served', 'rollback_to', 'history', 'changed'}``.
        """
        return self.connection.call("/runs/promote", {"run_name": self.name})

    def save_artifact(self, directory: str | Path = ".", chunk_size: int = 4 * 1024 * 1024, wait: bool = True) -> Path:
        """Download the finished run's artifact as ``<directory>/<run>.zip`` (checked by SHA-256).

        Args:
            wait: a run still queued or training is waited for first (a script that saves right after
                ``fit`` gets the artifact, as the reference guide's does); False: refused at once.
        """
        if wait and (status := self.status()["status"]) not in DONE:
            log.warning("run %s is %s: waiting for it to end before saving its artifact", self.name, status)
            self.wait()
        directory = Path(directory).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{self.name}.zip"
        partial = directory / f".{self.name}.zip.partial"
        digest, offset, expected = hashlib.sha256(), 0, None
        with partial.open("wb") as handle:
            while True:
                chunk = self.connection.call(
                    "/runs/artifact", {"run_name": self.name, "offset": offset, "size": chunk_size}
                )
                data = base64.b64decode(chunk["data"])
                handle.write(data)
                digest.update(data)
                offset = chunk["next_offset"]
                if offset >= chunk["total"]:
                    expected = chunk.get("sha256")
                    break
        if expected != digest.hexdigest():
            partial.unlink(missing_ok=True)
            raise ArtifactError(f"download of {self.name}'s artifact is corrupt (SHA-256 mismatch)", str(target))
        partial.replace(target)
        return target
