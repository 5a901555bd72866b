"""The project's root ``config.yml``: the default recipe, read by the tuner, the client and the CLI.

Found at ``$TUNERFLOW_CONFIG`` if set, else ``config.yml`` in the project
directory that holds this package's source (an editable install, the image).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from tunerflow.errors import ConfigError

PROJECT_DIR = Path(__file__).resolve().parents[2]


def config_path() -> Path:
    """Where the default recipe is read from."""
    explicit = os.environ.get("TUNERFLOW_CONFIG")
    return Path(explicit).expanduser() if explicit else PROJECT_DIR / "config.yml"


def load_settings(path: str | Path | None = None) -> dict[str, Any]:
    """The parsed config file (sections ``recipe``, ``client``, ``demo``)."""
    path = Path(path) if path else config_path()
    if not path.is_file():
        raise ConfigError(
            f"no tunerflow config at {path}: set TUNERFLOW_CONFIG to the project's config.yml "
            "(it holds the default recipe)"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("recipe"), dict):
        raise ConfigError(f"{path} has no 'recipe' section")
    return data


def section(name: str, path: str | Path | None = None) -> dict[str, Any]:
    """One section of the config file (empty if absent)."""
    return dict(load_settings(path).get(name) or {})
