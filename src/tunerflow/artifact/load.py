"""Read and verify an artifact. Any damage raises ArtifactError naming the file."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from tunerflow.artifact.layout import ARTIFACT_CONFIG, FORMAT_NAME, FORMAT_VERSION, WEIGHTS_FILE, file_digest
from tunerflow.errors import ArtifactError, TunerflowError
from tunerflow.modeling.embedding_model import EmbeddingModel, ModelSpec
from tunerflow.modeling.loading import LoadedModel, quiet_transformers
from tunerflow.paths import cache_dir


def read_artifact_config(path: str | Path, verify: bool = True) -> tuple[Path, dict]:
    """Return the artifact directory (a ``.zip`` is unpacked) and its verified config."""
    directory = Path(path).expanduser().resolve()
    if directory.is_file() and directory.suffix == ".zip":
        directory = unpack_zip(directory)
    config_file = directory / ARTIFACT_CONFIG
    if not config_file.is_file():
        raise ArtifactError(f"{directory} is not an artifact: {ARTIFACT_CONFIG} is missing", str(config_file))
    try:
        config = json.loads(config_file.read_text())
        if config.get("format") != FORMAT_NAME:
            raise ValueError(f"format is {config.get('format')!r}, not {FORMAT_NAME!r}")
        if int(config.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"format version {config['format_version']} is newer than this tunerflow reads")
        config["spec"] = ModelSpec.from_dict(config["spec"]).to_dict()
        files = config["files"]
        if not isinstance(files, dict) or not files:
            raise ValueError("the file list is empty")
    except (ValueError, KeyError, TypeError, TunerflowError) as error:
        raise ArtifactError(
            f"{config_file} is damaged or not a tunerflow artifact config: {error}", str(config_file)
        ) from None
    if verify:
        verify_files(directory, files)
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


def load_artifact(path: str | Path, verify: bool = True) -> LoadedModel:
    """Load an artifact directory or ``.zip`` into a :class:`LoadedModel`."""
    from transformers import AutoModel, AutoTokenizer

    directory, config = read_artifact_config(path, verify=verify)
    spec = ModelSpec.from_dict(config["spec"])
    weights = directory / WEIGHTS_FILE
    try:
        with quiet_transformers():
            backbone, info = AutoModel.from_pretrained(
                directory, local_files_only=True, use_safetensors=True, output_loading_info=True
            )
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise ArtifactError(f"cannot load the model in {directory}: {error}", str(weights)) from error
    bad = {key: value for key, value in info.items() if key != "error_msgs" and value}
    if bad or info.get("error_msgs"):
        raise ArtifactError(f"{weights} does not match config.json: {bad or info['error_msgs']}", str(weights))
    model = EmbeddingModel(backbone, spec.pooling).eval()
    if model.dimension != spec.dimension:
        raise ArtifactError(
            f"{directory / ARTIFACT_CONFIG} says dimension {spec.dimension} but the weights give {model.dimension}",
            str(directory / ARTIFACT_CONFIG),
        )
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, path=directory, artifact=config)


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
