"""flows/train.yml on loopback: every tuner endpoint over gRPC and HTTP, and the encoder following artifacts."""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest
from docarray import DocList

from tests.flows import KeyedClient, flow_from_yaml, http_post
from tests.training_helpers import toy_options, toy_records
from tunerflow.api import get_model
from tunerflow.serving.documents import LabeledText

jina = pytest.importorskip("jina")


def _results(response) -> dict:
    results = response.parameters["__results__"]
    return next(value for key, value in results.items() if key.startswith("tuner/"))


def _grpc(client, endpoint, parameters=None, docs=None):
    responses = client.post(
        endpoint,
        inputs=docs if docs is not None else DocList[LabeledText](),
        parameters=parameters or {},
        return_responses=True,
        target_executor="tuner$",
    )
    return _results(responses[0])


def _http(port, endpoint, parameters=None):
    status, body = http_post(port, endpoint, {"data": [], "parameters": parameters or {}})
    assert status == 200, body
    return next(value for key, value in body["parameters"]["__results__"].items() if key.startswith("tuner/"))


def _docs(records):
    return DocList[LabeledText]([LabeledText(id=r.id, text=r.text, label=r.label) for r in records])


def test_train_flow_end_to_end(tmp_path, tiny_model_dir, monkeypatch):
    from jina.excepts import BadServer

    monkeypatch.setenv("TUNERFLOW_HOME", str(tmp_path / "home"))
    flow, grpc_port, http_port = flow_from_yaml(
        "train.yml",
        tmp_path,
        {"encoder": {"model": str(tiny_model_dir), "poll_interval": 0.5}, "indexer": {"model": str(tiny_model_dir)}},
    )
    with flow:
        client = KeyedClient(grpc_port)
        # Data in, over gRPC without target_executor: encoder and indexer pass tuner traffic through.
        answer = client.post(
            "/datasets/append",
            inputs=_docs(toy_records(240, 1, "t")),
            parameters={"dataset": "train"},
            return_responses=True,
        )[-1]  # the client sends requests of 100 documents: the last answer has the total
        assert _results(answer)["documents"] == 240
        assert len(answer.docs) == 0  # stored documents are not echoed back (nor embedded on the way)
        # ... and over HTTP, with the label in tags (the reference tool's convention).
        queries = [{"id": r.id, "text": r.text, "tags": {"finetuner_label": r.label}} for r in toy_records(24, 2, "q")]
        status, body = http_post(http_port, "/datasets/append", {"data": queries, "parameters": {"dataset": "queries"}})
        assert status == 200 and _http_result(body)["documents"] == 24
        _grpc(client, "/datasets/append", {"dataset": "index"}, _docs(toy_records(96, 3, "i")))
        assert {d["dataset"] for d in _http(http_port, "/datasets/list")["datasets"]} == {"train", "queries", "index"}

        # Refusals arrive as errors on both protocols.
        status, body = http_post(
            http_port, "/runs/start", {"data": [], "parameters": {"train_data": "train", "epochs": 0}}
        )
        assert status == 422 and "epochs must be at least 1" in body["detail"]
        with pytest.raises(BadServer, match="unknown loss"):
            _grpc(client, "/runs/start", {"train_data": "train", "loss": "Nope"})

        options = toy_options(tiny_model_dir, epochs=2, run_name="flowrun", to_onnx=True)
        created = _http(http_port, "/runs/start", options)
        assert created["status"] == "CREATED"
        deadline = time.monotonic() + 240
        while (status := _grpc(client, "/runs/status", {"run_name": "flowrun"}))["status"] not in (
            "FINISHED",
            "FAILED",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert status["status"] == "FINISHED", status["details"]
        logs = _http(http_port, "/runs/logs", {"run_name": "flowrun"})
        assert "epoch 2/2" in logs["text"]
        more = _grpc(client, "/runs/logs", {"run_name": "flowrun", "offset": logs["next_offset"]})
        assert more["text"] == ""
        metrics = _grpc(client, "/runs/metrics", {"run_name": "flowrun"})
        assert len(metrics["after"]) == 9
        assert [r["run_name"] for r in _http(http_port, "/runs/list")["runs"]] == ["flowrun"]
        chunk = _http(http_port, "/runs/artifact", {"run_name": "flowrun", "size": 1000})
        assert chunk["next_offset"] == 1000 and len(base64.b64decode(chunk["data"])) == 1000
        assert _grpc(client, "/runs/cancel", {"run_name": "flowrun"})["status"] == "FINISHED"

        # The encoder follows the published artifact by itself.
        artifact = str(tmp_path / "home/artifacts/flowrun")
        deadline = time.monotonic() + 60
        while True:
            info = client.post(
                "/info", inputs=DocList[LabeledText](), return_responses=True, target_executor="encoder$"
            )
            served = next(iter(info[0].parameters["__results__"].values()))
            if served["model"] == artifact or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert served["model"] == artifact
        texts = ["how do cats eat", "the train is fast"]
        status, body = http_post(
            http_port, "/encode", {"data": [{"id": str(i), "text": t} for i, t in enumerate(texts)]}
        )
        assert status == 200
        served_vectors = np.array([d["embedding"] for d in body["data"]])
        np.testing.assert_allclose(served_vectors, get_model(artifact).embed(texts), atol=1e-5)
        grpc_docs = client.post("/encode", inputs=DocList[LabeledText]([LabeledText(text=t) for t in texts]))
        np.testing.assert_allclose(np.stack([d.embedding for d in grpc_docs]), served_vectors, atol=1e-5)


def _http_result(body):
    return next(value for key, value in body["parameters"]["__results__"].items() if key.startswith("tuner/"))
