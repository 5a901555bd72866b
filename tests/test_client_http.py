"""The client's HTTP encoding against a gateway without ``/v1/embeddings``: it falls back to ``/encode``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from tunerflow.client.connection import Connection


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


def test_encode_falls_back_to_encode_route_once_the_openai_route_is_missing():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OldGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        texts = ["a", "bb", "ccc", "dddd", "eeeee"]
        connection = Connection(f"http://127.0.0.1:{server.server_address[1]}", "key")
        embeddings = connection.encode(texts, batch_size=2, in_flight=1)
    finally:
        server.shutdown()
        server.server_close()
    np.testing.assert_array_equal(embeddings[:, 0], [1, 2, 3, 4, 5])
    assert _OldGateway.paths == ["/v1/embeddings", "/encode", "/encode", "/encode"]  # asked once, then /encode
