"""The searcher on Kubernetes: two shards as StatefulSets with a claim each, a head with the merger.

Beside tests/test_kubernetes.py (same rendering; strict validation of every object is there).
"""

# ruff: noqa: F811 - the fixtures imported from test_kubernetes are parameters here
from __future__ import annotations

import json

import pytest
import yaml

from tests.test_kubernetes import (  # noqa: F401 - fixtures
    EXECUTOR_PORT,
    HOME,
    K8S_VENV,
    NAMESPACE,
    ROOT,
    manifest,
    objects,
    option,
    quantity,
)

pytestmark = pytest.mark.skipif(not K8S_VENV.is_dir(), reason=f"{K8S_VENV} is missing: `make k8s-tools`")
SHARDS = ("indexer-0", "indexer-1")
MERGER_PORT = 8079  # where jina's head looks for its uses_after


def statefulset(objects, name: str) -> dict:
    return objects["StatefulSet", name]["spec"]


def containers(objects, name: str) -> dict[str, dict]:
    return {c["name"]: c for c in statefulset(objects, name)["template"]["spec"]["containers"]}


@pytest.mark.parametrize("shard", range(len(SHARDS)))
def test_each_shard_keeps_its_index_on_a_claim_of_its_own(objects, shard):
    name = SHARDS[shard]
    spec = statefulset(objects, name)
    assert spec["replicas"] == 1 and spec["serviceName"] == name and ("Service", name) in objects
    assert "strategy" not in spec  # a Deployment's field: strict validation rejects it on a StatefulSet
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"] and "storageClassName" not in claim["spec"]
    assert quantity(claim["spec"]["resources"]["requests"]["storage"]) >= quantity("1Gi")
    executor = containers(objects, name)["executor"]
    mounts = {m["mountPath"]: m for m in executor["volumeMounts"]}
    env = {item["name"]: item.get("value") for item in executor["env"]}
    assert env["TUNERFLOW_HOME"] == HOME
    args = executor["args"]
    uses_with = json.loads(option(args, "--uses-with"))
    home = uses_with.get("home", "search")  # the executor's default: $TUNERFLOW_HOME/search/shard-<k>
    assert mounts[f"{HOME}/{home}"]["name"] == claim["metadata"]["name"] and not mounts[f"{HOME}/{home}"].get(
        "readOnly"
    )
    # the shared claim's artifacts/, read-only: the shard follows artifacts/LATEST and re-embeds on a publish
    followed = mounts[f"{HOME}/{uses_with['follow']}"]
    assert followed["readOnly"] is True and followed["subPath"] == uses_with["follow"] == "artifacts"
    (volume,) = statefulset(objects, name)["template"]["spec"]["volumes"]
    assert volume["name"] == followed["name"] and volume["persistentVolumeClaim"] == {
        "claimName": "artifacts",
        "readOnly": True,
    }
    assert int(option(args, "--shards")) == len(SHARDS) and option(args, "--uses") == "config.yml"
    assert executor["image"] == "tunerflow-indexer:0.1.0"
    assert int(uses_with["threads"]) <= quantity(executor["resources"]["limits"]["cpu"])


def test_the_head_stores_nothing_and_runs_the_merger_where_it_looks(objects):
    spec = statefulset(objects, "indexer-head")
    assert "volumeClaimTemplates" not in spec and "volumes" not in spec["template"]["spec"]
    pods = containers(objects, "indexer-head")
    head, merger = pods["executor"], pods["uses-after"]
    assert "volumeMounts" not in head and "volumeMounts" not in merger
    assert option(head["args"], "--uses-after-address") == f"127.0.0.1:{MERGER_PORT}"
    shards = json.loads(option(head["args"], "--connection-list"))
    assert shards == {str(k): f"{name}.{NAMESPACE}.svc:{EXECUTOR_PORT}" for k, name in enumerate(SHARDS)}
    assert json.loads(option(head["args"], "--polling"))["/index"] == "ALL"  # never ANY: ids hash to one shard
    assert int(option(merger["args"], "--port")) == MERGER_PORT == merger["ports"][0]["containerPort"]
    assert option(merger["args"], "--uses") == "merger.yml"  # in the indexer image (executors/indexer/)
    assert (ROOT / "executors" / "indexer" / "merger.yml").is_file()
    assert merger["image"] == "tunerflow-indexer:0.1.0"


@pytest.mark.parametrize("name", ["indexer-head", *SHARDS])
def test_searcher_pods_probe_natively_run_as_non_root_within_limits(objects, name):
    pod = statefulset(objects, name)["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and str(pod["securityContext"]["runAsUser"]) == "1000"
    for container in pod["containers"]:
        port = int(option(container["args"], "--port"))
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container[kind]
            assert probe["grpc"] == {"port": port}, (name, container["name"], kind, probe)
            assert not {"exec", "httpGet", "tcpSocket"} & probe.keys()
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        resources = container["resources"]
        for key in ("cpu", "memory"):
            assert 0 < quantity(resources["requests"][key]) <= quantity(resources["limits"][key]), resources


def test_the_indexer_is_configured_as_in_the_local_flow(objects):
    flow = yaml.safe_load((ROOT / "flows" / "train.yml").read_text())
    local = {ex["name"]: ex for ex in flow["executors"]}
    for name in SHARDS:
        args = containers(objects, name)["executor"]["args"]
        assert json.loads(option(args, "--uses-with")).items() >= local["indexer"]["uses_with"].items()
        assert json.loads(option(args, "--uses-requests")) == local["indexer"]["uses_requests"]


@pytest.mark.parametrize(("name", "part"), [*((shard, "executor") for shard in SHARDS), ("indexer-head", "uses-after")])
def test_shards_and_merger_get_the_internal_secret(objects, name, part):
    """Indexer and merger are GatewayOnly: without the Flow's secret each pod would make its own and refuse all."""
    env = {item["name"]: item for item in containers(objects, name)[part].get("env", [])}
    assert env["TUNERFLOW_INTERNAL_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "api-keys",
        "key": "internal-secret",
    }
