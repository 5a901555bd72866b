"""Base class of request parameter models: unknown keys are errors, jina's own keys are not."""

from __future__ import annotations

from pydantic import BaseModel, root_validator


class StrictParameters(BaseModel):
    """Refuses unknown parameters (a typo must not be ignored silently).

    Jina adds bookkeeping keys such as ``__results__`` to the parameters it
    forwards; keys that start with ``__`` are dropped before validation. Over
    HTTP the gateway itself drops unknown keys before they reach the executor.
    """

    @root_validator(pre=True)
    def _drop_jina_keys(cls, values: dict) -> dict:  # noqa: N805 (pydantic passes the class)
        return {key: value for key, value in values.items() if not str(key).startswith("__")}

    class Config:
        extra = "forbid"


class NoParameters(StrictParameters):
    """Endpoints that take no parameters: any parameter is refused."""
