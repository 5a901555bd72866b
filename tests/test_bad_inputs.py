"""The bad-input catalogue (tests/bad_inputs.yaml) over HTTP and gRPC against one train.yml Flow.

Each case must be refused with the expected HTTP status (gRPC: an error) and a clear message, and
leave the service up, the dataset counts, the runs and the index count as they were.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.flows import READ_KEY, WRITE_KEY, environment, flow_from_yaml, http_post
from tests.training_helpers import toy_options, toy_records
from tunerflow.serving.endpoints import ENDPOINTS

jina = pytest.importorskip("jina")

CASES = yaml.safe_load((Path(__file__).parent / "bad_inputs.yaml").read_text())


def _params(over_grpc: bool):
    chosen = [
        case
        for case in CASES
        if not over_grpc or (case.get("grpc", True) and "raw" not in case and "raw_hex" not in case)
    ]
    marks = lambda case: [pytest.mark.xfail(reason=case["xfail"], strict=False)] if case.get("xfail") else []  # noqa: E731
    return [pytest.param(case, id=case["id"], marks=marks(case)) for case in chosen]


@pytest.fixture(scope="module")
def service(tmp_path_factory, tiny_model_dir):
    from tunerflow.client.connection import Connection

    home = tmp_path_factory.mktemp("bad-inputs")
    with environment(TUNERFLOW_HOME=str(home)):
        flow, grpc_port, http_port = flow_from_yaml("train.yml", home, {"encoder": {"model": str(tiny_model_dir)}})
        with flow:
            http = Connection(f"http://127.0.0.1:{http_port}", WRITE_KEY)
            grpc = Connection(f"grpc://127.0.0.1:{grpc_port}", WRITE_KEY)
            grpc.read_only = Connection(f"grpc://127.0.0.1:{grpc_port}", READ_KEY)
            records = toy_records(24, 4, "c")
            rows = [{"id": r.id, "text": r.text, "label": r.label} for r in records]
            http._http("/datasets/append", rows, {"dataset": "cat-train"})
            options = toy_options(tiny_model_dir, epochs=1, run_name="known-run")
            options.update(train_data="cat-train", eval_query_data="cat-train", eval_index_data="cat-train")
            http.call("/runs/start", options)
            http._http("/index", [{"id": f"i{i}", "text": f"indexed text {i}"} for i in range(3)], {})
            deadline = time.monotonic() + 240
            while http.call("/runs/status", {"run_name": "known-run"})["status"] not in ("FINISHED", "FAILED"):
                assert time.monotonic() < deadline
                time.sleep(0.5)
            yield http_port, http, grpc


def _state(http) -> tuple:
    datasets = sorted((d["dataset"], d["documents"]) for d in http.call("/datasets/list")["datasets"])
    runs = sorted(r["run_name"] for r in http.call("/runs/list")["runs"])  # an earlier case's run may move on
    experiments = sorted(e["name"] for e in http.call("/experiments/list")["experiments"])
    return datasets, runs, experiments, http.call("/index/status")["count"]


def _still_serving(http) -> None:
    assert http.encode(["still serving"]).shape[0] == 1


def _key(case: dict) -> str:
    return {"read": READ_KEY, "write": WRITE_KEY}[case.get("key", "write")]


def _expected(case: dict, protocol: str) -> str:
    return case.get(f"{protocol}_message", case.get("message"))


@pytest.mark.parametrize("case", _params(over_grpc=False))
def test_bad_input_over_http(service, case):
    port, http, _ = service
    before = _state(http)
    body = {"data": case.get("data", []), "parameters": case.get("parameters", {})}
    raw = case.get("raw")
    raw = raw.encode() if raw is not None else bytes.fromhex(case["raw_hex"]) if "raw_hex" in case else None
    status, answer = http_post(port, case["endpoint"], body, raw=raw, key=_key(case))
    assert (status, _expected(case, "http") in str(answer.get("detail"))) == (case["http"], True), answer
    assert "Traceback" not in json.dumps(answer) and "/site-packages/" not in json.dumps(answer)
    _still_serving(http)
    assert _state(http) == before


@pytest.mark.parametrize("case", _params(over_grpc=True))
def test_bad_input_over_grpc(service, case):
    from docarray import DocList

    from tunerflow.client.connection import RemoteError

    _, http, grpc = service
    before = _state(http)
    spec = ENDPOINTS[case["endpoint"]]
    docs = DocList[spec.doc_type]([spec.doc_type(**doc) for doc in case.get("data", [])])
    connection = grpc.read_only if case.get("key") == "read" else grpc
    with pytest.raises(RemoteError) as refused:
        connection._post(case["endpoint"], docs, case.get("parameters", {}), spec.executor, doc_type=spec.doc_type)
    assert _expected(case, "grpc") in str(refused.value)
    assert "Traceback" not in str(refused.value)
    _still_serving(http)
    assert _state(http) == before


def test_the_catalogue_is_large_and_named():
    ids = [case["id"] for case in CASES]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)
    assert all(case["http"] >= 400 for case in CASES)
