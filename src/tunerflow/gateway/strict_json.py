"""Checks every HTTP request makes before FastAPI parses it: the key, the size, strict JSON.

Order: 401/403 (key and role), 413 (body too large), 400 (not JSON, NaN or
Infinity, a lone surrogate); then FastAPI's model validation (422).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from tunerflow.serving.access import AuthError
from tunerflow.serving.wire import HTTP_MAX_DOCS

MAX_BODY_BYTES = 64 * 1024 * 1024  # one HTTP body; larger uploads go in several requests
MAX_DOCS = HTTP_MAX_DOCS  # documents in one HTTP request (forwarded to the executors in chunks)


class BadBody(ValueError):
    """The body is not strict JSON (the message says why)."""


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": message, **extra}, status_code=status)


def parse_strict(body: bytes) -> Any:
    """JSON without NaN/Infinity and without lone surrogates, or :class:`BadBody`."""
    try:
        value = json.loads(body, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise BadBody("the body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise BadBody(f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    _check_text(value, "body")
    return value


def _refuse_constant(name: str) -> Any:
    raise BadBody(f"{name} is not a JSON number; send finite numbers (NaN, Infinity and -Infinity are refused)")


def _check_text(value: Any, where: str) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadBody(
                f"{where} holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape); send valid Unicode"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"a key in {where}")
            _check_text(item, f"{where}.{key}" if isinstance(key, str) and key.isprintable() else where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{where}[{index}]")


class StrictJSONRoute(APIRoute):
    """An APIRoute that authorizes and checks the raw body first (``app.state.guard`` holds the keys)."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()
        endpoint = self.path

        async def checked(request: Request):
            from tunerflow.gateway.guard import key_from

            try:
                request.app.state.guard.authorize(key_from(request.headers.items()), endpoint)
            except PermissionError as error:
                return error_response(401 if isinstance(error, AuthError) else 403, str(error))
            if request.method == "POST":
                declared = request.headers.get("content-length", "0")
                if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                    return _too_large()
                body = await request.body()
                if len(body) > MAX_BODY_BYTES:
                    return _too_large()
                try:
                    request.state.json = parse_strict(body)
                except BadBody as error:
                    return error_response(400, str(error))
            return await handler(request)

        return checked


def _too_large() -> JSONResponse:
    return error_response(
        413, f"the body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB; send the documents in several requests"
    )
