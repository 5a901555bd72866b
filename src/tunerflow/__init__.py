"""tunerflow: fine-tune and serve text embedding models on your own hardware.

The core never imports jina; the client functions (``fit``, ``get_run``) import
it only when called.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "get_model": "tunerflow.api",
    "encode": "tunerflow.api",
    "save_artifact": "tunerflow.export",
    "load_artifact": "tunerflow.artifact",
    "load_model": "tunerflow.artifact",
    "BUNDLED_MODEL": "tunerflow.modeling.sources",
    "fit": "tunerflow.client",
    "get_run": "tunerflow.client",
    "list_runs": "tunerflow.client",
    "promote": "tunerflow.client",
    "rollback": "tunerflow.client",
    "served": "tunerflow.client",
    "Run": "tunerflow.client",
    "EvaluationCallback": "tunerflow.client",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import heavy modules (torch, transformers) on first use, not at ``import tunerflow``."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tunerflow' has no attribute {name!r}")
