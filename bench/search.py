"""Benchmark of tunerflow.search (not a test): exact search against plain numpy, index throughput, ANN.

    python bench/search.py                     # Quora dev (bundled model) and 1,000,000 x 384 synthetic
    python bench/search.py --sizes 100000      # a smaller synthetic collection
    python bench/search.py --skip-quora

Exact search is timed against a plain numpy brute force (one matrix product per query batch,
then ``argpartition`` and a sort) on the same vectors in the same process; the ANN rows give
queries/s and recall@10 against exact. Results are printed and appended to
bench/results/search.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, append_result, machine, peak_rss_mib, quora_dev  # noqa: E402

from tunerflow.search import ExactIndex, ModelIdentity, SearchRecord, VectorStore  # noqa: E402
from tunerflow.search.ann import AnnIndex, AnnOptions  # noqa: E402
from tunerflow.search.records import SearchBackend, unit_rows  # noqa: E402

OUT = ROOT / "bench" / "results" / "search.jsonl"
_CELLS = 1 << 24


def numpy_brute_force(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The baseline: a matrix product per query batch, argpartition, sort the k."""
    step = max(1, _CELLS // len(vectors))
    out = []
    for start in range(0, len(queries), step):
        scores = queries[start : start + step] @ vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
        out.append(np.take_along_axis(top, order, 1))
    return np.concatenate(out)


def timed(function, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def store_throughput(vectors: np.ndarray, batch: int) -> dict:
    """Documents/s into a VectorStore (journal fsynced per request, compactions included)."""
    with tempfile.TemporaryDirectory(dir=ROOT / "bench" / "results") as directory:
        store = VectorStore(directory, ModelIdentity("bench", vectors.shape[1]))
        started = time.perf_counter()
        for request, start in enumerate(range(0, len(vectors), batch)):
            chunk = vectors[start : start + batch]
            records = [SearchRecord(f"{start + i}", f"text {start + i}", order=start + i) for i in range(len(chunk))]
            store.add(records, chunk, request)
        seconds = time.perf_counter() - started
        store.close()
        started = time.perf_counter()
        reopened = VectorStore(directory)
        reopen = time.perf_counter() - started
        assert len(reopened) == len(vectors)
        reopened.close()
    return {"docs_per_s": round(len(vectors) / seconds, 1), "reopen_s": round(reopen, 2), "request_size": batch}


def compare(vectors: np.ndarray, queries: np.ndarray, k: int, repeats: int, ann: list[tuple[str, AnnOptions]]) -> dict:
    """Exact (tunerflow) vs numpy on the same vectors; then each ANN option's queries/s and recall@k."""
    index = ExactIndex(vectors.shape[1])
    index.add([SearchRecord(str(i), "", order=i) for i in range(len(vectors))], vectors)
    numpy_s, truth = timed(lambda: numpy_brute_force(index.vectors, queries, k), repeats)
    exact_s, answers = timed(lambda: index.search(queries, k), repeats)
    ours = np.array([[int(m.record.id) for m in matches] for matches in answers])
    result = {
        "vectors": len(vectors),
        "dimension": vectors.shape[1],
        "queries": len(queries),
        "k": k,
        "numpy_qps": round(len(queries) / numpy_s, 1),
        "exact_qps": round(len(queries) / exact_s, 1),
        "exact_vs_numpy": round(numpy_s / exact_s, 2),
        "same_top_k_as_numpy": float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ours, truth, strict=True)])),
    }
    for name, options in ann:
        backend = SearchBackend(name)
        ann_index = AnnIndex(backend, options)
        started = time.perf_counter()
        ann_index.build(index)
        build = time.perf_counter() - started
        ann_s, (_, rows) = timed(lambda ai=ann_index: ai.search(unit_rows(queries), k), repeats)
        recall = float(np.mean([len(set(r) & set(t)) / k for r, t in zip(rows, ours, strict=True)]))
        result[name] = {
            "qps": round(len(queries) / ann_s, 1),
            "vs_exact": round(exact_s / ann_s, 1),
            "recall_at_10_vs_exact": round(recall, 4),
            "status_recall_at_10": ann_index.recall_at_10,
            "build_s": round(build, 1),
            "options": options.__dict__,
        }
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def quora(repeats: int) -> dict:
    """The bundled model on Quora dev: end-to-end index throughput and search speed on real vectors."""
    from tunerflow.inference import open_backend

    queries, index = quora_dev()
    model = open_backend("all-MiniLM-L6-v2")
    started = time.perf_counter()
    vectors = unit_rows(model.embed([row["text"] for row in index]))
    embed_s = time.perf_counter() - started
    query_vectors = unit_rows(model.embed([row["text"] for row in queries]))
    result = compare(vectors, query_vectors, 10, repeats, [("hnsw", AnnOptions()), ("ivf", AnnOptions(nprobe=16))])
    store = store_throughput(vectors, 1000)
    embed_rate = len(index) / embed_s
    result["index_throughput"] = {
        "embedding_docs_per_s": round(embed_rate, 1),
        "store_docs_per_s": store["docs_per_s"],
        "end_to_end_docs_per_s": round(1 / (1 / embed_rate + 1 / store["docs_per_s"]), 1),
    }
    return {"collection": "quora-dev", **result}


def synthetic(size: int, dimension: int, repeats: int, seed: int = 0) -> dict:
    """Clustered unit vectors (like real embeddings: many topics), queries drawn near them."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4096, dimension), dtype=np.float32)
    vectors = np.empty((size, dimension), dtype=np.float32)
    for start in range(0, size, 100_000):
        n = min(100_000, size - start)
        chunk = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dimension), dtype=np.float32)
        vectors[start : start + n] = unit_rows(chunk)
    queries = unit_rows(centres[rng.integers(0, len(centres), 200)] + 0.6 * rng.standard_normal((200, dimension)))
    lists = int(2 ** round(np.log2(max(16, np.sqrt(size)))))
    ann = [("ivf", AnnOptions(ivf_lists=lists, nprobe=max(4, lists // 64)))]
    if size <= 200_000:
        ann.insert(0, ("hnsw", AnnOptions()))
    result = compare(vectors, queries, 10, repeats, ann)
    result["index_throughput"] = {"store_docs_per_s": store_throughput(vectors, 10_000)["docs_per_s"]}
    return {"collection": f"synthetic-{size}x{dimension}", **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-quora", action="store_true")
    args = parser.parse_args()
    info = {**machine(), "command": "python bench/search.py " + " ".join(sys.argv[1:])}
    runs = [] if args.skip_quora else [lambda: quora(args.repeats)]
    runs += [lambda size=size: synthetic(size, args.dimension, args.repeats) for size in args.sizes]
    for run in runs:
        result = {**run(), "machine": info}
        print(json.dumps(result), flush=True)
        append_result(OUT, result)


if __name__ == "__main__":
    main()
