"""Forward one HTTP call to the executors through jina's streamer, in chunks, and collect the answer."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from docarray import DocList
from jina.excepts import InternalNetworkError

from tunerflow.gateway.guard import error_text
from tunerflow.serving.error_status import http_status
from tunerflow.serving.internal import stamp, strip

log = logging.getLogger(__name__)

CONCURRENT_CHUNKS = 4  # chunks of one HTTP request in flight at once


class ForwardError(Exception):
    """The executors refused or failed the call: an HTTP status and the message for the client."""

    def __init__(self, status: int, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.error = status, message, error


@dataclass
class Answer:
    docs: list = field(default_factory=list)
    results: dict = field(default_factory=dict)


class Forwarder:
    """Sends calls into the Flow.

    Args:
        streamer: jina's GatewayStreamer of this gateway.
        executors: the Flow's executor names (an endpoint's own executor is targeted when present).
    """

    def __init__(self, streamer: Any, executors: set[str]) -> None:
        self.streamer, self.executors = streamer, executors

    def target(self, executor: str | None, header_target: str | None) -> str | None:
        if header_target:
            return header_target
        return f"{executor}$" if executor and executor in self.executors else None

    async def call(
        self,
        endpoint: str,
        docs: DocList,
        parameters: dict,
        target: str | None,
        return_type: type,
        chunk_docs: int | None,
    ) -> Answer:
        """All answers of ``endpoint`` for ``docs`` (in order), or :class:`ForwardError`.

        Chunks of ``chunk_docs`` documents (None: one request) go as separate single-request streams, a few
        at a time, gathered in order.
        """
        size = chunk_docs or max(len(docs), 1)
        chunks = [docs[start : start + size] for start in range(0, len(docs), size)] or [docs]
        stamped = stamp(parameters)
        gate = asyncio.Semaphore(CONCURRENT_CHUNKS)

        async def one(chunk: DocList) -> Answer:
            async with gate:
                return await self._one(endpoint, chunk, stamped, target, return_type)

        answer = Answer()
        for part in await asyncio.gather(*(one(chunk) for chunk in chunks)):
            answer.docs.extend(part.docs)
            answer.results.update(part.results)
        return answer

    async def _one(
        self, endpoint: str, docs: DocList, parameters: dict, target: str | None, return_type: type
    ) -> Answer:
        answer = Answer()
        try:
            async for response in self.streamer.stream_docs(
                docs,
                request_size=max(len(docs), 1),
                return_results=True,
                exec_endpoint=endpoint,
                target_executor=target,
                parameters=parameters,
                return_type=return_type,
            ):
                status = response.header.status
                if status.code == status.ERROR:
                    exception = status.exception
                    message, _ = error_text(
                        exception.name, exception.args, exception.executor or "flow", "".join(exception.stacks)
                    )
                    raise ForwardError(http_status(exception.name), message, exception.name or None)
                answer.docs.extend(response.docs)
                answer.results.update(strip(response.parameters).get("__results__") or {})
        except InternalNetworkError as error:
            log.error("cannot reach an executor for %s: %s", endpoint, error.details())
            raise ForwardError(503, f"an executor behind {endpoint} is not reachable; try again shortly") from None
        return answer
