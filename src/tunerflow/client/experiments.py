"""Experiments in the reference tool's words: ``Experiment`` and ``create/get/list/delete_experiment(s)``.

An experiment groups runs (``fit(..., experiment_name=...)`` creates it when
it does not exist yet); the tuner keeps experiments across restarts. Deleting
one deletes its runs. Each function also takes ``host=`` and ``api_key=``.
"""

from __future__ import annotations

from typing import Any

from tunerflow.client.connection import Connection
from tunerflow.client.run import Run
from tunerflow.client.runs import run_from_summary


class Experiment:
    """One experiment on a tuner: its runs, listed, fetched, created and deleted.

    Attributes:
        name, status, created_at, description: as the tuner keeps them (status is ``ACTIVE``).
        runs: how many runs it held when fetched.
    """

    def __init__(self, connection: Connection, entry: dict) -> None:
        self.connection = connection
        self.name: str = entry["name"]
        self.status: str = entry.get("status", "ACTIVE")
        self.created_at: str = entry.get("created_at", "")
        self.description: str = entry.get("description", "")
        self.runs: int = entry.get("runs", 0)

    def __repr__(self) -> str:
        return f"Experiment({self.name!r}, runs={self.runs}, host={self.connection.host!r})"

    def get_run(self, name: str) -> Run:
        run = Run(name, self.connection, self.name)
        run.record()
        return run

    def list_runs(self, page: int = 1, size: int = 50) -> list[Run]:
        """This experiment's runs, newest first, ``size`` (at most 100) per page."""
        answer = self.connection.call("/runs/list", {"experiment_name": self.name, "page": page, "size": size})
        return [run_from_summary(self.connection, summary) for summary in answer["runs"]]

    def delete_run(self, name: str) -> None:
        self.connection.call("/runs/delete", {"run_name": name, "experiment_name": self.name})

    def delete_runs(self) -> None:
        self.connection.call("/runs/delete_all", {"experiment_name": self.name})

    def create_training_run(self, model: str, train_data: Any, run_name: str | None = None, **options: Any) -> Run:
        """``fit`` with this experiment (and its host and key); ``options`` as ``fit`` takes them."""
        from tunerflow.client.fit import fit

        options.setdefault("host", self.connection.host)
        options.setdefault("api_key", self.connection.api_key)
        return fit(model, train_data, run_name=run_name, experiment_name=self.name, **options)

    create_run = create_training_run  # the name older releases of the reference tool used


def create_experiment(
    name: str = "default", description: str = "", host: str | None = None, api_key: str | None = None
) -> Experiment:
    """A new, empty experiment (an existing name is refused: 409 over HTTP)."""
    connection = Connection(host, api_key)
    return Experiment(connection, connection.call("/experiments/create", {"name": name, "description": description}))


def get_experiment(name: str, host: str | None = None, api_key: str | None = None) -> Experiment:
    connection = Connection(host, api_key)
    return Experiment(connection, connection.call("/experiments/get", {"name": name}))


def list_experiments(
    page: int = 1, size: int = 50, host: str | None = None, api_key: str | None = None
) -> list[Experiment]:
    """Experiments newest first, ``size`` (at most 100) on page ``page``."""
    connection = Connection(host, api_key)
    answer = connection.call("/experiments/list", {"page": page, "size": size})
    return [Experiment(connection, entry) for entry in answer["experiments"]]


def delete_experiment(name: str, host: str | None = None, api_key: str | None = None) -> Experiment:
    """Delete an experiment and all its runs (none if one of them is queued, running or served); returns it."""
    connection = Connection(host, api_key)
    return Experiment(connection, connection.call("/experiments/delete", {"name": name})["deleted"][0])


def delete_experiments(host: str | None = None, api_key: str | None = None) -> list[Experiment]:
    """Delete every experiment and every run; returns the deleted experiments."""
    connection = Connection(host, api_key)
    return [Experiment(connection, entry) for entry in connection.call("/experiments/delete_all")["deleted"]]
