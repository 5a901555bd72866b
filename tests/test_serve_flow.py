"""flows/serve.yml on loopback: the bundled model over gRPC and HTTP, per backend."""

from __future__ import annotations

import numpy as np
import pytest
from docarray import DocList

from tests.conftest import TEXTS
from tests.flows import KeyedClient, flow_from_yaml, http_post
from tunerflow.serving.documents import LabeledText

jina = pytest.importorskip("jina")

QUERIES = [t for t in TEXTS if t]


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    from tunerflow.modeling.sources import bundled_model_path

    return SentenceTransformer(str(bundled_model_path()), device="cpu").encode(QUERIES)


def _min_cosine(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min()


@pytest.mark.parametrize("backend", ["torch", "onnx", "onnx-int8"])
def test_serve_flow_matches_sentence_transformers(backend, reference, tmp_path):
    flow, grpc_port, http_port = flow_from_yaml("serve.yml", tmp_path, {"encoder": {"backend": backend}})
    with flow:
        client = KeyedClient(grpc_port)
        docs = DocList[LabeledText]([LabeledText(text=t, id=str(i)) for i, t in enumerate(QUERIES)])
        grpc_out = client.post("/encode", inputs=docs, return_type=DocList[LabeledText])
        status, body = http_post(
            http_port, "/encode", {"data": [{"text": t, "id": str(i)} for i, t in enumerate(QUERIES)]}
        )
        info = client.post("/info", inputs=DocList[LabeledText](), return_responses=True)[0]
        info = info.parameters["__results__"]
    assert [d.id for d in grpc_out] == [str(i) for i in range(len(QUERIES))]
    grpc_embeddings = np.stack([np.asarray(d.embedding) for d in grpc_out])
    assert status == 200
    http_embeddings = np.array([d["embedding"] for d in body["data"]])
    assert [d["id"] for d in body["data"]] == [str(i) for i in range(len(QUERIES))]
    np.testing.assert_allclose(http_embeddings, grpc_embeddings, atol=1e-6)
    served = next(iter(info.values()))
    assert served["backend"] == backend
    if backend == "onnx-int8":
        quality = served["int8"]["cosine_to_fp32_mean"]
        assert 0.95 < quality <= 1.0
        assert _min_cosine(grpc_embeddings, reference) > 0.95
    else:
        assert _min_cosine(grpc_embeddings, reference) >= 0.99999


def test_serve_flow_errors(tmp_path):
    from jina.excepts import BadServer

    flow, grpc_port, http_port = flow_from_yaml("serve.yml", tmp_path)
    with flow:
        status, body = http_post(http_port, "/encode", {"data": [{"text": "ok", "id": "a"}, {"id": "b"}]})
        assert status == 400 and "has no text" in body["detail"]
        status, body = http_post(http_port, "/encode", {"data": []})
        assert status == 400 and "empty request" in body["detail"]
        status, body = http_post(http_port, "/encode", {"data": [{"text": "x"}], "parameters": {"batch_size": 0}})
        assert status == 422 and "greater than or equal to 1" in body["detail"]
        client = KeyedClient(grpc_port)
        with pytest.raises(BadServer, match="has no text"):
            client.post("/encode", inputs=DocList[LabeledText]([LabeledText(id="x")]))
        status, body = http_post(http_port, "/encode", {"data": [{"text": "still serving", "id": "z"}]})
        assert status == 200 and len(body["data"][0]["embedding"]) == 384
