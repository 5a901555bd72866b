"""The core package never imports jina (nor torch at plain import)."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


def test_core_never_imports_jina():
    code = (
        "import tunerflow, tunerflow.api, tunerflow.artifact, tunerflow.export, tunerflow.inference\n"
        "import tunerflow.inference.torch_backend, tunerflow.inference.onnx_backend"
    )
    modules = _modules_after(code)
    assert "tunerflow.inference.torch_backend" in modules
    assert not {name for name in modules if name == "jina" or name.startswith("jina.")}


def test_plain_import_is_light():
    modules = _modules_after("import tunerflow")
    assert "torch" not in modules and "transformers" not in modules
