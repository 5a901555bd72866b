"""Served search gives evaluate's metrics: Quora dev through flows/search.yml (2 shards), gRPC and HTTP.

For each model, flows/search.yml is started with it, the 15,746 dev index texts are indexed through
``tunerflow.index``, the 5,000 dev queries searched through ``tunerflow.search`` (limit 20) over gRPC
and HTTP, and the nine metrics computed from the served matches (``query_metrics``, as ``evaluate``
computes them; queries and index are disjoint, so exclude_self drops nothing) are compared with
``evaluate`` on the same model. Models: the bundled all-MiniLM-L6-v2 and an artifact saved by
``tunerflow.save_artifact`` from it with CLS pooling (a different model: other vectors, other metrics).

    PYTHONPATH=src .venv/bin/python bench/search_quality.py [--queries N] [--out bench/results/search_quality.jsonl]

Not a test (tests/test_search_flow.py checks the same equality on a small set).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "executors" / "indexer")]
LIMIT = 20


def search_flow(model: str, home: Path, tmp: Path):
    """flows/search.yml (2 shards) on free ports with ``model`` and a private home; returns (flow, grpc, http).

    The Flow's gateway and this process's client share one fresh write key (``$TUNERFLOW_API_KEY`` if set).
    """
    import os

    import yaml
    from jina import Flow

    from tunerflow.client.flow_process import free_port
    from tunerflow.serving.access import new_key

    key = os.environ.setdefault("TUNERFLOW_API_KEY", new_key())
    os.environ["TUNERFLOW_API_KEYS"] = f"{key}:write"

    source = ROOT / "flows" / "search.yml"
    config = yaml.safe_load(source.read_text())
    grpc_port, http_port = free_port(), free_port()
    config["with"]["port"] = [grpc_port, http_port]
    indexer = config["executors"][0]
    for key in ("uses", "uses_after"):
        indexer[key] = str((source.parent / indexer[key]).resolve())
    indexer["uses_with"] = {"model": model, "home": str(home), "batch_size": 64}
    path = tmp / f"search-{home.name}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Flow.load_config(str(path)), f"grpc://127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}"


def wait_for_shards(host: str, timeout: float = 300) -> None:
    """jina may call a sharded Flow ready before every shard listens: ask /index/status until all answer."""
    from tunerflow.client.search import search_status

    deadline = time.monotonic() + timeout
    while True:
        try:
            search_status(host)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def served_metrics(index: list[dict], queries: list[dict], matched_ids: list[list[str]]) -> dict[str, float]:
    """The nine metrics from the served matches, as ``evaluate`` computes them (mean over queries)."""
    from tunerflow.evaluation.metrics import METRIC_NAMES, metric_key, query_metrics

    labels = {f"i{i}": str(row["label"]) for i, row in enumerate(index)}
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    totals = dict.fromkeys(METRIC_NAMES, 0.0)
    for query, ids in zip(queries, matched_ids, strict=True):
        label = str(query["label"])
        relevance = [int(labels[i] == label) for i in ids]
        for name, value in query_metrics(relevance, counts.get(label, 0)).items():
            totals[name] += value
    return {metric_key(name): value / len(queries) for name, value in totals.items()}


def measure(name: str, model: str, index: list[dict], queries: list[dict], tmp: Path) -> dict:
    import tunerflow
    from tunerflow.evaluation.evaluator import EvaluationSet, evaluate
    from tunerflow.inference import open_backend
    from tunerflow.search.documents import SearchDoc

    texts = [q["text"] for q in queries]
    row: dict = {"model": name, "source": model, "queries": len(queries), "index": len(index), "limit": LIMIT}
    flow, grpc, http = search_flow(model, tmp / f"home-{name}", tmp)
    with flow:
        wait_for_shards(http)
        started = time.perf_counter()
        docs = [SearchDoc(id=f"i{i}", text=r["text"], label=str(r["label"])) for i, r in enumerate(index)]
        tunerflow.index(docs, host=grpc, chunk_size=512, progress=False)
        row["index_s"] = round(time.perf_counter() - started, 1)
        for protocol, host in (("grpc", grpc), ("http", http)):
            started = time.perf_counter()
            answers = tunerflow.search(texts, limit=LIMIT, host=host)
            row[f"{protocol}_search_s"] = round(time.perf_counter() - started, 1)
            row[protocol] = served_metrics(index, queries, [[m.id for m in matches] for matches in answers])
    data = EvaluationSet(
        [f"q{i}" for i in range(len(queries))],
        texts,
        [str(q["label"]) for q in queries],
        [f"i{i}" for i in range(len(index))],
        [r["text"] for r in index],
        [str(r["label"]) for r in index],
    )
    row["evaluate"] = evaluate(open_backend(model).embed, data, limit=LIMIT)
    row["max_abs_difference"] = max(
        abs(row[protocol][key] - value) for protocol in ("grpc", "http") for key, value in row["evaluate"].items()
    )
    return row


def cls_artifact(directory: Path) -> str:
    """The bundled model saved as a tunerflow artifact with CLS pooling instead of its mean pooling."""
    from tunerflow import load_model, save_artifact

    return str(save_artifact(load_model("all-MiniLM-L6-v2", pooling="cls"), directory / "minilm-cls"))


def main() -> int:
    from common import machine, quora_dev

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=None, help="the first N dev queries (default: all 5,000)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "search_quality.jsonl")
    args = parser.parse_args()
    queries, index = quora_dev()
    queries = queries[: args.queries] if args.queries else queries
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="search-quality-") as tmp:
        tmp = Path(tmp)
        for name, model in (("all-MiniLM-L6-v2", "all-MiniLM-L6-v2"), ("minilm-cls-artifact", cls_artifact(tmp))):
            row = measure(name, model, index, queries, tmp)
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as handle:
        for row in rows:
            handle.write(json.dumps({**row, "machine": machine(), "started": started}) + "\n")
    for row in rows:
        mrr, ap = "model_reciprocal_rank", "model_average_precision"
        print(
            f"{row['model']:22} MRR evaluate {row['evaluate'][mrr]:.6f} grpc {row['grpc'][mrr]:.6f} "
            f"http {row['http'][mrr]:.6f} | AP evaluate {row['evaluate'][ap]:.6f} grpc {row['grpc'][ap]:.6f} "
            f"http {row['http'][ap]:.6f} | max |diff| over 9 metrics {row['max_abs_difference']:.2e}"
        )
    return 0 if all(row["max_abs_difference"] <= 1e-6 for row in rows) else 1


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn", force=True)  # fork after torch can deadlock jina's processes
    sys.exit(main())
