"""The client's HTTP encoding against gateways that are not ours: one without ``/v1/embeddings`` (the client falls
back to ``/encode``), one that answers fewer embeddings than asked (a clear error, not fewer rows)."""

from __future__ import annotations

import base64
import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from tunerflow.client.connection import Connection, RemoteError


class _OldGateway(BaseHTTPRequestHandler):
    """Answers /encode with each text's length as its one-number embedding; anything else is 404."""

    paths: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.paths.append(self.path)
        if self.path != "/encode":
            self._answer(404, {"detail": "Not Found"})
            return
        data = [{"id": doc["id"], "text": doc["text"], "embedding": [float(len(doc["text"]))]} for doc in body["data"]]
        self._answer(200, {"header": {}, "parameters": {}, "result": None, "data": data[::-1]})  # order: by id

    def _answer(self, status: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args) -> None:
        pass


class _ShortGateway(_OldGateway):
    """Answers /v1/embeddings with the first text's embedding only."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))  # the request (not read further)
        vector = base64.b64encode(np.ones(2, dtype="<f4").tobytes()).decode()
        self._answer(200, {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": vector}]})


@contextmanager
def _serving(handler: type):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_encode_falls_back_to_encode_route_once_the_openai_route_is_missing():
    with _serving(_OldGateway) as host:
        embeddings = Connection(host, "key").encode(["a", "bb", "ccc", "dddd", "eeeee"], batch_size=2, in_flight=1)
    np.testing.assert_array_equal(embeddings[:, 0], [1, 2, 3, 4, 5])
    assert _OldGateway.paths == ["/v1/embeddings", "/encode", "/encode", "/encode"]  # asked once, then /encode


def test_encode_refuses_an_answer_with_fewer_embeddings_than_texts():
    with _serving(_ShortGateway) as host, pytest.raises(RemoteError, match="answered 1 of 2 texts"):
        Connection(host, "key").encode(["a", "bb"], in_flight=1)
