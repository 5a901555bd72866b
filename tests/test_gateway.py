"""The tunerflow gateway on train.yml and search.yml: keys and roles on HTTP and gRPC, executors behind it, REST."""

from __future__ import annotations

import base64
import json
import urllib.request

import numpy as np
import pytest
import yaml
from docarray import DocList

from tests.flows import READ_KEY, KeyedClient, environment, flow_from_yaml, http_post
from tunerflow.serving.access import Role
from tunerflow.serving.documents import LabeledText
from tunerflow.serving.endpoints import ENDPOINTS
from tunerflow.serving.internal import SECRET_PARAMETER

jina = pytest.importorskip("jina")

# Parameters that make each endpoint do its real work (a refused key must be the only reason to fail).
CALLS = {
    "/encode": ({}, [{"id": "e", "text": "hello"}]),
    "/info": ({}, []),
    "/reload": ({}, []),
    "/datasets/append": ({"dataset": "auth-data"}, [{"id": "a", "text": "hello", "label": "1"}]),
    "/datasets/list": ({}, []),
    "/runs/start": ({"train_data": "gw-data", "run_name": "auth-run"}, []),
    "/runs/status": ({"run_name": "ghost"}, []),
    "/runs/metrics": ({"run_name": "ghost"}, []),
    "/runs/cancel": ({"run_name": "ghost"}, []),
    "/runs/logs": ({"run_name": "ghost"}, []),
    "/runs/list": ({}, []),
    "/runs/artifact": ({"run_name": "ghost"}, []),
    "/runs/delete": ({"run_name": "ghost"}, []),
    "/runs/delete_all": ({"experiment_name": "ghost"}, []),
    "/experiments/create": ({"name": "gw-experiment"}, []),
    "/experiments/get": ({"name": "ghost"}, []),
    "/experiments/list": ({}, []),
    "/experiments/delete": ({"name": "ghost"}, []),
    "/experiments/delete_all": ({}, []),
    "/models/list": ({}, []),
    "/models/resolve": ({"model": "all-MiniLM-L6-v2"}, []),
}
WRITES = sorted(path for path, spec in ENDPOINTS.items() if spec.role is Role.WRITE and path in CALLS)
READS = sorted(path for path, spec in ENDPOINTS.items() if spec.role is Role.READ and path in CALLS)


@pytest.fixture(scope="module")
def service(tmp_path_factory, tiny_model_dir):
    from jina import Flow

    home = tmp_path_factory.mktemp("gateway")
    with environment(TUNERFLOW_HOME=str(home)):
        _, grpc_port, http_port = flow_from_yaml("train.yml", home, {"encoder": {"model": str(tiny_model_dir)}})
        ports = {ex["name"]: free for ex, free in _executor_ports(home / "train.yml")}
        with Flow.load_config(str(home / "train.yml")):  # again, with the fixed internal ports
            yield grpc_port, http_port, ports


def _executor_ports(flow_file):
    """Fix each executor's internal port in the Flow file, so the test can knock on it directly."""
    from tunerflow.client.flow_process import free_port

    config = yaml.safe_load(flow_file.read_text())
    pairs = []
    for executor in config["executors"]:
        executor["port"] = free_port()
        pairs.append((executor, executor["port"]))
    flow_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return pairs


def _datasets(http_port):
    status, body = http_post(http_port, "/datasets/list", {"data": []}, key=READ_KEY)
    assert status == 200, body
    return {d["dataset"]: d["documents"] for d in body["result"]["datasets"]}


def _grpc_error(port, key, endpoint, calls=CALLS):
    from tunerflow.client.connection import Connection, RemoteError

    parameters, docs = calls[endpoint]
    spec = ENDPOINTS[endpoint]
    connection = Connection(f"grpc://127.0.0.1:{port}", key)
    with pytest.raises(RemoteError) as refused:
        connection._post(
            endpoint,
            DocList[spec.doc_type]([spec.doc_type(**d) for d in docs]),
            parameters,
            spec.executor,
            doc_type=spec.doc_type,
        )
    return refused.value


def _refused_without_a_key(grpc_port, http_port, endpoint, calls):
    """No key and an unknown key: 401 over HTTP and gRPC."""
    parameters, docs = calls[endpoint]
    for key in (None, "not-a-key-of-this-flow-0000"):
        status, body = http_post(http_port, endpoint, {"data": docs, "parameters": parameters}, key=key)
        assert status == 401 and "missing or unknown API key" in body["detail"]
        error = _grpc_error(grpc_port, key, endpoint, calls)
        assert error.status == 401 and "missing or unknown API key" in str(error)


def _refused_to_a_read_key(grpc_port, http_port, endpoint, calls):
    """A read key on a write endpoint: 403 over HTTP and gRPC."""
    parameters, docs = calls[endpoint]
    status, body = http_post(http_port, endpoint, {"data": docs, "parameters": parameters}, key=READ_KEY)
    assert status == 403 and f"{endpoint} needs a write key" in body["detail"]
    error = _grpc_error(grpc_port, READ_KEY, endpoint, calls)
    assert error.status == 403 and "needs a write key" in str(error)


