"""The models a server offers: the bundled model, the models under configured roots, the Hugging Face cache.

What a *client* asks a tuner to load goes through :meth:`Catalogue.resolve`: a
name from the catalogue, or a path under a configured root. Any other server
path is refused (unless the operator set ``allow_paths``), with one message
whether the path exists or not, and without server paths. On one's own machine,
:func:`tunerflow.get_model` still takes any path: the catalogue guards servers.

Roots come from ``config.yml`` (``models: {roots: [...], allow_paths: false}``;
relative roots lie under ``$TUNERFLOW_HOME``) and ``$TUNERFLOW_MODEL_ROOTS``
(paths separated by ``:``). Each subdirectory of a root holding a model
(``config.json``, ``modules.json`` or an artifact's ``tunerflow.json``), and
each artifact ``.zip`` there, is a model named by its path under the root.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunerflow.errors import ModelNotAvailableError
from tunerflow.format import ARTIFACT_CONFIG
from tunerflow.modeling.sources import (
    BUNDLED_ALIASES,
    BUNDLED_HUB_ID,
    ModelSource,
    bundled_model_path,
    cached_hub_source,
    resolve_source,
)
from tunerflow.paths import under_home

log = logging.getLogger(__name__)

ROOTS_VARIABLE = "TUNERFLOW_MODEL_ROOTS"
_MARKERS = ("config.json", "modules.json", ARTIFACT_CONFIG)
_LISTED_IN_ERRORS = 20
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


@dataclass(frozen=True)
class Catalogue:
    """Where a server's models are, and whether clients may name other paths.

    Attributes:
        roots: directories whose model subdirectories (and artifact zips) are offered by name.
        allow_paths: any path a client names is loaded (local development only).
    """

    roots: tuple[Path, ...] = ()
    allow_paths: bool = False

    @classmethod
    def from_settings(
        cls, models: dict[str, Any] | None = None, extra_roots: Iterable[Path] = (), environ: dict | None = None
    ) -> Catalogue:
        """From ``config.yml``'s ``models`` section, ``$TUNERFLOW_MODEL_ROOTS`` and ``extra_roots`` (in that order)."""
        models = dict(models or {})
        environ = os.environ if environ is None else environ
        given = [under_home(root) for root in models.get("roots") or []]
        given += [Path(part).expanduser() for part in environ.get(ROOTS_VARIABLE, "").split(os.pathsep) if part]
        roots = tuple(dict.fromkeys(path.resolve() for path in [*given, *extra_roots]))
        return cls(roots=roots, allow_paths=bool(models.get("allow_paths", False)))

    def resolve(self, name: str, trusted: bool = False) -> ModelSource:
        """The files of the model a client named; ``trusted`` (the operator's own setting) may be any path.

        Raises:
            ModelNotAvailableError: the same message for a path that exists outside the roots and one that
                does not exist at all; it lists the catalogue's names and never a server path.
        """
        text = str(name).strip()
        if trusted or self.allow_paths or text.lower() in BUNDLED_ALIASES:
            return resolve_source(text)
        found = self._under_roots(text)
        if found is not None:
            return resolve_source(found)
        if _HUB_ID.fullmatch(text) and not text.endswith(".zip"):
            try:
                return cached_hub_source(text)  # from the local cache only, never a path relative to here
            except ModelNotAvailableError:
                pass
        names = [entry["name"] for entry in self.describe(details=False)]
        shown = ", ".join(names[:_LISTED_IN_ERRORS]) + (", ..." if len(names) > _LISTED_IN_ERRORS else "")
        how = (
            f"To offer it, the operator, on the tuner's machine, either fetches it into the Hugging Face cache "
            f"(`hf download {text}`, where there is network; safetensors weights) or puts its directory "
            f"under a model root (config.yml models.roots or ${ROOTS_VARIABLE})"
            if _HUB_ID.fullmatch(text)
            else f"To offer another model, the operator puts it under a model root "
            f"(config.yml models.roots or ${ROOTS_VARIABLE})"
        )
        raise ModelNotAvailableError(
            f"model {text!r} is not in this server's catalogue; choose one of: {shown}. {how}; "
            f"`tunerflow models --host HOST` lists what it offers"
        )

    def describe(self, details: bool = True) -> list[dict[str, Any]]:
        """Every model offered: name, source (bundled, root, hub-cache), and with ``details`` architecture,
        dimension and size in bytes (read from the models' JSON files; no weights are loaded)."""
        entries = [{"name": BUNDLED_HUB_ID.split("/")[-1], "source": "bundled", "_path": _bundled()}]
        for root in self.roots:
            entries += [{"name": name, "source": "root", "_path": path} for name, path in _root_models(root)]
        entries += [{"name": repo, "source": "hub-cache", "_path": path} for repo, path in _hub_cache_models()]
        described = []
        for entry in entries:
            path = entry.pop("_path")
            if details:
                entry.update(_model_facts(path))
            described.append(entry)
        return described

    def _under_roots(self, text: str) -> Path | None:
        candidate = Path(text).expanduser()
        if not text or ".." in candidate.parts:
            return None
        paths = [candidate] if candidate.is_absolute() else [root / candidate for root in self.roots]
        for path in paths:
            resolved = path.resolve()
            if any(resolved.is_relative_to(root) and resolved != root for root in self.roots) and _is_model(resolved):
                return resolved
        return None


