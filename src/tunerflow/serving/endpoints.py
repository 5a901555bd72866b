"""Every endpoint the gateway serves, as data: who answers it, its parameter model, its role.

The REST gateway builds one route per entry (the OpenAPI spec follows from
the models); a new executor adds its endpoints with :func:`register`.
Endpoints an executor exposes that are not registered still get a route
that forwards them (role ``write``, parameters checked by the executor).
"""

from __future__ import annotations

from dataclasses import dataclass

from tunerflow.search.documents import SearchDoc
from tunerflow.search.parameters import SearchParameters, WriteParameters
from tunerflow.serving.access import Role, required_role
from tunerflow.serving.documents import LabeledText
from tunerflow.serving.encoder_params import EncodeParameters
from tunerflow.serving.parameters import NoParameters, StrictParameters
from tunerflow.serving.tuner_params import (
    ArtifactQuery,
    DatasetParameters,
    ExperimentQuery,
    LogQuery,
    ModelQuery,
    NewExperiment,
    PageQuery,
    RunListQuery,
    RunParameters,
    RunQuery,
    RunsQuery,
)

# Documents per request when the gateway forwards a large HTTP body in chunks. /encode: the client's gRPC
# request size (config.yml client.chunk_size), so a 512-text HTTP request reaches the encoder whole, as a gRPC
# one does; chunks of 100 made served HTTP 7-12 % slower at 512 texts a request (bench/RESULTS.md, "HTTP
# answers"). /search: 100, not measured otherwise (each query's matches come back with it).
ENCODE_CHUNK = 512
SEARCH_CHUNK = 100


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint.

    Attributes:
        path: the endpoint, e.g. ``/encode``.
        executor: the executor that answers it (requests go to it alone).
        parameters: the strict parameter model, the same the executor applies.
        docs: whether it takes documents (``data``).
        chunk: documents per request when the gateway forwards a large HTTP body in chunks (each chunk
            independent, as embedding is); None: the documents go in one request (an append is all or
            nothing).
        summary: one line for the OpenAPI spec.
        doc_type: the document schema of its requests and answers.
    """

    path: str
    executor: str
    parameters: type[StrictParameters] = NoParameters
    docs: bool = False
    chunk: int | None = None
    summary: str = ""
    doc_type: type = LabeledText

    @property
    def role(self) -> Role:
        return required_role(self.path)


ENDPOINTS: dict[str, EndpointSpec] = {}


def register(*specs: EndpointSpec) -> None:
    """Add endpoints (an executor's module may call this; the gateway imports the registry)."""
    for spec in specs:
        ENDPOINTS[spec.path] = spec


register(
    EndpointSpec("/encode", "encoder", EncodeParameters, docs=True, chunk=ENCODE_CHUNK, summary="Embed documents"),
    EndpointSpec("/info", "encoder", summary="What the encoder serves"),
    EndpointSpec("/reload", "encoder", summary="Load the newest published artifact now"),
    EndpointSpec("/datasets/append", "tuner", DatasetParameters, docs=True, summary="Append labelled texts"),
    EndpointSpec("/datasets/list", "tuner", summary="The stored datasets and their counts"),
    EndpointSpec("/runs/start", "tuner", RunParameters, summary="Queue a training run"),
    EndpointSpec("/runs/status", "tuner", RunQuery, summary="A run's status"),
    EndpointSpec("/runs/metrics", "tuner", RunQuery, summary="A run's metrics before, per epoch and after"),
    EndpointSpec("/runs/cancel", "tuner", RunQuery, summary="Cancel a run"),
    EndpointSpec("/runs/logs", "tuner", LogQuery, summary="A run's log from a byte offset"),
    EndpointSpec("/runs/list", "tuner", RunListQuery, summary="Runs newest first, of one experiment, paged"),
    EndpointSpec("/runs/delete", "tuner", RunQuery, summary="Delete an ended run, its log, checkpoints and artifact"),
    EndpointSpec("/runs/delete_all", "tuner", RunsQuery, summary="Delete every run (of one experiment)"),
    EndpointSpec("/experiments/create", "tuner", NewExperiment, summary="Create an empty experiment"),
    EndpointSpec("/experiments/get", "tuner", ExperimentQuery, summary="An experiment"),
    EndpointSpec("/experiments/list", "tuner", PageQuery, summary="Experiments newest first, paged"),
    EndpointSpec("/experiments/delete", "tuner", ExperimentQuery, summary="Delete an experiment and its runs"),
    EndpointSpec("/experiments/delete_all", "tuner", summary="Delete every experiment and every run"),
    EndpointSpec("/models/list", "tuner", summary="The models a run may name here"),
    EndpointSpec("/models/resolve", "tuner", ModelQuery, summary="Whether a run may name this model here"),
    EndpointSpec("/runs/artifact", "tuner", ArtifactQuery, summary="One base64 chunk of a run's artifact zip"),
)
register(
    # /index, /update, /delete: one request each (a refused id refuses the whole request, nothing half-stored)
    EndpointSpec(
        "/index", "indexer", WriteParameters, docs=True, summary="Store documents for search", doc_type=SearchDoc
    ),
    EndpointSpec(
        "/update", "indexer", WriteParameters, docs=True, summary="Replace documents by id", doc_type=SearchDoc
    ),
    EndpointSpec(
        "/delete", "indexer", WriteParameters, docs=True, summary="Remove documents by id", doc_type=SearchDoc
    ),
    EndpointSpec("/clear", "indexer", WriteParameters, summary="Remove every stored document", doc_type=SearchDoc),
    EndpointSpec(
        "/search",
        "indexer",
        SearchParameters,
        docs=True,
        chunk=SEARCH_CHUNK,
        summary="Best matches",
        doc_type=SearchDoc,
    ),
    EndpointSpec("/index/status", "indexer", summary="The index: count, model, rebuild progress", doc_type=SearchDoc),
)
