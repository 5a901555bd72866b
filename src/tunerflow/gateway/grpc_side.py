"""jina's gRPC gateway with the API key checked, the internal secret added and answers cleaned."""

from __future__ import annotations

from typing import Any

import grpc
from jina.serve.runtimes.servers.grpc import GRPCServer

from tunerflow.errors import TunerflowError
from tunerflow.gateway.guard import Guard, clean_response, key_from
from tunerflow.serving.access import AuthError
from tunerflow.serving.internal import stamp


class GatewayStoppedError(TunerflowError):
    """The gateway was asked to stop while it still waited for the executors (a failed Flow start)."""


class GuardedHandler:
    """Stands in for jina's GatewayRequestHandler as the gRPC servicer; only these RPCs are served.

    Every data call is checked (key from the ``authorization`` metadata, role per endpoint) before
    anything is forwarded; refusals end the call with UNAUTHENTICATED or PERMISSION_DENIED.
    """

    def __init__(self, inner: Any, guard: Guard) -> None:
        self.inner, self.guard = inner, guard
        self.streamer = inner.streamer

    async def _authorize(self, context: Any, endpoint: str) -> None:
        try:
            self.guard.authorize(key_from(context.invocation_metadata() or ()), endpoint)
        except PermissionError as error:
            code = (
                grpc.StatusCode.UNAUTHENTICATED if isinstance(error, AuthError) else grpc.StatusCode.PERMISSION_DENIED
            )
            await context.abort(code, str(error))

    def _prepare(self, request: Any) -> Any:
        request.parameters = stamp(request.parameters)
        return request

    async def stream(self, request_iterator: Any, context: Any = None, **kwargs: Any):
        iterator = request_iterator.__aiter__()
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            return
        await self._authorize(context, first.header.exec_endpoint)
        key = key_from(context.invocation_metadata() or ())

        async def checked():
            yield self._prepare(first)
            async for request in iterator:
                self.guard.authorize(key, request.header.exec_endpoint)  # raises: the call ends refused
                yield self._prepare(request)

        async for response in self.streamer.rpc_stream(request_iterator=checked(), context=context, **kwargs):
            yield clean_response(response)

    Call = stream

    async def process_single_data(self, request: Any, context: Any = None) -> Any:
        await self._authorize(context, request.header.exec_endpoint)
        return clean_response(await self.streamer.process_single_data(self._prepare(request), context))

    async def endpoint_discovery(self, empty: Any, context: Any) -> Any:
        await self._authorize(context, "/info")  # schemas only, but not for anonymous callers
        return await self.inner.endpoint_discovery(empty, context)

    async def _status(self, empty: Any, context: Any) -> Any:
        await self._authorize(context, "/info")
        return await self.inner._status(empty, context)

    async def dry_run(self, empty: Any, context: Any) -> Any:
        return await self.inner.dry_run(empty, context)  # readiness: open

    async def close(self) -> None:
        await self.inner.close()


class GuardedGRPCServer(GRPCServer):
    """jina's gRPC server whose servicer is a :class:`GuardedHandler`."""

    def __init__(self, guard: Guard | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guard = guard or Guard()

    async def setup_server(self) -> None:
        inner = self._request_handler
        # jina's setup does this only for its own handler class: fetch the endpoint schemas first.
        # It retries until every executor answers, or until the Flow stops this gateway (SIGTERM).
        await inner.streamer._get_endpoints_input_output_models(is_cancel=self.is_cancel)
        if self.is_cancel.is_set():  # e.g. an executor failed to start: do not bind, let the process end
            raise GatewayStoppedError("the Flow stopped the gateway before every executor answered")
        inner.streamer._validate_flow_docarray_compatibility()
        self._request_handler = GuardedHandler(inner, self.guard)
        await super().setup_server()