def describe_models(catalogue: Catalogue | None = None) -> list[dict[str, Any]]:
    """The models a server offers (see :meth:`Catalogue.describe`); by default from ``$TUNERFLOW_MODEL_ROOTS``."""
    return (catalogue or Catalogue.from_settings()).describe()


def _is_model(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".zip"
    return path.is_dir() and any((path / marker).is_file() for marker in _MARKERS)


def _root_models(root: Path) -> list[tuple[str, Path]]:
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        if path.name.startswith("."):
            continue
        if _is_model(path):
            found.append((path.name, path))
        elif path.is_dir():  # one level of grouping: org/name
            found += [(f"{path.name}/{inner.name}", inner) for inner in sorted(path.iterdir()) if _is_model(inner)]
    return found


def _hub_cache_models() -> list[tuple[str, Path]]:
    try:
        from huggingface_hub import scan_cache_dir

        cache = scan_cache_dir()
    except Exception:  # no cache yet, or an unreadable one: it offers nothing
        return []
    found = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        snapshots = sorted(repo.revisions, key=lambda r: r.last_modified)
        if repo.repo_type == "model" and snapshots:
            found.append((repo.repo_id, Path(snapshots[-1].snapshot_path)))
    return found


def _bundled() -> Path | None:
    try:
        return bundled_model_path()
    except ModelNotAvailableError:
        return None


def _model_facts(path: Path | None) -> dict[str, Any]:
    """Architecture, embedding dimension, parameter count and bytes on disk, from JSON files and headers only."""
    facts: dict[str, Any] = {"architecture": None, "dimension": None, "parameters": None, "size": None}
    if path is None or not path.is_dir():
        if path is not None and path.is_file():
            facts["size"] = path.stat().st_size
        return facts
    artifact = _read_json(path / ARTIFACT_CONFIG)
    model_dir = _transformer_dir(path)
    config = _read_json(model_dir / "config.json")
    spec = artifact.get("spec") or {}
    facts["architecture"] = (config.get("architectures") or [None])[0] or config.get("model_type")
    # hidden_size (BERT, RoBERTa, MPNet, XLM-R), dim (DistilBERT), d_model (T5-like encoders)
    facts["dimension"] = spec.get("dimension") or next(
        (config[key] for key in ("hidden_size", "dim", "d_model") if isinstance(config.get(key), int)), None
    )
    facts["parameters"] = _parameter_count(model_dir)
    facts["size"] = sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
    return facts


def _transformer_dir(path: Path) -> Path:
    """Where a sentence-transformers directory keeps its Hugging Face model (itself, usually)."""
    if (path / "config.json").is_file():
        return path
    try:
        from tunerflow.modeling.sources import read_st_layout

        return read_st_layout(path).transformer_dir
    except (OSError, ValueError):
        return path


def _parameter_count(directory: Path) -> int | None:
    """The number of weights in the directory's ``*.safetensors`` files, read from their headers alone."""
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        try:
            with file.open("rb") as handle:
                length = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(length)) if 0 < length < 100_000_000 else {}
        except (OSError, ValueError):
            return None
        for name, tensor in header.items():
            if name != "__metadata__" and isinstance(tensor, dict):
                count = 1
                for extent in tensor.get("shape", []):
                    count *= int(extent)
                total += count
    return total


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
