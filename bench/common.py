"""Shared pieces of the benchmarks: data, timing statistics, memory, machine description."""

from __future__ import annotations

import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUORA = ROOT / "data" / "quora"


# The reference recipe (TripletMarginLoss, semi-hard triplets, cosine), as the benchmarks run it.
TRIPLET = {
    "loss": "TripletMarginLoss",
    "loss_options": {"margin": 0.05, "distance": "CosineSimilarity"},
    "miner": "TripletMarginMiner",
    "miner_options": {"margin": 0.2, "type_of_triplets": "semihard", "distance": "CosineSimilarity"},
}


def read_jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle]


def quora_dev() -> tuple[list[dict], list[dict]]:
    """The 5,000 dev queries and the 15,746 index texts."""
    return read_jsonl(QUORA / "query_dev.jsonl.gz"), read_jsonl(QUORA / "index_dev.jsonl.gz")


def rate_summary(seconds: list[float], items: int) -> dict:
    """Items per second: median, min and max over timed runs."""
    rates = [items / s for s in seconds]
    return {
        "median": round(statistics.median(rates), 1),
        "min": round(min(rates), 1),
        "max": round(max(rates), 1),
        "runs": len(rates),
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB).

    VmHWM, not ``getrusage``: Linux carries ``ru_maxrss`` across ``exec``, so a
    child started from a large parent would report the parent's size.
    """
    return tree_peak_rss_mib(os.getpid(), children=False)


def tree_peak_rss_mib(pid: int, children: bool = True) -> float:
    """Largest peak resident memory among ``pid`` and its descendants (MiB), from /proc."""
    peaks, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            kids = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
        if children:
            todo.extend(int(c) for c in kids)
    return round(max(peaks, default=0.0), 1)


def machine() -> dict:
    """What the numbers were measured on."""
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "amx": "amx_bf16" in flags,
        "flags": sorted({f for f in flags.split() if f.startswith(("avx", "amx", "fma")) or f.endswith("vnni")}),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_child(script: Path, args: list[str], timeout: float = 3600) -> dict:
    """Run ``script --one ...`` in a fresh interpreter (its own peak memory); returns its last JSON line."""
    out = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    if out.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def append_result(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(result) + "\n")


def run_all(script: Path, names: list[str], baseline: str, passed: list[str], out: Path, info: dict) -> None:
    """Run each configuration in a fresh interpreter; print and append its row with the ratio to ``baseline``."""
    reference = None
    command = " ".join(["python", f"bench/{script.name}", *sys.argv[1:]])
    for name in names:
        result = run_child(script, ["--one", name, *passed])
        if name == baseline:
            reference = result["median"]
        result["ratio_to_st"] = round(result["median"] / reference, 2) if reference else None
        result["machine"], result["command"] = info, command
        print(json.dumps(result), flush=True)
        append_result(out, result)
