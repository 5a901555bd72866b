"""The gateway's checks, shared by its gRPC and HTTP sides: the key, the role, clean answers."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from tunerflow.errors import ConfigError
from tunerflow.serving.access import (
    AUTH_ENV,
    KEYS_ENV,
    KEYS_FILE_ENV,
    AuthError,
    ForbiddenError,
    KeyRing,
    auth_enabled,
    required_role,
    warn_if_off,
)
from tunerflow.serving.error_status import INTERNAL_MESSAGE, is_client_error
from tunerflow.serving.internal import SECRET_PARAMETER

log = logging.getLogger(__name__)

# Endpoints anyone may call: health and readiness.
OPEN_ENDPOINTS = frozenset({"/", "/dry_run", "_jina_dry_run_"})


class Guard:
    """Loads the keys once; :meth:`authorize` checks one request."""

    def __init__(self) -> None:
        self.enabled = auth_enabled()
        self.keys = KeyRing.from_env() if self.enabled else KeyRing(())
        if self.enabled and not self.keys.entries:
            raise ConfigError(
                f"no API keys are configured: set {KEYS_FILE_ENV} (a file of '<key> <role>' lines) or "
                f"{KEYS_ENV} ('key:role,...'); make a key with `python -m tunerflow.serving.access write`. "
                f"For local development only, {AUTH_ENV}=off turns authentication off."
            )
        warn_if_off("tunerflow gateway")

    def authorize(self, key: str | None, endpoint: str) -> None:
        """Raise :class:`AuthError` (no or unknown key) or :class:`ForbiddenError` (role too low)."""
        if not self.enabled or endpoint in OPEN_ENDPOINTS:
            return
        role = self.keys.role_of(key)
        if role is None:
            raise AuthError(
                "missing or unknown API key: send it as 'Authorization: Bearer <key>' (HTTP) "
                "or in the 'authorization' metadata (gRPC)"
            )
        needed = required_role(endpoint)
        if not role.allows(needed):
            raise ForbiddenError(f"{endpoint} needs a {needed.value} key; this key may only {role.value}")


def key_from(pairs: Iterable[tuple[str, Any]]) -> str | None:
    """The API key in HTTP headers or gRPC metadata: ``authorization: Bearer <key>`` or ``x-api-key``."""
    found = None
    for name, value in pairs:
        name, value = str(name).lower(), str(value).strip()
        if name == "authorization" and value.lower().startswith("bearer "):
            found = value[7:].strip()
        elif name == "x-api-key" and found is None:
            found = value
    return found


def error_text(name: str | None, args: Iterable[Any], where: str, details: str = "") -> tuple[str, str]:
    """(message for the client, request id): a client error's own message; otherwise a generic one, logged."""
    request_id = uuid.uuid4().hex[:12]
    if is_client_error(name):
        return " ".join(str(arg) for arg in args) or str(name), request_id
    log.error("request %s failed in the %s: %s %s\n%s", request_id, where, name, list(args), details)
    return INTERNAL_MESSAGE.format(where=where, request_id=request_id), request_id


def clean_response(response: Any) -> Any:
    """A jina answer fit for the client: no internal secret, no tracebacks, no internals in 5xx errors."""
    parameters = response.parameters
    if SECRET_PARAMETER in parameters:
        parameters.pop(SECRET_PARAMETER)
        response.parameters = parameters
    status = response.header.status
    if status.code == status.ERROR:
        exception = status.exception
        message, _ = error_text(exception.name, exception.args, exception.executor or "flow", "".join(exception.stacks))
        del exception.stacks[:]
        del exception.args[:]
        exception.args.append(message)
        status.description = message
    return response
