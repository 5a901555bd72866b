"""Publishing artifacts where encoders can follow them: a directory of artifacts and a LATEST pointer.

The tuner saves each artifact under ``<root>/<name>`` (written to a temporary
directory and renamed, see :func:`save_artifact`), then replaces
``<root>/LATEST`` (one line: the artifact's directory name) atomically. An
encoder that follows ``<root>`` reloads when ``LATEST`` changes.
"""

from __future__ import annotations

import os
from pathlib import Path

from tunerflow.errors import ArtifactError

LATEST = "LATEST"


def write_latest(root: str | Path, name: str) -> Path:
    """Point ``<root>/LATEST`` at the artifact ``<root>/<name>`` (atomic replace)."""
    root = Path(root)
    if not (root / name).is_dir() or "/" in name or name.startswith("."):
        raise ArtifactError(f"cannot publish {name!r}: {root / name} is not an artifact directory", str(root / name))
    partial = root / f".{LATEST}.{os.getpid()}"
    partial.write_text(name + "\n")
    partial.replace(root / LATEST)
    return root / name


def read_latest(root: str | Path) -> Path | None:
    """The artifact directory ``<root>/LATEST`` points at, or None before the first publication."""
    pointer = Path(root) / LATEST
    try:
        name = pointer.read_text().strip()
    except FileNotFoundError:
        return None
    if not name or "/" in name or name.startswith("."):
        raise ArtifactError(f"{pointer} does not name an artifact directory: {name!r}", str(pointer))
    return Path(root) / name
