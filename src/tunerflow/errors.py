"""Typed errors. Each one says what went wrong and what to do next."""

from __future__ import annotations


class TunerflowError(Exception):
    """Base class of every error tunerflow raises on purpose."""


class ConfigError(TunerflowError, ValueError):
    """An option has an unknown name or an invalid value."""


class DataError(TunerflowError, ValueError):
    """Input documents or data files cannot be used as given."""


class ModelNotAvailableError(TunerflowError, FileNotFoundError):
    """A model was asked for by name but its weights are not on this machine."""


class ArtifactError(TunerflowError):
    """An artifact is missing, truncated, tampered with or inconsistent.

    Attributes:
        path: the file (or directory) at fault.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ExportParityError(TunerflowError):
    """An exported model does not reproduce the PyTorch model within tolerance."""


class DeviceError(ConfigError):
    """The requested device is not available (no silent fallback to another)."""


class NotFoundError(ConfigError):
    """A named run, dataset or model does not exist (HTTP 404 at the gateway)."""


class ConflictError(ConfigError):
    """The request conflicts with the current state, e.g. a run name already taken (HTTP 409)."""


class DatasetNotFoundError(NotFoundError, DataError):
    """No dataset of that name is stored."""
