"""The client's HTTP encoding against gateways that are not ours (a real ``http.server``): one without
``/v1/embeddings`` (the client falls back to ``/encode`` and remembers it), and answers the client cannot use
(a clear RemoteError, never fewer or shifted rows)."""

from __future__ import annotations

import base64
import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from tunerflow.client.connection import Connection, RemoteError


def _encode_answer(docs: list[dict]) -> dict:
    """/encode's shape: each text's length as its one-number embedding, in reverse order (ids say which)."""
    data = [{"id": doc["id"], "text": doc["text"], "embedding": [float(len(doc["text"]))]} for doc in docs]
    return {"header": {}, "parameters": {}, "result": None, "data": data[::-1]}


def _embedding(value) -> dict:
    return {"object": "embedding", "index": 0, "embedding": value}


@contextmanager
def _gateway(answer):
    """Serves ``answer(path, body) -> (status, body)``; yields the host and the paths asked, in order."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            paths.append(self.path)
            status, reply = answer(self.path, body)
            raw = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", paths
    finally:
        server.shutdown()
        server.server_close()


def _old_gateway(path: str, body: dict) -> tuple[int, dict]:
    return (200, _encode_answer(body["data"])) if path == "/encode" else (404, {"detail": "Not Found"})


@pytest.mark.parametrize("in_flight", [1, 3])
def test_encode_falls_back_to_encode_once_the_openai_route_is_missing_and_remembers(in_flight):
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    with _gateway(_old_gateway) as (host, paths):
        connection = Connection(host, "key")
        first = connection.encode(texts, batch_size=2, in_flight=in_flight)
        asked = len(paths)
        second = connection.encode(texts, batch_size=2, in_flight=in_flight)
    for embeddings in (first, second):
        np.testing.assert_array_equal(embeddings[:, 0], [1, 2, 3, 4, 5])
    assert paths[asked:] == ["/encode"] * 3  # the connection remembers: no second probe
    if in_flight == 1:
        assert paths[:asked] == ["/v1/embeddings", "/encode", "/encode", "/encode"]  # asked once, then /encode


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"object": "list", "data": [_embedding(base64.b64encode(b"\0" * 8).decode())]}, "indices are not 0..1"),
        ({"object": "list", "data": [_embedding([0.5, 0.5])] * 2}, "cannot read"),  # floats, not base64
        ({"object": "list", "data": [{**_embedding("not base64!"), "index": i} for i in range(2)]}, "cannot read"),
    ],
    ids=["fewer", "floats", "bad-base64"],
)
def test_encode_refuses_an_openai_answer_it_cannot_use(answer, message):
    with _gateway(lambda path, body: (200, answer)) as (host, _), pytest.raises(RemoteError, match=message):
        Connection(host, "key").encode(["a", "bb"], in_flight=1)


def test_encode_refuses_an_encode_answer_with_fewer_documents():
    def short(path: str, body: dict) -> tuple[int, dict]:
        return (200, _encode_answer(body["data"][:1])) if path == "/encode" else (404, {"detail": "Not Found"})

    with _gateway(short) as (host, _), pytest.raises(RemoteError, match="1 of 2 documents answered"):
        Connection(host, "key").encode(["a", "bb"], in_flight=1)
