"""Start the project's Flow YAML files on free loopback ports for tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tunerflow.client.flow_process import free_port

ROOT = Path(__file__).resolve().parents[1]


def flow_from_yaml(name: str, tmp_path: Path, uses_with: dict[str, dict] | None = None):
    """Load ``flows/<name>`` with free ports and extra ``uses_with`` per executor; returns (flow, grpc, http)."""
    from jina import Flow

    source = ROOT / "flows" / name
    config = yaml.safe_load(source.read_text())
    grpc_port, http_port = free_port(), free_port()
    config["with"]["port"] = [grpc_port, http_port]
    for executor in config["executors"]:
        executor["uses"] = str((source.parent / executor["uses"]).resolve())
        executor.setdefault("uses_with", {}).update((uses_with or {}).get(executor["name"], {}))
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Flow.load_config(str(path)), grpc_port, http_port


def http_post(port: int, endpoint: str, body: dict, timeout: float = 120) -> tuple[int, dict]:
    """POST JSON as curl would; returns (status, parsed body)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{endpoint}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
