"""Load on the served encoder: concurrent clients over gRPC and HTTP, with and without a training run going.

Not a test. Each of ``--clients`` clients sends ``--requests`` requests of 1-4 texts (Quora dev questions,
seeded) to ``/encode`` one after the other; all clients run at once. Reported per protocol and scenario:
errors, p50/p99 latency, requests/s and texts/s. Results are appended to bench/results/load.jsonl.

    .venv/bin/python bench/load.py --start-flow --clients 16 --requests 1000          # starts flows/train.yml
    .venv/bin/python bench/load.py --grpc grpc://127.0.0.1:54321 --http http://127.0.0.1:54322 --scenarios idle

With ``--api-key`` (or ``$TUNERFLOW_API_KEY``) HTTP requests carry ``Authorization: Bearer KEY`` and gRPC
requests the ``authorization`` metadata ``Bearer KEY``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, append_result, machine, quora_dev  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "load.jsonl"


def request_texts(count: int, seed: int) -> list[list[str]]:
    """``count`` requests of 1-4 texts each."""
    queries, _ = quora_dev()
    texts = [q["text"] for q in queries]
    rng = random.Random(seed)
    return [rng.sample(texts, rng.randint(1, 4)) for _ in range(count)]


async def grpc_client(host: str, requests: list[list[str]], key: str | None) -> tuple[list[float], int]:
    from docarray import DocList
    from jina import Client

    from tunerflow.serving.documents import LabeledText

    client = Client(host=host, asyncio=True)
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    latencies, errors = [], 0
    for texts in requests:
        docs = DocList[LabeledText]([LabeledText(id=str(i), text=t) for i, t in enumerate(texts)])
        started = time.perf_counter()
        try:
            got, ok = 0, True
            async for answer in client.post(
                "/encode", inputs=docs, metadata=metadata, return_type=DocList[LabeledText]
            ):
                got += len(answer)
                ok = ok and all(doc.embedding is not None for doc in answer)
            errors += int(got != len(texts) or not ok)
        except Exception:  # any failure counts as an error; the load goes on
            errors += 1
        latencies.append(time.perf_counter() - started)
    return latencies, errors


async def http_client(base: str, requests: list[list[str]], key: str | None) -> tuple[list[float], int]:
    import aiohttp

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    latencies, errors = [], 0
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as session:
        for texts in requests:
            body = {"data": [{"id": str(i), "text": t} for i, t in enumerate(texts)]}
            started = time.perf_counter()
            try:
                async with session.post(f"{base}/encode", json=body) as response:
                    answer = await response.json()
                    good = response.status == 200 and len(answer.get("data") or []) == len(texts)
                    errors += int(not good or any(d.get("embedding") is None for d in answer["data"]))
            except Exception:  # any failure counts as an error; the load goes on
                errors += 1
            latencies.append(time.perf_counter() - started)
    return latencies, errors


async def measure(protocol: str, target: str, clients: int, per_client: int, key: str | None, seed: int) -> dict:
    run = grpc_client if protocol == "grpc" else http_client
    plans = [request_texts(per_client, seed + index) for index in range(clients)]
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(run(target, plan, key) for plan in plans))
    wall = time.perf_counter() - started
    latencies = np.array([value for latency, _ in outcomes for value in latency]) * 1000
    texts = sum(len(texts) for plan in plans for texts in plan)
    return {
        "protocol": protocol,
        "clients": clients,
        "requests": clients * per_client,
        "errors": sum(errors for _, errors in outcomes),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "requests_per_s": round(clients * per_client / wall, 1),
        "texts_per_s": round(texts / wall, 1),
        "wall_s": round(wall, 1),
    }


def encoder_batching(grpc: str, key: str | None) -> dict:
    """The encoder's batching counters from ``/info`` (model calls and requests answered so far)."""
    from tunerflow.client.connection import Connection

    return (Connection(grpc, key).call("/info", target="encoder").get("batching") or {}).get("dynamic") or {}


def merged(before: dict, after: dict) -> float | None:
    """Requests answered per model call between two readings of the counters."""
    calls = after.get("calls", 0) - before.get("calls", 0)
    return round((after.get("requests", 0) - before.get("requests", 0)) / calls, 2) if calls > 0 else None


