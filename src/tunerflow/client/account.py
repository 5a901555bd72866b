"""``login`` and ``get_token`` as the reference tool names them: there is no account here, only API keys.

A ported script's ``finetuner.login()`` keeps working: it warns once that no
login is needed, and the gateway's API key comes from ``api_key=`` or
``$TUNERFLOW_API_KEY`` as for every call.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from tunerflow.client.connection import API_KEY_ENV

_warned = False


def login(*args: Any, **kwargs: Any) -> None:
    """Accept the reference tool's arguments (``force``, ``interactive``, ...) and do nothing but warn once."""
    _warn_once()


def notebook_login(*args: Any, **kwargs: Any) -> None:
    """The reference tool's notebook login: as :func:`login`."""
    _warn_once()


def connect(*args: Any, **kwargs: Any) -> None:
    """The reference tool's connection to its cloud: nothing to connect to; calls name their Flow with ``host``."""
    _warn_once()


def get_token(*args: Any, **kwargs: Any) -> str | None:
    """The API key calls use when none is passed: ``$TUNERFLOW_API_KEY``, or None."""
    _warn_once()
    return os.environ.get(API_KEY_ENV) or None


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"tunerflow needs no login: pass the gateway's API key as api_key= or set ${API_KEY_ENV}",
            UserWarning,
            stacklevel=3,
        )
