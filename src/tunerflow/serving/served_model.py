"""The model an encoder serves, swapped for newly published artifacts without a restart."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from tunerflow.artifact.publish import read_latest
from tunerflow.errors import TunerflowError
from tunerflow.inference import InferenceBackend, open_backend
from tunerflow.options import Backend

log = logging.getLogger(__name__)


class ServedModel:
    """Holds the current backend; optionally follows an artifact directory.

    Requests take :attr:`current` once and keep that reference, so a swap
    never fails a request in flight. A new artifact is loaded beside the old
    model and swapped in only once it loads; a damaged one is logged and the
    old model keeps serving.

    Args:
        model: the model to serve until an artifact is published.
        follow: an artifact root with a ``LATEST`` pointer to follow, or None.
        poll_interval: seconds between checks of ``LATEST``.
        backend_options: passed to :func:`open_backend` for every load.
    """

    def __init__(
        self, model: str, follow: Path | None = None, poll_interval: float = 2.0, **backend_options: Any
    ) -> None:
        self.follow = Path(follow) if follow else None
        self.poll_interval = float(poll_interval)
        self.backend_options = backend_options
        self.source = model
        self.last_error: str | None = None
        self._swap_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        latest = read_latest(self.follow) if self.follow else None
        if latest is not None:
            self.source = str(latest)
        self.current: InferenceBackend = open_backend(self.source, **backend_options)
        log.info("serving %s with the %s backend", self.source, self.current.name)

    def start_following(self) -> None:
        """Poll ``LATEST`` in a daemon thread until :meth:`stop`."""
        if self.follow is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, name="tunerflow-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reload(self) -> dict:
        """Load the artifact ``LATEST`` points at if it is not the one served; return :meth:`info`."""
        if self.follow is None:
            return {**self.info(), "changed": False}
        with self._swap_lock:
            latest = read_latest(self.follow)
            if latest is None or str(latest) == self.source:
                return {**self.info(), "changed": False}
            try:
                backend = open_backend(str(latest), **self.backend_options)
            except (TunerflowError, OSError) as error:
                self.last_error = f"{latest}: {error}"
                log.error("keeping %s: cannot load %s", self.source, self.last_error)
                return {**self.info(), "changed": False}
            self.current, self.source, self.last_error = backend, str(latest), None
            log.info("now serving %s", latest)
            return {**self.info(), "changed": True}

    def info(self) -> dict:
        """What is served: source, backend, spec, int8 quality when quantised, follow state."""
        current = self.current
        int8 = current.artifact.onnx_int8 if current.artifact and current.name == Backend.ONNX_INT8.value else None
        return {
            "model": self.source,
            "backend": current.name,
            "spec": current.spec.to_dict(),
            "int8": int8.to_dict() if int8 else None,
            "following": str(self.follow) if self.follow else None,
            "last_error": self.last_error,
        }

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.reload()
            except Exception:  # a polling thread must survive anything and try again
                log.exception("checking %s failed", self.follow)