@pytest.mark.parametrize("endpoint", sorted(CALLS))
def test_without_a_key_every_endpoint_refuses(service, endpoint):
    grpc_port, http_port, _ = service
    _refused_without_a_key(grpc_port, http_port, endpoint, CALLS)


@pytest.mark.parametrize("endpoint", WRITES)
def test_a_read_key_writes_nothing(service, endpoint):
    grpc_port, http_port, _ = service
    before = _datasets(http_port)
    _refused_to_a_read_key(grpc_port, http_port, endpoint, CALLS)
    assert _datasets(http_port) == before


@pytest.mark.parametrize("endpoint", READS)
def test_a_read_key_reads(service, endpoint):
    _, http_port, _ = service
    parameters, docs = CALLS[endpoint]
    status, body = http_post(http_port, endpoint, {"data": docs, "parameters": parameters}, key=READ_KEY)
    assert status in (200, 404), body  # 404: the ghost run (or experiment) is unknown, but the key was accepted
    assert status == 200 or "named 'ghost'" in body["detail"]


def test_health_and_readiness_need_no_key(service):
    from jina.serve.networking.utils import send_health_check_sync

    grpc_port, http_port, _ = service
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=10) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/dry_run", timeout=60) as answer:
        assert json.loads(answer.read())["code"] == 0
    assert send_health_check_sync(f"127.0.0.1:{grpc_port}", timeout=10).status == 1  # SERVING


@pytest.mark.parametrize(
    "name, endpoint", [("tuner", "/datasets/append"), ("encoder", "/encode"), ("indexer", "/index")]
)
def test_internal_ports_refuse_requests_that_bypass_the_gateway(service, name, endpoint):
    from jina import Client
    from jina.excepts import BadServer

    _, http_port, ports = service
    before = _datasets(http_port)
    docs = DocList[LabeledText]([LabeledText(id="x", text="sneaky", label="1")])
    direct = Client(host=f"grpc://127.0.0.1:{ports[name]}")
    for parameters in ({"dataset": "sneaky"}, {"dataset": "sneaky", SECRET_PARAMETER: "a guess"}):
        with pytest.raises(BadServer, match="answers only requests forwarded by the tunerflow gateway"):
            direct.post(endpoint, inputs=docs, parameters=parameters if name == "tuner" else {})
    assert _datasets(http_port) == before
    status, body = http_post(http_port, "/index/status", {"data": []}, key=READ_KEY)
    assert status == 200 and body["result"]["count"] == 0, body


def test_answers_never_carry_the_internal_secret(service):
    grpc_port, http_port, _ = service
    responses = KeyedClient(grpc_port).post("/info", inputs=DocList[LabeledText](), return_responses=True)
    assert SECRET_PARAMETER not in responses[0].parameters
    status, body = http_post(http_port, "/info", {"data": [], "parameters": {SECRET_PARAMETER: "x"}})
    assert status == 200 and SECRET_PARAMETER not in json.dumps(body)


def test_all_documents_come_back_and_the_limit_is_named(service):
    grpc_port, http_port, _ = service
    texts = [f"text number {i}" for i in range(1234)]
    status, body = http_post(http_port, "/encode", {"data": [{"id": str(i), "text": t} for i, t in enumerate(texts)]})
    assert status == 200 and [d["id"] for d in body["data"]] == [str(i) for i in range(len(texts))]
    status, body = http_post(http_port, "/encode", {"data": [{"text": "x"}] * 10_001})
    assert status == 413 and "the limit is 10000" in body["detail"]
    status, body = http_post(http_port, "/encode", {"data": [{"id": "after", "text": "still fast"}]}, timeout=30)
    assert status == 200 and body["data"][0]["id"] == "after"


def test_openai_embeddings_route(service):
    _, http_port, _ = service
    texts = ["how do cats eat", "the train is fast"]
    status, encoded = http_post(
        http_port, "/encode", {"data": [{"id": str(i), "text": t} for i, t in enumerate(texts)]}
    )
    assert status == 200
    expected = np.array([d["embedding"] for d in encoded["data"]], dtype=np.float32)
    status, body = http_post(http_port, "/v1/embeddings", {"input": texts, "model": "my-model"}, key=READ_KEY)
    assert status == 200, body
    assert body["object"] == "list" and body["model"] == "my-model"
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0), ("embedding", 1)]
    np.testing.assert_allclose(np.array([d["embedding"] for d in body["data"]]), expected, atol=1e-6)
    assert body["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    status, body = http_post(http_port, "/v1/embeddings", {"input": texts[0], "encoding_format": "base64"})
    decoded = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, expected[0], atol=1e-6)


