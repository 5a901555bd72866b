"""TunerExecutor: labelled documents in, training runs in the background, artifacts out.

No ``from __future__ import annotations`` here: jina reads the endpoint
annotations at run time to build document and parameter schemas.
"""

import asyncio
import base64
from typing import Optional

import torch
from docarray import DocList
from jina import Executor, requests

from tunerflow.artifact.layout import file_digest
from tunerflow.data.records import make_record
from tunerflow.errors import DataError
from tunerflow.parent_watch import watch_parent
from tunerflow.paths import home_dir, under_home
from tunerflow.process_gc import freeze_startup_heap
from tunerflow.runs import RunManager
from tunerflow.serving.documents import LabeledText
from tunerflow.serving.internal import GatewayOnly
from tunerflow.serving.parameters import NoParameters
from tunerflow.serving.tuner_params import (
    ArtifactQuery,
    DatasetParameters,
    ExperimentQuery,
    LogQuery,
    ModelQuery,
    NewExperiment,
    PageQuery,
    PublicationQuery,
    RunListQuery,
    RunParameters,
    RunQuery,
    RunsQuery,
)
from tunerflow.settings import section
from tunerflow.training.recipe import Recipe


class TunerExecutor(GatewayOnly, Executor):
    """Stores streamed training data, runs training in the background, publishes artifacts.

    Args:
        home: directory for datasets, runs and artifacts (default ``$TUNERFLOW_HOME``,
            else ``./workspace``).
        artifacts: where artifacts are published (default ``<home>/artifacts``);
            relative paths resolve under the home.
        config: the recipe file (default: the project's ``config.yml``).
        recipe: overrides of that file's recipe for this tuner, e.g. ``{device: cuda,
            precision: bf16}`` on a GPU node; a run's own options still win.
        threads: torch compute threads for training (default: the library's).
    """

    def __init__(
        self,
        home: Optional[str] = None,
        artifacts: Optional[str] = None,
        config: Optional[str] = None,
        recipe: Optional[dict] = None,
        threads: Optional[int] = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        watch_parent()  # the Flow's main process killed: stop this process and the Flow's other parts
        if threads:
            torch.set_num_threads(int(threads))
        root = under_home(home) if home else home_dir()
        defaults = section("recipe", config)
        Recipe.check_names(recipe or {})
        defaults.update(recipe or {})
        self.manager = RunManager(
            root, defaults, artifacts=(root / artifacts) if artifacts else None, models=section("models", config)
        )
        freeze_startup_heap()  # imports and stored runs loaded: later full collections skip them (process_gc)

    @requests(on="/datasets/append")
    def append(self, docs: DocList[LabeledText], parameters: DatasetParameters, **kwargs) -> DocList[LabeledText]:
        """Append labelled documents to a dataset; all are checked before any is stored."""
        if len(docs) == 0:
            raise DataError("empty request: send labelled documents (text and label)")
        records = [
            make_record(doc.text, doc.resolved_label(), doc.id, f"document {index} (id {doc.id})")
            for index, doc in enumerate(docs)
        ]
        counts = self.manager.append(parameters.dataset, records)
        del docs[:]  # stored: answer with the counts only, not an echo of every uploaded document
        return counts

    @requests(on="/datasets/list")
    async def datasets(self, docs: DocList[LabeledText], **kwargs) -> DocList[LabeledText]:
        return {"datasets": self.manager.dataset_summaries()}

    @requests(on="/runs/start")
    def start(self, docs: DocList[LabeledText], parameters: RunParameters, **kwargs) -> DocList[LabeledText]:
        """Validate and queue a run; answers at once with its record (status CREATED)."""
        return self.manager.start(parameters.options()).to_dict()

    # The async endpoints take plain dict parameters and validate them here: jina 3.33 wraps an async
    # endpoint with a pydantic parameter model in a sync function and returns the coroutine unawaited.

    @requests(on="/runs/status")
    async def status(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        query = RunQuery(**parameters)
        return self.manager.get(query.run_name, query.experiment_name).to_dict()

    @requests(on="/runs/logs")
    async def logs(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        query = LogQuery(**parameters)
        text, next_offset = self.manager.logs(query.run_name, query.offset)
        status = self.manager.get(query.run_name).status
        return {"text": text, "next_offset": next_offset, "status": status.value}

    @requests(on="/runs/metrics")
    async def metrics(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        return self.manager.get(RunQuery(**parameters).run_name).metrics

    @requests(on="/runs/list")
    async def runs(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        """Runs newest first (of one experiment when given), a page of ``size`` or all; ``total`` counts them all."""
        query = RunListQuery(**parameters)
        records = self.manager.list(query.experiment_name)
        chosen = records if query.size is None else records[(query.page - 1) * query.size : query.page * query.size]
        return {"runs": [run_summary(r) for r in chosen], "total": len(records), "page": query.page}

    @requests(on="/runs/delete")
    async def delete_run(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        """Delete an ended run with its log, checkpoints and artifact (a queued or running one is refused)."""
        query = RunQuery(**parameters)
        record = await asyncio.to_thread(self.manager.delete, query.run_name, query.experiment_name)
        return {"deleted": [run_summary(record)]}

    @requests(on="/runs/delete_all")
    async def delete_runs(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        """Delete every run (of one experiment when given): all, or none if one is queued, running or served."""
        records = await asyncio.to_thread(self.manager.delete_runs, RunsQuery(**parameters).experiment_name)
        return {"deleted": [run_summary(r) for r in records]}

    @requests(on="/experiments/create")
    async def create_experiment(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        query = NewExperiment(**parameters)
        return self.manager.create_experiment(query.name, query.description)

    @requests(on="/experiments/get")
    async def get_experiment(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        return self.manager.get_experiment(ExperimentQuery(**parameters).name)

    @requests(on="/experiments/list")
    async def experiments(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        query = PageQuery(**parameters)
        entries = self.manager.list_experiments()
        page = entries[(query.page - 1) * query.size : query.page * query.size]
        return {"experiments": page, "total": len(entries), "page": query.page}

    @requests(on="/experiments/delete")
    async def delete_experiment(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        """Delete an experiment and its runs (none if one of them is queued, running or served)."""
        name = ExperimentQuery(**parameters).name
        return {"deleted": [await asyncio.to_thread(self.manager.delete_experiment, name)]}

    @requests(on="/experiments/delete_all")
    async def delete_experiments(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        NoParameters(**parameters)
        return {"deleted": await asyncio.to_thread(self.manager.delete_experiments)}

    @requests(on="/models/list")
    async def models(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        """The models a run may name here, with architecture, dimension and size (no weights loaded)."""
        NoParameters(**parameters)
        return {"models": await asyncio.to_thread(self.manager.catalogue.describe)}

    @requests(on="/models/resolve")
    async def resolve_model(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        """Whether a run may name this model here (the client asks before it uploads anything)."""
        return await asyncio.to_thread(self.manager.check_model, ModelQuery(**parameters).model)

    @requests(on="/runs/cancel")
    async def cancel(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        return self.manager.cancel(RunQuery(**parameters).run_name).to_dict()

    @requests(on="/runs/promote")
    async def promote(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        """Serve this finished run's artifact now; answers what is served and the history."""
        return self.manager.promote(RunQuery(**parameters).run_name)

    @requests(on="/runs/rollback")
    async def rollback(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        """Serve the artifact served before the current one again; answers what is served and the history."""
        PublicationQuery(**parameters)
        return self.manager.rollback()

    @requests(on="/runs/served")
    async def served(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        """The served artifact, what a rollback goes back to, and the history of served artifacts."""
        PublicationQuery(**parameters)
        return self.manager.served()

    @requests(on="/runs/artifact")
    async def artifact(self, docs: DocList[LabeledText], parameters: dict, **kwargs) -> DocList[LabeledText]:
        """One chunk of the finished run's artifact zip (base64); repeat with ``next_offset`` until done."""
        query = ArtifactQuery(**parameters)
        path = self.manager.artifact_zip(query.run_name)
        total = path.stat().st_size
        with path.open("rb") as handle:
            handle.seek(query.offset)
            chunk = handle.read(query.size)
        answer = {
            "name": path.name,
            "offset": query.offset,
            "next_offset": query.offset + len(chunk),
            "total": total,
            "data": base64.b64encode(chunk).decode("ascii"),
        }
        if query.offset + len(chunk) >= total:
            answer["sha256"] = file_digest(path)
        return answer

    @requests
    def passthrough(self, docs: DocList[LabeledText], **kwargs) -> DocList[LabeledText]:
        """Other endpoints (``/encode`` in train.yml) pass through untouched to the encoder."""
        return None

    def describe(self) -> dict:
        """Where state lives and the default recipe (for logs and tests)."""
        return {
            "home": str(self.manager.home),
            "artifacts": str(self.manager.artifacts),
            "default_recipe": self.manager.defaults,
        }

    def close(self) -> None:
        self.manager.close()
        super().close()


def run_summary(record) -> dict:
    """A run as listings give it: what the reference tool's Run holds, and our status fields (no server paths)."""
    data = record.to_dict()
    keys = ("run_name", "experiment_name", "description", "status", "details", "created_at", "finished_at", "promoted")
    return {**{key: data[key] for key in keys}, "config": data["recipe"], "artifact_id": artifact_id(record)}


def artifact_id(record) -> Optional[str]:
    """The finished run's artifact as clients name it (``model_artifact=``, the catalogue): the run's name."""
    return record.run_name if record.status.value == "FINISHED" and record.artifact else None
