"""What crosses the wire: the HTTP document limit the gateway and the client share; whole numbers after protobuf."""

from __future__ import annotations

from typing import Any

HTTP_MAX_DOCS = 10_000  # documents in one HTTP request: the gateway refuses more (413), the client pages below it


def whole_numbers(value: Any) -> Any:
    """Protobuf carries every number as a float: whole floats (below 2**53) become ints, recursively."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    return value
