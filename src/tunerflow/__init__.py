"""tunerflow: fine-tune and serve text embedding models on your own hardware.

The core never imports jina; the client functions (``fit``, ``get_run``) import
it only when called.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "get_model": "tunerflow.api",
    "build_model": "tunerflow.api",
    "encode": "tunerflow.api",
    "cos_sim": "tunerflow.api",
    "list_callbacks": "tunerflow.api",
    "save_artifact": "tunerflow.export",
    "load_artifact": "tunerflow.artifact",
    "load_model": "tunerflow.artifact",
    "BUNDLED_MODEL": "tunerflow.modeling.sources",
    "fit": "tunerflow.client",
    "create_run": "tunerflow.client",
    "get_run": "tunerflow.client",
    "list_runs": "tunerflow.client",
    "delete_run": "tunerflow.client",
    "delete_runs": "tunerflow.client",
    "Experiment": "tunerflow.client",
    "create_experiment": "tunerflow.client",
    "get_experiment": "tunerflow.client",
    "list_experiments": "tunerflow.client",
    "delete_experiment": "tunerflow.client",
    "delete_experiments": "tunerflow.client",
    "describe_models": "tunerflow.client",
    "list_models": "tunerflow.client",
    "list_model_options": "tunerflow.client",
    "login": "tunerflow.client",
    "notebook_login": "tunerflow.client",
    "connect": "tunerflow.client",
    "get_token": "tunerflow.client",
    "promote": "tunerflow.client",
    "rollback": "tunerflow.client",
    "served": "tunerflow.client",
    "Run": "tunerflow.client",
    "EvaluationCallback": "tunerflow.callback",
    "CSVOptions": "tunerflow.data.csv_options",
    "index": "tunerflow.client.search",
    "search_status": "tunerflow.client.search",
    "SearchMatch": "tunerflow.client.search",
}

__all__ = ["__version__", *_LAZY, "search", "callback"]


def __getattr__(name: str) -> Any:
    """Import heavy modules (torch, transformers) on first use, not at ``import tunerflow``."""
    import importlib

    if name == "callback":  # ``tunerflow.callback``, as ``finetuner.callback``
        return importlib.import_module("tunerflow.callback")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tunerflow' has no attribute {name!r}")


class _Package(types.ModuleType):
    """``tunerflow.search`` is the client's ``search`` function, as the reference tool's API names it.

    The core subpackage ``tunerflow/search/`` has the same name: importing it would make the import
    system set ``tunerflow.search`` to the subpackage. This property keeps the name the function;
    ``from tunerflow.search import Searcher`` still imports the subpackage (through ``sys.modules``).
    """

    @property
    def search(self):
        from tunerflow.client.search import search

        return search

    @search.setter
    def search(self, subpackage: types.ModuleType) -> None:
        """The import system's ``setattr(tunerflow, 'search', subpackage)``: the subpackage stays in sys.modules."""


sys.modules[__name__].__class__ = _Package
