"""One connection to a Flow: tuner calls that answer with a dict, and streamed uploads."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from tunerflow.errors import TunerflowError
from tunerflow.serving.wire import whole_numbers
from tunerflow.settings import section

log = logging.getLogger(__name__)


class RemoteError(TunerflowError):
    """The Flow answered with an error (the executor's message is kept)."""


# jina 3.33's HTTP gateway cuts a posted body into requests of 100 documents, sends them all to
# the executors, but answers with the first one's documents only: over HTTP, post at most 100.
HTTP_MAX_DOCS = 100


def max_request_docs(host: str, wanted: int) -> int:
    """Documents per request for ``host``: ``wanted``, capped at HTTP_MAX_DOCS over HTTP."""
    return min(wanted, HTTP_MAX_DOCS) if host.startswith("http") else wanted


def default_host() -> str:
    return str(section("client").get("host", "grpc://127.0.0.1:54321"))


def default_chunk_size() -> int:
    return int(section("client").get("chunk_size", 512))


class Connection:
    """A jina Client for one host, with the tuner's answers unwrapped.

    Args:
        host: ``grpc://HOST:PORT`` or ``http://HOST:PORT`` (default: config.yml's ``client.host``).
    """

    def __init__(self, host: str | None = None) -> None:
        from jina import Client

        self.host = host or default_host()
        self.client = Client(host=self.host)

    def call(self, endpoint: str, parameters: dict[str, Any] | None = None, target: str = "tuner") -> dict:
        """Call an endpoint that answers with a dict; returns that dict."""
        from docarray import DocList

        from tunerflow.serving.documents import LabeledText

        responses = self._post(endpoint, DocList[LabeledText](), parameters or {}, target)
        return _result(responses[-1], target)

    def upload(
        self,
        dataset: str,
        docs: Iterable,
        chunk_size: int | None = None,
        progress: Any | None = None,
    ) -> dict:
        """Stream ``docs`` to the tuner's ``/datasets/append`` in requests of ``chunk_size``; returns the counts."""
        size = max_request_docs(self.host, int(chunk_size or default_chunk_size()))
        last: dict = {}
        for batch in _chunks(docs, size):
            responses = self._post("/datasets/append", batch, {"dataset": dataset}, "tuner")
            last = _result(responses[-1], "tuner")
            if progress is not None:
                progress(len(batch))
        return last

    def _post(self, endpoint: str, docs, parameters: dict, target: str):
        from jina.excepts import BadServer

        try:
            return self.client.post(
                endpoint,
                inputs=docs,
                parameters=parameters,
                return_responses=True,
                target_executor=f"{target}$",
                request_size=max(len(docs), 1),
            )
        except BadServer as error:
            raise RemoteError(_server_message(error)) from None
        except ConnectionError as error:
            raise RemoteError(f"cannot reach {self.host}: {error}; is the Flow running?") from None


def _chunks(docs: Iterable, size: int) -> Iterator:
    from docarray import DocList

    from tunerflow.serving.documents import LabeledText

    batch = DocList[LabeledText]()
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = DocList[LabeledText]()
    if len(batch):
        yield batch


def _result(response, target: str) -> dict:
    results = response.parameters.get("__results__") or {}
    for key, value in results.items():
        if key.split("/")[0] == target:
            return whole_numbers(value)
    raise RemoteError(f"no answer from the {target} executor (answers from: {', '.join(results) or 'none'})")


def _server_message(error: Exception) -> str:
    header = error.args[0] if error.args else None
    status = getattr(header, "status", None)
    if status is not None and getattr(status, "exception", None) is not None and status.exception.args:
        return " ".join(status.exception.args)
    return getattr(status, "description", None) or str(error)
