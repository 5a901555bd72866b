"""``fit``: stream the data to the tuner, start the run, return a :class:`Run`."""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tunerflow.client.connection import Connection
from tunerflow.client.data import is_file_path, labeled_docs
from tunerflow.client.models import check_model
from tunerflow.client.run import Run
from tunerflow.errors import ConfigError, DataError
from tunerflow.serving.tuner_params import RunParameters
from tunerflow.settings import section
from tunerflow.training.recipe import Recipe


@dataclass
class EvaluationCallback:
    """Evaluate retrieval after every epoch, as the reference tool's callback.

    Args:
        query_data: the queries (same forms as ``train_data``).
        index_data: the documents searched; None: the queries are their own index.
        limit: matches per query (the metrics' k); None: the recipe's ``eval_limit``.
    """

    query_data: Any
    index_data: Any = None
    limit: int | None = None


def fit(
    model: str | None = None,
    train_data: Any = None,
    *,
    callbacks: list | None = None,
    host: str | None = None,
    api_key: str | None = None,
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
        api_key: the API key of the gateway (default: ``$TUNERFLOW_API_KEY``).
        chunk_size: documents per upload request.
        progress: show upload progress bars (default: when stderr is a terminal).
        options: any run option (``loss``, ``miner``, ``learning_rate``, ``epochs``,
            ``batch_size``, ``run_name``, ``experiment_name``, ``description``,
            ``to_onnx``, ...); see ``config.yml``. Unknown names and bad values are
            refused (ConfigError) before anything is uploaded.
    """
    if train_data is None:
        raise TypeError("fit() needs train_data")
    options["run_name"] = options.get("run_name") or _new_run_name()
    if model is not None:
        options["model"] = model
    run_name = options["run_name"]
    data = {"train_data": (train_data, f"{run_name}-train")}
    for callback in callbacks or []:
        if not isinstance(callback, EvaluationCallback):
            raise TypeError(f"unsupported callback {callback!r}; use EvaluationCallback")
        data["eval_query_data"] = (callback.query_data, f"{run_name}-query")
        if callback.index_data is not None:
            data["eval_index_data"] = (callback.index_data, f"{run_name}-index")
        if callback.limit is not None:
            options["eval_limit"] = callback.limit
    # Every name and value is checked before anything is uploaded, as the tuner will check them.
    check_run_options({**options, **{key: _dataset_name(*given) for key, given in data.items()}})
    connection = Connection(host, api_key)
    if model is not None:
        check_model(connection, model)  # a model the tuner cannot train is refused before any upload
    show = sys.stderr.isatty() if progress is None else progress
    for key, (given, name) in data.items():
        options[key] = _dataset(connection, given, name, chunk_size, show)
    connection.call("/runs/start", _parameters(options).options())
    return Run(run_name, connection)


def check_run_options(options: dict[str, Any]) -> None:
    """Refuse ``options`` as the tuner would: the request model, then the recipe over config.yml's defaults.

    Raises:
        ConfigError: with the tuner's message (a bad name, type, bound, choice or component).
    """
    Recipe.from_options(section("recipe"), _parameters(options).options())


def _parameters(options: dict[str, Any]) -> RunParameters:
    try:
        return RunParameters(**options)
    except ValidationError as error:
        raise ConfigError(str(error)) from None


def _new_run_name() -> str:
    return f"run-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def promote(run: Run | str, host: str | None = None) -> dict:
    """Serve the finished run's artifact now (``run``: a :class:`Run` or a run name)."""
    if isinstance(run, Run):
        return run.promote()
    return Run(run, Connection(host)).promote()


def rollback(host: str | None = None) -> dict:
    """Serve the artifact served before the current one again; returns what is served and the history."""
    return Connection(host).call("/runs/rollback")


def served(host: str | None = None) -> dict:
    """What is served, what a rollback goes back to, and the history of served artifacts."""
    return Connection(host).call("/runs/served")


def _dataset_name(data: Any, name: str) -> str:
    """The dataset ``data`` will be: a plain string that is no file names a stored dataset, else ``name``."""
    if isinstance(data, str) and not is_file_path(data) and "/" not in data and not data.endswith((".csv", ".jsonl")):
        return data
    return name


def _dataset(connection: Connection, data: Any, name: str, chunk_size: int | None, show: bool) -> str:
    """Upload ``data`` as dataset ``name``, unless it names a stored dataset."""
    if _dataset_name(data, name) != name:
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
