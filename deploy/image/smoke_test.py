"""Image smoke test without a Docker engine: build the encoder image, run it as the manifest says, embed.

1. A Debian bookworm base (Python 3.11) made with mmdebstrap, kept in build/image/ for later runs.
2. The encoder image built from the Dockerfile with buildah (chroot isolation, vfs storage).
3. The container started with exactly the command, arguments, environment and read-only /data
   mount that the rendered Kubernetes manifest gives the encoder Deployment.
4. The gRPC health check the probes use, then jina's client: /encode must match the bundled
   model's embeddings computed here, outside the image. Then an artifact is published on the
   volume as the tuner would, and the encoder must swap it in and embed with it.

Run as root with the project's venv: ``.venv/bin/python deploy/image/smoke_test.py``. It needs
buildah, mmdebstrap, .venv-k8s (to render the manifest) and PyPI from inside the build. The
result is printed and written to build/image/smoke-result.json; the image is kept (buildah push it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "build" / "image"
LOG = WORK / "smoke-container.log"
BUILDAH = ["buildah", "--storage-driver", "vfs"]
TEXTS = ["how do i learn python ?", "what is the best way to learn python ?", "how do i cook rice ?"]


class SmokeTestError(RuntimeError):
    """The image did not do what the manifest expects of it."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeTestError(message)


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE).stdout.strip()


