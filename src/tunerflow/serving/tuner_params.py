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
    """``/runs/status``, ``/runs/metrics``, ``/runs/cancel``, ``/runs/delete``: which run (in which experiment).

    ``experiment_name``, when given, must be the run's: a run of another experiment is not found.
    """

    run_name: str
    experiment_name: Optional[str] = None


# Pages as the reference tool's list_runs and list_experiments take them: page 1 is the newest.
MAX_PAGE_SIZE = 100


class PageQuery(StrictParameters):
    """``/experiments/list``: one page of ``size`` entries (at most 100), newest first."""

    page: conint(ge=1, le=MAX_OFFSET) = 1
    size: conint(ge=1, le=MAX_PAGE_SIZE) = 50


class RunListQuery(StrictParameters):
    """``/runs/list``: runs newest first, of one experiment when given; no ``size``: every run (the CLI)."""

    experiment_name: Optional[str] = None
    page: conint(ge=1, le=MAX_OFFSET) = 1
    size: Optional[conint(ge=1, le=MAX_PAGE_SIZE)] = None


class RunsQuery(StrictParameters):
    """``/runs/delete_all``: every run, or the runs of one experiment."""

    experiment_name: Optional[str] = None


class ExperimentQuery(StrictParameters):
    """``/experiments/get``, ``/experiments/delete``: which experiment."""

    name: str


class NewExperiment(StrictParameters):
    """``/experiments/create``: a new, empty experiment."""

    name: str
    description: str = ""


class ModelQuery(StrictParameters):
    """``/models/resolve``: whether the tuner can train the model a client names (before any upload)."""

    model: str


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
