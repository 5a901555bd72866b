"""The README's Python snippet and curl calls, run against flows/train.yml as a user would."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.flows import free_port

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
jina = pytest.importorskip("jina")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    from tunerflow.client.flow_process import FlowProcess

    home = tmp_path_factory.mktemp("readme-home")
    with FlowProcess(
        ROOT / "flows/train.yml",
        free_port(),
        free_port(),
        home / "flow.log",
        env={"TUNERFLOW_HOME": str(home), "TUNERFLOW_AUTH": "off"},  # the README snippets, as on a laptop
    ) as process:
        yield process


def _ported(text: str, flow) -> str:
    return text.replace("54321", str(flow.grpc_port)).replace("54322", str(flow.http_port))


def test_readme_python_snippet_reaches_finished(flow, tmp_path, monkeypatch):
    snippet = next(block for block in _blocks("python") if "tunerflow.fit(" in block)
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(_ported(snippet, flow), "README.md", "exec"), namespace)  # noqa: S102 (the README is ours)
    run = namespace["run"]
    assert run.status()["status"] == "FINISHED"
    assert namespace["embeddings"].shape == (1, 384)
    shutil.rmtree(ROOT / "finetuned", ignore_errors=True)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_calls(flow):
    block = next(block for block in _blocks("bash") if "curl -s -X POST" in block)
    commands = [c for c in re.split(r"\n(?=curl )", _ported(block, flow)) if c.startswith("curl")]
    answers = []
    for command in commands:
        command = re.sub(r"\s*#.*$", "", command, flags=re.M)
        out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, check=True)
        answers.append(json.loads(out.stdout))
    appended = answers[0]["parameters"]["__results__"]["tuner/rep-0"]
    assert appended["documents"] == 4
    started = answers[1]["parameters"]["__results__"]["tuner/rep-0"]
    assert started["status"] == "CREATED" and started["run_name"] == "curl-run"
    assert answers[2]["parameters"]["__results__"]["tuner/rep-0"]["run_name"] == "curl-run"
    encoded = answers[3]["data"][0]
    assert encoded["id"] == "q1" and len(encoded["embedding"]) == 384
