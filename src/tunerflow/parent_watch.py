"""Stop a Flow's parts when its main process dies: a watchdog thread for the executors' processes.

``jina flow`` starts the gateway and each executor as child processes and has
no SIGTERM handler: a ``kill`` (or ``kill -9``) of it leaves them orphaned and
serving, holding their ports. Each of our executors runs this watchdog: it
notes the other children of its parent (the gateway, the other executors; by
pid and start time, so a reused pid is never hit) while the parent lives, and
when the parent is gone it asks them and itself to stop (SIGTERM: jina's
runtimes close gracefully, a training run stays resumable), and kills what is
still there after ``grace`` seconds. Linux only (it reads ``/proc``); elsewhere
it does nothing.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)
_started = False


def watch_parent(poll_interval: float = 1.0, grace: float = 20.0) -> bool:
    """Start the watchdog in this process if it is a child process (once); returns whether it runs."""
    global _started
    if _started or multiprocessing.parent_process() is None or not Path("/proc/self/stat").is_file():
        return False
    _started = True
    parent = os.getppid()
    thread = threading.Thread(
        target=_watch, args=(parent, poll_interval, grace), name="tunerflow-parent-watch", daemon=True
    )
    thread.start()
    return True


def _watch(parent: int, poll_interval: float, grace: float) -> None:
    siblings: dict[int, str] = {}
    while os.getppid() == parent:
        siblings.update(children_of(parent, exclude=os.getpid()))
        time.sleep(poll_interval)
    alive = {pid: start for pid, start in siblings.items() if start_time(pid) == start}
    log.warning("the Flow's main process %d is gone: stopping %s and this process", parent, sorted(alive) or "nothing")
    for pid in alive:
        _signal(pid, signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(start_time(pid) == start for pid, start in alive.items()):
        time.sleep(0.2)
    for pid, start in alive.items():
        if start_time(pid) == start:
            _signal(pid, signal.SIGKILL)
    time.sleep(max(0.0, deadline - time.monotonic()))
    os._exit(1)  # this process did not stop by itself within the grace period


def children_of(parent: int, exclude: int | None = None) -> dict[int, str]:
    """``{pid: start time}`` of the processes whose parent is ``parent``."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == exclude:
            continue
        fields = _stat(int(entry.name))
        if fields is not None and int(fields[1]) == parent:
            found[int(entry.name)] = fields[19]
    return found


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None when there is no such process."""
    fields = _stat(pid)
    return None if fields is None or fields[0] == "Z" else fields[19]


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name: state, ppid, pgrp, ... (starttime is index 19)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
