"""Start a project Flow (``jina flow --uses ...``) in the background on chosen ports, and stop it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from tunerflow.errors import TunerflowError
from tunerflow.serving.access import new_key


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FlowStartError(TunerflowError):
    """The Flow did not become ready."""


class FlowProcess:
    """``jina flow`` in its own process group, ready when its HTTP gateway answers ``/dry_run``.

    Args:
        flow_file: a Flow YAML with gRPC and HTTP protocols.
        grpc_port, http_port: the ports to serve on (the file's own are replaced).
        log_file: where the Flow's output goes.
        env: extra environment variables (``TUNERFLOW_HOME``, ...).
        uses_with: extra ``uses_with`` per executor name.
        api_key: the Flow's one (write) API key; default: a new random one, in :attr:`api_key`.
            The Flow also gets its own internal secret. ``env={"TUNERFLOW_AUTH": "off"}`` turns
            authentication off (local development only).
    """

    def __init__(
        self,
        flow_file: Path,
        grpc_port: int,
        http_port: int,
        log_file: Path,
        env: dict[str, str] | None = None,
        uses_with: dict[str, dict] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.flow_file, self.grpc_port, self.http_port = Path(flow_file).resolve(), grpc_port, http_port
        self.log_file, self.env, self.uses_with = Path(log_file), env or {}, uses_with or {}
        self.api_key = api_key or new_key()
        self.process: subprocess.Popen | None = None

    @property
    def grpc_host(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    @property
    def http_host(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _write_flow(self) -> Path:
        config = yaml.safe_load(self.flow_file.read_text())
        config.setdefault("with", {})["port"] = [self.grpc_port, self.http_port]
        for executor in config["executors"]:
            for key in ("uses", "uses_before", "uses_after"):  # paths relative to the original file
                if key in executor:
                    executor[key] = str((self.flow_file.parent / executor[key]).resolve())
            executor.setdefault("uses_with", {}).update(self.uses_with.get(executor["name"], {}))
        path = self.log_file.with_suffix(".flow.yml")
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self, timeout: float = 300) -> FlowProcess:
        self.process = self.launch()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_file.read_text(errors="replace")[-3000:]
                raise FlowStartError(f"the Flow did not start (log {self.log_file}):\n{tail}")
            time.sleep(0.5)
        time.sleep(1)  # a Flow interrupted at the very moment it becomes ready can hang on shutdown
        return self

    def launch(self) -> subprocess.Popen:
        """Start ``jina flow`` in its own session (its pid is the group id) with the key and a fresh secret."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        flow = self._write_flow()
        keys = {"TUNERFLOW_API_KEYS": f"{self.api_key}:write", "TUNERFLOW_API_KEYS_FILE": ""}
        secret = {"TUNERFLOW_INTERNAL_SECRET": new_key()}
        env = {**os.environ, "JINA_HIDE_SURVEY": "1", **keys, **secret, **self.env}
        with self.log_file.open("w") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "jina", "flow", "--uses", str(flow)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/dry_run", timeout=2) as answer:
                return b'"code":0' in answer.read().replace(b" ", b"")
        except OSError:
            return False

    def stop(self, timeout: float = 20) -> None:
        """SIGINT to jina (its clean shutdown), then SIGKILL to the whole group if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.process = None

    def __enter__(self) -> FlowProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
