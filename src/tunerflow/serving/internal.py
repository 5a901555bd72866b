"""The gateway-to-executor secret: executors answer only requests that came through the gateway.

The gateway puts the Flow's internal secret into every request it forwards
(a reserved key in ``parameters``, removed from client input first and from
answers before they leave); :class:`GatewayOnly`, mixed into every executor,
refuses requests without it. The secret is ``TUNERFLOW_INTERNAL_SECRET``
(set it on Kubernetes from a Secret), else a random one in
``$TUNERFLOW_HOME/.internal-secret`` made by the first process that needs it.
No jina here.
"""

from __future__ import annotations

import functools
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tunerflow.errors import TunerflowError
from tunerflow.paths import home_dir
from tunerflow.serving.access import auth_enabled
from tunerflow.serving.endpoints import ENDPOINTS
from tunerflow.serving.parameters import ParameterError, describe_errors

SECRET_ENV = "TUNERFLOW_INTERNAL_SECRET"
SECRET_FILE = ".internal-secret"
# Starts with "__": the strict parameter models drop such keys, so no endpoint ever sees it.
SECRET_PARAMETER = "__tunerflow_gateway__"
DRY_RUN_ENDPOINT = "_jina_dry_run_"  # jina's readiness probe: carries nothing, runs nothing


class NotFromGatewayError(TunerflowError, PermissionError):
    """A request reached an executor without passing the gateway."""


@functools.lru_cache(maxsize=1)
def internal_secret() -> str:
    """This Flow's secret (see the module docstring)."""
    value = os.environ.get(SECRET_ENV, "").strip()
    if value:
        return value
    return _secret_file(home_dir() / SECRET_FILE)


def _secret_file(path: Path) -> str:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        try:
            os.link(partial, path)  # atomic: of two processes racing, one file wins and both read it
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    return path.read_text().strip()


def stamp(parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` without any client-sent secret, with the real one added (gateway side)."""
    clean = strip(parameters)
    if auth_enabled():
        clean[SECRET_PARAMETER] = internal_secret()
    return clean


def strip(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """``parameters`` without the secret (for client input and for answers)."""
    return {key: value for key, value in (parameters or {}).items() if key != SECRET_PARAMETER}


def check(endpoint: str, parameters: dict[str, Any] | None) -> None:
    """Raise :class:`NotFromGatewayError` unless the request carries the secret (executor side)."""
    if endpoint == DRY_RUN_ENDPOINT or not auth_enabled():
        return
    given = (parameters or {}).get(SECRET_PARAMETER)
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), internal_secret().encode()):
        raise NotFromGatewayError(
            "this executor answers only requests forwarded by the tunerflow gateway; send them to the gateway"
        )


class GatewayOnly:
    """Executor mixin (put it before ``Executor``): every endpoint refuses requests that bypass the gateway.

    It also applies the endpoint's registered parameter model (:mod:`tunerflow.serving.endpoints`),
    so gRPC requests are held to the models the REST side declares, and turns pydantic's errors into
    a :class:`ParameterError` whose message names each field.
    """

    async def __acall__(self, req_endpoint: str, **kwargs: Any) -> Any:
        check(req_endpoint, kwargs.get("parameters"))
        if isinstance(kwargs.get("parameters"), dict):
            kwargs["parameters"] = strip(kwargs["parameters"])
        try:
            spec = ENDPOINTS.get(req_endpoint)
            if spec is not None and isinstance(kwargs.get("parameters"), dict):
                spec.parameters(**kwargs["parameters"])  # the same model the REST side applies, for gRPC too
            return await super().__acall__(req_endpoint, **kwargs)
        except ValidationError as error:  # its own text names no field over the wire: say what is wrong
            raise ParameterError(describe_errors(error.errors())) from None
