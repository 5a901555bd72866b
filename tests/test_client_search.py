"""The search client (``tunerflow.index``, ``search``, ``search_status``) and its CLI against flows/search.yml."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.flows import WRITE_KEY, environment
from tests.search_helpers import labelled_set
from tunerflow.errors import DataError

jina = pytest.importorskip("jina")

INDEX, QUERIES = labelled_set(count=60, labels=8, seed=3)
LIMIT = 5


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    """flows/search.yml with 2 shards and the tiny model, INDEX indexed through the client (gRPC and HTTP)."""
    import tunerflow
    from tests.test_search_flow import _wait_for_shards, search_flow
    from tunerflow.search.documents import SearchDoc

    tmp_path = tmp_path_factory.mktemp("client-search")
    flow, grpc_port, http_port = search_flow(tmp_path, tiny_model_dir, shards=2)
    grpc, http = f"grpc://127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}"
    with environment(TUNERFLOW_API_KEY=WRITE_KEY), flow:  # the client's (and the CLI's) key
        _wait_for_shards(http_port)
        first = [SearchDoc(id=r.id, text=r.text, label=r.label, tags=r.tags) for r in INDEX[:40]]
        counts = [tunerflow.index(first, host=grpc, chunk_size=16)]
        csv = tmp_path / "rest.csv"  # the CSV loader names rows by line; their ids differ from INDEX's
        csv.write_text("".join(f"{r.text},{r.label}\n" for r in INDEX[40:]))
        counts.append(tunerflow.index(csv, host=http))
        yield {"grpc": grpc, "http": http, "counts": counts, "csv": csv, "tmp": tmp_path}


def _expected(model_dir, texts: list[str], index_texts: list[str]):
    """(positions, scores) of the best LIMIT index texts per query, by the evaluator's own ranking."""
    from tunerflow.evaluation.evaluator import top_matches
    from tunerflow.inference import open_backend

    model = open_backend(str(model_dir))

    def unit(matrix):
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    scores = unit(model.embed(texts)) @ unit(model.embed(index_texts)).T
    return [(top_matches(row, LIMIT), row[top_matches(row, LIMIT)]) for row in scores]


def test_index_counts_every_form(served):
    from tunerflow.client.search import search_status

    grpc_counts, http_counts = served["counts"]
    assert grpc_counts["indexed"] == 40 and http_counts["indexed"] == len(INDEX) - 40
    status = search_status(served["grpc"])
    assert status["count"] == len(INDEX) == search_status(served["http"])["count"]
    assert len(status["shards"]) == 2


def test_search_gives_the_evaluators_ranking_with_text_and_label(served, tiny_model_dir):
    import tunerflow
    from tunerflow.client.search import search_docs

    stored = [(r.id, r.text, r.label) for r in INDEX[:40]] + [
        (d.id, d.text, d.label) for d in search_docs(served["csv"])
    ]
    assert len({text for _, text, _ in stored}) < len(stored)  # INDEX repeats texts: ties kept in index order
    answers = tunerflow.search([q.text for q in QUERIES], limit=LIMIT, host=served["grpc"])
    expected = _expected(tiny_model_dir, [q.text for q in QUERIES], [text for _, text, _ in stored])
    assert len(answers) == len(QUERIES)
    for matches, (positions, scores) in zip(answers, expected, strict=True):
        assert [m.id for m in matches] == [stored[p][0] for p in positions]
        np.testing.assert_allclose([m.score for m in matches], scores, atol=1e-5)
        assert [m.text for m in matches] == [stored[p][1] for p in positions]
        assert [m.label for m in matches] == [stored[p][2] for p in positions]
    tagged = [m for matches in answers for m in matches if m.id in {r.id for r in INDEX[:40]}]
    assert tagged and all(m.tags["parity"] in (0, 1) for m in tagged)


def test_http_gives_the_same_ids_and_scores(served):
    import tunerflow

    texts = [q.text for q in QUERIES]
    over_grpc = tunerflow.search(texts, limit=LIMIT, host=served["grpc"])
    over_http = tunerflow.search(texts, limit=LIMIT, host=served["http"])
    for a, b in zip(over_grpc, over_http, strict=True):
        assert [m.id for m in a] == [m.id for m in b]
        np.testing.assert_allclose([m.score for m in a], [m.score for m in b], atol=1e-6)


def test_filter_and_refusals(served):
    import tunerflow
    from tunerflow.client.connection import RemoteError
    from tunerflow.search.documents import SearchDoc

    answers = tunerflow.search("w1 w2 w3", limit=3, filter={"label": "2"}, host=served["grpc"])
    assert len(answers) == 1 and len(answers[0]) == 3 and {m.label for m in answers[0]} == {"2"}
    with pytest.raises(RemoteError, match="larger than the index"):
        tunerflow.search("w1", limit=len(INDEX) + 1, host=served["grpc"])
    with pytest.raises(RemoteError, match="already indexed"):
        tunerflow.index([SearchDoc(id=INDEX[0].id, text="again")], host=served["grpc"])
    with pytest.raises(DataError, match="no queries"):
        tunerflow.search([], host=served["grpc"])
    with pytest.raises(DataError, match="item 0 is int"):
        tunerflow.index([3], host=served["grpc"])


def test_search_names_the_client_function_even_after_importing_the_core():
    code = (
        "import tunerflow.search.searcher, tunerflow; from tunerflow.search import Searcher; "
        "print(tunerflow.search.__module__)"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "tunerflow.client.search"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tunerflow.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_index_search_and_status(served):
    extra = served["tmp"] / "extra.jsonl"
    extra.write_text('{"text": "w39 w38 unique words", "label": "x", "id": "extra-1"}\n')
    indexed = _cli("index", str(extra), "--host", served["grpc"])
    assert indexed.returncode == 0 and "indexed 1 documents" in indexed.stdout, indexed.stderr
    found = _cli("search", "w39 w38 unique words", "--limit", "3", "--filter", "label=x", "--host", served["grpc"])
    assert found.returncode == 0, found.stderr
    rows = found.stdout.splitlines()
    assert rows[0] == 'Q: "w39 w38 unique words"' and rows[1].split() == ["rank", "score", "text", "label"]
    assert rows[3].split()[0] == "1" and "w39 w38 unique words" in rows[3] and rows[3].endswith("x")
    status = _cli("index-status", "--host", served["http"])
    assert status.returncode == 0 and f'"count": {len(INDEX) + 1}' in status.stdout
    refused = _cli("search", "x", "--limit", "0", "--host", served["grpc"])
    assert refused.returncode == 2 and "error:" in refused.stderr
    bad = _cli("search", "x", "--filter", "label", "--host", served["grpc"])
    assert bad.returncode != 0 and "FIELD=VALUE" in bad.stderr
