"""The Python client in the reference tool's words: ``fit``, ``get_run``, ``Run``, experiments, models.

It talks to a running train-then-serve Flow (``flows/train.yml``) over gRPC or
HTTP. jina is imported when a call needs it, never at ``import tunerflow``.
"""

from tunerflow.client.account import connect, get_token, login, notebook_login
from tunerflow.client.experiments import (
    Experiment,
    create_experiment,
    delete_experiment,
    delete_experiments,
    get_experiment,
    list_experiments,
)
from tunerflow.client.fit import EvaluationCallback, fit, promote, rollback, served
from tunerflow.client.models import describe_models, list_model_options, list_models
from tunerflow.client.run import Run
from tunerflow.client.runs import delete_run, delete_runs, get_run, list_runs

__all__ = [
    "EvaluationCallback",
    "Experiment",
    "Run",
    "connect",
    "create_experiment",
    "create_run",
    "delete_experiment",
    "delete_experiments",
    "delete_run",
    "delete_runs",
    "describe_models",
    "fit",
    "get_experiment",
    "get_run",
    "get_token",
    "list_experiments",
    "list_model_options",
    "list_models",
    "list_runs",
    "login",
    "notebook_login",
    "promote",
    "rollback",
    "served",
]

create_run = fit  # the reference tool's other name for fit
