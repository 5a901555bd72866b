"""``POST /v1/embeddings``: the served model behind the OpenAI embeddings API shape.

Request: ``input`` (a string or a list of strings), ``model`` (optional: this
gateway serves one model, whatever it is named), ``encoding_format``
(``float`` or ``base64``: little-endian float32), ``user`` (ignored).
``usage`` counts whitespace-separated words, not model tokens.
"""

from __future__ import annotations

import base64
from enum import Enum
from typing import TYPE_CHECKING, List, Optional, Union

import numpy as np
import orjson
from docarray import DocList
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, conlist, constr

from tunerflow.gateway.forward import ForwardError
from tunerflow.gateway.strict_json import MAX_DOCS, error_response
from tunerflow.serving.documents import LabeledText
from tunerflow.serving.endpoints import ENCODE_CHUNK

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tunerflow.gateway.forward import Forwarder

ServedModelName = "tunerflow"
Text = constr(strict=True, min_length=1)


class EncodingFormat(str, Enum):
    FLOAT = "float"
    BASE64 = "base64"


class EmbeddingsRequest(BaseModel):
    """The OpenAI embeddings request (the fields this server uses; others are refused)."""

    input: Union[Text, conlist(Text, min_items=1)]
    model: Optional[constr(strict=True)] = None
    encoding_format: EncodingFormat = EncodingFormat.FLOAT
    user: Optional[constr(strict=True)] = None

    class Config:
        extra = "forbid"


class Embedding(BaseModel):
    object: str = "embedding"
    index: int
    embedding: Union[List[float], str]


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: str = "list"
    data: List[Embedding]
    model: str
    usage: Usage


def add_embeddings_route(app: FastAPI, forwarder: Forwarder) -> None:
    async def embeddings(request: Request, body: EmbeddingsRequest) -> EmbeddingsResponse:
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        if len(texts) > MAX_DOCS:
            return error_response(413, f"{len(texts)} inputs in one request; the limit is {MAX_DOCS}")
        docs = DocList[LabeledText]([LabeledText(id=str(i), text=text) for i, text in enumerate(texts)])
        try:
            answer = await forwarder.call(
                "/encode", docs, {}, forwarder.target("encoder", None), DocList[LabeledText], ENCODE_CHUNK
            )
        except ForwardError as error:
            return error_response(error.status, error.message)
        by_id = {doc.id: np.asarray(doc.embedding, dtype="<f4") for doc in answer.docs}
        vectors = [by_id[str(index)] for index in range(len(texts))]
        if not all(np.isfinite(vector).all() for vector in vectors):
            return error_response(500, "the encoder answered embeddings that are not finite numbers (NaN or infinity)")
        if body.encoding_format is EncodingFormat.BASE64:
            values = [base64.b64encode(vector.tobytes()).decode() for vector in vectors]
        else:
            values = [vector.tolist() for vector in vectors]  # Python floats: the numbers as json wrote them before
        words = sum(len(text.split()) for text in texts)
        answer_body = {
            "object": "list",
            "data": [{"object": "embedding", "index": index, "embedding": value} for index, value in enumerate(values)],
            "model": body.model or ServedModelName,
            "usage": {"prompt_tokens": words, "total_tokens": words},
        }
        # EmbeddingsResponse's shape, written straight: FastAPI's own path validates the answer again and walks
        # every number through jsonable_encoder (bench/RESULTS.md, "HTTP answers in base64")
        return Response(orjson.dumps(answer_body), media_type="application/json")

    embeddings.__annotations__ = {"request": Request, "body": EmbeddingsRequest, "return": EmbeddingsResponse}
    app.add_api_route(
        "/v1/embeddings",
        embeddings,
        methods=["POST"],
        summary="Embeddings in the OpenAI API shape",
        response_model=EmbeddingsResponse,
    )
