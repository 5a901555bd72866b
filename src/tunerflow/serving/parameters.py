"""Base class of request parameter models: unknown keys are errors, jina's own keys are not."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, root_validator, validator

from tunerflow.errors import ConfigError


class StrictParameters(BaseModel):
    """Refuses unknown parameters (a typo must not be ignored silently).

    Jina adds bookkeeping keys such as ``__results__`` to the parameters it
    forwards; keys that start with ``__`` are dropped before validation. Over
    HTTP the gateway itself drops unknown keys before they reach the executor.
    """

    @root_validator(pre=True)
    def _drop_jina_keys(cls, values: dict) -> dict:  # noqa: N805 (pydantic passes the class)
        return {key: value for key, value in values.items() if not str(key).startswith("__")}

    @validator("*", pre=True)
    def _whole_numbers(cls, value: Any, field) -> Any:  # noqa: N805 (pydantic passes the class)
        """Integer fields take whole numbers only (3 and 3.0, as protobuf sends it; never 2.5 or true)."""
        kind = field.type_
        if not (isinstance(kind, type) and issubclass(kind, int)) or issubclass(kind, bool):
            return value
        if isinstance(value, bool):
            raise ValueError(f"{field.name} must be a whole number, got {value}")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{field.name} must be a whole number, got {value}")
            return int(value)
        return value

    class Config:
        extra = "forbid"


class NoParameters(StrictParameters):
    """Endpoints that take no parameters: any parameter is refused."""


class ParameterError(ConfigError):
    """A request's parameters were refused by their model (HTTP 422); the message lists each problem."""


def describe_errors(errors: list[dict], skip: int = 0) -> str:
    """pydantic's error list as one line: ``field: problem; field: problem`` (``skip`` leading loc parts)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'][skip:]) or 'body'}: {e['msg']}" for e in errors)
