"""The Python client in the reference tool's words: ``fit``, ``get_run``, ``Run``, ``EvaluationCallback``.

It talks to a running train-then-serve Flow (``flows/train.yml``) over gRPC or
HTTP. jina is imported when a call needs it, never at ``import tunerflow``.
"""

from tunerflow.client.fit import EvaluationCallback, fit, get_run, list_runs, promote, rollback, served
from tunerflow.client.run import Run

__all__ = ["EvaluationCallback", "Run", "fit", "get_run", "list_runs", "promote", "rollback", "served"]
