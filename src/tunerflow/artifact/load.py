"""Read and verify an artifact. Any damage raises ArtifactError naming the file."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from tunerflow.artifact.layout import file_digest
from tunerflow.errors import ArtifactError, ConfigError, TunerflowError
from tunerflow.format import ARTIFACT_CONFIG, HEAD_WEIGHT, WEIGHTS_FILE, ArtifactConfig, HeadInfo, ModelSpec
from tunerflow.modeling.loading import LoadedModel, load_backbone_dir
from tunerflow.paths import cache_dir


def read_artifact_config(path: str | Path, verify: bool = True) -> tuple[Path, ArtifactConfig]:
    """Return the artifact directory (a ``.zip`` is unpacked) and its verified config."""
    directory = Path(path).expanduser().resolve()
    if directory.is_file() and directory.suffix == ".zip":
        directory = unpack_zip(directory)
    config_file = directory / ARTIFACT_CONFIG
    if not config_file.is_file():
        raise ArtifactError(f"{directory} is not an artifact: {ARTIFACT_CONFIG} is missing", str(config_file))
    try:
        config = ArtifactConfig.from_dict(json.loads(config_file.read_text()))
    except (ValueError, KeyError, TypeError, TunerflowError) as error:
        raise ArtifactError(
            f"{config_file} is damaged or not a tunerflow artifact config: {error}", str(config_file)
        ) from None
    if verify:
        verify_files(directory, config.files)
    return directory, config


def verify_files(directory: Path, files: dict[str, dict]) -> None:
    """Check that every listed file exists with its recorded size and SHA-256."""
    for name, entry in files.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"artifact file {path} is missing", str(path))
        size = path.stat().st_size
        if size != entry.get("size"):
            raise ArtifactError(
                f"artifact file {path} is truncated or altered: {size} bytes, expected {entry.get('size')}", str(path)
            )
        if file_digest(path) != entry.get("sha256"):
            raise ArtifactError(
                f"artifact file {path} does not match its recorded SHA-256 (tampered or corrupt)", str(path)
            )


def load_artifact(path: str | Path, verify: bool = True, *, spec: ModelSpec | None = None) -> LoadedModel:
    """Load an artifact directory or ``.zip`` into a :class:`LoadedModel`.

    Args:
        path: the artifact directory or ``.zip``.
        verify: check every file's size and SHA-256 first.
        spec: load with this spec instead of the artifact's (an override; it is
            checked against the architecture and must keep the dimension).
    """
    directory, config = read_artifact_config(path, verify=verify)
    spec = spec or config.spec
    weights = directory / WEIGHTS_FILE
    try:
        loaded = load_backbone_dir(directory, spec=spec, strict=True)
    except ConfigError:
        raise  # the spec asks what the model cannot do: the caller's option, not damage
    except (OSError, ValueError, RuntimeError) as error:
        raise ArtifactError(f"cannot load the model in {directory}: {error}", str(weights)) from error
    if config.head is not None:
        _load_head(loaded, directory, config.head)
    config_file = directory / ARTIFACT_CONFIG
    if loaded.model.dimension != spec.dimension:
        raise ArtifactError(
            f"{config_file} says dimension {spec.dimension} but the weights give {loaded.model.dimension}",
            str(config_file),
        )
    return loaded


def _load_head(loaded: LoadedModel, directory: Path, head: HeadInfo) -> None:
    """Attach the projection head recorded in the config (its weight checked against its shape)."""
    from safetensors.torch import load_file

    path = directory / head.file
    try:
        weight = load_file(str(path))[HEAD_WEIGHT]
        loaded.model.attach_head(head.out_features, weight)
    except (OSError, KeyError, ValueError, RuntimeError) as error:
        raise ArtifactError(f"the projection head {path} cannot be loaded: {error}", str(path)) from None


def unpack_zip(archive: Path) -> Path:
    """Unpack an artifact ``.zip`` into the cache (once per archive content) and return the directory."""
    try:
        key = file_digest(archive)[:20]
        target = cache_dir("artifacts") / key
        if (target / ARTIFACT_CONFIG).is_file():
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=target.parent))
        with zipfile.ZipFile(archive) as handle:
            for member in handle.namelist():
                parts = PurePosixPath(member).parts
                if member.startswith("/") or ".." in parts:
                    raise ArtifactError(f"{archive} holds an unsafe path {member!r}", str(archive))
            handle.extractall(staging)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise ArtifactError(f"{archive} is not a readable zip (truncated?): {error}", str(archive)) from None
    root = staging
    entries = list(staging.iterdir())
    if not (staging / ARTIFACT_CONFIG).is_file() and len(entries) == 1 and entries[0].is_dir():
        root = entries[0]  # a zip of the directory itself rather than of its content
    if target.exists():
        shutil.rmtree(target)
    root.rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    return target