def start_training(grpc: str, key: str | None) -> object:
    """A long run on Quora texts (cancelled at the end), so that the tuner trains while the encoder serves."""
    import tunerflow

    if key:
        os.environ.setdefault("TUNERFLOW_API_KEY", key)
    _, index = quora_dev()
    pairs = [(row["text"], row["label"]) for row in index[:4000]]
    run = tunerflow.fit(train_data=pairs, epochs=50, batch_size=64, host=grpc, run_name=f"load-{int(time.time())}")
    deadline = time.monotonic() + 600
    while run.status()["status"] != "STARTED" or not run.status()["progress"]:
        if time.monotonic() > deadline or run.status()["status"] in ("FAILED", "CANCELLED", "FINISHED"):
            raise RuntimeError(f"the training run did not start: {run.status()}")
        time.sleep(2)
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grpc", default="grpc://127.0.0.1:54321")
    parser.add_argument("--http", default="http://127.0.0.1:54322")
    parser.add_argument("--start-flow", action="store_true", help="start flows/train.yml on free ports first")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1000, help="requests per client")
    parser.add_argument("--protocols", default="grpc,http")
    parser.add_argument(
        "--scenarios", default="idle,training", help="idle (no run going), training (a run going), or both"
    )
    parser.add_argument("--api-key", default=os.environ.get("TUNERFLOW_API_KEY"), help="default $TUNERFLOW_API_KEY")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", help="--start-flow: the encoder's backend (default: its config.yml)")
    parser.add_argument("--dtype", help="--start-flow: the encoder's dtype (default: its config.yml)")
    parser.add_argument("--threads", type=int, help="--start-flow: the encoder's compute threads (default: config.yml)")
    args = parser.parse_args()

    flow = None
    if args.start_flow:
        from tunerflow.client.flow_process import FlowProcess, free_port

        home = Path(tempfile.mkdtemp(prefix="tunerflow-load-"))
        flow = FlowProcess(
            ROOT / "flows/train.yml",
            free_port(),
            free_port(),
            home / "flow.log",
            env={"TUNERFLOW_HOME": str(home)},
            api_key=args.api_key,
            uses_with={"encoder": {k: v for k, v in vars(args).items() if k in ("backend", "dtype", "threads") and v}},
        ).start()
        args.grpc, args.http, args.api_key = flow.grpc_host, flow.http_host, flow.api_key
    results, run = [], None
    info = {"command": " ".join(["bench/load.py", *sys.argv[1:]]), "machine": machine()}
    try:
        for protocol in args.protocols.split(","):  # one request each first: a wrong key or host fails loud here
            target = args.grpc if protocol == "grpc" else args.http
            if asyncio.run(measure(protocol, target, 1, 1, args.api_key, args.seed))["errors"]:
                raise SystemExit(f"{protocol}: the first /encode to {target} failed (host, API key?)")
        for training in [name == "training" for name in args.scenarios.split(",")]:
            if training:
                run = start_training(args.grpc, args.api_key)
            for protocol in args.protocols.split(","):
                target = args.grpc if protocol == "grpc" else args.http
                calls_before = encoder_batching(args.grpc, args.api_key)
                result = asyncio.run(measure(protocol, target, args.clients, args.requests, args.api_key, args.seed))
                result["training"] = training
                result["requests_per_model_call"] = merged(calls_before, encoder_batching(args.grpc, args.api_key))
                results.append(result)
                append_result(RESULTS, {**result, **info})  # as it comes: a later failure keeps it
                print(json.dumps(result), flush=True)
    finally:
        if run is not None:
            run.cancel()
        if flow is not None:
            flow.stop()
    print("| protocol | training | requests | errors | p50 ms | p99 ms | requests/s | texts/s | requests/model call |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['protocol']} | {'yes' if r['training'] else 'no'} | {r['requests']} | {r['errors']} | "
            f"{r['p50_ms']} | {r['p99_ms']} | {r['requests_per_s']} | {r['texts_per_s']} | "
            f"{r['requests_per_model_call']} |"
        )
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
