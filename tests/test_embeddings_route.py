"""``POST /v1/embeddings``' own answer, the route called directly over a stand-in for the Flow behind the
gateway's forwarder (the served route is tested end to end in tests/test_gateway.py)."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
from fastapi import FastAPI

from tunerflow.gateway.embeddings import EmbeddingsRequest, add_embeddings_route
from tunerflow.gateway.forward import Answer
from tunerflow.serving.documents import LabeledText


class _Encoder:
    """Answers /encode with the given vectors, in order."""

    def __init__(self, vectors: list[np.ndarray]) -> None:
        self.vectors = vectors

    def target(self, executor: str, header_target: str | None) -> str:
        return executor

    async def call(self, endpoint, docs, parameters, target, return_type, chunk_docs) -> Answer:
        return Answer(
            docs=[LabeledText(id=d.id, text=d.text, embedding=v) for d, v in zip(docs, self.vectors, strict=True)]
        )


def _answer(vectors: list[np.ndarray], **request):
    app = FastAPI()
    add_embeddings_route(app, _Encoder(vectors))
    route = next(r.endpoint for r in app.routes if getattr(r, "path", None) == "/v1/embeddings")
    return asyncio.run(route(None, EmbeddingsRequest(**request)))


def test_float_answer_keeps_the_numbers_as_json_wrote_them():
    vector = np.array([0.1, 1 / 3], dtype=np.float32)
    response = _answer([vector], input="hi")
    body = orjson.loads(response.body)
    assert response.status_code == 200 and body["data"] == [
        {"object": "embedding", "index": 0, "embedding": vector.tolist()}
    ]
    assert b"0.10000000149011612" in response.body  # float64 text of the float32 value, as before orjson
    assert body["usage"] == {"prompt_tokens": 1, "total_tokens": 1} and body["model"] == "tunerflow"


def test_non_finite_embeddings_are_refused():
    response = _answer([np.array([np.nan, 1.0], dtype=np.float32)], input="hi", encoding_format="base64")
    assert response.status_code == 500 and b"not finite" in response.body
