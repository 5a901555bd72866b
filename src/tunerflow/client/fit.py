"""``fit``: stream the data to the tuner, start the run, return a :class:`Run`."""

from __future__ import annotations

import logging
import secrets
import sys
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tunerflow.callback import EvaluationCallback, callback_options
from tunerflow.client.connection import Connection
from tunerflow.client.data import is_file_path, is_pair_data, labeled_docs
from tunerflow.client.models import check_model
from tunerflow.client.run import Run
from tunerflow.data.csv_options import CSVOptions
from tunerflow.errors import ConfigError, DataError
from tunerflow.serving.tuner_params import RunParameters
from tunerflow.settings import section
from tunerflow.training.data_defaults import RULED
from tunerflow.training.recipe import Recipe

log = logging.getLogger(__name__)


PAIR_LOSS = {"loss": "NTXentLoss", "loss_options": {"temperature": 0.05}, "miner": "none", "num_items_per_class": 2}
PAIR_LOSS_WHY = (
    "pair data: training with NTXentLoss (temperature 0.05) and no miner, in-batch negatives: each pair is its "
    "own label and the other pairs of the batch are its negatives (give loss= to choose another)"
)

# Where config.yml's defaults differ from the reference tool's (Finetuner 0.7/0.8 fit) and why; an entry
# is reported when the user left all of its options out. The values are checked against config.yml in tests.
REFERENCE_DEFAULTS = (
    (("loss",), "loss {loss} (Finetuner: TripletMarginLoss): gained most on WikiAnswers, see config.yml"),
    (("miner",), "miner {miner} (Finetuner: none): the loss's own miner, part of the measured default"),
    (("optimizer",), "optimizer {optimizer} (Finetuner: Adam)"),
    (
        ("optimizer_options",),
        "optimizer_options {optimizer_options} (Finetuner: none): weight decay, the usual BERT fine-tuning setting",
    ),
    (
        ("scheduler", "warmup_ratio", "scheduler_options"),
        "scheduler {scheduler} with warmup_ratio {warmup_ratio} (Finetuner: none, a constant learning rate): "
        "the usual BERT fine-tuning schedule",
    ),
    (("max_length",), "max_length {max_length} tokens (Finetuner: the model's limit): short questions, less padding"),
    (("learning_rate",), "learning_rate {learning_rate} (Finetuner: the model's own): measured, see config.yml"),
    (("epochs",), "epochs {epochs} (Finetuner: 5)"),
    (("batch_size",), "batch_size {batch_size} (Finetuner: 64)"),
    (
        ("precision",),
        "precision {precision} (Finetuner: fp32): bf16 on a CPU with AMX bf16 tiles, 1.4-1.7x faster at the same "
        "measured quality, else fp32",
    ),
    (
        ("keep_best",),
        "keep_best {keep_best}: the best epoch is published (Finetuner: the last, unless BestModelCheckpoint)",
    ),
)


