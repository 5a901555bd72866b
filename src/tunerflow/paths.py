"""Where tunerflow keeps state: the cache, and the home of executors not told otherwise."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """``$TUNERFLOW_CACHE`` (default ``~/.cache/tunerflow``) joined with ``parts``, created."""
    root = Path(os.environ.get("TUNERFLOW_CACHE") or Path.home() / ".cache" / "tunerflow")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def home_dir() -> Path:
    """``$TUNERFLOW_HOME``, else ``./workspace`` (relative to the current directory)."""
    return Path(os.environ.get("TUNERFLOW_HOME") or "workspace").expanduser().resolve()


def under_home(path: str | Path) -> Path:
    """``path`` itself when absolute, else resolved against :func:`home_dir`."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else home_dir() / path
