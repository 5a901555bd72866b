"""The container image, built and run without a Docker engine (deploy/image/smoke_test.py).

Marked ``docker``, so ``make test`` leaves it out: it takes minutes, needs root, buildah and
mmdebstrap, and pip inside the build reaches PyPI. Run it with
``.venv/bin/python -m pytest -m docker tests/test_image.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
K8S_VENV = ROOT / os.environ.get("TUNERFLOW_K8S_VENV", ".venv-k8s")

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]


@pytest.mark.skipif(shutil.which("buildah") is None, reason="buildah is missing: apt-get install -y buildah mmdebstrap")
@pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="mmdebstrap is missing: apt-get install -y mmdebstrap")
@pytest.mark.skipif(os.geteuid() != 0, reason="buildah with chroot isolation and mmdebstrap run as root here")
@pytest.mark.skipif(not K8S_VENV.is_dir(), reason=f"{K8S_VENV} is missing: the manifest is rendered with its kubectl")
def test_encoder_image_serves_as_the_manifest_says():
    result_file = ROOT / "build" / "image" / "smoke-result.json"
    result_file.unlink(missing_ok=True)
    env = {**os.environ, "KUBECTL": str(K8S_VENV / "bin" / "kubectl")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "image" / "smoke_test.py")], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(result_file.read_text())
    assert result["embedding_shape"] == [3, 384]
    assert result["min_cosine_to_local"] > 0.999
    assert result["following"] == "/data/artifacts"
    assert result["serving_after_publish"] == "/data/artifacts/smoke-cls"
    assert "--uses-with" in result["command"] and "follow" in result["command"]
