"""Runs on several processes: the tuner starts them with PyTorch's launcher and supervises them.

``torch.distributed.run`` (torchrun) runs in a subprocess, so the tuner process
(jina, threads) never forks; it starts ``devices`` workers
(:mod:`tunerflow.runs.worker`), each of which runs the ordinary
:func:`~tunerflow.runs.execute.execute_run` as one rank. The run directory is
how the two sides talk:

    launch.json     what the workers run (recipe, dataset and artifact roots); written here
    stop            the stop reason (cancelled, shutdown); written here, read by rank 0 at every step
    progress.json   the latest progress line; written by rank 0, read here for status queries
    outcome.json    how the run ended (status, metrics, artifact); written by rank 0
    workers/        torchrun's log directory: each failed worker's error.json (torchelastic's ``record``)

The launcher's output (rank 0's run log lines among it) is copied into the run
log; a non-zero exit becomes the run's failure with the failed worker's error.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from tunerflow.errors import DeviceError, TunerflowError
from tunerflow.runs.execute import RunContext, RunOutcome
from tunerflow.runs.gate import decide
from tunerflow.runs.record import RunStatus
from tunerflow.training.recipe import AUTO_DEVICES, Recipe

LAUNCH_FILE, STOP_FILE, PROGRESS_FILE, OUTCOME_FILE, WORKER_LOGS = (
    "launch.json",
    "stop",
    "progress.json",
    "outcome.json",
    "workers",
)
TUNER_PID = "TUNERFLOW_TUNER_PID"  # the workers stop when this process is gone
POLL_SECONDS = 0.2


class WorkerError(TunerflowError):
    """A training process failed; the message is its error (the run log has the whole output)."""


class RemoteProgress:
    """The workers' latest progress line (rank 0 writes it), read for status queries like a Progress's."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def latest(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}


def local_processes(recipe: Recipe) -> int:
    """The processes on this machine: ``devices``, with auto the number of visible GPUs."""
    if recipe.devices != AUTO_DEVICES:
        return recipe.devices
    import torch

    return torch.cuda.device_count()


def check_launch(recipe: Recipe) -> None:
    """Refuse a multi-process recipe this machine cannot run (before the run is queued)."""
    processes = local_processes(recipe)
    if recipe.device.startswith("cuda"):
        import torch

        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if processes < 1 or processes > visible:
            raise DeviceError(
                f"devices {recipe.devices} needs that many GPUs here, but {visible} are visible; "
                "lower devices or use auto"
            )


def launch_command(recipe: Recipe, directory: Path) -> list[str]:
    """The torchrun command line for ``recipe``'s processes on this machine."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(local_processes(recipe))]
    if recipe.nodes == 1:
        command.append("--standalone")  # a local rendezvous on a free port
    else:  # a static rendezvous: global rank 0 is on node 0 (the tuner's), which hosts the store
        command += ["--nnodes", str(recipe.nodes), "--node-rank", str(recipe.node_rank)]
        command += ["--rdzv-backend", "static", "--rdzv-endpoint", str(recipe.rdzv_endpoint)]
    command += ["--max-restarts", "0", "--log-dir", str(directory / WORKER_LOGS)]
    return [*command, "-m", "tunerflow.runs.worker", str(directory)]


def run_launched(run: RunContext) -> RunOutcome:
    """Start the run's processes, copy their output into the run log, pass on a stop, return their outcome.

    Raises:
        WorkerError: the launcher failed; the message is the failed worker's error.
    """
    recipe, directory = run.recipe, run.directory
    check_launch(recipe)
    directory.mkdir(parents=True, exist_ok=True)
    for name in (STOP_FILE, PROGRESS_FILE, OUTCOME_FILE):
        (directory / name).unlink(missing_ok=True)
    spec = {"run_name": run.name, "recipe": recipe.to_dict(), "datasets": str(run.datasets.root)}
    if run.model is not None:  # what the catalogue resolved: the workers load exactly this
        spec["model"] = {"name": run.model.name, "path": str(run.model.path), "is_artifact": run.model.is_artifact}
    (directory / LAUNCH_FILE).write_text(json.dumps({**spec, "artifacts": str(run.artifacts)}, indent=2))
    run.progress = RemoteProgress(directory / PROGRESS_FILE)
    command = launch_command(recipe, directory)
    processes = local_processes(recipe)
    run.log.info("launching %d training processes on this machine (%d nodes)", processes, recipe.nodes)
    env = {**os.environ, TUNER_PID: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
    if recipe.device == "cpu":  # torchrun would give each process one thread; share the cores instead
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    launcher = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, errors="replace"
    )
    copier = threading.Thread(target=_copy_output, args=(launcher.stdout, run.log), daemon=True)
    copier.start()
    while launcher.poll() is None:
        reason = run.stop_reason()
        if reason is not None and not (directory / STOP_FILE).exists():
            (directory / STOP_FILE).write_text(reason.value)
        time.sleep(POLL_SECONDS)
    copier.join(timeout=30)
    if launcher.returncode != 0:
        raise WorkerError(
            worker_error(directory / WORKER_LOGS)
            or f"the training processes failed (torchrun exit code {launcher.returncode}); see the run log"
        )
    try:
        outcome = json.loads((directory / OUTCOME_FILE).read_text())
    except (OSError, ValueError) as error:
        raise WorkerError(f"the training processes ended without an outcome ({error}); see the run log") from None
    artifact = Path(outcome["artifact"]) if outcome.get("artifact") else None
    decision = decide(recipe.publish, outcome["metrics"]) if artifact is not None else None
    return RunOutcome(RunStatus(outcome["status"]), outcome["metrics"], artifact, decision)


_LEVELS = {name: getattr(logging, name) for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}


def _copy_output(stream: IO[str], log: logging.Logger) -> None:
    """Each line into the run log: ``LEVEL message`` lines (the workers' run log) at their level."""
    for line in stream:
        line = line.rstrip("\n")
        level, _, message = line.partition(" ")
        if level in _LEVELS:
            log.log(_LEVELS[level], "%s", message)
        elif line.strip():
            log.info("%s", line)


def worker_error(log_dir: Path) -> str | None:
    """The first failure among the workers' error files, as ``training process N failed: Type: message``.

    The first file written is the cause: a worker's error file is written before it exits, and the
    others fail only once it is gone (a closed connection). None without an error file.
    """
    failures = []
    for path in log_dir.glob("**/error.json"):
        try:
            written, data = path.stat().st_mtime_ns, json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        message = data.get("message", data)
        text = message.get("message", "") if isinstance(message, dict) else str(message)
        failures.append((written, path.parent.name, text))
    if not failures:
        return None
    _, rank, text = min(failures)
    return f"training process {rank} failed: {text}"
