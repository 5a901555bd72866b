"""Stopping ``jina flow`` stops all its parts: SIGTERM, SIGKILL and SIGINT of the main process alone, and a failed
start, leave no process of the Flow and no port bound."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from tests.flows import ROOT
from tunerflow.client.flow_process import FlowProcess, free_port

pytest.importorskip("jina")
pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc (Linux)")


def _group(pgid: int) -> list[int]:
    """Live processes of the process group ``pgid`` (jina flow started it with its own session)."""
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                text = open(f"/proc/{entry.name}/stat").read()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _bound(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _wait_until_gone(pgid: int, ports: list[int], limit: float = 120) -> tuple[list[int], list[int]]:
    """Poll (up to ``limit`` seconds, a bound not a measurement) until the group is empty and the ports free."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        left, busy = _group(pgid), [port for port in ports if _bound(port)]
        if not left and not busy:
            break
        time.sleep(0.5)
    return _group(pgid), [port for port in ports if _bound(port)]


def _flow(tmp_path, tiny_model_dir, encoder_model=None) -> FlowProcess:
    return FlowProcess(
        ROOT / "flows/train.yml",
        free_port(),
        free_port(),
        tmp_path / "flow.log",
        env={"TUNERFLOW_HOME": str(tmp_path / "home")},
        uses_with={"encoder": {"model": encoder_model or str(tiny_model_dir)}},
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT], ids=lambda s: s.name)
def test_stopping_the_main_process_stops_every_part(sig, tmp_path, tiny_model_dir):
    flow = _flow(tmp_path, tiny_model_dir).start()
    pid = flow.process.pid
    try:
        parts = _group(pid)
        assert len(parts) >= 3, parts  # jina flow, the gateway, two executors (the gateway may be in-process)
        os.kill(pid, sig)  # the main process only, as `kill` does; not the group
        left, busy = _wait_until_gone(pid, [flow.grpc_port, flow.http_port])
        assert left == [] and busy == [], (left, busy, (tmp_path / "flow.log").read_text()[-2000:])
    finally:
        flow.stop()


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="jina 3.33: after 'Flow is aborted' the main process waits for the gateway, which keeps polling the "
    "failed executor until timeout_ready (10 min by default); the healthy parts stay bound meanwhile",
)
def test_a_failed_start_leaves_nothing_bound(tmp_path, tiny_model_dir):
    import subprocess
    import sys

    flow = _flow(tmp_path, tiny_model_dir, encoder_model="no-such-model")  # the encoder's start-up raises
    flow.log_file.parent.mkdir(parents=True, exist_ok=True)
    with flow.log_file.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jina", "flow", "--uses", str(flow._write_flow())],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "JINA_HIDE_SURVEY": "1", "TUNERFLOW_HOME": str(tmp_path / "home")},
            start_new_session=True,
        )
    try:
        process.wait(timeout=300)  # a bound: jina flow gives up when a part fails to start
        left, busy = _wait_until_gone(process.pid, [flow.grpc_port, flow.http_port])
        assert process.returncode != 0
        assert left == [] and busy == [], (left, busy, flow.log_file.read_text()[-2000:])
    finally:
        if _group(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
