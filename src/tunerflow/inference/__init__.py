"""Inference backends behind one interface: ``embed(texts) -> array``."""

from tunerflow.inference.base import InferenceBackend
from tunerflow.inference.factory import open_backend

__all__ = ["InferenceBackend", "open_backend"]
