"""flows/search.yml on loopback with a tiny model: gRPC and HTTP, 1 and 2 shards, evaluate's metrics, bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.flows import KeyedClient, flow_from_yaml, http_post
from tests.search_helpers import evaluation_set, labelled_set, metrics_of_matches
from tunerflow.evaluation.evaluator import evaluate

jina = pytest.importorskip("jina")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "executors" / "indexer") not in sys.path:
    sys.path.insert(0, str(ROOT / "executors" / "indexer"))

INDEX, QUERIES = labelled_set(count=60, labels=8)
# INDEX ends with exact duplicates of earlier texts: equal scores, on different shards, kept in index order.


def search_flow(tmp_path: Path, model: Path, shards: int):
    """flows/search.yml with free ports, the tiny model, a private home, ``shards`` shards and the test keys."""
    return flow_from_yaml(
        "search.yml",
        tmp_path,
        {"indexer": {"model": str(model), "home": str(tmp_path / f"home-{shards}")}},
        fields={"indexer": {"shards": shards}},
        file_name=f"search-{shards}.yml",
    )


def _docs(records):
    from docarray import DocList

    from tunerflow.search.documents import SearchDoc

    return DocList[SearchDoc]([SearchDoc(id=r.id, text=r.text, label=r.label, tags=r.tags) for r in records])


def _result(response) -> dict:
    results = response.parameters["__results__"]
    merged = [value for key, value in results.items() if "uses_after" in key]
    return merged[0] if merged else next(iter(results.values()))


def _run(tmp_path, model, shards):
    """Index INDEX in two requests, search QUERIES over gRPC and HTTP; return what came back."""
    from docarray import DocList

    from tunerflow.search.documents import SearchDoc

    flow, grpc_port, http_port = search_flow(tmp_path, model, shards)
    with flow:
        client = KeyedClient(grpc_port)
        _wait_for_shards(http_port)
        client.post("/index", inputs=_docs(INDEX[:25]))
        indexed = _result(client.post("/index", inputs=_docs(INDEX[25:]), return_responses=True)[0])
        answers = client.post("/search", inputs=_docs(QUERIES), parameters={"limit": 7}, return_type=DocList[SearchDoc])
        status, body = http_post(
            http_port, "/search", {"data": [{"id": q.id, "text": q.text} for q in QUERIES], "parameters": {"limit": 7}}
        )
        assert status == 200, body
        state = _result(client.post("/index/status", inputs=_docs([]), return_responses=True)[0])
        bad = _bad_input(client, http_port) if shards == 2 else None
    grpc = [([m.id for m in q.matches], list(q.scores)) for q in answers]
    http = [([m["id"] for m in q["matches"]], q["scores"]) for q in body["data"]]
    return {"indexed": indexed, "grpc": grpc, "http": http, "status": state, "bad": bad}


def _wait_for_shards(http_port: int, attempts: int = 120) -> None:
    """jina may call a sharded Flow ready before every shard listens: ask /index/status until all answer."""
    import time

    for _ in range(attempts):
        status, _ = http_post(http_port, "/index/status", {"data": []})
        if status == 200:
            return
        time.sleep(0.5)
    raise AssertionError("the shards never all answered /index/status")


def _bad_input(client, http_port) -> list[str]:
    """Each bad request answered with an error naming the problem; then the service still serves, nothing lost."""
    from jina.excepts import BadServer

    from tunerflow.search import SearchRecord

    messages = []
    for endpoint, body, expected in [
        ("/index", {"data": []}, 400),
        ("/index", {"data": [{"id": "n1", "text": "fine"}, {"id": "n2"}]}, 400),
        ("/search", {"data": [{"text": "x"}], "parameters": {"limit": 0}}, 422),
        ("/search", {"data": [{"text": "x"}], "parameters": {"limit": 100000}}, 422),
        ("/search", {"data": [{"text": "x"}], "parameters": {"limit": 500}}, 400),
        ("/search", {"data": [{"text": "x"}], "parameters": {"filter": {"colour": "red"}}}, 400),
        ("/search", {"data": [{"id": "e", "embedding": [0.1, 0.2]}], "parameters": {"model": "x"}}, 400),
    ]:
        status, answer = http_post(http_port, endpoint, body)
        assert status == expected, (endpoint, body, answer)  # the merger names a shard's refusal: still 400
        messages.append(str(answer))
    with pytest.raises(BadServer) as refused:
        client.post("/delete", inputs=_docs([SearchRecord("nope", "")]))
    messages.append(str(refused.value))
    with pytest.raises(BadServer) as refused:
        client.post("/index", inputs=_docs([SearchRecord(INDEX[0].id, "again")]))
    messages.append(str(refused.value))
    status, answer = http_post(http_port, "/index/status", {"data": []})
    messages.append(f"count after: {int(answer['result']['count'])}")
    return messages


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("search-flow")
    return {shards: _run(tmp_path, tiny_model_dir, shards) for shards in (1, 2)}


def test_served_search_gives_evaluate_metrics_over_grpc_and_http(runs, tiny_model_dir):
    from tunerflow.inference import open_backend

    model = open_backend(str(tiny_model_dir))
    expected = evaluate(model.embed, evaluation_set(INDEX, QUERIES), limit=7)
    for protocol in ("grpc", "http"):
        served = metrics_of_matches(INDEX, QUERIES, [ids for ids, _ in runs[1][protocol]])
        for name, value in expected.items():
            assert served[name] == pytest.approx(value, abs=1e-6), (protocol, name)
    assert runs[1]["status"]["count"] == len(INDEX) and runs[1]["status"]["model"] == str(tiny_model_dir)


def test_two_shards_give_the_matches_of_one(runs):
    one, two = runs[1], runs[2]
    assert two["status"]["count"] == len(INDEX)
    assert [s["count"] for s in two["status"]["shards"]] != [len(INDEX), 0]  # both shards hold documents
    assert two["indexed"]["indexed"] == len(INDEX) - 25
    for protocol in ("grpc", "http"):
        assert [ids for ids, _ in two[protocol]] == [ids for ids, _ in one[protocol]], protocol
        np.testing.assert_allclose([s for _, s in two[protocol]], [s for _, s in one[protocol]], atol=1e-6)
    assert all(len(ids) == 7 for ids, _ in two["grpc"])


def test_bad_input_names_the_problem_and_keeps_the_index(runs):
    messages = runs[2]["bad"]
    expected = [
        "empty request",
        "has no text",
        "greater than or equal to 1",
        "less than or equal to 1000",
        "larger than the index",
        "unknown filter field",
        "dimension",
        "unknown ids, nothing deleted",
        "already indexed",
    ]
    for message, wanted in zip(messages, expected, strict=False):
        assert wanted in message, (wanted, message[:500])
    assert messages[-1] == f"count after: {len(INDEX)}"
