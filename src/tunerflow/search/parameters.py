"""Request parameters of the search endpoints: one declaration, bounds included."""

from __future__ import annotations

from typing import Any, Dict, Optional

from pydantic import conint

from tunerflow.serving.parameters import StrictParameters

MAX_LIMIT = 1000
DEFAULT_LIMIT = 10


class SearchParameters(StrictParameters):
    """Parameters of ``/search``.

    Attributes:
        limit: matches per query, 1 to ``MAX_LIMIT`` (default ``DEFAULT_LIMIT``, at most the index size).
        filter: exact-match filter, ``{"label": "3"}`` or ``{"tags": {"lang": "en"}}``.
        model: the model that made query embeddings sent instead of texts; must be the index's.
    """

    limit: Optional[conint(ge=1, le=MAX_LIMIT)] = None
    filter: Optional[Dict[str, Any]] = None
    model: Optional[str] = None


class WriteParameters(StrictParameters):
    """``/index``, ``/update``, ``/delete`` and ``/clear`` take no parameters (a typo is an error)."""
