"""Start the project's Flow YAML files on free loopback ports for tests, and call them with API keys."""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tunerflow.client.flow_process import free_port

ROOT = Path(__file__).resolve().parents[1]
WRITE_KEY = "test-write-key-0123456789"
READ_KEY = "test-read-key-0123456789"
TEST_KEYS = f"{WRITE_KEY}:write,{READ_KEY}:read"


def use_test_keys() -> None:
    """Flows started in this process accept WRITE_KEY and READ_KEY (unless a test set keys itself)."""
    os.environ.setdefault("TUNERFLOW_API_KEYS", TEST_KEYS)
    os.environ.setdefault("TUNERFLOW_INTERNAL_SECRET", "test-internal-secret")


def flow_from_yaml(
    name: str,
    tmp_path: Path,
    uses_with: dict[str, dict] | None = None,
    fields: dict[str, dict] | None = None,
    file_name: str | None = None,
):
    """Load ``flows/<name>`` with free ports, extra ``uses_with`` and other ``fields`` (e.g. ``shards``) per executor.

    The changed YAML is written to ``tmp_path / (file_name or name)``; returns (flow, grpc port, http port).
    """
    from jina import Flow

    use_test_keys()
    source = ROOT / "flows" / name
    config = yaml.safe_load(source.read_text())
    grpc_port, http_port = free_port(), free_port()
    config["with"]["port"] = [grpc_port, http_port]
    for executor in config["executors"]:
        for key in ("uses", "uses_before", "uses_after"):
            if key in executor:
                executor[key] = str((source.parent / executor[key]).resolve())
        executor.setdefault("uses_with", {}).update((uses_with or {}).get(executor["name"], {}))
        executor.update((fields or {}).get(executor["name"], {}))
    path = tmp_path / (file_name or name)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Flow.load_config(str(path)), grpc_port, http_port


@contextlib.contextmanager
def train_flow_process(home: Path, model_dir: Path):
    """flows/train.yml as ``jina flow`` in its own process, serving ``model_dir``; $TUNERFLOW_API_KEY is its key."""
    from tunerflow.client.flow_process import FlowProcess
    from tunerflow.settings import PROJECT_DIR

    process = FlowProcess(
        PROJECT_DIR / "flows/train.yml",
        free_port(),
        free_port(),
        log_file=home / "flow.log",
        env={"TUNERFLOW_HOME": str(home)},
        uses_with={"encoder": {"model": str(model_dir), "poll_interval": 0.5}, "indexer": {"model": str(model_dir)}},
    )
    with process, environment(TUNERFLOW_API_KEY=process.api_key):  # the client and the CLI read it
        yield process


class KeyedClient:
    """jina's gRPC client that sends an API key in the ``authorization`` metadata."""

    def __init__(self, port: int, key: str | None = WRITE_KEY) -> None:
        from jina import Client

        self.client = Client(host=f"grpc://127.0.0.1:{port}")
        self.metadata = (("authorization", f"Bearer {key}"),) if key else ()

    def post(self, *args, **kwargs):
        return self.client.post(*args, metadata=self.metadata, **kwargs)


def http_post(
    port: int,
    endpoint: str,
    body: dict | None,
    timeout: float = 120,
    key: str | None = WRITE_KEY,
    raw: bytes | None = None,
) -> tuple[int, dict]:
    """POST JSON (or ``raw`` bytes) as curl would, with the key as a bearer token; returns (status, parsed body)."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{endpoint}",
        data=raw if raw is not None else json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@contextlib.contextmanager
def environment(**values: str):
    """Set environment variables for a module-scoped fixture (monkeypatch is per test); restore them after."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
