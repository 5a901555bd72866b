"""The core packages form layers: each imports only the ones below it, so there is no import cycle.

format (file names, ModelSpec, typed config) <- modeling <- artifact <- export <- inference.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import tunerflow

LAYERS = ["format", "modeling", "artifact", "export", "inference"]
# Leaf modules every layer may use; nothing of the core below them.
LEAVES = {"errors", "options", "paths"}
NOT_CORE = ["training", "runs", "evaluation", "data", "search", "serving", "client", "cli", "api"]
SOURCE = Path(tunerflow.__file__).parent


def _package_modules(layer: str) -> list[str]:
    root = SOURCE / layer
    if not root.is_dir():
        return [f"tunerflow.{layer}"]
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("position", range(len(LAYERS)), ids=LAYERS)
def test_importing_a_layer_loads_nothing_above_it(position):
    layer = LAYERS[position]
    code = "\n".join(
        [f"import {name}" for name in _package_modules(layer)] + ["import sys", "print('\\n'.join(sys.modules))"]
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]  # an import cycle fails here
    loaded = set(result.stdout.split())
    assert f"tunerflow.{layer}" in loaded
    above = {f"tunerflow.{name}" for name in LAYERS[position + 1 :] + NOT_CORE}
    leaked = {name for name in loaded if name in above or name.rsplit(".", 1)[0] in above}
    assert not leaked, f"importing tunerflow.{layer} imported {sorted(leaked)}"
    if layer == "format":
        assert not {"torch", "transformers", "onnxruntime"} & loaded


def _imported_layers(path: Path) -> set[str]:
    """Top-level tunerflow subpackages a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "tunerflow" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("position", range(len(LAYERS)), ids=LAYERS)
def test_no_layer_imports_upwards_even_lazily(position):
    layer = LAYERS[position]
    allowed = set(LAYERS[: position + 1]) | LEAVES
    files = sorted((SOURCE / layer).rglob("*.py")) if (SOURCE / layer).is_dir() else [SOURCE / f"{layer}.py"]
    wrong = {
        f"{path.relative_to(SOURCE)} imports tunerflow.{name}"
        for path in files
        for name in _imported_layers(path) - allowed
    }
    assert not wrong
