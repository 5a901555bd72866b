"""Run management in the reference tool's words: ``get_run``, ``list_runs``, ``delete_run``, ``delete_runs``.

The reference tool's functions take no host: each one here also takes ``host=``
(default: config.yml's ``client.host``) and ``api_key=`` (default:
``$TUNERFLOW_API_KEY``), after the reference tool's own arguments.
"""

from __future__ import annotations

from tunerflow.client.connection import Connection
from tunerflow.client.run import Run


def get_run(
    run_name: str, experiment_name: str | None = None, host: str | None = None, api_key: str | None = None
) -> Run:
    """A handle on an existing run; with ``experiment_name``, the run must belong to that experiment.

    Raises:
        RemoteError: the tuner knows no such run (404 over HTTP).
    """
    run = Run(run_name, Connection(host, api_key), experiment_name)
    run.record()
    return run


def list_runs(
    experiment_name: str | None = None,
    page: int = 1,
    size: int = 50,
    host: str | None = None,
    api_key: str | None = None,
) -> list[Run]:
    """Runs newest first, ``size`` (at most 100) on page ``page``; of one experiment when given, else of all."""
    connection = Connection(host, api_key)
    query = {"page": page, "size": size, **({"experiment_name": experiment_name} if experiment_name else {})}
    return [run_from_summary(connection, summary) for summary in connection.call("/runs/list", query)["runs"]]


def delete_run(
    run_name: str, experiment_name: str | None = None, host: str | None = None, api_key: str | None = None
) -> None:
    """Delete an ended run with its record, log, checkpoints and artifact.

    A queued or running run is refused (ConflictError on the tuner: 409 over HTTP): cancel it
    first, then delete it once it is CANCELLED. The served artifact's run is refused too.
    """
    query = {"run_name": run_name, **({"experiment_name": experiment_name} if experiment_name else {})}
    Connection(host, api_key).call("/runs/delete", query)


def delete_runs(experiment_name: str | None = None, host: str | None = None, api_key: str | None = None) -> None:
    """Delete every run of ``experiment_name``, or every run of every experiment (all, or none: see ``delete_run``)."""
    Connection(host, api_key).call("/runs/delete_all", {"experiment_name": experiment_name} if experiment_name else {})


def run_from_summary(connection: Connection, summary: dict) -> Run:
    """A Run from a listing's entry (its config and times kept, fetched again by no call)."""
    return Run(summary["run_name"], connection, summary["experiment_name"], summary)
