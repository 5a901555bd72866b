"""The REST gateway: one POST route per endpoint, strict models, real status codes, all documents.

No ``from __future__ import annotations`` here: FastAPI reads the route
annotations at run time, and the body models are made per endpoint.

Answers keep jina's envelope (``data``, ``parameters.__results__``) and add
``result``: the answering executor's dict (a sharded one's: its merger's). Errors are ``{"detail": message}``
with 400 (bad input), 401 (no or unknown key), 403 (role), 404 (unknown run,
dataset or route), 409 (conflict), 413 (too large), 422 (a parameter or
document refused by its model), 503 (an executor unreachable) and 500 (our
fault; the message holds a request id, the server log the details).
"""

import json
import logging
from typing import Any, Dict, List, Optional

from docarray import DocList
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from jina.serve.runtimes.servers.http import FastAPIBaseServer
from pydantic import BaseModel, Field, create_model

from tunerflow.gateway.embeddings import add_embeddings_route
from tunerflow.gateway.forward import Answer, Forwarder, ForwardError
from tunerflow.gateway.guard import Guard, error_text
from tunerflow.gateway.strict_json import MAX_DOCS, StrictJSONRoute, error_response
from tunerflow.serving.doc_json import fast_docs_json
from tunerflow.serving.endpoints import ENDPOINTS, EndpointSpec
from tunerflow.serving.parameters import describe_errors
from tunerflow.serving.wire import whole_numbers

log = logging.getLogger(__name__)


class RequestHeader(BaseModel):
    """Optional routing: ``target_executor`` (a regex of executor names), ``request_id``."""

    target_executor: Optional[str] = None
    request_id: Optional[str] = None

    class Config:
        extra = "forbid"


class ErrorBody(BaseModel):
    detail: str


class _Forbid:
    extra = "forbid"


ERROR_RESPONSES = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 500, 503)}


class RestServer(FastAPIBaseServer):
    """Serves :func:`build_app` on the Flow's HTTP port."""

    def __init__(self, guard: Optional[Guard] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.guard = guard or Guard()

    @property
    def app(self) -> FastAPI:
        return build_app(self._request_handler, self.guard, self.title, self.description)


def build_app(handler, guard: Guard, title: Optional[str] = None, description: Optional[str] = None) -> FastAPI:
    """The FastAPI app over jina's request handler (its streamer reaches the executors)."""
    app = FastAPI(title=title or "tunerflow", description=description or __doc__.split("\n\n")[2])
    app.router.route_class = StrictJSONRoute
    app.state.guard = guard
    _install_error_handlers(app)
    forwarder = Forwarder(handler.streamer, set(handler.executor))
    discovered = handler.streamer._endpoints_models_map or {}
    for path, models in discovered.items():
        if path.startswith("_jina") or path == "/default":
            continue
        spec = ENDPOINTS.get(path) or EndpointSpec(path, "", docs=True, summary=f"Endpoint {path}")
        doc_type = spec.doc_type if path in ENDPOINTS else models["input"]
        _add_route(app, spec, forwarder, doc_type, registered=path in ENDPOINTS)
    if "/encode" in discovered:
        add_embeddings_route(app, forwarder)

    @app.get("/dry_run", summary="Readiness: a request through every executor (no key needed)")
    async def dry_run():
        status = await handler.dry_run(None, None)
        return JSONResponse({"code": status.code, "description": status.description}, status_code=200)

    return app


def _add_route(app: FastAPI, spec: EndpointSpec, forwarder: Forwarder, doc_type: type, registered: bool) -> None:
    name = "".join(part.title() for part in spec.path.strip("/").replace("_", "/").split("/"))
    if registered:
        try:
            spec.parameters()
            parameters = (spec.parameters, Field(default_factory=spec.parameters))
        except ValueError:
            parameters = (spec.parameters, ...)
    else:
        parameters = (Dict[str, Any], Field(default_factory=dict))  # the executor checks them
    body_model = create_model(
        f"{name}Request",
        __config__=_Forbid,
        data=(List[doc_type], Field(default_factory=list)),
        parameters=parameters,
        header=(Optional[RequestHeader], None),
    )
    response_model = create_model(
        f"{name}Response",
        header=(Dict[str, Any], ...),
        parameters=(Dict[str, Any], ...),
        result=(Optional[Dict[str, Any]], None),
        data=(List[doc_type], ...),
    )

    async def route(request: Request, body: body_model):
        if body.data and not spec.docs:
            return error_response(400, f'{spec.path} takes no documents; send "data": []')
        if len(body.data) > MAX_DOCS:
            return error_response(413, f"{len(body.data)} documents in one request; the limit is {MAX_DOCS}")
        raw = request.state.json.get("parameters") or {}
        forwarded = {key: value for key, value in raw.items() if not str(key).startswith("__")}
        header = body.header or RequestHeader()
        try:
            answer = await forwarder.call(
                spec.path,
                DocList[doc_type](body.data),
                forwarded,
                forwarder.target(spec.executor, header.target_executor),
                DocList[doc_type],
                spec.chunk,
            )
        except ForwardError as error:
            return error_response(error.status, error.message)
        return _envelope(answer, doc_type, header.request_id)

    app.add_api_route(
        spec.path,
        route,
        methods=["POST"],
        summary=spec.summary or spec.path,
        response_model=response_model,
        responses=ERROR_RESPONSES,
    )


def _envelope(answer: Answer, doc_type: type, request_id: Optional[str]) -> Response:
    results = whole_numbers(answer.results)
    merged = [value for key, value in results.items() if "/uses_after" in key]  # a sharded executor's merger
    result = merged[0] if merged else next(iter(results.values())) if len(results) == 1 else None
    head = json.dumps({"header": {"request_id": request_id}, "parameters": {"__results__": results}, "result": result})
    data = fast_docs_json(answer.docs)  # the encoder's documents, without pydantic's dict() of each
    if data is None:
        data = DocList[doc_type](answer.docs).to_json().encode()
    return Response(head[:-1].encode() + b', "data": ' + data + b"}", media_type="application/json")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        problems = [
            {"loc": [str(part) for part in item["loc"]], "msg": item["msg"], "type": item["type"]}
            for item in error.errors()
        ]
        message = describe_errors(problems, skip=1)
        return error_response(422, message, errors=problems)

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception):
        message, _ = error_text("GatewayError", error.args, "gateway", repr(error))  # never a client error
        return error_response(500, message)