def encoder_container() -> dict:
    """The encoder Deployment's container from a fresh render, with its plain environment
    (literal values and the ConfigMap its envFrom names) under ``plain_env``."""
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "k8s.yaml"
        run(str(ROOT / "deploy/kubernetes/render.sh"), "manifests", str(manifest))
        objects = [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]
    named = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    container = named["Deployment", "encoder"]["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}
    for source in container.get("envFrom", []):
        env.update(named["ConfigMap", source["configMapRef"]["name"]]["data"])
    return {**container, "plain_env": env}


def base_tarball() -> Path:
    """A minimal Debian bookworm root filesystem with Python 3.11 (made once, about a minute)."""
    tar = WORK / "bookworm-python3.tar"
    if not tar.exists():
        include = "--include=python3,python3-venv,ca-certificates"
        run("mmdebstrap", "--variant=minbase", "--format=tar", include, "bookworm", f"{tar}.part")
        os.replace(f"{tar}.part", tar)
    return tar


def torch_index(directory: Path) -> bool:
    """A PEP 503 index in ``directory`` holding the local torch wheels ($TUNERFLOW_WHEELS,
    default /opt/wheels): a local mirror of PyTorch's CPU index. False if there are none."""
    wheels = sorted(Path(os.environ.get("TUNERFLOW_WHEELS", "/opt/wheels")).glob("torch-*.whl"))
    (directory / "torch").mkdir(parents=True)
    for wheel in wheels:
        shutil.copy2(wheel, directory / "torch" / wheel.name)
    links = "".join(f'<a href="{quote(wheel.name)}">{wheel.name}</a>\n' for wheel in wheels)
    (directory / "torch" / "index.html").write_text(links)
    return bool(wheels)


def build(image: str, build_args: list[str]) -> float:
    """Build the encoder variant; returns seconds. Only the build sees the host's CA bundle
    (for proxies that intercept TLS; Debian's pip reads the system bundle) and the local torch
    index, which is mounted over /tmp: both paths exist in the base, so the image keeps no trace."""
    mounts = ["-v", "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro"]
    args = [f"BASE=tarball:{base_tarball()}", "EXECUTOR=encoder"]
    with tempfile.TemporaryDirectory() as tmp:
        if torch_index(Path(tmp)):
            mounts += ["-v", f"{tmp}:/tmp"]
            args.append("TORCH_INDEX_URL=file:///tmp")
        start = time.monotonic()
        subprocess.run(
            [*BUILDAH, "bud", "--isolation", "chroot", "--format", "docker", "--pull=never", *mounts,
             *(f"--build-arg={arg}" for arg in [*args, *build_args]), "-t", image, str(ROOT)],
            check=True,
        )  # fmt: skip
        return time.monotonic() - start


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_serving(port: int, process: subprocess.Popen, timeout: float) -> float:
    """Seconds until the grpc.health.v1 check answers SERVING. Like a kubelet probe, every try opens
    a new connection: a channel opened before the server was up was seen failing minutes after it."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        check(process.poll() is None, f"the container exited with {process.returncode} (see {LOG})")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - start
            except grpc.RpcError:
                pass
        time.sleep(1)
    raise SmokeTestError(f"no SERVING answer on port {port} in {timeout:.0f} s (see {LOG})")


class Encoder:
    """jina's gRPC client, straight to the executor's port (no gateway)."""

    def __init__(self, port: int) -> None:
        from jina import Client

        self.client = Client(host=f"grpc://127.0.0.1:{port}")

    def encode(self, texts: list[str]) -> np.ndarray:
        from docarray import DocList
        from docarray.documents import TextDoc

        docs = DocList[TextDoc]([TextDoc(id=str(i), text=text) for i, text in enumerate(texts)])
        docs = self.client.post("/encode", inputs=docs, return_type=DocList[TextDoc])
        return np.stack([np.asarray(doc.embedding) for doc in docs])

    def info(self) -> dict:
        from docarray import DocList
        from docarray.documents import TextDoc

        # A document even here: sent straight to an executor, an empty request never returns.
        answer = self.client.post("/info", inputs=DocList[TextDoc]([TextDoc(text="-")]), return_responses=True)
        return next(iter(answer[0].parameters["__results__"].values()))


def publish(artifacts: Path) -> Path:
    """What the tuner does, done here: an artifact (the bundled model with CLS pooling, so its
    embeddings differ) saved under ``artifacts`` and named in ``artifacts/LATEST``."""
    import tunerflow
    from tunerflow.artifact.publish import write_latest

    path = tunerflow.save_artifact(tunerflow.load_model("all-MiniLM-L6-v2", pooling="cls"), artifacts / "smoke-cls")
    for item in [artifacts, *artifacts.rglob("*")]:  # written by root here; in the cluster both pods are uid 1000
        item.chmod(0o755 if item.is_dir() else 0o644)
    write_latest(artifacts, path.name)
    return path


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def exercise(port: int, home: Path, mount: str) -> dict:
    """Embed with the bundled model, publish an artifact on the volume, see the encoder swap to it."""
    import tunerflow

    encoder = Encoder(port)
    start = time.monotonic()
    served = encoder.encode(TEXTS)
    answer_seconds = time.monotonic() - start
    check(served.shape == (len(TEXTS), 384), f"embeddings of shape {served.shape}")
    bundled = tunerflow.encode(model=tunerflow.get_model("all-MiniLM-L6-v2"), data=TEXTS)
    check(cosines(served, bundled).min() > 0.999, f"not the bundled model's embeddings: {cosines(served, bundled)}")
    info = encoder.info()
    check(info["following"] == f"{mount}/artifacts", f"the encoder follows {info['following']}, not {mount}/artifacts")

    artifact = publish(home / "artifacts")
    start = time.monotonic()
    while encoder.info()["model"] != f"{mount}/artifacts/{artifact.name}":
        check(time.monotonic() - start < 60, f"the encoder did not pick up {artifact.name} in 60 s: {encoder.info()}")
        time.sleep(1)
    swap_seconds = time.monotonic() - start
    swapped = encoder.encode(TEXTS)
    expected = tunerflow.encode(model=tunerflow.get_model(str(artifact)), data=TEXTS)
    check(cosines(swapped, expected).min() > 0.999, f"not the artifact's embeddings: {cosines(swapped, expected)}")
    check(cosines(swapped, bundled).min() < 0.99, "the published artifact embeds like the bundled model")
    return {
        "seconds_to_answer": round(answer_seconds, 2),
        "embedding_shape": list(served.shape),
        "min_cosine_to_local": round(float(cosines(served, bundled).min()), 6),
        "following": info["following"],
        "seconds_to_swap_in_artifact": round(swap_seconds, 1),
        "serving_after_publish": f"{mount}/artifacts/{artifact.name}",
    }


def serve(image: str, container: dict, timeout: float) -> dict:
    """Start the container as the manifest says, on a fresh volume; exercise it; stop it."""
    port = int(container["args"][container["args"].index("--port") + 1])
    check(not port_taken(port), f"port {port} is taken: something else would answer for the container")
    (mount,) = container["volumeMounts"]
    home = Path(tempfile.mkdtemp(prefix="tunerflow-data-"))  # the volume; nothing published yet
    home.chmod(0o755)
    volume = f"--volume={home}:{mount['mountPath']}:{'ro' if mount.get('readOnly') else 'rw'}"
    env = [f"--env={key}={value}" for key, value in container["plain_env"].items()]
    ctr = run(*BUILDAH, "from", "--pull=never", image)
    try:
        with LOG.open("w") as log:
            process = subprocess.Popen(
                [*BUILDAH, "run", "--isolation", "chroot", volume, *env, ctr, "--",
                 *container["command"], *container["args"]],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            ready = wait_serving(port, process, timeout)
            return {"seconds_to_serving": round(ready, 1), **exercise(port, home, mount["mountPath"])}
        finally:  # the image's STOPSIGNAL, to buildah run and everything it started (one process group)
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=60)
    finally:
        run(*BUILDAH, "rm", ctr)
        shutil.rmtree(home, ignore_errors=True)


def smoke(tag: str | None, build_args: list[str] | None, timeout: float) -> dict:
    """Build (unless ``build_args`` is None) and run the image; the measurements as a dict."""
    container = encoder_container()
    image = tag or container["image"]
    seconds = build(image, build_args) if build_args is not None else None
    config = json.loads(run(*BUILDAH, "inspect", "--type", "image", image))["Docker"]["config"]
    check(config["User"] == "1000", f"the image runs as {config['User']!r}, not uid 1000")
    return {
        "date": datetime.date.today().isoformat(),
        "image": image,
        "build_seconds": round(seconds) if seconds is not None else None,
        "image_size": run(*BUILDAH, "images", "--format", "{{.Size}}", image),
        **serve(image, container, timeout),
        "command": shlex.join([*container["command"], *container["args"]]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tag", help="image name (default: the encoder image the manifest names)")
    parser.add_argument("--build-arg", action="append", default=[], help="KEY=VALUE for the build (repeatable)")
    parser.add_argument("--no-build", action="store_true", help="run the image already built")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for SERVING")
    args = parser.parse_args()
    missing = [tool for tool in ("buildah", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        parser.exit(2, f"missing {', '.join(missing)}: apt-get install -y buildah mmdebstrap\n")
    WORK.mkdir(parents=True, exist_ok=True)
    result = smoke(args.tag, None if args.no_build else args.build_arg, args.timeout)
    (WORK / "smoke-result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
