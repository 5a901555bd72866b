"""A run's own log (``runs/<name>/log.txt``), which clients read: no tracebacks, no server paths."""

from __future__ import annotations

import logging
from pathlib import Path

from tunerflow.errors import TunerflowError

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def open_run_log(name: str, path: Path) -> logging.Logger:
    """A logger writing to ``path``; close it with :func:`close_run_log`."""
    run_log = logging.getLogger(f"tunerflow.run.{name}")
    run_log.setLevel(logging.INFO)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    run_log.addHandler(handler)
    return run_log


def close_run_log(run_log: logging.Logger) -> None:
    for handler in list(run_log.handlers):
        handler.close()
        run_log.removeHandler(handler)


def read_run_log(path: Path, offset: int) -> tuple[str, int]:
    """The log's text from byte ``offset`` and the next offset."""
    if not path.is_file():
        return "", offset
    with path.open("rb") as handle:
        handle.seek(max(0, offset))
        data = handle.read()
    return data.decode("utf-8", errors="replace"), max(0, offset) + len(data)


def client_message(error: Exception, placeholders: dict[Path, str]) -> str:
    """What a client reads of a failure: our errors in words with server paths replaced, others by type only."""
    if not isinstance(error, TunerflowError):
        return f"internal error ({type(error).__name__}); the tuner's log has the details"
    message = str(error)
    for path, placeholder in placeholders.items():
        message = message.replace(str(path), placeholder)
    return message
