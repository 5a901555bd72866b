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


@pytest.mark.parametrize("backend", ["torch", "onnx", "onnx-int8", "openvino"])
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


NORMALIZE = [{}, {"normalize": True}, {"normalize": False}]  # requests with other parameters: other batches


def test_concurrent_small_requests_are_batched_and_each_gets_its_own_embeddings(tiny_model_dir, tmp_path):
    """The encoder merges concurrent /encode requests (its continuous batching): each answer must
    still be its own texts' embeddings, in its order, with its own parameters."""
    import asyncio
    import random

    from jina import Client

    from tests.flows import WRITE_KEY
    from tunerflow.api import get_model

    rng = random.Random(0)
    words = "how do i learn python cats eat fish why is the sky blue best way to cook rice".split()
    plans = [[" ".join(rng.sample(words, rng.randint(1, 9))) for _ in range(rng.randint(1, 4))] for _ in range(48)]
    model = get_model(tiny_model_dir)
    flow, grpc_port, _ = flow_from_yaml("serve.yml", tmp_path, {"encoder": {"model": str(tiny_model_dir)}})

    async def one(client, index, texts):
        docs = DocList[LabeledText]([LabeledText(text=t, id=f"{index}-{i}") for i, t in enumerate(texts)])
        parameters = NORMALIZE[index % 3]
        answer = DocList[LabeledText]()
        async for part in client.post(
            "/encode",
            inputs=docs,
            parameters=parameters,
            metadata=(("authorization", f"Bearer {WRITE_KEY}"),),
            return_type=DocList[LabeledText],
        ):
            answer.extend(part)
        return answer

    async def all_at_once():
        client = Client(host=f"grpc://127.0.0.1:{grpc_port}", asyncio=True)
        return await asyncio.gather(*(one(client, i, texts) for i, texts in enumerate(plans)))

    with flow:
        answers = asyncio.run(all_at_once())
        info = KeyedClient(grpc_port).post("/info", inputs=DocList[LabeledText](), return_responses=True)[0]
    served = next(iter(info.parameters["__results__"].values()))
    batching = served["batching"]["dynamic"]
    assert batching["kind"] == "continuous" and batching["requests"] >= len(plans)
    assert batching["calls"] < batching["requests"]  # concurrent requests shared model calls
    for index, (texts, answer) in enumerate(zip(plans, answers, strict=True)):
        assert [d.id for d in answer] == [f"{index}-{i}" for i in range(len(texts))]
        expected = model.embed(texts, normalize=NORMALIZE[index % 3].get("normalize"))
        np.testing.assert_allclose(np.stack([np.asarray(d.embedding) for d in answer]), expected, atol=1e-5)


def test_client_encode_streams_requests_in_flight_and_restores_order(tiny_model_dir, tmp_path, monkeypatch):
    """Connection.encode with several requests on their way at a time (one gRPC stream capped by prefetch,
    HTTP in threads): every text's own embedding, in order, whatever the cap. Over HTTP the blocks go to
    /v1/embeddings in base64, the one with an empty text to /encode."""
    from tests.flows import WRITE_KEY
    from tunerflow.api import get_model
    from tunerflow.client.connection import Connection

    routes, post_json = [], Connection._post_json
    monkeypatch.setattr(
        Connection, "_post_json", lambda self, path, body: routes.append(path) or post_json(self, path, body)
    )

    texts = [f"text number {i} " + "word " * (i % 7) for i in range(23)]
    texts[9] = ""  # HTTP: its block goes to /encode (the OpenAI route refuses empty texts), the others in base64
    expected = get_model(tiny_model_dir).embed(texts)
    flow, grpc_port, http_port = flow_from_yaml("serve.yml", tmp_path, {"encoder": {"model": str(tiny_model_dir)}})
    with flow:
        for host in (f"grpc://127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}"):
            connection = Connection(host, WRITE_KEY)
            for in_flight in (1, 3):
                embeddings = connection.encode(texts, batch_size=4, in_flight=in_flight)
                np.testing.assert_allclose(embeddings, expected, atol=1e-5, err_msg=f"{host} in_flight={in_flight}")
    assert routes.count("/encode") == 2 and routes.count("/v1/embeddings") == 10  # 6 blocks of 4, twice over HTTP
