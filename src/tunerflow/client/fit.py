"""``fit``: stream the data to the tuner, start the run, return a :class:`Run`."""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tunerflow.client.connection import Connection
from tunerflow.client.data import is_file_path, labeled_docs
from tunerflow.client.run import Run
from tunerflow.errors import DataError
from tunerflow.serving.tuner_params import RunParameters


@dataclass
class EvaluationCallback:
    """Evaluate retrieval after every epoch, as the reference tool's callback.

    Args:
        query_data: the queries (same forms as ``train_data``).
        index_data: the documents searched; None: the queries are their own index.
        limit: matches per query (the metrics' k).
    """

    query_data: Any
    index_data: Any = None
    limit: int = 20


def fit(
    model: str | None = None,
    train_data: Any = None,
    *,
    callbacks: list | None = None,
    host: str | None = None,
    chunk_size: int | None = None,
    progress: bool | None = None,
    **options: Any,
) -> Run:
    """Fine-tune ``model`` on ``train_data`` on a remote TunerExecutor; returns the :class:`Run` at once.

    Args:
        model: model name, directory or artifact as the tuner sees it (default: config.yml).
        train_data: a DocList of documents with ``text`` and ``label`` (or
            ``tags['finetuner_label']``), a list of ``(text, label)`` pairs, a
            CSV (``text,label``) or JSONL path, or the name of a dataset the
            tuner already holds.
        callbacks: ``EvaluationCallback(query_data=..., index_data=...)`` to evaluate.
        host: the Flow, e.g. ``grpc://127.0.0.1:54321`` (default: config.yml).
        chunk_size: documents per upload request.
        progress: show upload progress bars (default: when stderr is a terminal).
        options: any run option (``loss``, ``miner``, ``learning_rate``, ``epochs``,
            ``batch_size``, ``run_name``, ``experiment_name``, ``description``,
            ``to_onnx``, ...); see ``config.yml``. Unknown names are refused.
    """
    if train_data is None:
        raise TypeError("fit() needs train_data")
    connection = Connection(host)
    run_name = options.get("run_name") or f"run-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    options["run_name"] = run_name
    if model is not None:
        options["model"] = model
    RunParameters(train_data=f"{run_name}-train", **options)  # unknown or mistyped options: refused before uploading
    show = sys.stderr.isatty() if progress is None else progress
    options["train_data"] = _dataset(connection, train_data, f"{run_name}-train", chunk_size, show)
    for callback in callbacks or []:
        if isinstance(callback, EvaluationCallback):
            options["eval_query_data"] = _dataset(
                connection, callback.query_data, f"{run_name}-query", chunk_size, show
            )
            if callback.index_data is not None:
                options["eval_index_data"] = _dataset(
                    connection, callback.index_data, f"{run_name}-index", chunk_size, show
                )
            options["eval_limit"] = callback.limit
        else:
            raise TypeError(f"unsupported callback {callback!r}; use EvaluationCallback")
    parameters = RunParameters(**options)
    connection.call("/runs/start", parameters.options())
    return Run(run_name, connection)


def get_run(run_name: str, host: str | None = None) -> Run:
    """A handle on an existing run (raises if the tuner does not know it)."""
    run = Run(run_name, Connection(host))
    run.record()
    return run


def list_runs(host: str | None = None) -> list[dict]:
    return Connection(host).call("/runs/list")["runs"]


def _dataset(connection: Connection, data: Any, name: str, chunk_size: int | None, show: bool) -> str:
    """Upload ``data`` as dataset ``name``; a plain string that is no file names a stored dataset."""
    if isinstance(data, str) and not is_file_path(data) and "/" not in data and not data.endswith((".csv", ".jsonl")):
        return data
    bar = _progress_bar(name, show)
    try:
        counts = connection.upload(name, labeled_docs(data), chunk_size, bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    if not counts:
        raise DataError(f"no documents in the data for {name}")
    return name


def _progress_bar(name: str, show: bool):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(desc=f"uploading {name}", unit=" docs", file=sys.stderr)
