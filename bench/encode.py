"""Encoding speed against sentence-transformers on the Quora dev texts (queries + index).

Every configuration runs in its own fresh interpreter (so its peak memory is
its own), embeds the same texts ``--repeats`` times after a warm-up pass, and
reports sentences/s (median, min, max), the ratio to the baseline
(sentence-transformers ``encode``, fp32, in-process) and peak RSS. The timed
texts are a fixed random sample of ``--texts`` of the 20,746 dev texts (all of
them with ``--texts 0``). In-process configurations then embed all 20,746 once
more for Quora-dev MRR and average precision (limit 20), so lower precisions
are compared with fp32 on the task itself; served ones run the same backend
code and give the same embeddings.

On a CPU without bf16 hardware (AMX or AVX512-BF16), PyTorch emulates bf16
and it is slower than fp32: there torch's bf16 configurations are measured on
one short pass only, unless ``--force-bf16``; OpenVINO's are skipped (it would
run float32, and the backend refuses bf16 there).

    .venv/bin/python bench/encode.py                                  # every configuration
    .venv/bin/python bench/encode.py --configs st torch-fp32 --texts 2000 --repeats 3

``NAME-per-request`` runs an in-process configuration in calls of ``--request-size`` texts, as a served
request of that size reaches the backend: the served row over it is the serving overhead alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, peak_rss_mib, quora_dev, rate_summary, run_all, tree_peak_rss_mib  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
IN_PROCESS = {
    "st": {"kind": "st"},
    "torch-fp32": {"kind": "local", "backend": "torch", "dtype": "float32"},
    "torch-bf16": {"kind": "local", "backend": "torch", "dtype": "bfloat16"},
    "onnx-fp32": {"kind": "local", "backend": "onnx", "dtype": "float32"},
    "onnx-int8": {"kind": "local", "backend": "onnx-int8", "dtype": "float32"},
    "openvino-fp32": {"kind": "local", "backend": "openvino", "dtype": "float32"},
    "openvino-bf16": {"kind": "local", "backend": "openvino", "dtype": "bfloat16"},
    "openvino-int8": {"kind": "local", "backend": "openvino-int8", "dtype": "float32"},
}
SERVED = {
    f"served-{protocol}-{name}": {**IN_PROCESS[name], "kind": "served", "protocol": protocol}
    for protocol in ("grpc", "http")
    for name in IN_PROCESS
    if name != "st"
}
# The same backend in-process, called with --request-size texts at a time: what a served request of that
# size costs the backend itself, so served / per-request is the serving overhead alone.
PER_REQUEST = {f"{name}-per-request": {**IN_PROCESS[name], "per_request": True} for name in IN_PROCESS if name != "st"}
CONFIGS = {**IN_PROCESS, **PER_REQUEST, **SERVED}


def texts_and_eval(sample: int | None):
    """The timed texts (a fixed random sample, or all), and the dev queries and index."""
    queries, index = quora_dev()
    texts = [q["text"] for q in queries] + [r["text"] for r in index]
    if sample and sample < len(texts):
        chosen = np.random.default_rng(0).choice(len(texts), size=sample, replace=False)
        return [texts[i] for i in sorted(chosen)], queries, index
    return texts, queries, index


def bf16_hardware() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "amx_bf16" in flags or "avx512_bf16" in flags


def unavailable(config: dict) -> str | None:
    """Why ``config`` cannot run on this machine, or None: OpenVINO refuses bf16 where the CPU has none."""
    if config.get("backend") == "openvino" and config.get("dtype") == "bfloat16" and not bf16_hardware():
        return "no bf16 hardware on this CPU: OpenVINO would run float32, and the backend refuses it"
    return None


def quality(embeddings: np.ndarray, queries: list[dict], index: list[dict]) -> dict:
    """MRR and average precision on Quora dev from embeddings of queries followed by index texts."""
    from tunerflow.evaluation import EvaluationSet, evaluate

    count = len(queries)
    data = EvaluationSet(
        query_ids=[f"q{i}" for i in range(count)],
        query_texts=[str(i) for i in range(count)],
        query_labels=[str(q["label"]) for q in queries],
        index_ids=[f"i{i}" for i in range(len(index))],
        index_texts=[str(count + i) for i in range(len(index))],
        index_labels=[str(r["label"]) for r in index],
    )
    metrics = evaluate(lambda keys: embeddings[[int(k) for k in keys]], data)
    return {"mrr": round(metrics["model_reciprocal_rank"], 5), "ap": round(metrics["model_average_precision"], 5)}


def encoder_default_batch_size() -> int:
    """The encoder's own ``batch_size`` (executors/encoder/config.yml), for ``--batch-size 0`` in-process."""
    import yaml

    return int(yaml.safe_load((ROOT / "executors" / "encoder" / "config.yml").read_text())["with"]["batch_size"])