def fit(
    model: str | None = None,
    train_data: Any = None,
    eval_data: Any = None,
    *,
    callbacks: list | None = None,
    csv_options: CSVOptions | None = None,
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
            ``tags['finetuner_label']``), a list of ``(text, label)`` pairs, a CSV or JSONL path,
            or the name of a dataset the tuner already holds. A CSV is read as ``query,document``
            pairs unless ``csv_options=CSVOptions(is_labeled=True)`` or a ``text,label`` header
            (see :mod:`tunerflow.client.data`); pairs train with NTXentLoss unless ``loss`` is given.
        eval_data: labelled data (same forms) whose loss is ``val_loss`` after every epoch.
        callbacks: the callbacks of :mod:`tunerflow.callback` (evaluation, best epoch, early stopping, ...).
        csv_options: how CSV files (and 2-tuple lists) are read, the reference tool's ``CSVOptions``.
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
    if csv_options is not None:
        csv_options.check()
    options["run_name"] = options.get("run_name") or _new_run_name()
    if model is not None:
        options["model"] = model
    _move_scheduler_step(options)
    given = {key for key, value in options.items() if value is not None}
    run_name = options["run_name"]
    data = {"train_data": (train_data, f"{run_name}-train")}
    if eval_data is not None:
        data["eval_data"] = (eval_data, f"{run_name}-eval")
    for key, value in callback_options(callbacks or []).items():
        if key in given and options[key] != value:
            raise ConfigError(f"{key} is given as {options[key]!r} and by a callback as {value!r}; give it once")
        options[key] = value
    for callback in callbacks or []:
        if isinstance(callback, EvaluationCallback):
            data["eval_query_data"] = (callback.query_data, f"{run_name}-query")
            if callback.index_data is not None:
                data["eval_index_data"] = (callback.index_data, f"{run_name}-index")
    if is_pair_data(train_data, csv_options) and "loss" not in given:
        options.update({key: value for key, value in PAIR_LOSS.items() if key not in given})
        log.warning("%s", PAIR_LOSS_WHY)
    # Every name and value is checked before anything is uploaded, as the tuner will check them.
    check_run_options({**options, **{key: _dataset_name(*given_data) for key, given_data in data.items()}})
    differences = reference_differences(options)
    if differences:
        log.warning("%s", differences)
    connection = Connection(host, api_key)
    # A model (or run artifact to continue) the tuner cannot train is refused before any upload.
    if options.get("model_artifact"):
        _check_model_artifact(connection, options["model_artifact"])
    elif model is not None:
        check_model(connection, model)
    show = sys.stderr.isatty() if progress is None else progress
    for key, (given_data, name) in data.items():
        options[key] = _dataset(connection, given_data, name, chunk_size, show, csv_options)
    connection.call("/runs/start", _parameters(options).options())
    return Run(run_name, connection)


def reference_differences(options: dict[str, Any]) -> str:
    """One line naming where config.yml's defaults, which ``options`` leaves in place, differ from the
    reference tool's, and why; '' when none does."""
    defaults = section("recipe")
    aware = defaults.get("data_aware") if options.get("data_aware") is None else options["data_aware"]
    parts = [
        (f"{names[0]} chosen from the data (data_aware), else " if aware and names[0] in RULED else "")
        + text.format(**defaults)
        for names, text in REFERENCE_DEFAULTS
        if all(options.get(name) is None for name in names) and defaults.get(names[0]) not in (None, {}, "none")
    ]
    if not parts:
        return ""
    return "defaults that differ from Finetuner's (pass them to fit to change them): " + "; ".join(parts)


def _move_scheduler_step(options: dict[str, Any]) -> None:
    """The reference tool also takes ``scheduler_step`` inside ``scheduler_options``: make it its own option."""
    scheduler_options = options.get("scheduler_options")
    if isinstance(scheduler_options, dict) and "scheduler_step" in scheduler_options:
        scheduler_options = dict(scheduler_options)
        step = scheduler_options.pop("scheduler_step")
        if options.get("scheduler_step") not in (None, step):
            raise ConfigError(f"scheduler_step is {options['scheduler_step']!r} and scheduler_options says {step!r}")
        options["scheduler_step"], options["scheduler_options"] = step, scheduler_options


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


def _check_model_artifact(connection: Connection, run_name: str) -> None:
    """``model_artifact`` names a finished run of the tuner (its artifact is what the new run trains on)."""
    status = connection.call("/runs/status", {"run_name": run_name})["status"]
    if status != "FINISHED":
        raise ConfigError(f"model_artifact {run_name!r}: that run is {status}; only a FINISHED run has an artifact")


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


def _dataset(
    connection: Connection, data: Any, name: str, chunk_size: int | None, show: bool, csv_options: CSVOptions | None
) -> str:
    """Upload ``data`` as dataset ``name``, unless it names a stored dataset."""
    if _dataset_name(data, name) != name:
        return data
    bar = _progress_bar(name, show)
    try:
        counts = connection.upload(name, labeled_docs(data, csv_options), chunk_size, bar.update if bar else None)
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
