"""One training process of a launched run: ``python -m tunerflow.runs.worker <run-dir>`` under torchrun.

It reads ``launch.json`` from the run directory (see :mod:`tunerflow.runs.launch`),
joins the process group from the launcher's environment and runs the ordinary
:func:`~tunerflow.runs.execute.execute_run` as its rank: rank 0 evaluates,
logs (to stdout, which the tuner copies into the run log), checkpoints and
publishes, then writes ``outcome.json``. An exception is recorded by
torchelastic's ``record`` in the launcher's error file, which the tuner reports.

For the tests only, ``TUNERFLOW_TEST_FAULT`` slows the steps down or makes one
rank fail: ``delay=0.05`` (seconds per step), ``fail_at_step=2,rank=1``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from torch.distributed.elastic.multiprocessing.errors import record

from tunerflow.data.store import DatasetStore
from tunerflow.inference.torch_backend import resolve_device
from tunerflow.modeling.sources import ModelSource
from tunerflow.runs.execute import RunContext, execute_run
from tunerflow.runs.launch import LAUNCH_FILE, OUTCOME_FILE, PROGRESS_FILE, STOP_FILE, TUNER_PID
from tunerflow.training.distributed import World, close_world, init_world
from tunerflow.training.recipe import Recipe
from tunerflow.training.state import StopReason

FAULT = "TUNERFLOW_TEST_FAULT"


class StopFlag:
    """The run's ``stop_reason``: rank 0 reads the tuner's stop file, and every rank hears it at the same step.

    A worker whose launcher or tuner is gone (killed outright) exits at once, like a
    one-process run killed with its tuner: the run resumes from its last checkpoint.
    """

    def __init__(self, path: Path, world: World, log: logging.Logger) -> None:
        self.path, self.world, self.log = path, world, log
        self.parent = os.getppid()
        self.tuner = int(os.environ.get(TUNER_PID, "0"))
        self.calls = 0
        self.fault = dict(item.split("=", 1) for item in os.environ.get(FAULT, "").split(",") if "=" in item)

    def __call__(self) -> StopReason | None:
        self.calls += 1
        self._test_fault()
        if os.getppid() != self.parent or (self.tuner and not _alive(self.tuner)):
            self.log.warning("the tuner is gone: this training process stops without a checkpoint")
            os._exit(3)
        reason = None
        if self.world.is_main and self.path.exists():
            reason = StopReason(self.path.read_text().strip())
        return self.world.from_main(reason)

    def _test_fault(self) -> None:
        if "delay" in self.fault:
            time.sleep(float(self.fault["delay"]))
        at = int(self.fault.get("fail_at_step", 0))
        if at and self.calls == at and self.world.rank == int(self.fault.get("rank", 0)):
            raise RuntimeError(f"injected test fault at step {at} on rank {self.world.rank}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _worker_log(name: str, world: World) -> logging.Logger:
    """Rank 0 logs the run (INFO and up) to stdout as ``LEVEL message``; the others only their warnings."""
    log = logging.getLogger(f"tunerflow.run.{name}")
    handler = logging.StreamHandler(sys.stdout)
    prefix = "" if world.is_main else f"[rank {world.rank}] "
    handler.setFormatter(logging.Formatter(f"%(levelname)s {prefix}%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO if world.is_main else logging.WARNING)
    log.propagate = False
    return log


def _write_json(path: Path, data: dict) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data))
    partial.replace(path)


@record
def main(argv: list[str] | None = None) -> None:
    directory = Path((argv or sys.argv[1:])[0])
    spec = json.loads((directory / LAUNCH_FILE).read_text())
    recipe = Recipe.from_options({}, spec["recipe"])
    world = init_world(resolve_device(recipe.device).type)
    try:
        log = _worker_log(spec["run_name"], world)
        context = RunContext(
            name=spec["run_name"],
            recipe=recipe,
            directory=directory,
            datasets=DatasetStore(spec["datasets"]),
            artifacts=Path(spec["artifacts"]),
            log=log,
            model=ModelSource(spec["model"]["name"], Path(spec["model"]["path"]), spec["model"]["is_artifact"])
            if "model" in spec
            else None,
            stop_reason=StopFlag(directory / STOP_FILE, world, log),
            local_stop_reason=lambda: None,  # rank 0 evaluates alone: a stop there waits for the next step
            progress_sink=(lambda latest: _write_json(directory / PROGRESS_FILE, latest)) if world.is_main else None,
        )
        outcome = execute_run(context)
        if world.is_main:
            artifact = str(outcome.artifact) if outcome.artifact else None
            _write_json(
                directory / OUTCOME_FILE,
                {"status": outcome.status.value, "metrics": outcome.metrics, "artifact": artifact},
            )
    finally:
        close_world()


if __name__ == "__main__":
    main()