def local_embedder(config: dict, batch_size: int):
    if config["kind"] == "st":
        batch_size = batch_size or 32  # 0: sentence-transformers' own default
        from sentence_transformers import SentenceTransformer

        from tunerflow.modeling.sources import bundled_model_path

        model = SentenceTransformer(str(bundled_model_path()), device="cpu")
        return lambda texts: model.encode(texts, batch_size=batch_size, convert_to_numpy=True)
    from tunerflow import get_model

    batch_size = batch_size or encoder_default_batch_size()  # 0: as the encoder batches (its config.yml)
    model = get_model(MODEL, backend=config["backend"], dtype=config["dtype"], batch_size=batch_size)
    return model.embed


def encoder_batching(batch_size: int | None) -> dict:
    """The encoder's batching options: ``--batch-size`` caps texts per pass; 0 keeps config.yml's own."""
    return {"batch_size": batch_size} if batch_size else {}


def served_embedder(config: dict, batch_size: int, request_size: int, workdir: Path, in_flight: int | None = None):
    from tunerflow.client.flow_process import FlowProcess, free_port

    grpc_port, http_port = free_port(), free_port()
    flow = FlowProcess(
        ROOT / "flows" / "serve.yml",
        grpc_port,
        http_port,
        log_file=workdir / "flow.log",
        uses_with={"encoder": {"backend": config["backend"], "dtype": config["dtype"], **encoder_batching(batch_size)}},
    ).start()
    from tunerflow.client.connection import Connection

    port = grpc_port if config["protocol"] == "grpc" else http_port
    connection = Connection(f"{config['protocol']}://127.0.0.1:{port}", flow.api_key)  # the product's client

    def embed(texts: list[str]) -> np.ndarray:
        return connection.encode(texts, batch_size=request_size, in_flight=in_flight)

    return embed, flow, request_size


def run_one(name: str, args) -> dict:
    config = CONFIGS[name]
    texts, queries, index = texts_and_eval(args.texts)
    flow = request_size = None
    if config["kind"] == "served":
        embed, flow, request_size = served_embedder(
            config, args.batch_size, args.request_size, Path(args.workdir), args.in_flight
        )
    else:
        embed = local_embedder(config, args.batch_size)
        if config.get("per_request"):
            request_size, whole = args.request_size, embed

            def embed(texts: list[str]) -> np.ndarray:
                return np.concatenate([whole(texts[i : i + request_size]) for i in range(0, len(texts), request_size)])

    probe_only = config.get("dtype") == "bfloat16" and not bf16_hardware() and not args.force_bf16
    if probe_only:
        texts, repeats = texts[:500], 1
    else:
        repeats = args.repeats
    try:
        embed(texts[: min(len(texts), 1000)])  # warm-up
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            embed(texts)
            seconds.append(time.perf_counter() - started)
        full = None
        if config["kind"] != "served" and not probe_only and not config.get("per_request"):
            full = embed([q["text"] for q in queries] + [r["text"] for r in index])
        rss = tree_peak_rss_mib(flow.process.pid) if flow else peak_rss_mib()
    finally:
        if flow:
            flow.stop()
    result = {"config": name, "texts": len(texts), "batch_size": args.batch_size, **rate_summary(seconds, len(texts))}
    if probe_only:
        result["note"] = "no bf16 hardware on this CPU (PyTorch emulates bf16): one short pass only"
    if request_size is not None:
        result["request_size"] = request_size
    if config["kind"] == "served":
        from tunerflow.client.connection import default_in_flight

        result["in_flight"] = args.in_flight or default_in_flight()
    result["peak_rss_mib"] = rss
    if full is not None:
        result.update(quality(np.asarray(full), queries, index))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS), help=f"from: {', '.join(CONFIGS)}"
    )
    parser.add_argument("--texts", type=int, default=5000, help="timed sample of the dev texts; 0: all 20,746")
    parser.add_argument("--force-bf16", action="store_true", help="time bf16 fully even without bf16 hardware")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32, help="texts per pass; 0: the encoder's config.yml")
    parser.add_argument("--request-size", type=int, default=512, help="documents per request (served, per-request)")
    parser.add_argument(
        "--in-flight", type=int, default=None, help="served: requests on their way at a time (default: the client's)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "encode.jsonl")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return
    from tunerflow import get_model

    get_model(MODEL, backend="onnx-int8")  # export ONNX (fp32 and int8) once, before any timing
    info = machine()
    print(json.dumps({"machine": info, "command": " ".join(sys.argv)}), flush=True)
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / "tunerflow-bench"
    workdir.mkdir(parents=True, exist_ok=True)
    common_args = ["--repeats", str(args.repeats), "--batch-size", str(args.batch_size)]
    common_args += ["--request-size", str(args.request_size), "--workdir", str(workdir), "--texts", str(args.texts)]
    if args.force_bf16:
        common_args.append("--force-bf16")
    if args.in_flight:
        common_args += ["--in-flight", str(args.in_flight)]
    names = []
    for name in args.configs:
        reason = unavailable(CONFIGS[name])
        if reason:
            print(json.dumps({"config": name, "skipped": reason}), flush=True)
        else:
            names.append(name)
    run_all(Path(__file__), names, "st", common_args, args.out, info)


if __name__ == "__main__":
    main()
