"""Runs in the background, one at a time, surviving restarts.

Layout under the home directory::

    datasets/<name>/       append-only datasets (see tunerflow.data.store)
    runs/<name>/           record.json, log.txt, checkpoint/, best.safetensors, training.png
    experiments.json       the experiments (see tunerflow.runs.experiments)
    artifacts/<name>/      every finished run's artifact (and <name>.zip); LATEST -> the served one,
                           HISTORY.jsonl: every serving (see tunerflow.runs.publication)

A run that was STARTED when the process stopped resumes from its last
checkpoint when a manager opens the same home again: at the batch where a
shutdown (:meth:`RunManager.close`) stopped it, or after the last epoch if the
process died. CREATED runs are queued again in creation order.
"""

from __future__ import annotations

import logging
import secrets
import threading
import traceback
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

from tunerflow.data.records import Record
from tunerflow.data.store import DatasetStore, check_name
from tunerflow.errors import ConflictError, NotFoundError
from tunerflow.modeling.catalogue import Catalogue
from tunerflow.modeling.sources import ModelSource
from tunerflow.runs.admin import RunAdmin
from tunerflow.runs.data_aware import data_aware_recipe
from tunerflow.runs.execute import RunContext, check_recipe, execute_run, machine_choices
from tunerflow.runs.experiments import EXPERIMENTS_FILE, ExperimentStore
from tunerflow.runs.publication import Publication
from tunerflow.runs.record import RunRecord, RunStatus, now
from tunerflow.runs.runlog import client_message, close_run_log, open_run_log, read_run_log
from tunerflow.settings import section
from tunerflow.training.recipe import Recipe
from tunerflow.training.state import StopReason

log = logging.getLogger(__name__)


