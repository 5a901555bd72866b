"""Values as they cross protobuf: give whole numbers back their int type."""

from __future__ import annotations

from typing import Any


def whole_numbers(value: Any) -> Any:
    """Protobuf carries every number as a float: whole floats (below 2**53) become ints, recursively."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    return value
