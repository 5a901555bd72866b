"""The model an encoder serves, swapped for newly published artifacts without a restart."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from tunerflow.artifact.publish import read_latest, served_stack
from tunerflow.inference import InferenceBackend, open_backend
from tunerflow.inference.cpu import cpu_features
from tunerflow.options import Backend

log = logging.getLogger(__name__)
MAX_REFUSED = 10


class ServedModel:
    """Holds the current backend; optionally follows an artifact directory.

    Requests take :attr:`current` once and keep that reference, so a swap
    never fails a request in flight. A new artifact is loaded beside the old
    model and swapped in only once it loads; a damaged one is logged, noted in
    :meth:`info` (``last_error``, ``refused``) and the old model keeps serving.
    At start-up it serves the newest artifact that loads: the one ``LATEST``
    names, else back through the served history (``HISTORY.jsonl``), else
    ``model``; each one refused on the way is logged and listed in ``refused``.

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
        self.refused: list[dict] = []  # the newest last, at most MAX_REFUSED
        self._refused_keys: set[tuple] = set()
        self._swap_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: InferenceBackend = self._open_newest_that_loads(model)
        log.info("serving %s with the %s backend", self.source, self.current.name)

    def _open_newest_that_loads(self, model: str) -> InferenceBackend:
        candidates: list[Path] = []
        if self.follow is not None:
            latest = read_latest(self.follow)
            names = ([latest.name] if latest else []) + served_stack(self.follow)[::-1]
            candidates = [self.follow / name for name in dict.fromkeys(names)]
        for path in candidates:
            backend = self._try_open(path)
            if backend is not None:
                self.source = str(path)
                return backend
        if candidates:
            log.warning("no served artifact loads; serving the configured model %s", model)
        self.source = model
        return open_backend(model, **self.backend_options)

    def _try_open(self, path: Path) -> InferenceBackend | None:
        """The backend of the artifact at ``path``, or None (logged, noted in :meth:`info`) when it does not load."""
        try:
            return open_backend(str(path), **self.backend_options)
        except Exception as error:  # a damaged artifact may fail in any library: refuse it, keep serving
            self._refuse(path, error)
            return None

    def _refuse(self, path: Path, error: Exception) -> None:
        self.last_error = f"{path.name}: {error}"
        self._refused_keys.add(_artifact_key(path))
        self.refused = [*self.refused, {"artifact": path.name, "error": str(error)}][-MAX_REFUSED:]
        log.error("refusing artifact %s, keeping %s: %s", path.name, self.source, error)

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
            if latest is None:
                return {**self.info(), "changed": False}
            if str(latest) == self.source:  # served again (a rollback to it): an earlier refusal is no error now
                self.last_error = None
                return {**self.info(), "changed": False}
            if _artifact_key(latest) in self._refused_keys:  # refused already, unchanged since: do not retry
                return {**self.info(), "changed": False}
            backend = self._try_open(latest)
            if backend is None:
                return {**self.info(), "changed": False}
            self.current, self.source, self.last_error = backend, str(latest), None
            log.info("now serving %s", latest)
            return {**self.info(), "changed": True}

    def info(self) -> dict:
        """What is served: source, backend and the path it runs (dtype, the library's own report of
        how it runs, batching, the CPU's features), spec, int8 quality when quantised, follow state;
        with ``backend: auto``, ``auto``: the CPU kind, the path chosen, why, and why each faster one
        was skipped (the backend is the concrete one chosen, re-chosen for every artifact swapped in)."""
        current = self.current
        int8 = current.artifact.onnx_int8 if current.artifact and Backend(current.name).int8 else None
        dtype = getattr(current, "dtype", None)
        return {
            "model": self.source,
            "backend": current.name,
            "dtype": dtype.value if dtype is not None else "float32",  # onnx: the fp32 or int8 graph itself
            "runtime": current.runtime(),
            "batching": {"batch_size": current.batch_size, "max_tokens": current.max_tokens},
            "cpu": cpu_features().to_dict(),
            "spec": current.spec.to_dict(),
            "int8": int8.to_dict() if int8 else None,
            "auto": current.auto.to_dict() if current.auto is not None else None,
            "following": str(self.follow) if self.follow else None,
            "last_error": self.last_error,
            "refused": list(self.refused),
        }

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.reload()
            except Exception:  # a polling thread must survive anything and try again
                log.exception("checking %s failed", self.follow)


def _artifact_key(path: Path) -> tuple:
    """An artifact as it is now: its path and its config's modification time (a rewrite is a new artifact)."""
    try:
        return (str(path), (path / "tunerflow.json").stat().st_mtime_ns)
    except OSError:
        return (str(path), None)