def test_openapi_spec_matches_the_models(service):
    _, http_port, _ = service
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/openapi.json", timeout=10) as answer:
        spec = json.loads(answer.read())
    assert set(CALLS) | {"/v1/embeddings"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    start = schemas["RunParameters"]
    assert (
        start["additionalProperties"] is False
        and "epochs" in start["properties"]
        and start["required"] == ["train_data"]
    )
    assert schemas["RunsStartRequest"]["additionalProperties"] is False
    assert {"422", "401", "403"} <= set(spec["paths"]["/runs/start"]["post"]["responses"])


# flows/search.yml (2 shards and the merger, as shipped): the same rules for the index.
SEARCH_CALLS = {
    "/index": ({}, [{"id": "new", "text": "a new text"}]),
    "/update": ({}, [{"id": "s0", "text": "changed"}]),
    "/delete": ({}, [{"id": "s0"}]),
    "/clear": ({}, []),
    "/search": ({"limit": 2}, [{"id": "q", "text": "hello world"}]),
    "/index/status": ({}, []),
}
SEARCH_WRITES = ["/clear", "/delete", "/index", "/update"]  # named, not read from the role table it checks


@pytest.fixture(scope="module")
def search_service(tmp_path_factory, tiny_model_dir):
    """search.yml with s0 and s1 indexed; yields (grpc port, http port, the indexer's internal ports by part)."""
    from tests.test_search_flow import _wait_for_shards

    home = tmp_path_factory.mktemp("gateway-search")
    with environment(TUNERFLOW_HOME=str(home)):
        flow, grpc_port, http_port = flow_from_yaml("search.yml", home, {"indexer": {"model": str(tiny_model_dir)}})
        with flow:
            _wait_for_shards(http_port)
            docs = [{"id": "s0", "text": "hello world"}, {"id": "s1", "text": "cats and dogs"}]
            assert http_post(http_port, "/index", {"data": docs})[0] == 200
            parts = flow._deployment_nodes["indexer"].pod_args
            ports = {"head": parts["head"].port[0], "merger": parts["uses_after"].port[0]}
            ports.update({f"shard-{k}": replicas[0].port[0] for k, replicas in parts["pods"].items()})
            yield grpc_port, http_port, ports


def _index_count(http_port):
    status, body = http_post(http_port, "/index/status", {"data": []}, key=READ_KEY)
    assert status == 200, body
    return body["result"]["count"]  # the merger's: both shards together


@pytest.mark.parametrize("endpoint", sorted(SEARCH_CALLS))
def test_search_flow_without_a_key_refuses(search_service, endpoint):
    grpc_port, http_port, _ = search_service
    _refused_without_a_key(grpc_port, http_port, endpoint, SEARCH_CALLS)
    assert _index_count(http_port) == 2


@pytest.mark.parametrize("endpoint", SEARCH_WRITES)
def test_search_flow_read_key_changes_no_index(search_service, endpoint):
    grpc_port, http_port, _ = search_service
    _refused_to_a_read_key(grpc_port, http_port, endpoint, SEARCH_CALLS)
    assert _index_count(http_port) == 2


def test_search_flow_read_key_searches(search_service):
    from tunerflow.client.search import search

    grpc_port, http_port, _ = search_service
    parameters, docs = SEARCH_CALLS["/search"]
    status, body = http_post(http_port, "/search", {"data": docs, "parameters": parameters}, key=READ_KEY)
    assert status == 200, body
    over_http = body["data"][0]["matches"]
    assert [m["id"] for m in over_http] == ["s0", "s1"] and over_http[0]["text"] == "hello world"
    for host in (f"grpc://127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}"):
        with environment(TUNERFLOW_API_KEY=READ_KEY):
            matches = search("hello world", limit=2, host=host)[0]
        assert [(m.id, m.text) for m in matches] == [("s0", "hello world"), ("s1", "cats and dogs")], host


@pytest.mark.parametrize("part", ["shard-0", "shard-1", "merger", "head"])
def test_search_flow_internal_ports_refuse_direct_calls(search_service, part):
    from jina import Client
    from jina.excepts import BadServer

    from tunerflow.search.documents import SearchDoc

    _, http_port, ports = search_service
    direct = Client(host=f"grpc://127.0.0.1:{ports[part]}")
    # The head forwards to the shards, which refuse; jina's head then fails on the missing answers (KeyError).
    refusal = None if part == "head" else "answers only requests forwarded by the tunerflow gateway"
    for endpoint, docs in (("/index", [SearchDoc(id="sneaky", text="sneaky")]), ("/clear", [])):
        for parameters in ({}, {SECRET_PARAMETER: "a guess"}):
            with pytest.raises(BadServer, match=refusal):
                direct.post(endpoint, inputs=DocList[SearchDoc](docs), parameters=parameters)
    assert _index_count(http_port) == 2


def test_search_flow_large_bodies_are_all_answered_or_refused_with_the_limit(search_service):
    _, http_port, _ = search_service
    queries = [{"id": f"q{i}", "text": f"hello {i}"} for i in range(250)]  # 3 chunks
    status, body = http_post(http_port, "/search", {"data": queries, "parameters": {"limit": 1}}, key=READ_KEY)
    assert status == 200 and [d["id"] for d in body["data"]] == [q["id"] for q in queries]
    assert all(len(d["matches"]) == 1 for d in body["data"])
    status, body = http_post(http_port, "/search", {"data": [{"text": "x"}] * 10_001}, key=READ_KEY)
    assert status == 413 and "the limit is 10000" in body["detail"]
