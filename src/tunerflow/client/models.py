"""Which models can be trained: ``describe_models``, ``list_models`` and the check ``fit`` makes before uploading.

Without ``host`` the local catalogue answers (the bundled model, the model roots
of config.yml and ``$TUNERFLOW_MODEL_ROOTS``, the Hugging Face cache): what a
tuner started on this machine offers. With ``host`` the tuner there answers
(``/models/list``), as its own catalogue (and its artifacts) stand.
"""

from __future__ import annotations

from typing import Any

from tunerflow.client.connection import Connection
from tunerflow.errors import ConfigError

TEXT_TO_TEXT = "text-to-text"
# The reference tool's other tasks: named so that a ported script is told why, not that the word is unknown.
OTHER_TASKS = ("text-to-image", "image-to-image", "mesh-to-mesh")


def catalogue_models(host: str | None = None, api_key: str | None = None) -> list[dict[str, Any]]:
    """Each model's ``name``, ``source``, ``architecture``, ``dimension``, ``parameters`` and ``size`` (bytes)."""
    if host is not None:
        return Connection(host, api_key).call("/models/list")["models"]
    from tunerflow.modeling.catalogue import Catalogue
    from tunerflow.settings import section

    return Catalogue.from_settings(section("models")).describe()


def describe_models(task: str | None = None, host: str | None = None, api_key: str | None = None) -> None:
    """Print the models that can be fine-tuned as a table (name, architecture, dimension, size, source).

    Args:
        task: None or ``text-to-text`` (the only task here; the reference tool's others are refused).
    """
    from tunerflow.cli.tables import models_table

    _check_task(task)
    print(models_table(catalogue_models(host, api_key)))


def list_models(
    details: bool = False, host: str | None = None, api_key: str | None = None
) -> list[str] | list[dict[str, Any]]:
    """The names of the models that can be fine-tuned (with ``details``: the table's rows as dicts)."""
    models = catalogue_models(host, api_key)
    return models if details else [entry["name"] for entry in models]


def list_model_options(host: str | None = None, api_key: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per model, the ``model_options`` that ``fit`` and ``build_model`` take (the reference tool's names too)."""
    options = [
        {"name": "pooling", "type": str, "required": False, "default": None, "aliases": ["pooler"],
         "choices": ["mean", "cls", "max"]},
        {"name": "max_length", "type": int, "required": False, "default": None, "aliases": ["max_seq_length"]},
    ]  # fmt: skip
    return {name: [dict(option) for option in options] for name in list_models(host=host, api_key=api_key)}


def check_model(connection: Connection, model: str) -> None:
    """Ask the tuner whether a run may name ``model``; its refusal (RemoteError) says what to do instead."""
    connection.call("/models/resolve", {"model": str(model)})


def _check_task(task: str | None) -> None:
    if task is None or task == TEXT_TO_TEXT:
        return
    if task in OTHER_TASKS:
        raise ConfigError(f"task {task!r}: tunerflow fine-tunes text embedding models only (task {TEXT_TO_TEXT!r})")
    raise ConfigError(f"unknown task {task!r}; choose {TEXT_TO_TEXT!r} (or None)")
