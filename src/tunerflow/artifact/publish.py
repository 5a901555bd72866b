"""Publishing artifacts where encoders can follow them: a directory of artifacts, a LATEST pointer, a history.

The tuner saves each artifact under ``<root>/<name>`` (written to a temporary
directory and renamed, see :func:`save_artifact`). Serving one replaces
``<root>/LATEST`` (one line: the artifact's directory name) atomically, then
appends a line to ``<root>/HISTORY.jsonl`` (time, artifact, run, action,
reason). ``LATEST`` says what is served; the history says what was served
before, for rollbacks and for encoders that must walk back past a damaged
artifact. The history is append-only: one ``write`` per line, flushed and
synced; a torn last line (a crash mid-write) is ignored when read, and a
``LATEST`` the history does not end with (a crash between the two writes, or a
hand edit) is adopted as served when the history is next read or written.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

from tunerflow.errors import ArtifactError

LATEST = "LATEST"
HISTORY = "HISTORY.jsonl"


class ServeAction(str, Enum):
    """Why an artifact became the served one."""

    PUBLISH = "publish"  # a finished run passed its publication policy
    PROMOTE = "promote"  # someone asked for this run's artifact (/runs/promote)
    ROLLBACK = "rollback"  # back to the one served before (/runs/rollback)
    ADOPT = "adopt"  # found in LATEST but not at the end of the history (see the module docstring)


@dataclass(frozen=True)
class ServedEntry:
    """One line of the history: ``artifact`` is what is served from ``time`` on."""

    time: str
    artifact: str
    action: ServeAction
    run: str | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        return {**asdict(self), "action": self.action.value}


def write_latest(
    root: str | Path,
    name: str,
    *,
    action: ServeAction = ServeAction.PUBLISH,
    run: str | None = None,
    reason: str = "",
) -> Path:
    """Serve the artifact ``<root>/<name>``: replace ``LATEST`` atomically, then record it in the history."""
    root = Path(root)
    _check_name(root, name)
    if not (root / name).is_dir():
        raise ArtifactError(f"cannot serve {name!r}: it is not an artifact directory", name)
    _adopt_latest(root)
    partial = root / f".{LATEST}.{os.getpid()}"
    partial.write_text(name + "\n")
    partial.replace(root / LATEST)
    _append(root, ServedEntry(_now(), name, ServeAction(action), run, reason))
    return root / name


def read_latest(root: str | Path) -> Path | None:
    """The artifact directory ``<root>/LATEST`` points at, or None before the first publication."""
    name = _latest_name(Path(root))
    return None if name is None else Path(root) / name


def read_history(root: str | Path) -> list[ServedEntry]:
    """Every serving in order, oldest first (a torn or foreign line is skipped); ``LATEST`` adopted if needed."""
    root = Path(root)
    entries = _entries(root)
    latest = _latest_name(root)
    if latest is not None and (not entries or entries[-1].artifact != latest):
        entries.append(ServedEntry(_now(), latest, ServeAction.ADOPT, None, "found in LATEST"))
    return entries


def served_stack(root: str | Path) -> list[str]:
    """The artifacts one could roll back through, the served one last: each rollback removes the last."""
    stack: list[str] = []
    for entry in read_history(root):
        if entry.action is ServeAction.ROLLBACK:
            if stack:
                stack.pop()
            if not stack or stack[-1] != entry.artifact:
                stack.append(entry.artifact)
        elif not stack or stack[-1] != entry.artifact:
            stack.append(entry.artifact)
    return stack


def rollback(root: str | Path, reason: str = "asked for") -> ServedEntry:
    """Serve the artifact served before the current one again; raise ArtifactError when there is none."""
    root = Path(root)
    stack = served_stack(root)
    if not stack:
        raise ArtifactError("nothing is served yet, so there is nothing to roll back")
    current = stack.pop()
    while stack and not (root / stack[-1]).is_dir():
        stack.pop()  # removed since: skip it
    if not stack:
        raise ArtifactError(f"{current!r} is the first artifact served: there is no earlier one to roll back to")
    previous = stack[-1]
    _adopt_latest(root)
    partial = root / f".{LATEST}.{os.getpid()}"
    partial.write_text(previous + "\n")
    partial.replace(root / LATEST)
    entry = ServedEntry(_now(), previous, ServeAction.ROLLBACK, _run_of(root, previous), f"{reason}; was {current}")
    _append(root, entry)
    return entry


def _run_of(root: Path, artifact: str) -> str | None:
    return next((e.run for e in reversed(_entries(root)) if e.artifact == artifact and e.run), None)


def _check_name(root: Path, name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ArtifactError(f"{name!r} does not name an artifact directory", name)


def _latest_name(root: Path) -> str | None:
    pointer = root / LATEST
    try:
        name = pointer.read_text().strip()
    except FileNotFoundError:
        return None
    if not name or "/" in name or name.startswith("."):
        raise ArtifactError(f"{LATEST} does not name an artifact directory: {name!r}", str(pointer))
    return name


def _entries(root: Path) -> list[ServedEntry]:
    try:
        lines = (root / HISTORY).read_bytes().split(b"\n")
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        try:
            data = json.loads(line)
            entries.append(ServedEntry(**{**data, "action": ServeAction(data["action"])}))
        except (ValueError, TypeError, KeyError):
            continue  # empty, torn by a crash mid-write, or not ours
    return entries


def _adopt_latest(root: Path) -> None:
    entries, latest = _entries(root), _latest_name(root)
    if latest is not None and (not entries or entries[-1].artifact != latest):
        _append(root, ServedEntry(_now(), latest, ServeAction.ADOPT, None, "found in LATEST"))


def _append(root: Path, entry: ServedEntry) -> None:
    path = root / HISTORY
    # A torn last line (no newline) must not swallow the next entry: start on a fresh line.
    prefix = b""
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            prefix = b"" if handle.read(1) == b"\n" else b"\n"
    line = prefix + json.dumps(entry.to_dict()).encode() + b"\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
