"""One connection to a Flow: tuner calls that answer with a dict, streamed uploads, encoding.

gRPC goes through jina's client with the API key in the ``authorization``
metadata; HTTP goes straight to the tunerflow gateway's REST side with
``Authorization: Bearer <key>``. The key is the ``api_key`` argument, else
``$TUNERFLOW_API_KEY``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson

from tunerflow.errors import TunerflowError
from tunerflow.serving.wire import HTTP_MAX_DOCS, whole_numbers
from tunerflow.settings import section

log = logging.getLogger(__name__)

API_KEY_ENV = "TUNERFLOW_API_KEY"
HOST_ENV = "TUNERFLOW_HOST"
HTTP_TIMEOUT = 600.0


class RemoteError(TunerflowError):
    """The Flow answered with an error (the executor's message is kept).

    Attributes:
        status: the HTTP status (or its gRPC equivalent) when known: 4xx for a refused request.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AccessDeniedError(RemoteError, PermissionError):
    """The gateway refused the API key (401) or its role (403)."""


def max_request_docs(host: str, wanted: int) -> int:
    """Documents per request for ``host``: ``wanted``, capped at HTTP_MAX_DOCS over HTTP."""
    return min(wanted, HTTP_MAX_DOCS) if host.startswith("http") else wanted


def default_host() -> str:
    """``$TUNERFLOW_HOST``, else config.yml's ``client.host``: a ported script needs no ``host=`` on each call."""
    return os.environ.get(HOST_ENV) or str(section("client").get("host", "grpc://127.0.0.1:54321"))


def default_chunk_size() -> int:
    return int(section("client").get("chunk_size", 512))


def default_in_flight() -> int:
    return int(section("client").get("in_flight", 8))


class Connection:
    """A client for one host, with the tuner's answers unwrapped.

    Args:
        host: ``grpc://HOST:PORT`` or ``http://HOST:PORT`` (default: ``$TUNERFLOW_HOST``, else config.yml's
            ``client.host``).
        api_key: the API key (default: ``$TUNERFLOW_API_KEY``).
    """

    def __init__(self, host: str | None = None, api_key: str | None = None) -> None:
        self.host = host or default_host()
        self.api_key = api_key or os.environ.get(API_KEY_ENV) or None
        self.http = self.host.startswith("http")
        self._openai_route = True  # HTTP encode: False once the gateway answered 404 for /v1/embeddings
        self.client = None
        if not self.http:
            from jina import Client

            self.client = Client(host=self.host)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),) if self.api_key else ()

    def call(self, endpoint: str, parameters: dict[str, Any] | None = None, target: str = "tuner") -> dict:
        """Call an endpoint that answers with a dict; returns that dict."""
        if self.http:
            return self._http(endpoint, [], parameters or {})["result"] or {}
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
            if self.http:
                last = self._http("/datasets/append", [_doc_json(doc) for doc in batch], {"dataset": dataset})["result"]
            else:
                last = _result(self._post("/datasets/append", batch, {"dataset": dataset}, "tuner")[-1], "tuner")
            if progress is not None:
                progress(len(batch))
        return last

    def encode(self, texts: list[str], batch_size: int = 256, in_flight: int | None = None) -> np.ndarray:
        """Embeddings of ``texts`` from the Flow's encoder, in order, in requests of ``batch_size``.

        ``in_flight`` requests (default: config.yml's ``client.in_flight``) are on their way at a time: while
        the encoder computes one, the next is serialised, sent and parsed, so that this work does not stop
        the model. Over gRPC the embeddings are read from the answers' protobuf
        (:func:`embeddings_from_response`), not through docarray documents.
        """
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        size = max_request_docs(self.host, batch_size)
        in_flight = max(1, int(in_flight or default_in_flight()))
        if self.http:
            return self._encode_http(texts, size, in_flight)
        from docarray import DocList

        from tunerflow.serving.documents import LabeledText

        docs = DocList[LabeledText]([LabeledText(id=str(i), text=t) for i, t in enumerate(texts)])
        output, answered = None, np.zeros(len(texts), dtype=bool)
        for response in self._post("/encode", docs, {}, "encoder", request_size=size, prefetch=in_flight):
            ids, block = embeddings_from_response(response)
            if len(ids) and output is None:
                output = np.empty((len(texts), block.shape[1]), dtype=np.float32)
            if len(ids):
                output[ids] = block
                answered[ids] = True
        if output is None or not answered.all():
            raise RemoteError(f"the encoder answered {int(answered.sum())} of {len(texts)} documents")
        return output

    def _encode_http(self, texts: list[str], size: int, in_flight: int) -> np.ndarray:
        """Over HTTP the embeddings come from ``/v1/embeddings`` in base64 (little-endian float32).

        Reading ``/encode``'s JSON numbers took 12.3 ms (median) for 512 embeddings of 384 dimensions, on the
        same cores as the encoder; base64 takes 4.4 ms, in half the bytes (bench/RESULTS.md, "HTTP answers in
        base64").
        A block with an empty text, which the OpenAI shape refuses, goes to ``/encode``, as does every block
        once a gateway without the route has answered 404 on this connection.
        """

        def part(start: int) -> np.ndarray:
            block = texts[start : start + size]
            if self._openai_route and all(block):
                try:
                    body = self._post_json("/v1/embeddings", {"input": block, "encoding_format": "base64"})
                except RemoteError as error:
                    if error.status != 404:
                        raise
                    self._openai_route = False  # only ever turned off: threads may race here harmlessly
                else:
                    return _answer_rows("/v1/embeddings", len(block), _base64_rows, body)
            body = self._http("/encode", [{"id": str(i), "text": t} for i, t in enumerate(block)], {})
            return _answer_rows("/encode", len(block), _encode_rows, body)

        starts = range(0, len(texts), size)
        if in_flight == 1 or len(starts) == 1:
            return np.concatenate([part(start) for start in starts])
        with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="tunerflow-encode-http") as pool:
            return np.concatenate(list(pool.map(part, starts)))

    def _post(
        self,
        endpoint: str,
        docs,
        parameters: dict,
        target: str,
        return_docs: bool = False,
        doc_type=None,
        request_size: int | None = None,
        prefetch: int | None = None,
    ):
        from docarray import DocList
        from jina.excepts import BadServer, BadServerFlow

        from tunerflow.serving.documents import LabeledText

        try:
            return self.client.post(
                endpoint,
                inputs=docs,
                parameters=parameters,
                return_responses=not return_docs,
                return_type=DocList[doc_type or LabeledText],
                target_executor=f"{target}$",
                request_size=request_size or max(len(docs), 1),
                prefetch=prefetch,
                metadata=self.metadata,
            )
        except BadServer as error:
            raise RemoteError(_server_message(error)) from None
        except BadServerFlow as error:
            raise _grpc_refusal(str(error)) from None
        except ConnectionError as error:
            raise RemoteError(f"cannot reach {self.host}: {error}; is the Flow running?") from None

    def _http(self, endpoint: str, data: list[dict], parameters: dict) -> dict:
        return self._post_json(endpoint, {"data": data, "parameters": parameters})

    def _post_json(self, endpoint: str, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
        request = urllib.request.Request(self.host.rstrip("/") + endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as answer:
                return orjson.loads(answer.read())  # embeddings: about 3x json's speed
        except urllib.error.HTTPError as error:
            try:
                detail = json.loads(error.read() or b"{}").get("detail") or error.reason
            except ValueError:
                detail = error.reason
            kind = AccessDeniedError if error.code in (401, 403) else RemoteError
            raise kind(f"{endpoint} refused ({error.code}): {detail}", error.code) from None
        except OSError as error:
            raise RemoteError(f"cannot reach {self.host}: {error}; is the Flow running?") from None


def _base64_rows(body: dict, count: int) -> np.ndarray:
    items = sorted(body["data"], key=lambda item: item["index"])
    if [item["index"] for item in items] != list(range(count)):
        raise ValueError(f"embedding indices are not 0..{count - 1} ({len(items)} answered)")
    return np.stack([np.frombuffer(base64.b64decode(item["embedding"], validate=True), "<f4") for item in items])


def _encode_rows(body: dict, count: int) -> np.ndarray:
    by_id = {doc["id"]: doc["embedding"] for doc in body["data"]}
    missing = [str(i) for i in range(count) if str(i) not in by_id]
    if missing:
        raise ValueError(f"{count - len(missing)} of {count} documents answered")
    return np.asarray([by_id[str(i)] for i in range(count)], dtype=np.float32)


def _answer_rows(endpoint: str, count: int, read, body: dict) -> np.ndarray:
    """``read(body, count)``'s rows, or RemoteError naming what in ``endpoint``'s answer was off."""
    try:
        rows = read(body, count)
    except (KeyError, TypeError, ValueError) as error:  # binascii.Error is a ValueError
        problem = f"{type(error).__name__}: {error}"
        raise RemoteError(f"{endpoint} answered what the client cannot read ({problem})") from None
    if rows.ndim != 2:  # the readers checked the count
        raise RemoteError(f"{endpoint} answered embeddings that are not vectors (shape {rows.shape})")
    return rows


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


def embeddings_from_response(response) -> tuple[np.ndarray, np.ndarray]:
    """The integer ids and the float32 embeddings (one row each) of an ``/encode`` answer, read from its
    protobuf: building docarray documents for them costs about 20x more (bench/RESULTS.md, issue 14)."""
    from docarray.proto import DocListProto

    data = response.proto.data
    if data.WhichOneof("documents") == "docs_bytes":
        docs = DocListProto.FromString(data.docs_bytes).docs
    else:
        docs = data.docs.docs
    ids = np.fromiter((int(doc.data["id"].text) for doc in docs), dtype=np.int64, count=len(docs))
    rows = []
    for index, doc in enumerate(docs):
        if not doc.data["embedding"].HasField("ndarray"):
            raise RemoteError(f"the encoder answered document {ids[index]} without an embedding")
        dense = doc.data["embedding"].ndarray.dense
        rows.append(np.frombuffer(dense.buffer, dtype=dense.dtype))
    return ids, np.stack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, 0), np.float32)


def _doc_json(doc: Any) -> dict:
    return {"id": doc.id, "text": doc.text, "label": doc.label, "tags": doc.tags}


def _result(response, target: str) -> dict:
    results = response.parameters.get("__results__") or {}
    for key, value in results.items():
        if key.split("/")[0] == target:
            return whole_numbers(value)
    raise RemoteError(f"no answer from the {target} executor (answers from: {', '.join(results) or 'none'})")


def _grpc_refusal(text: str) -> RemoteError:
    """jina's BadServerFlow text for an aborted call (``gRPC error: StatusCode.X details``) as our error."""
    for code, status in (("UNAUTHENTICATED", 401), ("PERMISSION_DENIED", 403)):
        if f"StatusCode.{code}" in text:
            detail = text.split(f"StatusCode.{code}", 1)[1].strip().splitlines()[0]
            return AccessDeniedError(f"refused ({code}): {detail}", status)
    return RemoteError(text.splitlines()[0] if text else "the Flow refused the call")


def _server_message(error: Exception) -> str:
    header = error.args[0] if error.args else None
    status = getattr(header, "status", None)
    if status is not None and getattr(status, "exception", None) is not None and status.exception.args:
        return " ".join(status.exception.args)
    return getattr(status, "description", None) or str(error)
