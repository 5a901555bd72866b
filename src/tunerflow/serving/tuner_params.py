"""Request parameters of the TunerExecutor, shared with the client."""

from __future__ import annotations

from typing import Any, Dict, Optional

from pydantic import Field, conint, create_model, validator

from tunerflow.serving.parameters import StrictParameters
from tunerflow.training.recipe import Recipe


class DatasetParameters(StrictParameters):
    """``/datasets/append``: which dataset the documents go to."""

    dataset: str


class _RunParametersBase(StrictParameters):
    """``/runs/start``: a run's options; what is left out comes from the default recipe (config.yml).

    Its fields are made from the option declarations on :class:`~tunerflow.training.recipe.Recipe`
    (see :func:`_run_fields`); every value is checked by its declaration's ``parse``, so a bad
    value is refused here with the message the recipe gives.
    """

    @validator("*", pre=True)
    def _declared(cls, value: Any, field) -> Any:  # noqa: N805 (pydantic passes the class)
        return value if value is None else _DECLARED[field.name].parse(value)

    def options(self) -> dict[str, Any]:
        """The options that were given (None means: use the default)."""
        return {key: value for key, value in self.dict().items() if value is not None}


# Wire types: enums travel as their string values, mappings as JSON objects. Keep these plain:
# the gateway rebuilds the model from its JSON schema, and knows only the basic types.
_WIRE_TYPES = {bool: bool, int: int, float: float, str: str, dict: Dict[str, Any]}
_DECLARED = {declared.name: declared for declared in Recipe.options()}


def _run_fields() -> dict[str, tuple[Any, Any]]:
    fields = {}
    for declared in Recipe.options():
        schema: dict[str, Any] = {"description": declared.describe()}
        if declared.choices:
            schema["enum"] = list(declared.choices)
        if declared.minimum is not None:
            schema["exclusiveMinimum" if declared.above else "minimum"] = declared.minimum
        if declared.maximum is not None:
            schema["exclusiveMaximum" if declared.below else "maximum"] = declared.maximum
        wire = _WIRE_TYPES.get(declared.kind, str)
        if declared.per_run and declared.required:  # train_data: every run names its data
            fields[declared.name] = (wire, Field(..., **schema))
        else:
            fields[declared.name] = (Optional[wire], Field(None, **schema))
    return fields


RunParameters = create_model("RunParameters", __base__=_RunParametersBase, __module__=__name__, **_run_fields())
RunParameters.__doc__ = _RunParametersBase.__doc__


# Offsets past any real log or artifact (1 TiB) are refused here rather than failing a seek later.
MAX_OFFSET = 2**40


class RunQuery(StrictParameters):
    """``/runs/status``, ``/runs/metrics``, ``/runs/cancel``: which run."""

    run_name: str


class LogQuery(StrictParameters):
    """``/runs/logs``: a run's log from a byte offset (to follow it, pass back ``next_offset``)."""

    run_name: str
    offset: conint(ge=0, le=MAX_OFFSET) = 0


class ArtifactQuery(StrictParameters):
    """``/runs/artifact``: one chunk of the run's artifact zip, base64 in the answer."""

    run_name: str
    offset: conint(ge=0, le=MAX_OFFSET) = 0
    size: conint(ge=1, le=8 * 1024 * 1024) = 4 * 1024 * 1024


class PublicationQuery(StrictParameters):
    """``/runs/rollback``, ``/runs/served``: no parameters (any given is refused)."""