class RunManager(RunAdmin):
    """Datasets, runs and artifacts under one home directory.

    Args:
        home: the directory holding datasets, runs and artifacts.
        defaults: the default recipe (``config.yml``'s ``recipe`` section).
        artifacts: where artifacts are published (default ``<home>/artifacts``).
        start_worker: run queued runs in a background thread (tests may drive runs by hand).
        models: ``config.yml``'s ``models`` section (default: read from it): the catalogue of models a
            run may name; the artifacts of earlier runs are offered by run name too.
    """

    def __init__(
        self,
        home: str | Path,
        defaults: dict[str, Any],
        artifacts: str | Path | None = None,
        start_worker: bool = True,
        models: dict[str, Any] | None = None,
    ) -> None:
        self.home = Path(home)
        self.defaults = dict(defaults)
        self.datasets = DatasetStore(self.home / "datasets")
        self.runs_dir = self.home / "runs"
        self.artifacts = Path(artifacts) if artifacts else self.home / "artifacts"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.publication = Publication(self.artifacts)
        self.experiments = ExperimentStore(self.home / EXPERIMENTS_FILE)
        models = section("models") if models is None else models
        self.catalogue = Catalogue.from_settings(models, extra_roots=[self.artifacts])
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[str] = deque()
        self._records: dict[str, RunRecord] = {}
        self._active: RunContext | None = None
        self._running: str | None = None  # set from dequeue to the end of the run
        self._cancel: set[str] = set()
        self._shutdown = False
        self._recover()
        self._worker: threading.Thread | None = None
        if start_worker:
            self._worker = threading.Thread(target=self._work, name="tunerflow-runs", daemon=True)
            self._worker.start()

    # ----------------------------------------------------------------- data

    def append(self, dataset: str, records: list[Record]) -> dict:
        """Store validated records in ``dataset`` (created on first use); returns its counts."""
        return self.datasets.append(dataset, records)

    def dataset_summaries(self) -> list[dict]:
        return [self.datasets.get(name).summary() for name in self.datasets.names()]

    # ----------------------------------------------------------------- runs

    def start(self, options: dict[str, Any]) -> RunRecord:
        """Validate a run (nothing starts if anything is wrong), record it as CREATED and queue it."""
        recipe = Recipe.from_options(self.defaults, options)
        if recipe.model_artifact is None:
            source = self._model_source(recipe.model)
        elif (self.artifacts / recipe.model_artifact).is_dir():  # continuing a run: `model` is not used
            source = self._tokenizer_source(recipe, None)
        else:
            raise NotFoundError(f"model_artifact {recipe.model_artifact!r}: no finished run of that name has one")
        choices, stats = [], None
        if recipe.data_aware:
            check = lambda chosen: check_recipe(chosen, self.datasets)  # noqa: E731
            recipe, choices, stats = data_aware_recipe(recipe, options, self.defaults, self.datasets, source, check)
        hardware = machine_choices(recipe)
        check_recipe(recipe, self.datasets)
        with self._lock:
            name = recipe.run_name or self._new_name()
            check_name(name, "run")
            if name in self._records:
                raise ConflictError(f"a run named {name!r} already exists; choose another run_name")
            recipe.run_name = name
            record = RunRecord(
                run_name=name,
                recipe=recipe.to_dict(),
                experiment_name=recipe.experiment_name,
                description=recipe.description,
                created_at=now(),
                data_aware=[choice.to_dict() for choice in choices],
                data_statistics=stats.to_dict() if stats else {},
                hardware=[choice.to_dict() for choice in hardware],
            )
            record.details = self._queue_details()
            record.save(self.runs_dir / name)
            self.experiments.ensure(record.experiment_name, record.created_at)
            self._records[name] = record
            self._queue.append(name)
            self._wake.notify_all()
        return record

    def get(self, name: str, experiment: str | None = None) -> RunRecord:
        """The run's record (NotFoundError if there is no such run, in ``experiment`` when given)."""
        with self._lock:
            record = self._lookup(name, experiment)
            if self._active is not None and self._active.name == name and self._active.progress is not None:
                record.progress = dict(self._active.progress.latest)
            return record

    def cancel(self, name: str) -> RunRecord:
        record = self.get(name)
        with self._lock:
            if record.status is RunStatus.CREATED:
                self._queue.remove(name)
                self._finish(record, RunStatus.CANCELLED, "cancelled before it started")
            elif record.status is RunStatus.STARTED:
                self._cancel.add(name)
                record.details = "cancelling: stops after the current step or evaluation slice"
        return record

    def logs(self, name: str, offset: int = 0) -> tuple[str, int]:
        """Log text of a run from byte ``offset``; returns the text and the next offset."""
        self.get(name)
        return read_run_log(self.runs_dir / name / "log.txt", offset)

    def artifact_zip(self, name: str) -> Path:
        record = self.get(name)
        if record.status is not RunStatus.FINISHED or not record.artifact:
            raise ConflictError(f"run {name!r} has no artifact: it is {record.status.value}")
        return Path(record.artifact).with_name(f"{name}.zip")  # not with_suffix: run 'a.v2' is not run 'a'

    def promote(self, name: str) -> dict:
        """Serve the finished run ``name``'s artifact now (whatever its ``publish`` policy decided)."""
        record = self.get(name)
        answer = self.publication.promote(record)
        with self._lock:
            record.details = "finished; promoted by request"
            record.save(self.runs_dir / name)
        return answer

    def rollback(self) -> dict:
        """Serve the artifact served before the current one again."""
        return self.publication.rollback()

    def served(self) -> dict:
        """What is served, what a rollback goes back to, and the history of served artifacts."""
        return self.publication.served()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no run is queued or running (for tests and the demo)."""
        with self._wake:
            return self._wake.wait_for(
                lambda: not self._queue and self._active is None and self._running is None, timeout=timeout
            )

    def close(self) -> None:
        """Stop the worker; a run in progress stays STARTED and resumes when the home is opened again."""
        with self._wake:
            self._shutdown = True
            self._wake.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=60)

    # ------------------------------------------------------------ internals

    def _new_name(self) -> str:
        return f"run-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"

    def _queue_details(self) -> str:
        ahead = ([self._running] if self._running else []) + list(self._queue)
        return f"queued behind {', '.join(ahead)}" if ahead else "queued"

    def _recover(self) -> None:
        records = []
        for directory in self.runs_dir.iterdir():
            if (directory / "record.json").is_file():
                records.append(RunRecord.load(directory))
        for record in sorted(records, key=lambda r: r.created_at):
            self._records[record.run_name] = record
            self.experiments.ensure(record.experiment_name, record.created_at)
            if record.status is RunStatus.STARTED:
                record.details = "interrupted; resuming from the last checkpoint"
                self._queue.appendleft(record.run_name)
            elif record.status is RunStatus.CREATED:
                self._queue.append(record.run_name)

    def _work(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._queue or self._shutdown)
                if self._shutdown:
                    return
                name = self._queue.popleft()
                self._running = name
            try:
                self.run_now(name)
            except Exception:  # the worker must outlive any run
                log.exception("run %s could not be executed", name)
            finally:
                with self._wake:
                    self._running = None
                    self._wake.notify_all()

    def run_now(self, name: str) -> RunRecord:
        """Execute a queued or interrupted run in this thread (the worker calls this)."""
        record = self._records[name]
        directory = self.runs_dir / name
        run_log = open_run_log(name, directory / "log.txt")
        context = RunContext(
            name=name,
            recipe=Recipe.from_options(self.defaults, record.recipe),  # defaults: options added since it was made
            directory=directory,
            datasets=self.datasets,
            artifacts=self.artifacts,
            log=run_log,
            stop_reason=lambda: self._stop_reason(name),
            data_aware=record.data_aware,
            on_probe=lambda result, recipe: self._probed(record, directory, result, recipe),
        )
        with self._lock:
            self._active = context
            record.status, record.attempts = RunStatus.STARTED, record.attempts + 1
            record.started_at = record.started_at or now()
            record.details = "running" if record.attempts == 1 else f"running (attempt {record.attempts}, resumed)"
            record.save(directory)
        run_log.info("run %s started (attempt %d)", name, record.attempts)
        for choice in record.data_aware:
            kept = "" if choice["changed"] else " kept"
            run_log.info("data-aware: %s %s%s (%s)", choice["option"], choice["value"], kept, choice["reason"])
        for choice in record.hardware:
            run_log.info("this machine: %s %s (%s)", choice["option"], choice["value"], choice["reason"])
        try:
            context.model = self._model_source(context.recipe.model)
            outcome = execute_run(context)
        except Exception as error:  # any failure ends the run as FAILED with its cause, never the worker
            # The run's log and status are read by clients: the cause in words, the traceback in the tuner's log only.
            log.error("run %s failed\n%s", name, traceback.format_exc())
            places = {self.artifacts: "<artifacts>", self.home: "<home>"}
            message = client_message(error, {**places, **dict.fromkeys(self.catalogue.roots, "<model root>")})
            run_log.error("run failed: %s", message)
            with self._lock:
                self._finish(record, RunStatus.FAILED, message)
        else:
            with self._lock:
                record.metrics = outcome.metrics
                if outcome.status is RunStatus.FINISHED:
                    record.artifact = str(outcome.artifact)
                    self.publication.apply(record, outcome.decision, run_log)
                    served = "served" if record.promoted else record.promotion
                    self._finish(record, RunStatus.FINISHED, f"finished; {served}")
                elif outcome.status is RunStatus.CANCELLED:
                    self._finish(record, RunStatus.CANCELLED, "cancelled")
                else:  # still STARTED: shut down mid-run
                    record.details = "interrupted by shutdown; resumes when the tuner restarts"
                    record.save(directory)
            run_log.info("run %s: %s", name, record.details)
        finally:
            close_run_log(run_log)
            with self._wake:
                self._cancel.discard(name)
                self._active = None
                self._wake.notify_all()
        return record

    def check_model(self, model: str) -> dict:
        """Whether a run may name ``model`` here (ModelNotAvailableError says what to do if not); no server paths."""
        source = self._model_source(model)
        return {"model": model, "available": True, "artifact": source.is_artifact}

    def _probed(self, record: RunRecord, directory: Path, result: dict, recipe: Recipe) -> None:
        """The probe's result, and the recipe the run now trains with, into the run's record at once."""
        with self._lock:
            record.probe, record.recipe = result, recipe.to_dict()
            record.save(directory)

    def _model_source(self, model: str) -> ModelSource:
        """A run's model from the catalogue; the tuner's own default (config.yml, its ``recipe``) is trusted."""
        return self.catalogue.resolve(model, trusted=model == self.defaults.get("model"))

    def _tokenizer_source(self, recipe: Recipe, source: ModelSource | None) -> ModelSource | None:
        """Where the run's tokenizer is: its model_artifact's (when it continues one), else its model's."""
        if recipe.model_artifact and (self.artifacts / recipe.model_artifact).is_dir():
            return ModelSource(recipe.model_artifact, self.artifacts / recipe.model_artifact, is_artifact=True)
        return source

    def _stop_reason(self, name: str) -> StopReason | None:
        if name in self._cancel:
            return StopReason.CANCELLED
        return StopReason.SHUTDOWN if self._shutdown else None

    def _finish(self, record: RunRecord, status: RunStatus, details: str) -> None:
        record.status, record.details, record.finished_at = status, details, now()
        if self._active is not None and self._active.name == record.run_name and self._active.progress:
            record.progress = dict(self._active.progress.latest)
        record.save(self.runs_dir / record.run_name)
