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
def test_a_failed_start_leaves_nothing_bound(tmp_path, tiny_model_dir):
    """The encoder's start-up raises: ``jina flow`` exits non-zero within a bound and every part is gone.

    (Before the gateway shared jina's cancel event with its servers, its gRPC side kept polling the failed
    encoder through SIGTERM and the main process waited on it: more than 6 minutes, tuner and indexer bound.)
    """
    flow = _flow(tmp_path, tiny_model_dir, encoder_model="no-such-model")
    process = flow.launch()  # not start(): it would stop the group itself; here jina must clean up alone
    try:
        process.wait(timeout=180)  # a bound (measured about 60 s on 2 busy cores), not a measurement
        left, busy = _wait_until_gone(process.pid, [flow.grpc_port, flow.http_port], limit=30)
        assert process.returncode != 0
        assert left == [] and busy == [], (left, busy, flow.log_file.read_text()[-2000:])
        assert "GatewayStoppedError" in flow.log_file.read_text()  # the gateway stopped waiting, never bound
    finally:
        if _group(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
