"""The local cache directory (ONNX exports of non-artifact models, unpacked zips)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """``$TUNERFLOW_CACHE`` (default ``~/.cache/tunerflow``) joined with ``parts``, created."""
    root = Path(os.environ.get("TUNERFLOW_CACHE") or Path.home() / ".cache" / "tunerflow")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
